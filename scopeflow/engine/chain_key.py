"""The key of the span hash chain, kept outside the database.

The chain's links are HMACs under this key (``spans/integrity.py``), so a person who can write the
database but cannot read this key cannot edit a span and recompute a chain that verifies. The key is
``SCOPEFLOW_CHAIN_KEY`` when set (production: inject it from a secret manager), else the file
``<home>/chain.key``, created on first use with mode 0600. Back it up with the secret key: without
it, no stored chain can be verified, and `scopeflow evidence verify` says so.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

CHAIN_KEY_FILE = "chain.key"


class ChainKeyError(Exception):
    """The chain key cannot be read (wrong mode, empty file)."""


def load_chain_key(home: Path, env_value: str = "") -> bytes:
    """The chain key: ``env_value`` if given, else ``<home>/chain.key`` (created if missing)."""
    if env_value:
        return env_value.encode()
    path = Path(home) / CHAIN_KEY_FILE
    if not path.exists():
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ChainKeyError(f"refusing {path}: group or others can access it (mode {mode:o}); chmod 600 it")
    key = path.read_bytes().strip()
    if not key:
        raise ChainKeyError(f"{path} is empty: restore the chain key from a backup")
    return key


def _create(path: Path) -> None:
    """Publish a new random key with mode 0600, whole or not at all (written to a private temporary
    file, then linked into place); if another process published one first, keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{CHAIN_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
