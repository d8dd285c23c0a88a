"""Designer operations on models: lint an uploaded or edited .bpmn, and store it as a new version.

Nothing is stored unless lint finds no error. An upload is linted together with the current
models directory (written into a temporary catalog) so its called processes, forms and evidence
rules resolve; an edit replaces one file of a stored version's bundle.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine import versions
from scopeflow.engine.reads import StoredVersion
from scopeflow.processes.bpmn_xml import BpmnFileError, decode_xml, parse_bpmn
from scopeflow.processes.catalog import Catalog, catalog_from_files, scan
from scopeflow.processes.lint import LintMessage, errors, lint_catalog

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.bpmn$")


@dataclass
class StoreResult:
    """The lint messages, and the versions stored (empty when lint found errors)."""

    messages: list[LintMessage] = field(default_factory=list)
    stored: list[tuple[str, int, bool]] = field(default_factory=list)   # (model, version, created)
    problem: str = ""                                                    # a refusal before lint

    @property
    def ok(self) -> bool:
        return not self.problem and not errors(self.messages)


def _models_in(catalog: Catalog, rel: str) -> list[str]:
    return sorted(pid for pid, info in catalog.processes.items() if info.file == rel and info.executable)


def _lint_and_store(sessions: sessionmaker[Session], catalog: Catalog, rel: str) -> StoreResult:
    models = _models_in(catalog, rel)
    if rel in catalog.broken:
        return StoreResult(problem=catalog.broken[rel])
    if not models:
        idle = [p for p in catalog.processes.values() if p.file == rel and p.runnable]
        where = f" ({rel}:{idle[0].line}: process {idle[0].id} has isExecutable=\"false\"; set it to \"true\")" if idle else ""
        return StoreResult(problem=f"{rel} defines no executable process{where}")
    result = StoreResult(messages=lint_catalog(catalog, models))
    if not result.ok:
        return result
    result.stored.extend(versions.store(sessions, catalog, models))
    return result


def store_upload(sessions: sessionmaker[Session], models_dir: Path, filename: str, content: bytes) -> StoreResult:
    """Lint ``content`` as ``filename`` beside the current models; store new versions when clean."""
    name = Path(filename or "").name
    if not SAFE_NAME.match(name):
        return StoreResult(problem="upload a .bpmn file (letters, digits, . _ - in its name)")
    try:
        text = decode_xml(name, content)  # any encoding its XML declaration names
    except BpmnFileError as exc:
        return StoreResult(problem=str(exc))
    with tempfile.TemporaryDirectory(prefix="scopeflow-upload-") as tmp:
        root = Path(tmp) / "models"
        if Path(models_dir).is_dir():
            shutil.copytree(models_dir, root)
        else:
            root.mkdir()
        rel = _replaced_file(scan(root), name, text) or name
        (root / rel).write_text(text, encoding="utf-8")
        catalog = scan(root)
        return _lint_and_store(sessions, catalog, rel)


def _replaced_file(catalog: Catalog, name: str, text: str) -> str | None:
    """The models-directory file an upload is a new version of: the one defining the same process
    (an upload named differently would otherwise define that process twice and be refused)."""
    try:
        uploaded = {p.id for p in parse_bpmn(name, text.encode("utf-8")).processes}
    except BpmnFileError:
        return None  # lint of the upload itself reports the problem
    owners = {info.file for pid, info in catalog.processes.items() if pid in uploaded}
    return owners.pop() if len(owners) == 1 else None


def store_edit(sessions: sessionmaker[Session], version: StoredVersion, path: str, text: str) -> StoreResult:
    """Replace ``path`` in ``version``'s bundle with ``text``; store a new version when lint is clean."""
    if path not in version.files or not path.endswith(".bpmn"):
        return StoreResult(problem=f"{path!r} is not a diagram of {version.name} v{version.version}")
    files = {**version.files, path: text}
    catalog = catalog_from_files(files)
    if version.name not in _models_in(catalog, path) and path not in catalog.broken:
        return StoreResult(problem=f"the edited file no longer defines the executable process {version.name!r}")
    return _lint_and_store(sessions, catalog, path)
