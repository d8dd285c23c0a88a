"""Lint the models: every problem a designer must fix before a model can run, with file and line.

Lint equals runtime: each BPMN file goes through :func:`prepare.prepare` (what every run loads), every
expression and script is compiled by the same sandbox that runs it, literal timers and cardinalities
are checked against :mod:`bounds`, and SpiffWorkflow parses each process of the file separately, so
one bad pool does not hide the errors of another. Every message carries file, line and element id.

Errors block deploying a model; warnings (extensions from other modelers we ignore, rewrites of
implicit BPMN semantics, dialect translations) do not. :func:`grouped` folds warnings by kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from lxml import etree

from scopeflow.handlers import registry
from scopeflow.processes import bounds, camunda_forms
from scopeflow.processes.bpmn_xml import BPMN_NS, CAMUNDA_NS, SPIFF_NS, ZEEBE_NS, BpmnFile, ProcessInfo
from scopeflow.processes.catalog import FORMS_DIR, Catalog, evidence_path
from scopeflow.processes.prepare import NOT_EXECUTABLE, UNBOUND, prepare

ERROR, WARNING = "error", "warning"
# Errors that ``scopeflow simulate`` can run past: it simulates unbound tasks and ignores isExecutable.
SIMULATABLE = {UNBOUND, NOT_EXECUTABLE}
_B = f"{{{BPMN_NS}}}"
EXAMPLES_DIR = "examples"   # models here may call the demonstration operators (registry: examples_only)


@dataclass(frozen=True)
class LintMessage:
    level: str
    file: str
    line: int
    element: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        element = f" [{self.element}]" if self.element else ""
        return f"{where}: {self.level}{element}: {self.message}"


def lint_catalog(catalog: Catalog, models: list[str] | None = None, *, executable_only: bool = True) -> list[LintMessage]:
    """Lint the files of ``models`` (default: every file in the catalog)."""
    messages: list[LintMessage] = []
    files = set(catalog.files)
    if models is not None:
        files = set()
        for model in models:
            info = catalog.processes.get(model)
            if info is not None and not info.runnable:
                files.add(info.file)   # an empty process: the file's lint says there is nothing to run
                continue
            files.update(catalog.bundle(model, executable_only=executable_only))
    for rel, why in sorted(catalog.broken.items()):
        if models is None or rel in files or not rel.endswith(".bpmn"):
            messages.append(LintMessage(ERROR, rel, _line_of(why), "", _without_location(why), "file"))
    for rel in sorted(f for f in files if f.endswith(".bpmn") and f in catalog.bpmn):
        messages.extend(_lint_bpmn_file(catalog, rel))
    for rel in sorted(f for f in files if f.startswith(f"{FORMS_DIR}/")):
        messages.extend(_lint_form(rel, catalog.files[rel]))
    if models is not None:
        messages = _only_processes(catalog, messages, _needed(catalog, models))
    return messages


def _needed(catalog: Catalog, models: list[str]) -> set[str]:
    """``models`` and every process they call, transitively."""
    needed: set[str] = set()
    pending = list(models)
    while pending:
        pid = pending.pop()
        if pid not in needed:
            needed.add(pid)
            proc = catalog.processes.get(pid)
            pending.extend(proc.called_elements if proc else ())
    return needed


def _only_processes(catalog: Catalog, messages: list[LintMessage], needed: set[str]) -> list[LintMessage]:
    """Drop messages about other pools of a shared file: one bad pool does not block its neighbours."""
    kept = []
    for m in messages:
        parsed = catalog.bpmn.get(m.file)
        owner = parsed.owners.get(m.element) if parsed and m.element else None
        if owner is None or owner in needed:
            kept.append(m)
    return kept


def errors(messages: list[LintMessage]) -> list[LintMessage]:
    return [m for m in messages if m.level == ERROR]


def blocking(messages: list[LintMessage], *, simulate: bool = False) -> list[LintMessage]:
    """The errors that stop a deploy (or, with ``simulate``, a simulation)."""
    return [m for m in errors(messages) if not (simulate and m.code in SIMULATABLE)]


def grouped(messages: list[LintMessage]) -> list[str]:
    """Report lines: every error on its own line (by file and line), warnings folded by kind."""
    lines = [str(m) for m in sorted(errors(messages), key=lambda m: (m.file, m.line, m.element))]
    kinds: dict[tuple[str, str], list[LintMessage]] = {}
    for m in messages:
        if m.level == WARNING:
            kinds.setdefault((m.file, m.code or m.message), []).append(m)
    for (_file, _code), items in sorted(kinds.items()):
        first = items[0]
        if len(items) == 1:
            lines.append(str(first))
            continue
        where = f"{first.file}:{first.line}" if first.line else first.file
        lines.append(f"{where}: warning ({len(items)}\u00d7): {_summary(items)}")
    return lines


def _summary(items: list[LintMessage]) -> str:
    distinct = sorted({m.message for m in items})
    if items[0].code == "extension":
        counts: dict[str, int] = {}
        for m in items:
            tag = m.message.split(" ", 2)[1]
            counts[tag] = counts.get(tag, 0) + 1
        return "vendor extensions ignored by Scopeflow: " + ", ".join(f"{tag} ({n})" for tag, n in sorted(counts.items()))
    if len(distinct) == 1:
        return f"{distinct[0]}{_ids(items, ' (elements ', ')')}"
    lines = sorted({m.line for m in items if m.line})
    at = f", lines {', '.join(map(str, lines[:8]))}{' …' if len(lines) > 8 else ''}" if lines else ""
    return f"{distinct[0]} (and {len(items) - 1} more like it{_ids(items, ', elements ', '')}{at})"


def _ids(items: list[LintMessage], before: str, after: str) -> str:
    ids = [m.element for m in items if m.element]
    if not ids:
        return ""
    return before + ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "") + after


def _without_location(text: str) -> str:
    """``path:line: message`` → ``message`` (the location is kept in the message's own fields)."""
    parts = text.split(": ", 1)
    return parts[1] if len(parts) == 2 and ":" in parts[0] else text


def _line_of(text: str) -> int:
    parts = text.split(":")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 0


# ------------------------------------------------------------------------------ one BPMN file

def _lint_bpmn_file(catalog: Catalog, rel: str) -> list[LintMessage]:
    parsed = catalog.bpmn[rel]
    out: list[LintMessage] = []
    runnable = [p for p in parsed.processes if p.runnable]
    if not runnable:
        first = parsed.processes[0] if parsed.processes else None
        out.append(LintMessage(ERROR, rel, first.line if first else 0, first.id if first else "",
                               "no process with flow elements in this file (no start event, task or sequence "
                               "flow): there is nothing to run; draw the process inside a pool", "structure"))
    executable = [p.id for p in runnable if p.executable]
    for proc in runnable:
        if proc.executable:
            continue
        if executable:   # a pool beside the executable process documents a participant
            out.append(LintMessage(WARNING, rel, proc.line, proc.id,
                                   f"process is marked isExecutable=\"false\": only {', '.join(executable)} of this "
                                   "file is deployed; set isExecutable=\"true\" on this one to deploy it too",
                                   NOT_EXECUTABLE))
            continue
        out.append(LintMessage(ERROR, rel, proc.line, proc.id,
                               "process is marked isExecutable=\"false\": set isExecutable=\"true\" on "
                               "<process> to deploy it (in bpmn.io or Camunda Modeler: tick \u201cExecutable\u201d)",
                               NOT_EXECUTABLE))
    if parsed.flow_elements > bounds.MAX_FLOW_ELEMENTS:  # checked first: nothing below may see a huge file
        first = parsed.processes[0] if parsed.processes else None
        out.append(LintMessage(ERROR, rel, first.line if first else 0, first.id if first else "",
                               f"{parsed.flow_elements:,} flow elements and flows is above the "
                               f"limit of {bounds.MAX_FLOW_ELEMENTS:,} per file: split it with call activities",
                               "bounds"))
        return out
    out.extend(_schema_warnings(rel, catalog.files[rel]))
    # Broken references first: SpiffWorkflow drops some silently and misnames others.
    out.extend(LintMessage(ERROR, rel, line, element, why, "structure") for line, element, why in parsed.problems)
    for proc in parsed.processes:
        out.extend(LintMessage(ERROR, rel, line, element_id, why, "unsupported")
                   for element_id, line, why in proc.unsupported)
    prepared = prepare(rel, catalog.files[rel])
    out.extend(LintMessage(n.level, rel, n.line, n.element, n.message, n.code) for n in prepared.notes)
    tree = etree.fromstring(prepared.xml)
    # One problem, one message: an element prepare already refused is not compiled again, and one
    # we already named is not repeated by SpiffWorkflow (which stops at the first problem of a process).
    located = {m.element for m in out if m.level == ERROR and m.element}
    out.extend(m for m in _expressions(rel, parsed, tree) if m.element not in located)
    located = {m.element for m in out if m.level == ERROR and m.element}
    out.extend(m for m in _lint_with_spiff(catalog, rel, prepared.xml) if m.element not in located)
    operators = registry.names()
    for proc in parsed.processes:
        for element_id, line, tag in proc.foreign_extensions:
            out.append(LintMessage(WARNING, rel, line, element_id, f"extension {_short_tag(tag)} is ignored by Scopeflow",
                                   "extension"))
        out.extend(_calls(catalog, rel, proc))
        for el in proc.elements.values():
            out.extend(_lint_element(catalog, rel, el, operators))
    out.extend(_camunda_attributes(rel, tree))
    evidence = evidence_path(rel)
    if evidence in catalog.files:
        out.extend(_lint_evidence(catalog, rel, evidence))
    return _dedupe(out)


def _dedupe(messages: list[LintMessage]) -> list[LintMessage]:
    seen: set[tuple] = set()
    out = []
    for m in messages:
        key = (m.level, m.line, m.element, m.message)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _short_tag(tag: str) -> str:
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    short = {CAMUNDA_NS: "camunda", ZEEBE_NS: "zeebe",
             "http://www.signavio.com": "signavio", "http://www.bizagi.com/bpmn20": "bizagi"}.get(namespace)
    return f"{short or namespace.rstrip('/').rsplit('/', 1)[-1] or 'ext'}:{local}"


def _schema_warnings(rel: str, text: str) -> list[LintMessage]:
    """BPMN XSD violations: SpiffWorkflow runs such files anyway, so they only warn (all of them)."""
    from scopeflow.engine.parsing import schema_problems

    return [LintMessage(WARNING, rel, line, "", f"not schema-valid BPMN: {message}", "schema")
            for line, message in schema_problems(text.encode("utf-8"))]


def _lint_element(catalog: Catalog, rel: str, el, operators: set[str]) -> list[LintMessage]:
    out = []
    if el.tag == "serviceTask" and el.operator and el.operator not in operators:
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"operator \u201c{el.operator}\u201d is not registered "
                               f"(known: {', '.join(sorted(operators))})", "operator"))
    elif el.tag == "serviceTask" and el.operator and registry.get(el.operator).examples_only \
            and not rel.startswith(EXAMPLES_DIR + "/"):
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"operator \u201c{el.operator}\u201d demonstrates the engine "
                               f"and may only be called by models under {EXAMPLES_DIR}/", "operator"))
    form = el.properties.get("formJsonSchemaFilename")
    if form and camunda_forms.is_inline(form):
        out.extend(LintMessage(WARNING, rel, el.line, el.id, f"camunda:formData {what}", "camunda:formData")
                   for what in el.inline_form_notes)
    elif form and f"{FORMS_DIR}/{form}" not in catalog.files:
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"form {FORMS_DIR}/{form} does not exist", "form"))
    if el.tag == "userTask" and not form:
        out.append(LintMessage(WARNING, rel, el.line, el.id, "user task has no form (it completes with no data)",
                               "no-form"))
    status = el.properties.get("instanceStatus")
    if status and status not in ("blocked", "completed"):
        out.append(LintMessage(ERROR, rel, el.line, el.id, f"instanceStatus must be blocked or completed, not "
                               f"\u201c{status}\u201d", "property"))
    return out


# ------------------------------------------------------------------------------ calls

def _calls(catalog: Catalog, rel: str, proc: ProcessInfo) -> list[LintMessage]:
    out = []
    global_tasks = _global_tasks(catalog)
    for el in proc.elements.values():
        if el.tag != "callActivity":
            continue
        called = el.called_element
        if not called:
            out.append(LintMessage(ERROR, rel, el.line, el.id, "call activity names no process (calledElement is empty)",
                                   "call"))
        elif called in global_tasks:
            out.append(LintMessage(ERROR, rel, el.line, el.id, f"calls the global task \u201c{called}\u201d: global "
                                   "tasks are not supported; call a process instead", "call"))
        elif called not in catalog.processes:
            out.append(LintMessage(ERROR, rel, el.line, el.id, f"calls unknown process \u201c{called}\u201d", "call"))
        else:
            cycle = _call_cycle(catalog, called, [proc.id])
            if cycle:
                out.append(LintMessage(ERROR, rel, el.line, el.id, "call activities recurse: "
                                       + " \u2192 ".join(cycle), "bounds"))
            elif _call_depth(catalog, called) + 1 > bounds.MAX_CALL_DEPTH:
                out.append(LintMessage(ERROR, rel, el.line, el.id, f"call activities nest deeper than "
                                       f"{bounds.MAX_CALL_DEPTH} levels", "bounds"))
    return out


def _global_tasks(catalog: Catalog) -> set[str]:
    ids: set[str] = set()
    for rel in catalog.bpmn:
        ids.update(re.findall(r"<(?:\w+:)?global\w*Task\b[^>]*\bid=\"([^\"]+)\"", catalog.files[rel]))
    return ids


def _call_cycle(catalog: Catalog, pid: str, path: list[str]) -> list[str] | None:
    if pid in path:
        return path[path.index(pid):] + [pid]
    proc = catalog.processes.get(pid)
    for called in sorted(proc.called_elements if proc else ()):
        cycle = _call_cycle(catalog, called, path + [pid])
        if cycle:
            return cycle
    return None


def _call_depth(catalog: Catalog, pid: str, seen: frozenset = frozenset()) -> int:
    proc = catalog.processes.get(pid)
    if proc is None or pid in seen:
        return 0
    return 1 + max((_call_depth(catalog, c, seen | {pid}) for c in proc.called_elements), default=0)


# ------------------------------------------------------------------------------ expressions

def _expressions(rel: str, parsed: BpmnFile, tree: etree._Element) -> list[LintMessage]:
    """Compile every expression and script of the prepared XML as the sandbox will."""
    from scopeflow.engine.sandbox import compile_errors

    out = []
    for owner, what, source, mode in _sources(tree):
        problems = compile_errors(source, mode)
        if problems:
            element = owner.get("id", "")
            out.append(LintMessage(ERROR, rel, parsed.lines.get(element, 0), element,
                                   f"{what} does not compile in the script sandbox: {_first_problem(problems)}",
                                   "expression"))
    return out


def _sources(tree: etree._Element) -> Iterable[tuple[etree._Element, str, str, str]]:
    for flow in tree.iter(f"{_B}sequenceFlow"):
        cond = flow.find(f"{_B}conditionExpression")
        if cond is not None and (cond.text or "").strip():
            yield flow, "condition", cond.text, "eval"
    for el in tree.iter(f"{_B}timeDate", f"{_B}timeDuration", f"{_B}timeCycle"):
        if (el.text or "").strip():
            yield el.getparent().getparent(), etree.QName(el).localname, el.text, "eval"
    for el in tree.iter(f"{_B}loopCardinality", f"{_B}completionCondition", f"{_B}loopCondition", f"{_B}condition"):
        if (el.text or "").strip():
            owner = el.getparent().getparent() if etree.QName(el).localname == "condition" else el.getparent().getparent()
            yield owner, etree.QName(el).localname, el.text, "eval"
    for task in tree.iter(f"{_B}scriptTask"):
        script = task.find(f"{_B}script")
        if script is not None and (script.text or "").strip():
            yield task, "script", script.text, "exec"
    for kind in ("preScript", "postScript"):
        for el in tree.iter(f"{{{SPIFF_NS}}}{kind}"):
            if (el.text or "").strip():
                yield el.getparent().getparent(), kind, el.text, "exec"
    for payload in tree.iter(f"{{{SPIFF_NS}}}messagePayload"):
        if (payload.text or "").strip():
            owner = next((a for a in payload.iterancestors() if a.get("id")), payload)
            yield owner, "message payload", payload.text, "eval"
    for param in tree.iter(f"{{{SPIFF_NS}}}parameter"):
        if param.get("value", "").strip():
            owner = next((a for a in param.iterancestors() if a.get("id") and etree.QName(a).namespace == BPMN_NS), param)
            yield owner, f"parameter {param.get('id')}", param.get("value"), "eval"


def _first_problem(problems: list[str]) -> str:
    """RestrictedPython's first complaint, without its line prefix and with the source in quotes."""
    text = re.sub(r"^Line \d+: ", "", problems[0].strip().rstrip("."))
    text = re.sub(r" at statement: '(.*)'$", " at \u201c\\1\u201d", text, flags=re.S)
    return re.sub(r'"([^"]+)"', "\u201c\\1\u201d", text)


# ------------------------------------------------------------------------------ SpiffWorkflow's own parse

def _lint_with_spiff(catalog: Catalog, rel: str, prepared_xml: bytes) -> list[LintMessage]:
    """SpiffWorkflow's parse of every process of the prepared file, each on its own."""
    from scopeflow.engine.parsing import parse_problem

    parsed = catalog.bpmn[rel]
    broken = {parsed.owners.get(element) for _line, element, _why in parsed.problems}
    out = []
    for proc in (p for p in parsed.processes if p.runnable):
        if proc.id in broken or None in broken:
            continue  # a broken reference is already named; SpiffWorkflow would misname it
        if proc.called_elements - set(catalog.processes) or any(
                el.tag == "callActivity" and not el.called_element for el in proc.elements.values()):
            continue  # reported as unknown or empty calls; SpiffWorkflow would only repeat it
        if _call_cycle(catalog, proc.id, []):
            continue
        files = {rel: prepared_xml, **_called_files(catalog, proc.id, rel)}
        dmn = {path: text.encode("utf-8") for path, text in catalog.files.items() if path.endswith(".dmn")}
        problem = parse_problem(files, proc.id, dmn)
        if problem is not None:
            element, message = problem
            line = parsed.lines.get(element, 0) if element else proc.line
            out.append(LintMessage(ERROR, rel, line, element or proc.id, message, "spiff"))
    return out


def _called_files(catalog: Catalog, pid: str, rel: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    pending = list(catalog.processes[pid].called_elements)
    while pending:
        called = catalog.processes.get(pending.pop())
        if called is None or called.file in files or called.file == rel:
            continue
        files[called.file] = prepare(called.file, catalog.files[called.file]).xml
        pending.extend(called.called_elements)
    return files


# ------------------------------------------------------------------------------ vendor attributes

_CAMUNDA_MEANING = {
    "formKey": "Scopeflow forms come from spiffworkflow:properties formJsonSchemaFilename",
    "asyncBefore": "Scopeflow checkpoints after every expensive or slow task on its own",
    "asyncAfter": "Scopeflow checkpoints after every expensive or slow task on its own",
    "exclusive": "Scopeflow runs one instance in one worker at a time",
    "dueDate": "use the spiffworkflow property dueIn",
    "followUpDate": "Scopeflow has no follow-up dates",
    "priority": "Scopeflow has no task priorities",
    "candidateUsers": "Scopeflow assigns tasks to roles (lanes), not to people",
    "initiator": "the starting account is recorded on the instance",
    "versionTag": "Scopeflow versions models by content hash",
    "historyTimeToLive": "Scopeflow keeps instance history until deleted",
}


def _camunda_attributes(rel: str, tree: etree._Element) -> list[LintMessage]:
    """Camunda attributes with a meaning Scopeflow does not honour: named, so none is dropped silently."""
    out = []
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        for name in el.attrib:
            qname = etree.QName(name)
            if qname.namespace == CAMUNDA_NS and qname.localname in _CAMUNDA_MEANING:
                out.append(LintMessage(WARNING, rel, el.sourceline or 0, el.get("id", ""),
                                       f"camunda:{qname.localname} is ignored: {_CAMUNDA_MEANING[qname.localname]}",
                                       f"camunda:{qname.localname}"))
    return out


# ------------------------------------------------------------------------------ forms and evidence

def _lint_form(rel: str, text: str) -> list[LintMessage]:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return [LintMessage(ERROR, rel, exc.lineno, "", f"not JSON: {exc.msg}", "form")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [LintMessage(ERROR, rel, 0, "", f"not a valid JSON Schema: {exc.message}", "form")]
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return [LintMessage(ERROR, rel, 0, "", "a form schema must have \"type\": \"object\"", "form")]
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
    return [LintMessage(ERROR, evidence, 0, "", msg, "evidence") for msg in lint_rules_text(catalog.files[evidence], element_ids)]
