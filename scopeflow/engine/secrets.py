"""The encrypted secret store: credentials at rest under Fernet, every access audited.

The key comes from ``SCOPEFLOW_SECRET_KEY`` or from ``<home>/secret.key``, created with mode 0600
on first use; a key file readable by group or others is refused. Values never leave this module
except to the handler that declared the secret (``TaskContext.secret``) and to the deployed app's
environment.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine.models import AuditEvent, Secret, utcnow

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SecretError(ValueError):
    """A secret operation was refused (bad name, unknown secret, unusable key): one line."""


def load_key(home: Path, env_key: str = "") -> bytes:
    if env_key:
        return env_key.encode()
    path = home / "secret.key"
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretError(f"refusing {path}: it is readable by others (mode {mode:o}); chmod 600 it")
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class SecretStore:
    def __init__(self, sessions: sessionmaker[Session], key: bytes):
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SecretError("the secret key is not a valid Fernet key (32 url-safe base64 bytes)") from None
        self._sessions = sessions

    def set(self, name: str, value: str, *, actor: str, instance_id: str | None = None) -> None:
        if not SECRET_NAME.match(name):
            raise SecretError(f"invalid secret name {name!r}: use letters, digits and underscores")
        if not value:
            raise SecretError(f"secret {name} has an empty value")
        token = self._fernet.encrypt(value.encode())
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            if row is None:
                session.add(Secret(name=name, ciphertext=token, updated_by=actor))
            else:
                row.ciphertext, row.updated_at, row.updated_by = token, utcnow(), actor
            session.add(AuditEvent(actor=actor, action="secret.write", target=name, instance_id=instance_id))

    def get(self, name: str, *, actor: str, instance_id: str | None = None, task: str = "") -> str:
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            session.add(AuditEvent(actor=actor, action="secret.read", target=name, instance_id=instance_id,
                                   details={"task": task, "found": row is not None}))
            if row is None:
                raise SecretError(f"secret {name} is not set")
            token = row.ciphertext
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

    def delete(self, name: str, *, actor: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(Secret, name)
            if row is None:
                raise SecretError(f"secret {name} is not set")
            session.delete(row)
            session.add(AuditEvent(actor=actor, action="secret.delete", target=name))

    def values(self) -> list[str]:
        """Every stored value (for redaction at the source); not audited per value."""
        with self._sessions() as session:
            tokens = session.scalars(select(Secret.ciphertext)).all()
        out = []
        for token in tokens:
            try:
                out.append(self._fernet.decrypt(token).decode())
            except InvalidToken:
                continue
        return out
