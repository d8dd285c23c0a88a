"""The engine's models: deploy the models directory's files as versions (``engine/versions.py``
stores and parses them), and pick the version a new instance runs.

Both ask the disk and the store as little as possible: the directory is re-scanned only when a
file's stat signature changed, and the newest version is re-loaded only when the store's newest id
or the disk's content digest moved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SAEngine
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from scopeflow.config import Settings
from scopeflow.engine import versions
from scopeflow.engine.errors import EngineError
from scopeflow.engine.models import ModelVersion
from scopeflow.processes.catalog import Catalog, bundle_hash, scan
from scopeflow.processes.lint import errors, lint_catalog


class ModelVersions:
    """One engine's view of its models directory and the versions stored from it (with the
    caches that keep a start to one indexed query)."""

    def __init__(self, sessions: sessionmaker[Session], db: SAEngine, settings: Settings):
        self.sessions = sessions
        self.db = db   # Core connection for the per-start newest-version query
        self.settings = settings
        self._catalogs: dict[str, tuple[tuple, Catalog]] = {}
        # model -> (newest version id, models-directory digest known to be stored, that version)
        self._versions: dict[str, tuple[str, str, versions.LoadedVersion]] = {}
        self._digests: dict[str, tuple[Catalog, str]] = {}   # model -> (catalog it was hashed in, digest)

    def deploy(self, models: list[str] | None = None, models_dir: Path | None = None) -> list[dict[str, Any]]:
        """Lint and store new versions of ``models`` (default: all); lint errors refuse the deploy."""
        catalog = self.scan(models_dir or self.settings.models_dir)
        names = models or catalog.models
        for name in names:
            catalog.process(name)
        with self.sessions() as session:
            latest = {name: versions.latest_version(session, name) for name in names}
        if all(v is not None and v.content_hash == bundle_hash(catalog.bundle(n)) for n, v in latest.items()):
            # Already linted when this exact content was deployed.
            return [{"model": n, "version": v.version, "hash": v.content_hash, "created": False}
                    for n, v in latest.items()]
        problems = errors(lint_catalog(catalog, names))
        if problems:
            raise EngineError(f"{len(problems)} lint error(s), first: {problems[0]}")
        try:
            return self._store(catalog, names)
        except IntegrityError:
            # Another thread or process stored the same new version first: this time it reads it back.
            return self._store(catalog, names)

    def _store(self, catalog: Catalog, names: list[str]) -> list[dict[str, Any]]:
        out = []
        with self.sessions.begin() as session:
            for name in names:
                row, created = versions.deploy(session, catalog, name)
                out.append({"model": name, "version": row.version, "hash": row.content_hash, "created": created})
        return out

    def current(self, model: str) -> versions.LoadedVersion:
        """The newest stored version of ``model``. The models directory's files are deployed first
        when their content was never stored, so an edit on disk runs next; a version saved later
        (e.g. in the web designer) is newer and runs until the disk changes again. One indexed
        query per start checks that the remembered version is still the newest; whether the disk's
        content was ever stored is asked again only when that content changed."""
        catalog = self.scan(self.settings.models_dir)
        digest = self._digest(catalog, model)
        cached = self._versions.get(model)
        newest = versions.newest_id(self.db, model)
        if cached is not None and cached[0] == newest and cached[1] == digest:
            return cached[2]   # versions are never deleted: a digest once stored stays stored
        with self.sessions() as session:
            known = newest is not None and session.scalar(select(ModelVersion.id).where(
                ModelVersion.name == model, ModelVersion.content_hash == digest).limit(1)) is not None
        if not known:
            self.deploy([model])
        with self.sessions() as session:
            row = versions.latest_version(session, model)
            loaded = versions.load(row)
        self._versions[model] = (row.id, digest, loaded)
        return loaded

    def _digest(self, catalog: Catalog, model: str) -> str:
        """The content digest of ``model``'s bundle in ``catalog`` (a scanned catalog never changes:
        a changed directory is a new catalog object, so the digest is hashed once per scan)."""
        known = self._digests.get(model)
        if known is not None and known[0] is catalog:
            return known[1]
        catalog.process(model)   # an unknown model is a CatalogError here
        digest = bundle_hash(catalog.bundle(model))
        self._digests[model] = (catalog, digest)
        return digest

    def scan(self, root: Path) -> Catalog:
        """The catalog of ``root``, re-read only when a file in it changed (stat signature)."""
        signature = _tree_signature(Path(root))
        cached = self._catalogs.get(str(root))
        if cached is not None and cached[0] == signature:
            return cached[1]
        catalog = scan(root)
        self._catalogs[str(root)] = (signature, catalog)
        return catalog


def _tree_signature(root: Path) -> tuple:
    """(directory, name, mtime, size) of every file under ``root``, sorted; () when it is no directory."""
    entries: list[tuple[str, str, int, int]] = []
    pending = [str(root)]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    if entry.is_dir():
                        if not entry.is_symlink():   # as os.walk: a linked directory is not descended
                            pending.append(entry.path)
                    else:
                        stat = entry.stat()
                        entries.append((directory, entry.name, stat.st_mtime_ns, stat.st_size))
        except (FileNotFoundError, NotADirectoryError):
            if directory == str(root):
                return ()
    return tuple(sorted(entries))
