"""The model catalog: what lives in the models directory, and which files each model needs.

A *model* is an executable BPMN process, named by its process id. Its *bundle* is every file it
needs to run: its own .bpmn file, the files of the processes it calls (transitively), all .dmn
files, the forms its tasks name, and its ``<file stem>.evidence.toml`` when present. The bundle's
content hash is the model's version identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from scopeflow.processes import camunda_forms
from scopeflow.processes.bpmn_xml import BpmnFile, BpmnFileError, ProcessInfo, decode_xml, parse_bpmn

FORMS_DIR = "forms"


class CatalogError(ValueError):
    """The catalog cannot answer (unknown model, unreadable directory): one-line message."""


@dataclass
class Catalog:
    root: Path
    files: dict[str, str] = field(default_factory=dict)          # relative path → text
    bpmn: dict[str, BpmnFile] = field(default_factory=dict)      # relative path → parsed file
    broken: dict[str, str] = field(default_factory=dict)         # relative path → one-line error
    processes: dict[str, ProcessInfo] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted(pid for pid, info in self.processes.items() if info.executable and info.runnable)

    def process(self, model: str, *, executable_only: bool = True) -> ProcessInfo:
        """The process ``model``; with ``executable_only=False`` also one marked isExecutable="false"
        (what ``scopeflow simulate`` runs)."""
        info = self.processes.get(model)
        if info is not None and not info.executable and executable_only:
            raise CatalogError(f"{info.file}:{info.line}: process {model} is not executable "
                               "(isExecutable=\"false\"): set isExecutable=\"true\" on it to deploy and start it")
        if info is not None and not info.runnable:
            raise CatalogError(f"{info.file}:{info.line}: process {model} has no flow elements (no start event, "
                               "task or sequence flow): there is nothing to run; draw the process inside it")
        if info is None:
            known = ", ".join(self.models) or "none"
            if not self.models and self.files:
                known += f"; no process in {len(self.bpmn)} BPMN file(s) is executable"
            raise CatalogError(f"unknown model {model} (known: {known})")
        return info

    def bundle(self, model: str, *, executable_only: bool = True) -> dict[str, str]:
        """The files ``model`` needs, relative path → text."""
        info = self.process(model, executable_only=executable_only)
        paths: set[str] = set()
        pending, seen = [info.id], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            proc = self.processes.get(pid)
            if proc is None:
                continue  # lint reports the missing call target
            paths.add(proc.file)
            pending.extend(proc.called_elements)
            for form in proc.forms().values():   # an inline form is part of its diagram file
                form_path = f"{FORMS_DIR}/{form}"
                if form_path in self.files:
                    paths.add(form_path)
        paths.update(p for p in self.files if p.endswith(".dmn"))
        evidence = evidence_path(info.file)
        if evidence in self.files:
            paths.add(evidence)
        return {p: self.files[p] for p in sorted(paths)}

    def form(self, name: str) -> dict | None:
        """The form schema ``name``: a file in ``forms/``, or one drawn in a diagram (camunda_forms.py)."""
        if camunda_forms.is_inline(name):
            path, element_id = camunda_forms.split_inline(name)
            parsed = self.bpmn.get(path)
            found = [p.elements[element_id] for p in (parsed.processes if parsed else []) if element_id in p.elements]
            return found[0].inline_form if found else None
        text = self.files.get(f"{FORMS_DIR}/{name}")
        return None if text is None else json.loads(text)


def evidence_path(bpmn_path: str) -> str:
    return bpmn_path[: -len(".bpmn")] + ".evidence.toml" if bpmn_path.endswith(".bpmn") else bpmn_path


def bundle_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()


def scan(root: Path) -> Catalog:
    """Read every .bpmn, .dmn, form and evidence file under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"models directory {root} does not exist")
    return _read(root, sorted(root.rglob("*")))


def scan_around(bpmn_file: Path) -> tuple[Catalog, list[str]]:
    """A catalog for one diagram given by its path, and the processes that file defines.

    Its folder is read without descending (a file in ``/tmp`` must not pull in the rest of
    ``/tmp``): the sibling diagrams it may call, ``forms/`` and the evidence files beside it.
    """
    path = Path(bpmn_file)
    if not path.is_file():
        raise CatalogError(f"no such BPMN file: {bpmn_file}")
    if path.suffix != ".bpmn":
        raise CatalogError(f"{bpmn_file} is not a .bpmn file (rename it to end in .bpmn)")
    root = path.parent
    forms = root / FORMS_DIR
    paths = sorted(root.iterdir()) + (sorted(forms.iterdir()) if forms.is_dir() else [])
    catalog = _read(root, paths)
    rel = path.name
    if rel in catalog.broken:
        return catalog, []
    defined = [pid for pid, info in catalog.processes.items() if info.file == rel]
    if not defined:
        raise CatalogError(f"{bpmn_file} defines no process")
    return catalog, defined


def main_process(catalog: Catalog, defined: list[str], bpmn_file: str) -> str:
    """The one process of a file that no other process of it calls (what running the file means)."""
    called = {pid for p in defined for pid in catalog.processes[p].called_elements}
    top = [p for p in defined if p not in called]
    if len(top) == 1:
        return top[0]
    executable = [p for p in top if catalog.processes[p].executable and catalog.processes[p].runnable]
    if len(executable) == 1:   # a collaboration: the other pools document participants
        return executable[0]
    raise CatalogError(f"{bpmn_file} defines {len(top)} top-level processes ({', '.join(top)}): "
                       f"name one, with --models-dir {catalog.root}")


def _read(root: Path, paths: list[Path]) -> Catalog:
    catalog = Catalog(root=root)
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or not _wanted(rel):
            continue
        content = path.read_bytes()
        try:
            if rel.endswith((".bpmn", ".dmn")):
                catalog.files[rel] = decode_xml(rel, content)
            else:
                catalog.files[rel] = content.decode("utf-8")
        except BpmnFileError as exc:
            catalog.broken[rel] = str(exc)
        except UnicodeDecodeError:
            catalog.broken[rel] = f"{rel}: not UTF-8 text"
    for rel, text in catalog.files.items():
        if rel.endswith(".bpmn"):
            _add_bpmn(catalog, rel, text)
    return catalog


def catalog_from_files(files: dict[str, str]) -> Catalog:
    """A catalog over stored bundle files (what a deployed version runs from)."""
    catalog = Catalog(root=Path("."), files=dict(files))
    for rel, text in files.items():
        if rel.endswith(".bpmn"):
            _add_bpmn(catalog, rel, text)
    return catalog


def _wanted(rel: str) -> bool:
    return (rel.endswith((".bpmn", ".dmn", ".evidence.toml"))
            or (rel.startswith(f"{FORMS_DIR}/") and rel.endswith(".json")))


def _add_bpmn(catalog: Catalog, rel: str, text: str) -> None:
    try:
        parsed = parse_bpmn(rel, text.encode("utf-8"))
    except BpmnFileError as exc:
        catalog.broken[rel] = str(exc)
        return
    catalog.bpmn[rel] = parsed
    for proc in parsed.processes:
        if proc.id in catalog.processes:
            other = catalog.processes[proc.id].file
            catalog.broken[rel] = f"{rel}:{proc.line}: process id {proc.id} is also defined in {other}"
            continue
        catalog.processes[proc.id] = proc
