"""Deployed model versions: store a new version when a model's bundle changes; load one to run."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine.models import ModelVersion
from scopeflow.engine.parsing import load_specs
from scopeflow.engine.spiff import set_spec_source
from scopeflow.processes.catalog import Catalog, bundle_hash, catalog_from_files
from scopeflow.processes.prepare import prepare


@dataclass
class LoadedVersion:
    """A version parsed once per process: its catalog (forms, properties) and Spiff specs."""

    id: str
    name: str
    version: int
    catalog: Catalog
    spec: Any
    subprocess_specs: dict[str, Any]


_cache: dict[str, LoadedVersion] = {}
_cache_lock = threading.Lock()
_stores: dict[str, sessionmaker[Session]] = {}   # database URL -> sessions, for specs_for's misses


def remember_store(sessions: sessionmaker[Session]) -> None:
    """Let :func:`specs_for` read versions from this store (an Engine registers its own)."""
    with _cache_lock:
        _stores[str(sessions.kw["bind"].url)] = sessions


def specs_for(version_id: str) -> tuple[Any, dict[str, Any]]:
    """(spec, subprocess specs) of a deployed version: what a state that refers to it runs on."""
    with _cache_lock:
        cached = _cache.get(version_id)
        stores = list(_stores.values())
    if cached is None:
        for sessions in reversed(stores):
            with sessions() as session:
                row = session.get(ModelVersion, version_id)
                if row is not None:
                    cached = load(row)
                    break
    if cached is None:
        raise LookupError(f"model version {version_id} is in no open store")
    return cached.spec, cached.subprocess_specs


def deploy(session: Session, catalog: Catalog, model: str) -> tuple[ModelVersion, bool]:
    """The current version of ``model`` (a new row when its bundle changed); returns (row, created)."""
    files = catalog.bundle(model)
    digest = bundle_hash(files)
    latest = latest_version(session, model)
    if latest is not None and latest.content_hash == digest:
        return latest, False
    number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == model)) or 0) + 1
    row = ModelVersion(name=model, version=number, content_hash=digest, files=files)
    session.add(row)
    session.flush()
    return row, True


def store(sessions: sessionmaker[Session], catalog: Catalog, models: list[str]) -> list[tuple[str, int, bool]]:
    """Deploy each of ``models`` from ``catalog`` in one transaction (the designer's upload and
    save, after lint); returns (model, version, created) for each, in order."""
    with sessions.begin() as session:
        return [(model, row.version, created) for model in models
                for row, created in [deploy(session, catalog, model)]]


def latest_version(session: Session, model: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == model).order_by(ModelVersion.version.desc()).limit(1)
    ).first()


_NEWEST_ID = (select(ModelVersion.id).where(ModelVersion.name == bindparam("model"))
              .order_by(ModelVersion.version.desc()).limit(1))


def newest_id(db: Engine, model: str) -> str | None:
    """The id of the newest stored version of ``model`` (one indexed query, built once: the engine
    asks it at every start to check that the version it remembers is still the newest)."""
    with db.connect() as conn:
        return conn.scalar(_NEWEST_ID, {"model": model})


def prepared_files(files: dict[str, str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(BPMN, DMN) files as SpiffWorkflow gets them: BPMN through ``prepare``, exactly as lint saw it."""
    bpmn = {path: prepare(path, text).xml for path, text in files.items() if path.endswith(".bpmn")}
    dmn = {path: text.encode("utf-8") for path, text in files.items() if path.endswith(".dmn")}
    return bpmn, dmn


def load_id(sessions: sessionmaker[Session], version_id: str) -> LoadedVersion:
    """The version ``version_id``, parsed once per process (the store is read only on a miss)."""
    with _cache_lock:
        cached = _cache.get(version_id)
    if cached is not None:
        return cached
    with sessions() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise LookupError(f"model version {version_id} is not in the store")
        return load(row)


class VersionFiles(Protocol):
    """What :func:`load` reads of a version: a ``ModelVersion`` row or a ``reads.StoredVersion``."""

    id: str
    name: str
    version: int
    files: dict[str, Any]


def load(row: VersionFiles) -> LoadedVersion:
    """The version parsed (once per process: cached by id)."""
    with _cache_lock:
        cached = _cache.get(row.id)
    if cached is not None:
        return cached
    catalog = catalog_from_files(row.files)
    spec, subprocess_specs = load_specs(*prepared_files(row.files), row.name)  # validated by lint at deploy
    loaded = LoadedVersion(id=row.id, name=row.name, version=row.version, catalog=catalog,
                           spec=spec, subprocess_specs=subprocess_specs)
    with _cache_lock:
        _cache[row.id] = loaded
    return loaded


set_spec_source(specs_for)
