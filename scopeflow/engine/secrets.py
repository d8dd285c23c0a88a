"""The encrypted secret store: credentials at rest under Fernet, every access audited.

The key comes from ``SCOPEFLOW_SECRET_KEY`` or from ``<home>/secret.key``, created with mode 0600
on first use; a key file that group or others can access is refused. Values never leave this module
except to the handler that declared the secret (``TaskContext.secret``), to the deployed app's
environment, and (through :meth:`SecretStore.values`) to the engine's redactor, which only uses
them to blank them out of messages and span attributes.

Audit: every ``set``, ``get`` and ``delete`` (and every re-encryption by :func:`rotate_key`) adds
an ``audit_event`` row naming the actor, the secret, and the instance and task when there is one.
Audit rows never carry a value. :meth:`SecretStore.values` is not audited per call: it runs on
every advance and its values go nowhere but the redactor.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine.models import AuditEvent, Secret, utcnow

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_FILE = "secret.key"


class SecretError(ValueError):
    """A secret operation was refused (bad name, unknown secret, unusable key): one line."""


# ------------------------------------------------------------------------------ the key

def load_key(home: Path, env_key: str = "") -> bytes:
    """The store's key: ``env_key`` if given, else ``<home>/secret.key`` (created 0600 if missing)."""
    if env_key:
        return env_key.encode()
    path = Path(home) / KEY_FILE
    pending = path.with_name(KEY_FILE + ".next")
    if pending.exists():
        raise SecretError(f"{pending} exists: a key rotation was interrupted; run the rotation again "
                          "with the same keys to finish it")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _publish_new_key_file(path, Fernet.generate_key())
    return read_key_file(path)


def read_key_file(path: Path) -> bytes:
    """The key in ``path``, refused when group or others can access the file or it is empty."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretError(f"refusing {path}: group or others can access it (mode {mode:o}); chmod 600 it")
    key = path.read_bytes().strip()
    if not key:
        raise SecretError(f"{path} is empty: restore the key from a backup (secrets cannot be read without it)")
    return key


def interrupted_rotation_key(home: Path) -> bytes | None:
    """The new key of a rotation that did not finish (``secret.key.next``), or ``None``."""
    pending = Path(home) / (KEY_FILE + ".next")
    return read_key_file(pending) if pending.exists() else None


def _write_private(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file readable by its owner only, and make it durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _publish_new_key_file(path: Path, key: bytes) -> None:
    """Create ``path`` holding ``key`` atomically; if another process won the race, keep its key."""
    temp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    _write_private(temp, key)
    try:
        os.link(temp, path)   # fails if the file appeared meanwhile: never overwrite a key
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    _fsync_dir(path.parent)


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

class SecretStore:
    """Named secrets encrypted with one Fernet key; every access leaves an audit event."""

    def __init__(self, sessions: sessionmaker[Session], key: bytes):
        self._fernet = _fernet(key)
        self._sessions = sessions

    def set(self, name: str, value: str, *, actor: str, instance_id: str | None = None, task: str = "") -> None:
        if not SECRET_NAME.match(name):
            raise SecretError(f"invalid secret name {name!r}: use letters, digits and underscores")
        if not isinstance(value, str) or not value:
            raise SecretError(f"secret {name} needs a non-empty text value")
        token = self._fernet.encrypt(value.encode())
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            if row is None:
                session.add(Secret(name=name, ciphertext=token, updated_by=actor))
            else:
                row.ciphertext, row.updated_at, row.updated_by = token, utcnow(), actor
            session.add(AuditEvent(actor=actor, action="secret.write", target=name, instance_id=instance_id,
                                   details={"task": task, "created": row is None}))

    def get(self, name: str, *, actor: str, instance_id: str | None = None, task: str = "") -> str:
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            session.add(AuditEvent(actor=actor, action="secret.read", target=name, instance_id=instance_id,
                                   details={"task": task, "found": row is not None}))
            token = row.ciphertext if row is not None else None
        if token is None:   # raised after the commit, so the refused read stays in the audit trail
            raise SecretError(f"secret {name} is not set")
        try:
            return self._fernet.decrypt(token).decode()
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
        """Every stored value, for the engine's redactor only (see the module docstring on audit)."""
        with self._sessions() as session:
            tokens = session.scalars(select(Secret.ciphertext)).all()
        out = []
        for token in tokens:
            try:
                out.append(self._fernet.decrypt(token).decode())
            except InvalidToken:
                continue
        return out


# ------------------------------------------------------------------------------ rotation

def rotate_key(sessions: sessionmaker[Session], old_key: bytes, new_key: bytes, *,
               key_file: Path | None = None, actor: str = "cli") -> int:
    """Re-encrypt every secret from ``old_key`` to ``new_key``; returns how many were re-encrypted.

    All rows change in one transaction: if any secret cannot be decrypted, nothing changes. With
    ``key_file`` (the store's ``secret.key``), the new key is first written beside it as
    ``secret.key.next`` (0600, fsynced), then the transaction commits, then the file is renamed
    over ``secret.key``. A crash in between leaves ``secret.key.next``, which :func:`load_key`
    refuses to ignore; running the rotation again with the same two keys finishes it, because
    rows already under ``new_key`` are accepted. Without ``key_file`` (the key lives in
    ``SCOPEFLOW_SECRET_KEY``) the caller must put ``new_key`` in that variable afterwards.
    Running engines keep their old ``SecretStore`` and must be restarted.
    """
    old, new = _fernet(old_key, "old key"), _fernet(new_key, "new key")
    if old_key.strip() == new_key.strip():
        raise SecretError("the new key is the same as the old key")
    either = MultiFernet([old, new])
    pending = Path(key_file).with_name(KEY_FILE + ".next") if key_file is not None else None
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
    """One transaction: every row decrypted with either key and encrypted with the new one."""
    with sessions.begin() as session:
        rows = session.scalars(select(Secret).order_by(Secret.name)).all()
        for row in rows:
            try:
                plain = either.decrypt(row.ciphertext)
            except InvalidToken:
                raise SecretError(f"secret {row.name} decrypts with neither key: nothing was rotated") from None
            row.ciphertext, row.updated_at, row.updated_by = new.encrypt(plain), utcnow(), actor
            session.add(AuditEvent(actor=actor, action="secret.reencrypt", target=row.name))
        session.add(AuditEvent(actor=actor, action="secret.rotate_key", target="*",
                               details={"secrets": len(rows), "key_file": str(key_file or "")}))
        return len(rows)


def _stage_new_key(pending: Path, new_key: bytes) -> bool:
    """Write ``secret.key.next`` and say so; an existing one must hold this key (a resumed rotation)."""
    if pending.exists():
        if read_key_file(pending) != new_key.strip():
            raise SecretError(f"{pending} holds a different key from an interrupted rotation; "
                              "finish that rotation with its key first")
        return False
    _write_private(pending, new_key.strip())
    _fsync_dir(pending.parent)
    return True
