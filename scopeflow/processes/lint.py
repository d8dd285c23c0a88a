"""Lint the models: every problem a designer must fix before a model can run, with file and line.

Errors block deploying a model; warnings (extensions from other modelers we ignore) do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from scopeflow.handlers import registry
from scopeflow.processes.catalog import FORMS_DIR, Catalog, evidence_path

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class LintMessage:
    level: str
    file: str
    line: int
    element: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        element = f" [{self.element}]" if self.element else ""
        return f"{where}: {self.level}{element}: {self.message}"


def lint_catalog(catalog: Catalog, models: list[str] | None = None) -> list[LintMessage]:
    """Lint the files of ``models`` (default: every file in the catalog)."""
    messages: list[LintMessage] = []
    files = set(catalog.files)
    if models is not None:
        files = set()
        for model in models:
            files.update(catalog.bundle(model))
    for rel, why in sorted(catalog.broken.items()):
        if models is None or rel in files or not rel.endswith(".bpmn"):
            messages.append(LintMessage(ERROR, rel, _line_of(why), "", _without_location(why)))
    for rel in sorted(f for f in files if f.endswith(".bpmn") and f in catalog.bpmn):
        messages.extend(_lint_bpmn_file(catalog, rel))
    for rel in sorted(f for f in files if f.startswith(f"{FORMS_DIR}/")):
        messages.extend(_lint_form(rel, catalog.files[rel]))
    return messages


def errors(messages: list[LintMessage]) -> list[LintMessage]:
    return [m for m in messages if m.level == ERROR]


def _without_location(text: str) -> str:
    """``path:line: message`` → ``message`` (the location is kept in the message's own fields)."""
    parts = text.split(": ", 1)
    return parts[1] if len(parts) == 2 and ":" in parts[0] else text


def _line_of(text: str) -> int:
    parts = text.split(":")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


def _lint_bpmn_file(catalog: Catalog, rel: str) -> list[LintMessage]:
    parsed = catalog.bpmn[rel]
    out: list[LintMessage] = []
    if not any(p.executable for p in parsed.processes):
        out.append(LintMessage(ERROR, rel, 0, "", "no executable process (set isExecutable=\"true\")"))
    out.extend(_lint_with_spiff(catalog, rel))
    operators = registry.names()
    for proc in parsed.processes:
        for element_id, line, why in proc.unsupported:
            out.append(LintMessage(ERROR, rel, line, element_id, why))
        for element_id, line, tag in proc.foreign_extensions:
            out.append(LintMessage(WARNING, rel, line, element_id, f"extension {tag} is ignored by Scopeflow"))
        for called in sorted(proc.called_elements):
            if called not in catalog.processes:
                out.append(LintMessage(ERROR, rel, proc.line, proc.id, f"calls unknown process {called!r}"))
        for el in proc.elements.values():
            out.extend(_lint_element(catalog, rel, el, operators))
    evidence = evidence_path(rel)
    if evidence in catalog.files:
        out.extend(_lint_evidence(catalog, rel, evidence))
    return out


def _lint_element(catalog: Catalog, rel: str, el, operators: set[str]) -> list[LintMessage]:
    out = []
    if el.tag == "serviceTask":
        if not el.operator:
            out.append(LintMessage(ERROR, rel, el.line, el.id, "service task has no spiffworkflow:serviceTaskOperator"))
        elif el.operator not in operators:
            out.append(LintMessage(ERROR, rel, el.line, el.id, f"operator {el.operator!r} is not registered"))
    form = el.properties.get("formJsonSchemaFilename")
    if form and f"{FORMS_DIR}/{form}" not in catalog.files:
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"form {FORMS_DIR}/{form} does not exist"))
    if el.tag == "userTask" and not form:
        out.append(LintMessage(WARNING, rel, el.line, el.id, "user task has no form (it completes with no data)"))
    status = el.properties.get("instanceStatus")
    if status and status not in ("blocked", "completed"):
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"instanceStatus must be blocked or completed, not {status!r}"))
    return out


def _lint_with_spiff(catalog: Catalog, rel: str) -> list[LintMessage]:
    """XSD validation and SpiffWorkflow's own parse of every executable process in the file."""
    from scopeflow.engine.spiff import build_parser

    parser = build_parser(validate=True)
    try:
        parser.add_bpmn_str(catalog.files[rel].encode("utf-8"), filename=rel)
        for proc in catalog.bpmn[rel].processes:
            if proc.executable and not proc.called_elements - set(catalog.processes):
                _add_called_files(parser, catalog, proc.id, rel)
                parser.get_spec(proc.id)
                parser.get_subprocess_specs(proc.id)
    except Exception as exc:  # ValidationException and friends: report, never crash lint
        line = getattr(exc, "line_number", 0) or getattr(exc, "sourceline", 0) or 0
        element = getattr(exc, "id", "") or ""
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [LintMessage(ERROR, rel, int(line or 0), str(element or ""), message)]
    return []


def _add_called_files(parser, catalog: Catalog, pid: str, rel: str) -> None:
    added = {rel}
    pending = list(catalog.processes[pid].called_elements)
    while pending:
        called = catalog.processes.get(pending.pop())
        if called is None or called.file in added:
            continue
        added.add(called.file)
        parser.add_bpmn_str(catalog.files[called.file].encode("utf-8"), filename=called.file)
        pending.extend(called.called_elements)


def _lint_form(rel: str, text: str) -> list[LintMessage]:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return [LintMessage(ERROR, rel, exc.lineno, "", f"not JSON: {exc.msg}")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [LintMessage(ERROR, rel, 0, "", f"not a valid JSON Schema: {exc.message}")]
    if schema.get("type") != "object":
        return [LintMessage(ERROR, rel, 0, "", "a form schema must have \"type\": \"object\"")]
    return []


def _lint_evidence(catalog: Catalog, rel: str, evidence: str) -> list[LintMessage]:
    from scopeflow.spans.rules import lint_rules_text

    element_ids: set[str] = set()
    for proc in catalog.bpmn[rel].processes:
        element_ids.update(proc.elements)
        pending = list(proc.called_elements)
        while pending:
            child = catalog.processes.get(pending.pop())
            if child:
                element_ids.update(child.elements)
                pending.extend(child.called_elements)
    return [LintMessage(ERROR, evidence, 0, "", msg) for msg in lint_rules_text(catalog.files[evidence], element_ids)]
