"""The encrypted secret store: credentials at rest under Fernet, every access audited.

The key comes from ``SCOPEFLOW_SECRET_KEY`` or from ``<home>/secret.key``, created with mode 0600
on first use; a key file that group or others can access is refused. Values never leave this module
except to the handler that declared the secret (``TaskContext.secret``), to the deployed app's
environment, and (through :meth:`SecretStore.values`) to the engine's redactor, which only uses
them to blank them out of messages and span attributes.

Rotation and running processes: a store opened from ``<home>/secret.key`` notices when the file
changes (a rotation replaced it) and reloads the key, so a long-running process keeps reading and
redacting. While a rotation is unfinished (``secret.key.next`` exists) it decrypts with both keys
and refuses writes; a write that races a rotation is rolled back and refused, never left under a
key the rotated store cannot read.

Audit: every ``set``, ``get`` and ``delete`` (and every re-encryption by :func:`rotate_key`) adds
an ``audit_event`` row naming the actor, the secret, and the instance and task when there is one.
Audit rows never carry a value. :meth:`SecretStore.values` is not audited per call: it runs on
every advance and its values go nowhere but the redactor.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine.db import private_dir
from scopeflow.engine.models import AuditEvent, Secret, utcnow

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_FILE = "secret.key"
PENDING_FILE = KEY_FILE + ".next"

log = logging.getLogger(__name__)


class SecretError(ValueError):
    """A secret operation was refused (bad name, unknown secret, unusable key): one line."""


# ------------------------------------------------------------------------------ the key

def load_key(home: Path, env_key: str = "") -> bytes:
    """The store's key: ``env_key`` if given, else ``<home>/secret.key`` (created 0600 if missing).

    An unfinished rotation (``secret.key.next``) does not stop this: the store reads with both keys
    and refuses writes until the rotation is run again (see :class:`SecretStore`).
    """
    if env_key:
        return env_key.encode()
    path = Path(home) / KEY_FILE
    if not path.exists():
        private_dir(path.parent)
        publish_key_file(path, Fernet.generate_key())
    return read_key_file(path)


def read_key_file(path: Path, without_it: str = "secrets cannot be read without it") -> bytes:
    """The key in ``path``, refused when group or others can access the file or it is empty
    (``without_it`` says what is lost, for the message)."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretError(f"refusing {path}: group or others can access it (mode {mode:o}); chmod 600 it")
    key = path.read_bytes().strip()
    if not key:
        raise SecretError(f"{path} is empty: restore the key from a backup ({without_it})")
    return key


def interrupted_rotation_key(home: Path) -> bytes | None:
    """The new key of a rotation that did not finish (``secret.key.next``), or ``None``.

    A ``secret.key.next`` without a complete key (empty, or not a Fernet key) is ``None`` too: the
    key is staged completely before any row changes, so that rotation never touched the database.
    """
    pending = Path(home) / PENDING_FILE
    if not pending.exists():
        return None
    try:
        key = read_key_file(pending)
        Fernet(key)
    except (SecretError, ValueError, TypeError):
        if stat.S_IMODE(pending.stat().st_mode) & 0o077:
            raise
        log.warning("ignoring %s: it holds no complete key, so its rotation changed nothing; "
                    "`scopeflow secrets rotate-key` replaces it", pending)
        return None
    return key


def _write_private(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file readable by its owner only, and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def publish_key_file(path: Path, key: bytes) -> bool:
    """Create ``path`` holding ``key`` atomically (complete or absent, never half-written); if the
    file exists already (another process won the race), keep it and return False."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_private(temp, key)
        os.link(temp, path)   # fails if the file appeared meanwhile: never overwrite a key
        published = True
    except FileExistsError:
        published = False
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return published


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fernet(key: bytes, which: str = "secret key") -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise SecretError(f"the {which} is not a valid Fernet key (32 url-safe base64 bytes)") from None


# ------------------------------------------------------------------------------ the store

@dataclass(frozen=True)
class _Keys:
    """The keys a store uses now: every key that may decrypt, the one to encrypt with (None while a
    rotation is unfinished), and the key files' identity they were read from."""

    read: MultiFernet
    write: Fernet | None
    signature: tuple = ()


def _signature(home: Path) -> tuple:
    """Identity of ``secret.key`` and ``secret.key.next`` (inode, mtime, size): a rotation changes it."""
    out = []
    for name in (KEY_FILE, PENDING_FILE):
        try:
            info = (Path(home) / name).stat()
            out.append((info.st_ino, info.st_mtime_ns, info.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def _keys_from_files(home: Path) -> _Keys:
    signature = _signature(home)
    try:
        current = _fernet(read_key_file(Path(home) / KEY_FILE))
    except FileNotFoundError:
        raise SecretError(f"{Path(home) / KEY_FILE} is gone: restore it from a backup") from None
    pending = interrupted_rotation_key(home)
    if pending is None:
        return _Keys(MultiFernet([current]), current, signature)
    return _Keys(MultiFernet([_fernet(pending, "key in " + PENDING_FILE), current]), None, signature)


def open_store(sessions: sessionmaker[Session], home: Path, env_key: str = "") -> SecretStore:
    """The engine's store: keyed by ``env_key`` when set, else by ``<home>/secret.key``, watched."""
    if env_key:
        return SecretStore(sessions, load_key(home, env_key))
    load_key(home)   # creates the key file on first use
    return SecretStore(sessions, home=home)


class SecretStore:
    """Named secrets encrypted with one Fernet key; every access leaves an audit event.

    With ``key`` the key is fixed (``SCOPEFLOW_SECRET_KEY``); with ``home`` it is read from
    ``<home>/secret.key`` and read again whenever a rotation changes the key files.
    """

    def __init__(self, sessions: sessionmaker[Session], key: bytes | None = None, *, home: Path | None = None):
        if (key is None) == (home is None):
            raise ValueError("SecretStore needs a key or a home, not both")
        self._sessions = sessions
        self._home = Path(home) if home is not None else None
        self._current = _keys_from_files(self._home) if self._home is not None else None
        if key is not None:
            fernet = _fernet(key)
            self._current = _Keys(MultiFernet([fernet]), fernet)

    def _keys(self) -> _Keys:
        if self._home is not None and _signature(self._home) != self._current.signature:
            self._current = _keys_from_files(self._home)
        return self._current

    def set(self, name: str, value: str, *, actor: str, instance_id: str | None = None, task: str = "") -> None:
        if not SECRET_NAME.match(name):
            raise SecretError(f"invalid secret name {name!r}: use letters, digits and underscores")
        if not isinstance(value, str) or not value:
            raise SecretError(f"secret {name} needs a non-empty text value")
        keys = self._keys()
        if keys.write is None:
            raise SecretError(f"a key rotation is unfinished ({self._home / PENDING_FILE} exists): run "
                              f"`scopeflow secrets rotate-key` to finish it, then store {name} again")
        token = keys.write.encrypt(value.encode())
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            if row is None:
                session.add(Secret(name=name, ciphertext=token, updated_by=actor))
            else:
                row.ciphertext, row.updated_at, row.updated_by = token, utcnow(), actor
            session.add(AuditEvent(actor=actor, action="secret.write", target=name, instance_id=instance_id,
                                   details={"task": task, "created": row is None}))
            session.flush()   # holds the write lock a rotation waits for (and waits for a rotation's)
            self._refuse_stale_key(session, keys, name)

    def _refuse_stale_key(self, session: Session, keys: _Keys, name: str) -> None:
        """Roll the write back when its key is no longer the store's: a rotation started or finished
        meanwhile (the key files changed), or the other rows are under a key this process lacks."""
        if self._home is not None and _signature(self._home) != keys.signature:
            raise SecretError(f"the secret key changed while {name} was being stored (a key rotation): "
                              f"nothing was stored; store {name} again")
        others = session.scalars(select(Secret.ciphertext).where(Secret.name != name)).all()
        if others and not any(_opens(keys.read, token) for token in others):
            raise SecretError(f"this process's secret key opens none of the stored secrets (was the key rotated?): "
                              f"{name} was not stored; restart with the current key")

    def get(self, name: str, *, actor: str, instance_id: str | None = None, task: str = "") -> str:
        keys = self._keys()
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            session.add(AuditEvent(actor=actor, action="secret.read", target=name, instance_id=instance_id,
                                   details={"task": task, "found": row is not None}))
            token = row.ciphertext if row is not None else None
        if token is None:   # raised after the commit, so the refused read stays in the audit trail
            raise SecretError(f"secret {name} is not set")
        try:
            return keys.read.decrypt(token).decode()
        except InvalidToken:
            raise SecretError(f"secret {name} cannot be decrypted with the current key") from None

    def has(self, name: str) -> bool:
        with self._sessions() as session:
            return session.get(Secret, name) is not None

    def names(self) -> list[dict]:
        with self._sessions() as session:
            rows = session.scalars(select(Secret).order_by(Secret.name)).all()
            return [{"name": r.name, "updated_at": r.updated_at.isoformat(), "updated_by": r.updated_by}
                    for r in rows]

    def delete(self, name: str, *, actor: str, instance_id: str | None = None) -> None:
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            if row is None:
                raise SecretError(f"secret {name} is not set")
            session.delete(row)
            session.add(AuditEvent(actor=actor, action="secret.delete", target=name, instance_id=instance_id))

    def values(self) -> list[str]:
        """Every stored value, for the engine's redactor only (see the module docstring on audit).

        A value this process cannot decrypt cannot be redacted: that is logged as an error each time.
        """
        keys = self._keys()
        with self._sessions() as session:
            tokens = session.scalars(select(Secret.ciphertext)).all()
        out = []
        for token in tokens:
            try:
                out.append(keys.read.decrypt(token).decode())
            except InvalidToken:
                continue
        if len(out) < len(tokens):
            log.error("%d stored secret(s) do not decrypt with this process's key, so they cannot be redacted "
                      "(was the key rotated? restart with the current key)", len(tokens) - len(out))
        return out


def _opens(keys: MultiFernet, token: bytes) -> bool:
    try:
        keys.decrypt(token)
    except InvalidToken:
        return False
    return True


# ------------------------------------------------------------------------------ rotation

def rotate_key(sessions: sessionmaker[Session], old_key: bytes, new_key: bytes, *,
               key_file: Path | None = None, actor: str = "cli") -> int:
    """Re-encrypt every secret from ``old_key`` to ``new_key``; returns how many were re-encrypted.

    All rows change in one transaction: if any secret cannot be decrypted, nothing changes. With
    ``key_file`` (the store's ``secret.key``), the new key is first written beside it as
    ``secret.key.next`` (0600, fsynced, complete or absent), then the transaction commits, then the
    file is renamed over ``secret.key``. A crash in between leaves ``secret.key.next``: stores
    read with both keys and refuse writes until the rotation is run again with the same two keys,
    which finishes it because rows already under ``new_key`` are accepted. Stores opened from the
    key file follow the rename by themselves. Without ``key_file`` (the key lives in
    ``SCOPEFLOW_SECRET_KEY``) the caller must put ``new_key`` in that variable and restart every
    process; until then their writes are refused and their redactor logs what it cannot read.
    """
    old, new = _fernet(old_key, "old key"), _fernet(new_key, "new key")
    if old_key.strip() == new_key.strip():
        raise SecretError("the new key is the same as the old key")
    either = MultiFernet([old, new])
    pending = Path(key_file).with_name(PENDING_FILE) if key_file is not None else None
    staged = pending is not None and _stage_new_key(pending, new_key)
    try:
        count = _reencrypt_all(sessions, either, new, actor, key_file)
    except BaseException:
        if staged:
            pending.unlink()   # the transaction rolled back: the old key is still the key
        raise
    if pending is not None:
        os.replace(pending, key_file)
        _fsync_dir(pending.parent)
    return count


def _reencrypt_all(sessions: sessionmaker[Session], either: MultiFernet, new: Fernet, actor: str,
                   key_file: Path | None) -> int:
    """One transaction: every row decrypted with either key and encrypted with the new one.

    It takes the write lock before reading the rows (PostgreSQL: a table lock; SQLite: the audit
    row's insert), so a secret written concurrently is either seen and re-encrypted here or waits
    and is then refused by its writer (see ``SecretStore._refuse_stale_key``).
    """
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE secret IN SHARE ROW EXCLUSIVE MODE"))
        summary = AuditEvent(actor=actor, action="secret.rotate_key", target="*", details={})
        session.add(summary)
        session.flush()
        rows = session.scalars(select(Secret).order_by(Secret.name)).all()
        for row in rows:
            try:
                plain = either.decrypt(row.ciphertext)
            except InvalidToken:
                raise SecretError(f"secret {row.name} decrypts with neither key: nothing was rotated") from None
            row.ciphertext, row.updated_at, row.updated_by = new.encrypt(plain), utcnow(), actor
            session.add(AuditEvent(actor=actor, action="secret.reencrypt", target=row.name))
        summary.details = {"secrets": len(rows), "key_file": str(key_file or "")}
        return len(rows)


def _stage_new_key(pending: Path, new_key: bytes) -> bool:
    """Write ``secret.key.next`` and say so; an existing one must hold this key (a resumed rotation).

    One without a complete key is left from a rotation interrupted while staging, before any row
    changed: it is replaced.
    """
    existing = interrupted_rotation_key(pending.parent)
    if existing is None and pending.exists():
        pending.unlink()
    if existing is None and publish_key_file(pending, new_key.strip()):
        return True
    if read_key_file(pending) != new_key.strip():
        raise SecretError(f"{pending} holds a different key from an interrupted rotation; "
                          "finish that rotation with its key first")
    return False
