"""Database connection: one SQLAlchemy engine per URL, schema kept current by Alembic migrations.

The store holds every instance's data: a SQLite file is created 0600 in a directory created 0700
(SQLite gives its ``-wal`` and ``-shm`` files the database file's mode).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class StoreError(RuntimeError):
    """The store cannot be reached or is not in a usable state (one-line message)."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(url: str) -> Engine:
    """The engine for ``url``, created (and migrated to the newest schema) on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            migrate(engine)
            _engines[url] = engine
        return engine


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by its owner only; an existing one is left as is."""
    if path.exists():
        return
    private_dir(path.parent)
    path.mkdir(mode=0o700, exist_ok=True)


def _private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 unless it exists (SQLite opens an empty file as a new database)."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class JsonText(str):
    """A JSON column's value already encoded by the caller (the span store encodes a span's
    attributes once, for its hash and its row): the columns' encoder writes it as it is."""


def json_column_text(value: object) -> str:
    """JSON columns' encoder: ``json.dumps``, without calling it for the empty lists and objects
    that most span rows carry (events, links), nor for text a caller encoded (:class:`JsonText`)."""
    if type(value) is JsonText:
        return value
    if value == [] and isinstance(value, list):
        return "[]"
    if value == {} and isinstance(value, dict):
        return "{}"
    return json.dumps(value)


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            _private_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               json_serializer=json_column_text)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=json_column_text)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection_engine"] = engine
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except Exception as exc:  # one line for the CLI; the cause stays chained
        raise StoreError(f"cannot prepare the database at {engine.url!r}: {exc}") from exc


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
