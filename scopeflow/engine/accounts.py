"""User accounts: create, list, authenticate, lock, sign-out epochs, API tokens.

Passwords are stored as werkzeug hashes; API tokens are random and only their SHA-256 is stored,
so a stolen database yields neither. Every function takes the engine's sessionmaker, opens its own
short session and returns plain values (an :class:`Account`, names, dicts), so the CLI
(``scopeflow users ...``) and the web UI share one implementation and never hold a ``User`` row.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from scopeflow.engine.models import ROLES, User, utcnow

FOREVER = datetime(9999, 1, 1, tzinfo=UTC)   # a lock without an end: until `users unlock`
MIN_PASSWORD_LENGTH = 8
NAME_MAX = 100


class AccountError(ValueError):
    """A refused account operation (unknown role, duplicate name, weak password): one line."""


@dataclass(frozen=True)
class Account:
    """The signed-in user as the UI sees it (no secrets); what Flask-Login keeps per request."""

    id: str
    name: str
    roles: tuple[str, ...] = field(default_factory=tuple)
    session_epoch: int = 0

    # Flask-Login's user protocol.
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        """What the session cookie stores: the id and the epoch, so sign-out can void old cookies."""
        return f"{self.id}.{self.session_epoch}"

    def has_role(self, *roles: str) -> bool:
        """True when the user holds one of ``roles``; admin holds every role."""
        return "admin" in self.roles or any(r in self.roles for r in roles)


def _account(row: User) -> Account:
    return Account(id=row.id, name=row.name, roles=tuple(row.roles or ()), session_epoch=row.session_epoch or 0)


def _check_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise AccountError("a user needs at least one role")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise AccountError(f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}")
    return sorted(set(roles))


def create_user(sessions: sessionmaker[Session], name: str, roles: list[str], password: str) -> Account:
    """Create an active user; raises AccountError for a taken name, unknown role or short password."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or any(c.isspace() for c in name):
        raise AccountError(f"user name must be 1-{NAME_MAX} characters without spaces")
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    checked = _check_roles(list(roles))
    with sessions.begin() as session:
        if session.scalar(select(User.id).where(User.name == name)):
            raise AccountError(f"user {name!r} already exists")
        row = User(name=name, password_hash=generate_password_hash(password), roles=checked)
        session.add(row)
        session.flush()
        return _account(row)


def user_count(sessions: sessionmaker[Session]) -> int:
    """How many accounts exist (``scopeflow serve`` says how to make the first one when none does)."""
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def list_users(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """Every account by name: name, roles (comma-separated), active, last sign-in (ISO text or None)."""
    with sessions() as session:
        return [{"name": u.name, "roles": ",".join(u.roles or []), "active": u.active,
                 "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None}
                for u in session.scalars(select(User).order_by(User.name))]


def _usable(row: User | None, now: datetime) -> bool:
    """Active and not locked: what a password, a session cookie and an API token all require."""
    return row is not None and row.active and not (row.locked_until is not None and row.locked_until > now)


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A hash made like every stored one, checked for unknown names so they take as long as known ones."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def authenticate(sessions: sessionmaker[Session], name: str, password: str) -> Account:
    """The account for ``name``/``password``, or AccountError with the same message for any failure.

    Wrong guesses never lock an account (anyone could lock anyone out): the web UI throttles the
    guessing *client* instead (``ui/auth_throttle.py``). The password is checked against a hash in
    every case, a dummy one for unknown names, and a failure writes nothing, so the answer's timing
    does not tell which names exist.
    """
    now = utcnow()
    with sessions.begin() as session:
        row = session.scalar(select(User).where(User.name == (name or "").strip()))
        matches = check_password_hash(row.password_hash if row is not None else _dummy_hash(), password or "")
        if not (matches and _usable(row, now)):
            raise AccountError("wrong user name or password, or the account is locked")
        row.failed_logins, row.last_login_at = 0, now
        return _account(row)


def lock(sessions: sessionmaker[Session], name: str, until: datetime | None = None) -> None:
    """Lock ``name`` (until ``until``, default: until unlocked): no sign-in, its sessions and its
    API token stop working at their next request."""
    with sessions.begin() as session:
        row = _row(session, name)
        row.locked_until = until or FOREVER
        row.session_epoch += 1


def unlock(sessions: sessionmaker[Session], name: str) -> None:
    with sessions.begin() as session:
        row = _row(session, name)
        row.locked_until, row.failed_logins = None, 0


def end_sessions(sessions: sessionmaker[Session], user_id: str) -> None:
    """Sign-out: every session cookie issued to this user so far stops working (their copies too)."""
    with sessions.begin() as session:
        row = session.get(User, user_id)
        if row is not None:
            row.session_epoch += 1


def _row(session: Session, name: str) -> User:
    row = session.scalar(select(User).where(User.name == name))
    if row is None:
        raise AccountError(f"unknown user {name!r}")
    return row


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(sessions: sessionmaker[Session], name: str) -> str:
    """A new API token for ``name`` (replacing any previous one); shown once, stored hashed."""
    token = "sf_" + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        row = session.scalar(select(User).where(User.name == name))
        if row is None:
            raise AccountError(f"unknown user {name!r}")
        row.api_token_hash = _token_hash(token)
    return token


def account_by_token(sessions: sessionmaker[Session], token: str) -> Account | None:
    """The active account whose API token is ``token``, else None."""
    if not token:
        return None
    with sessions() as session:
        row = session.scalar(select(User).where(User.api_token_hash == _token_hash(token)))
        return _account(row) if _usable(row, utcnow()) else None


def account_by_session(sessions: sessionmaker[Session], session_id: str) -> Account | None:
    """The usable account a session cookie names (``<user id>.<epoch>``), else None: a cookie from
    before the user's last sign-out (or lock) names an old epoch and no longer works."""
    user_id, _, epoch = (session_id or "").rpartition(".")
    with sessions() as session:
        row = session.get(User, user_id) if user_id else None
        if not _usable(row, utcnow()) or str(row.session_epoch) != epoch:
            return None
        return _account(row)
