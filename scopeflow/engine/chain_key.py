"""The key of the span hash chain, kept outside the database.

The chain's links are HMACs under this key (``spans/integrity.py``), so a person who can write the
database but cannot read this key cannot edit a span and recompute a chain that verifies. The key is
``SCOPEFLOW_CHAIN_KEY`` when set (production: inject it from a secret manager), else the file
``<home>/chain.key``, created on first use with mode 0600 (published whole, like the secret key).
Back it up apart from the database: without it, no stored chain can be verified, and
`scopeflow evidence verify` says so.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from scopeflow.engine.db import private_dir
from scopeflow.engine.secrets import publish_key_file, read_key_file

CHAIN_KEY_FILE = "chain.key"


def load_chain_key(home: Path, env_value: str = "") -> bytes:
    """The chain key: ``env_value`` if given, else ``<home>/chain.key`` (created if missing)."""
    if env_value:
        return env_value.encode()
    path = Path(home) / CHAIN_KEY_FILE
    if not path.exists():
        private_dir(path.parent)
        publish_key_file(path, secrets.token_hex(32).encode())
    return read_key_file(path, "no span chain can be verified without it")
