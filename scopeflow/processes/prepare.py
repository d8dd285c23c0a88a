"""A designer's BPMN file → the XML Scopeflow hands to SpiffWorkflow, plus what was changed and why.

Lint, deploy, simulate and every run load a model through :func:`prepare`, so what lint accepts is
exactly what runs. Valid BPMN that SpiffWorkflow would refuse is rewritten to its BPMN meaning:

- an activity or event with several outgoing flows (an implicit split) gets a parallel gateway
  after it, or an inclusive gateway when the flows carry conditions;
- a subprocess (or process) without a start event gets one, leading to every element without
  incoming flows; a subprocess without an end event gets one after every element without outgoing
  flows;
- data stores and data-store associations are documentation: they are removed;
- vendor content inside BPMN DI ``extension`` elements is removed, and so are Camunda's form fields
  (``camunda:formData``: the catalog reads them from the designer's file as the element's form, see
  ``camunda_forms``; SpiffWorkflow needs none of it, and a field or value id equal to an element's id
  would confuse its lookup by id);
- ``isExecutable="false"`` is read as true here (the catalog, not the XML, decides what may be
  deployed; simulation runs any process);
- a pair of link events (a throw and a catch with the same name in one process or subprocess, which
  SpiffWorkflow 3.2 does not parse: it ended the path at the throw) becomes a sequence flow from the
  throw to the catch, both kept as pass-through events;
- JUEL/FEEL conditions and timers, and bare ISO 8601 timers, become Python (see ``dialects``), and so
  does a Zeebe script (``zeebe:script``, a FEEL expression and its result variable); a condition
  marked informal (``xsi:type="tExpression"``) is refused;
- Zeebe's ``zeebe:calledElement processId`` becomes the call activity's ``calledElement``;
- Camunda's ``candidateGroups`` become lanes (a lane's name is the role that works its tasks) when
  the process has no lanes of its own;
- a service task (or business rule task) without a Scopeflow operator, and a script task without
  a script, are bound to :data:`UNBOUND_OPERATOR` / a no-op: lint reports them as errors (code
  ``unbound``), so they can never be deployed, and ``scopeflow simulate`` simulates them.

Everything else a designer must fix is a :class:`Note` with the element's id and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from scopeflow.processes import bounds, dialects
from scopeflow.processes.bpmn_xml import BPMN_NS, CAMUNDA_NS, DI_NS, SPIFF_NS, ZEEBE_NS, called_element

UNBOUND_OPERATOR = "scopeflow.unbound"
ERROR, WARNING = "error", "warning"
UNBOUND, NOT_EXECUTABLE = "unbound", "not-executable"

_B = f"{{{BPMN_NS}}}"
_NS = {"bpmn": BPMN_NS, "spiff": SPIFF_NS, "camunda": CAMUNDA_NS, "zeebe": ZEEBE_NS}
_GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
_CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}
_NODES = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "task", "userTask",
          "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask",
          "callActivity", "subProcess", "transaction"} | _GATEWAYS
_PYTHON_SCRIPT = {"", "python", "text/python", "text/x-python", "application/x-python", "py"}


@dataclass(frozen=True)
class Note:
    level: str
    code: str           # groups messages of one kind (e.g. "unbound", "dialect", "extension")
    line: int
    element: str
    message: str


@dataclass
class Prepared:
    xml: bytes
    notes: list[Note] = field(default_factory=list)


def prepare(path: str, text: str) -> Prepared:
    """Rewrite the BPMN ``text`` of ``path`` (already known to be well-formed BPMN)."""
    root = etree.fromstring(text.encode("utf-8"),
                            parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    work = _Work(root)
    _strip_di_extensions(root)
    _strip_camunda_forms(root)
    _drop_data_stores(work)
    language = root.get("expressionLanguage")
    for proc in root.iter(f"{_B}process"):
        if proc.get("isExecutable", "true").lower() == "false":
            proc.set("isExecutable", "true")
    for flow in root.iter(f"{_B}sequenceFlow"):
        _condition(work, flow, language)
    for timer in root.iter(f"{_B}timerEventDefinition"):
        _timer(work, timer, language)
    for condition in root.iter(f"{_B}condition"):
        _translate_text(work, condition, condition.getparent().getparent(), language, "condition")
    for loop in root.iter(f"{_B}multiInstanceLoopCharacteristics", f"{_B}standardLoopCharacteristics"):
        _loop(work, loop, language)
    for script in root.iter(f"{_B}scriptTask"):
        _zeebe_script(work, script)
        _script(work, script)
    for call in root.iter(f"{_B}callActivity"):
        _zeebe_call(work, call)
    for task in root.iter(f"{_B}serviceTask", f"{_B}businessRuleTask", f"{_B}sendTask"):
        _bind(work, task)
    for message_event in root.iter(f"{_B}messageEventDefinition"):
        _message(work, message_event)
    for proc in root.iter(f"{_B}process"):
        _camunda_people(work, proc)
    for container in list(root.iter(*(f"{_B}{tag}" for tag in _CONTAINERS))):
        _link_events(work, container)
        _implicit_splits(work, container)
        _implicit_start(work, container)
        if _local(container) != "process":
            _implicit_end(work, container)
    return Prepared(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), work.notes)


class _Work:
    def __init__(self, root: etree._Element):
        self.root = root
        self.notes: list[Note] = []
        self.ids = {el.get("id") for el in root.iter() if el.get("id")}

    def note(self, level: str, code: str, el: etree._Element | None, message: str) -> None:
        line = (el.sourceline or 0) if el is not None else 0
        self.notes.append(Note(level, code, line, (el.get("id") or "") if el is not None else "", message))

    def new_id(self, base: str) -> str:
        candidate, n = f"{base}", 1
        while candidate in self.ids:
            n += 1
            candidate = f"{base}_{n}"
        self.ids.add(candidate)
        return candidate


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _sub(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{_B}{tag}", {k: v for k, v in attrs.items() if v is not None})


# ------------------------------------------------------------------------------ documentation only

def _strip_di_extensions(root: etree._Element) -> None:
    for ext in list(root.iter(f"{{{DI_NS}}}extension")):
        ext.getparent().remove(ext)


def _strip_camunda_forms(root: etree._Element) -> None:
    for form in list(root.iter(f"{{{CAMUNDA_NS}}}formData")):
        form.getparent().remove(form)


def _drop_data_stores(work: _Work) -> None:
    refs = {el.get("id") for el in work.root.iter(f"{_B}dataStoreReference")}
    for el in list(work.root.iter(f"{_B}dataStore", f"{_B}dataStoreReference")):
        label = el.get("name") or el.get("id") or "unnamed"
        work.note(WARNING, "data-store", el, f"data store \u201c{label}\u201d is documentation only: "
                  "Scopeflow neither reads nor writes it")
        el.getparent().remove(el)
    for assoc in list(work.root.iter(f"{_B}dataInputAssociation", f"{_B}dataOutputAssociation")):
        ends = {(child.text or "").strip() for child in assoc if _local(child) in ("sourceRef", "targetRef")}
        if ends & refs:
            assoc.getparent().remove(assoc)


# ------------------------------------------------------------------------------ expressions

def _translate_text(work: _Work, holder: etree._Element, owner: etree._Element, language: str | None,
                    what: str) -> str | None:
    """Replace ``holder.text`` by its Python translation; a located error when it has none."""
    text = holder.text or ""
    if not text.strip():
        return None
    try:
        result = dialects.translate(text, holder.get("language") or language)
    except dialects.DialectError as exc:
        work.note(ERROR, "dialect", owner, f"{what}: {exc}")
        return None
    if result.dialect != dialects.PYTHON:
        holder.text = result.python
        work.note(WARNING, "dialect", owner, f"{what} translated from {result.dialect} to Python: {result.python}")
    return result.python


def _condition(work: _Work, flow: etree._Element, language: str | None) -> None:
    expression = flow.find(f"{_B}conditionExpression")
    if expression is None:
        return
    if not (expression.text or "").strip():
        flow.remove(expression)  # an empty condition element: a modeler's leftover, means "no condition"
        return
    if _xsi_type(expression) == "tExpression":
        work.note(ERROR, "dialect", flow, f"condition \u201c{expression.text.strip()[:60]}\u201d is an informal "
                  "expression (xsi:type=\"tExpression\"): text that documents the choice cannot decide it; write "
                  "it as a formal expression (xsi:type=\"bpmn:tFormalExpression\")")
        return
    _translate_text(work, expression, flow, language, "condition")


def _xsi_type(el: etree._Element) -> str:
    """The local name of ``xsi:type`` (``bpmn:tFormalExpression`` → ``tFormalExpression``), or ""."""
    value = el.get("{http://www.w3.org/2001/XMLSchema-instance}type") or ""
    return value.rsplit(":", 1)[-1].strip()


def _timer(work: _Work, definition: etree._Element, language: str | None) -> None:
    owner = definition.getparent()
    specs = [child for child in definition if _local(child) in ("timeDate", "timeDuration", "timeCycle")]
    specs = [child for child in specs if (child.text or "").strip()]
    if not specs:
        work.note(ERROR, "timer", owner, "timer has no time: give it a timeDuration (e.g. PT5M), a timeDate "
                  "or a timeCycle")
        return
    spec = specs[0]
    kind = _local(spec)
    try:
        result = dialects.timer_expression(spec.text, spec.get("language") or language)
    except dialects.DialectError as exc:
        work.note(ERROR, "timer", owner, f"{kind}: {exc}")
        return
    spec.text = result.python
    for extra in specs[1:]:
        definition.remove(extra)
    literal = dialects.literal_value(result.python)
    if literal is not None:
        try:
            bounds.check_timer(kind, literal)
        except ValueError as exc:
            work.note(ERROR, "timer", owner, f"{kind}: {exc}")


def _loop(work: _Work, loop: etree._Element, language: str | None) -> None:
    owner = loop.getparent()
    for child in loop:
        if _local(child) in ("loopCardinality", "completionCondition", "loopCondition"):
            python = _translate_text(work, child, owner, language, _local(child))
            if python is not None and _local(child) == "loopCardinality" and python.isdigit():
                try:
                    bounds.check_cardinality(int(python))
                except bounds.BoundError as exc:
                    work.note(ERROR, "bounds", owner, str(exc))
    camunda_collection = loop.get(f"{{{CAMUNDA_NS}}}collection")
    if camunda_collection and loop.find(f"{_B}loopDataInputRef") is None:
        work.note(ERROR, "dialect", owner, f"camunda:collection \u201c{camunda_collection}\u201d is not supported: "
                  "use loopDataInputRef and inputDataItem")


def _zeebe_script(work: _Work, task: etree._Element) -> None:
    """Camunda 8's ``zeebe:script expression="=…" resultVariable="x"`` is ``x = <the expression>``
    when the FEEL expression is inside the subset ``dialects`` translates exactly."""
    zeebe = task.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}script")
    if zeebe is None or task.find(f"{_B}script") is not None:
        return
    expression, target = zeebe.get("expression") or "", (zeebe.get("resultVariable") or "").strip()
    if not target.isidentifier():
        work.note(ERROR, "script", task, f"zeebe:script has no usable resultVariable (\u201c{target}\u201d): "
                  "name the variable it sets, or write the script in Python")
        return
    try:
        result = dialects.translate(expression if expression.strip().startswith("=") else "=" + expression, "feel")
    except dialects.DialectError as exc:
        work.note(ERROR, "script", task, f"zeebe:script: {exc}")
        return
    task.set("scriptFormat", "python")
    _sub(task, "script").text = f"{target} = {result.python}"
    work.note(WARNING, "dialect", task, f"zeebe:script translated from FEEL to Python: {target} = {result.python}")


def _zeebe_call(work: _Work, call: etree._Element) -> None:
    """Camunda 8 names the called process in ``zeebe:calledElement processId``: the same as calledElement."""
    zeebe = call.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}calledElement")
    if zeebe is None or (call.get("calledElement") or "").strip():
        return
    target = called_element(call)
    if not target:
        work.note(ERROR, "call", call, f"zeebe:calledElement processId \u201c{zeebe.get('processId') or ''}\u201d is "
                  "a FEEL expression or empty: name the called process's id as plain text")
        return
    call.set("calledElement", target)


def _script(work: _Work, task: etree._Element) -> None:
    fmt = (task.get("scriptFormat") or "").strip().lower()
    if fmt not in _PYTHON_SCRIPT:
        work.note(ERROR, "script", task, f"script format \u201c{task.get('scriptFormat')}\u201d cannot run: "
                  "Scopeflow runs Python scripts (set scriptFormat=\"python\" and rewrite the script)")
    if task.get(f"{{{CAMUNDA_NS}}}resource"):
        work.note(ERROR, "script", task, "an external script resource (camunda:resource) cannot run: put the "
                  "script inside the task")
        return
    script = task.find(f"{_B}script")
    if script is None or not (script.text or "").strip():
        if script is None:
            script = _sub(task, "script")
        script.text = "pass"
        work.note(ERROR, UNBOUND, task, "script task has no script (simulate runs it as a no-op)")


def _bind(work: _Work, task: etree._Element) -> None:
    if task.find(f"{_B}extensionElements/{{{SPIFF_NS}}}serviceTaskOperator") is not None:
        return
    tag = _local(task)
    if tag == "sendTask":
        if task.get("messageRef") is None and not task.get("name"):
            work.note(ERROR, "message", task, "send task has neither a message (messageRef) nor a name")
        return
    if tag == "businessRuleTask":
        if task.find(f"{_B}extensionElements/{{{SPIFF_NS}}}calledDecisionId") is not None:
            return
        task.tag = f"{_B}serviceTask"
    binding = _camunda_binding(task)
    ext = task.find(f"{_B}extensionElements")
    if ext is None:
        ext = etree.Element(f"{_B}extensionElements")
        task.insert(0, ext)
    etree.SubElement(ext, f"{{{SPIFF_NS}}}serviceTaskOperator", id=UNBOUND_OPERATOR,
                     resultVariable=f"{task.get('id')}_result")
    what = "business rule task has no decision" if tag == "businessRuleTask" else "service task has no operator"
    work.note(ERROR, UNBOUND, task, f"{what}{binding}: bind one with spiffworkflow:serviceTaskOperator "
              "(simulate runs it with a simulated result)")


def _camunda_binding(task: etree._Element) -> str:
    """What another engine would have run here, to name it in the message."""
    c = lambda name: task.get(f"{{{CAMUNDA_NS}}}{name}")  # noqa: E731
    if c("type") == "external":
        return f" (Camunda external task, topic \u201c{c('topic') or '?'}\u201d)"
    for name in ("class", "delegateExpression", "expression", "decisionRef"):
        if c(name):
            return f" (camunda:{name} \u201c{c(name)}\u201d is Java/JUEL code for Camunda)"
    zeebe = task.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}taskDefinition")
    if zeebe is not None:
        return f" (Zeebe job type \u201c{zeebe.get('type') or '?'}\u201d)"
    return ""


def _message(work: _Work, definition: etree._Element) -> None:
    event = definition.getparent()
    ref = definition.get("messageRef")
    if ref is not None:
        if not any(m.get("id") == ref for m in work.root.iter(f"{_B}message")):
            work.note(ERROR, "message", event, f"message \u201c{ref}\u201d (messageRef) is not defined in this file")
            del definition.attrib["messageRef"]  # SpiffWorkflow's parser would raise a TypeError on it
        return
    if _local(event) == "startEvent":
        work.note(ERROR, "message", event, "message start event has no message (messageRef): it would wait "
                  "forever for a message no one can name; add a bpmn:message and reference it")
    elif not event.get("name") and _local(event) in ("intermediateCatchEvent", "boundaryEvent", "receiveTask"):
        work.note(ERROR, "message", event, "message event has neither a message (messageRef) nor a name: "
                  "nothing can be delivered to it")


# ------------------------------------------------------------------------------ people

def _camunda_people(work: _Work, proc: etree._Element) -> None:
    has_lanes = proc.find(f"{_B}laneSet") is not None
    groups: dict[str, list[str]] = {}
    for task in proc.iter(f"{_B}userTask"):
        group = _candidate_group(task)
        assignee = task.get(f"{{{CAMUNDA_NS}}}assignee") or _zeebe_assignment(task, "assignee")
        if group and not has_lanes:
            groups.setdefault(group, []).append(task.get("id"))
            work.note(WARNING, "people", task, f"candidate group \u201c{group}\u201d is mapped to a lane: the role "
                      f"\u201c{group}\u201d works this task")
        elif group:
            work.note(WARNING, "people", task, f"candidate group \u201c{group}\u201d is ignored: the process has "
                      "lanes, and a task's lane decides its role")
        if assignee:
            work.note(WARNING, "people", task, f"assignee \u201c{assignee}\u201d is not used: Scopeflow assigns "
                      "tasks to roles (lanes), not to people")
    if groups:
        lane_set = etree.Element(f"{_B}laneSet", id=work.new_id(f"{proc.get('id')}_lanes"))
        for group, task_ids in groups.items():
            lane = _sub(lane_set, "lane", id=work.new_id("lane_" + "".join(ch if ch.isalnum() else "_" for ch in group)),
                        name=group)
            for task_id in task_ids:
                _sub(lane, "flowNodeRef").text = task_id
        proc.insert(0, lane_set)


def _candidate_group(task: etree._Element) -> str | None:
    groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups") or _zeebe_assignment(task, "candidateGroups") or ""
    first = groups.split(",")[0].strip()
    return first or None


def _zeebe_assignment(task: etree._Element, name: str) -> str | None:
    el = task.find(f"{_B}extensionElements/{{{ZEEBE_NS}}}assignmentDefinition")
    value = el.get(name) if el is not None else None
    return value.lstrip("=").strip().strip('"') if value else None  # a FEEL string literal or plain text


# ------------------------------------------------------------------------------ implicit BPMN semantics

def _children(container: etree._Element, *tags: str) -> Iterator[etree._Element]:
    for child in container:
        if _local(child) in tags and child.tag.startswith(_B):
            yield child


def _flows(container: etree._Element) -> list[etree._Element]:
    return list(_children(container, "sequenceFlow"))


def _link_name(event: etree._Element) -> str | None:
    """The name that pairs a link throw with its catch, or None when ``event`` is no link event."""
    definition = event.find(f"{_B}linkEventDefinition")
    if definition is None:
        return None
    return (definition.get("name") or event.get("name") or "").strip()


def _link_events(work: _Work, container: etree._Element) -> None:
    """A link throw is a 'go to' its catch: run it as a sequence flow between the two events."""
    throws = [e for e in _children(container, "intermediateThrowEvent") if _link_name(e) is not None]
    catches = [e for e in _children(container, "intermediateCatchEvent") if _link_name(e) is not None]
    if not throws and not catches:
        return
    by_name: dict[str, etree._Element] = {}
    for catch in catches:
        name = _link_name(catch)
        if name in by_name:
            work.note(ERROR, "link", catch, f"two link catch events are named \u201c{name}\u201d in one process "
                      "or subprocess: a link throw could not tell which to go to; rename one")
        by_name.setdefault(name, catch)
    thrown = set()
    for throw in throws:
        name = _link_name(throw)
        catch = by_name.get(name)
        if catch is None:
            work.note(ERROR, "link", throw, f"link event \u201c{name}\u201d has no catch event of that name in this "
                      "process or subprocess: add one, or connect the flow directly")
            continue
        thrown.add(name)
        _sub(container, "sequenceFlow", id=work.new_id(f"{throw.get('id')}_link"), sourceRef=throw.get("id"),
             targetRef=catch.get("id"))
        work.note(WARNING, "link", throw, f"link event \u201c{name}\u201d runs as a sequence flow to "
                  f"{catch.get('id')}")
    for catch in catches:
        if _link_name(catch) not in thrown:
            work.note(ERROR, "link", catch, f"link catch event \u201c{_link_name(catch)}\u201d has no link throw "
                      "event of that name in this process or subprocess: nothing leads to it")
    for event in throws + catches:
        event.remove(event.find(f"{_B}linkEventDefinition"))
        event.tag = f"{_B}intermediateThrowEvent"   # a none intermediate event: it passes the token on


def _implicit_splits(work: _Work, container: etree._Element) -> None:
    flows = _flows(container)
    by_source: dict[str, list[etree._Element]] = {}
    for flow in flows:
        by_source.setdefault(flow.get("sourceRef"), []).append(flow)
    for node in list(_children(container, *(_NODES - _GATEWAYS))):
        outgoing = by_source.get(node.get("id"), [])
        if len(outgoing) < 2:
            continue
        conditional = any(f.find(f"{_B}conditionExpression") is not None for f in outgoing)
        kind = "inclusiveGateway" if conditional else "parallelGateway"
        gateway = etree.Element(f"{_B}{kind}", id=work.new_id(f"{node.get('id')}_split"))
        if conditional and node.get("default"):
            gateway.set("default", node.attrib.pop("default"))
        container.append(gateway)
        _sub(container, "sequenceFlow", id=work.new_id(f"{node.get('id')}_to_split"),
             sourceRef=node.get("id"), targetRef=gateway.get("id"))
        for flow in outgoing:
            flow.set("sourceRef", gateway.get("id"))
            if conditional and flow.find(f"{_B}conditionExpression") is None and flow.get("id") != gateway.get("default"):
                _sub(flow, "conditionExpression").text = "True"
        for out in list(_children(node, "outgoing")):
            node.remove(out)
        work.note(WARNING, "implicit", node, f"{len(outgoing)} outgoing flows without a gateway: run as "
                  f"{'an inclusive' if conditional else 'a parallel'} split")


def _implicit_start(work: _Work, container: etree._Element) -> None:
    if container.get("triggeredByEvent") == "true" or next(_children(container, "startEvent"), None) is not None:
        return
    nodes = [n for n in _children(container, *_NODES) if n.get("isForCompensation") != "true"]
    if not nodes:
        if _local(container) != "process":  # an empty (collapsed) subprocess completes at once
            start = _sub(container, "startEvent", id=work.new_id(f"{container.get('id')}_start"))
            end = _sub(container, "endEvent", id=work.new_id(f"{container.get('id')}_end"))
            _sub(container, "sequenceFlow", id=work.new_id(f"{container.get('id')}_through"),
                 sourceRef=start.get("id"), targetRef=end.get("id"))
            work.note(WARNING, "implicit", container, "empty subprocess: completes at once")
        return
    targets = {f.get("targetRef") for f in _flows(container)}
    entries = [n for n in nodes if n.get("id") not in targets]
    if not entries:
        work.note(ERROR, "structure", container, "no start event, and every element has an incoming flow: "
                  "add a start event")
        return
    start = _sub(container, "startEvent", id=work.new_id(f"{container.get('id')}_start"))
    first = start
    if len(entries) > 1:
        first = _sub(container, "parallelGateway", id=work.new_id(f"{container.get('id')}_start_split"))
        _sub(container, "sequenceFlow", id=work.new_id(f"{start.get('id')}_flow"), sourceRef=start.get("id"),
             targetRef=first.get("id"))
    for entry in entries:
        _sub(container, "sequenceFlow", id=work.new_id(f"{entry.get('id')}_entry"), sourceRef=first.get("id"),
             targetRef=entry.get("id"))
    work.note(WARNING, "implicit", container, "no start event: starts at "
              + ", ".join(e.get("id") for e in entries))


def _implicit_end(work: _Work, container: etree._Element) -> None:
    if next(_children(container, "endEvent"), None) is not None:
        return
    sources = {f.get("sourceRef") for f in _flows(container)}
    exits = [n for n in _children(container, *_NODES) if n.get("id") not in sources]
    for node in exits:
        end = _sub(container, "endEvent", id=work.new_id(f"{node.get('id')}_end"))
        _sub(container, "sequenceFlow", id=work.new_id(f"{node.get('id')}_exit"), sourceRef=node.get("id"),
             targetRef=end.get("id"))
    if not exits:
        _sub(container, "endEvent", id=work.new_id(f"{container.get('id')}_end"))
    work.note(WARNING, "implicit", container, "no end event: the subprocess ends when every path has ended")
