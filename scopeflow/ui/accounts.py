"""User accounts: create, authenticate (with lockout), API tokens.

Passwords are stored as werkzeug hashes; API tokens are random and only their SHA-256 is stored,
so a stolen database yields neither. Every function takes the engine's sessionmaker so the CLI
(``scopeflow users add``) and the web UI share one implementation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from scopeflow.engine.models import ROLES, User, utcnow

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
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

    # Flask-Login's user protocol.
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return self.id

    def has_role(self, *roles: str) -> bool:
        """True when the user holds one of ``roles``; admin holds every role."""
        return "admin" in self.roles or any(r in self.roles for r in roles)


def _account(row: User) -> Account:
    return Account(id=row.id, name=row.name, roles=tuple(row.roles or ()))


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


def authenticate(sessions: sessionmaker[Session], name: str, password: str) -> Account:
    """The account for ``name``/``password``, or AccountError with the same message for any failure.

    Five wrong passwords in a row lock the account for 15 minutes (counted even while locked, so
    guessing does not reset the lock); a success clears the counter.
    """
    refused = AccountError("wrong user name or password, or the account is locked")
    now = utcnow()
    with sessions.begin() as session:  # commits the failure count: raising inside would roll it back
        row = session.scalar(select(User).where(User.name == (name or "").strip()))
        if row is None or not row.active:
            account = None
        elif row.locked_until is not None and row.locked_until > now:
            account = None
        elif not check_password_hash(row.password_hash, password or ""):
            account = None
            row.failed_logins += 1
            if row.failed_logins >= MAX_FAILED_LOGINS:
                row.locked_until = now + LOCKOUT
                row.failed_logins = 0
        else:
            row.failed_logins, row.locked_until, row.last_login_at = 0, None, now
            account = _account(row)
    if account is None:
        raise refused
    return account


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
        return _account(row) if row is not None and row.active else None


def account_by_id(sessions: sessionmaker[Session], user_id: str) -> Account | None:
    """The active account with ``user_id`` (what the session cookie names), else None."""
    with sessions() as session:
        row = session.get(User, user_id)
        return _account(row) if row is not None and row.active else None
