"""What Scopeflow needs to know about a BPMN file, read straight from its XML.

SpiffWorkflow parses the executable semantics; this module reads the rest — element names and line
numbers for lint messages, our ``spiffworkflow:properties`` conventions (forms, due times, message
correlation, end-event outcomes), lanes, and the call graph between files.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from lxml import etree

from scopeflow.processes import bounds, camunda_forms

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
KNOWN_EXTENSION_NS = {SPIFF_NS}

# Flow elements we run; anything else under a process is reported by lint.
FLOW_NODE_TAGS = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
}
UNSUPPORTED_TAGS = {
    "compensateEventDefinition": "compensation is not supported",
    "complexGateway": "complex gateways are not supported",
    "adHocSubProcess": "ad-hoc subprocesses are not supported",
    "conditionalEventDefinition": "conditional events are not supported: a condition is only checked again when "
                                  "another task of the instance completes, so an instance waiting on it alone would "
                                  "wait forever; use an exclusive gateway, or a message or timer event",
}


# Extensions that run code or change task data in the engine they were written for: skipping them would
# run a different process, so lint refuses them (other vendor extensions are only named, as warnings).
_DATA_FIX = "move it into a script task, or a spiffworkflow:preScript/postScript"
RUNNING_EXTENSIONS = {
    (CAMUNDA_NS, "executionListener"): f"camunda:executionListener runs code Scopeflow does not run: {_DATA_FIX}",
    (CAMUNDA_NS, "taskListener"): f"camunda:taskListener runs code Scopeflow does not run: {_DATA_FIX}",
    (CAMUNDA_NS, "inputOutput"): f"camunda:inputOutput maps variables Scopeflow does not map: {_DATA_FIX}",
    (CAMUNDA_NS, "in"): "camunda:in maps variables Scopeflow does not map: a called process receives all the "
                        "caller's data; remove the mapping (or map in a script task before the call)",
    (CAMUNDA_NS, "out"): "camunda:out maps variables Scopeflow does not map: the caller receives all the called "
                         "process's data; remove the mapping (or map in a script task after the call)",
    (ZEEBE_NS, "ioMapping"): f"zeebe:ioMapping maps variables Scopeflow does not map: {_DATA_FIX}",
    (ZEEBE_NS, "executionListeners"): f"zeebe:executionListeners run jobs Scopeflow does not run: {_DATA_FIX}",
    (ZEEBE_NS, "taskListeners"): f"zeebe:taskListeners run jobs Scopeflow does not run: {_DATA_FIX}",
}

# Extensions prepare.py maps to their Scopeflow meaning (it notes each mapping itself).
MAPPED_EXTENSIONS = {(ZEEBE_NS, "script"), (ZEEBE_NS, "calledElement"), (ZEEBE_NS, "assignmentDefinition")}


class BpmnFileError(ValueError):
    """A file that is not usable BPMN at all (one line: file, line, reason)."""


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


def decode_xml(path: str, content: bytes) -> str:
    """The text of an XML file in whatever encoding its declaration (or BOM) names.

    The declaration is rewritten to say UTF-8, on the same line, so the text can be re-encoded as
    UTF-8 and line numbers stay those of the designer's file.
    """
    _refuse_what_is_not_xml(path, content)
    if content.startswith(codecs.BOM_UTF8):
        return content[len(codecs.BOM_UTF8):].decode("utf-8")
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = content.decode("utf-16")
        return re.sub(r"(<\?xml[^>]*?encoding\s*=\s*[\"'])[^\"']+", r"\g<1>UTF-8", text, count=1)
    match = _DECLARATION.match(content)
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        text = content.decode(encoding)
    except LookupError:
        raise BpmnFileError(f"{path}:1: unknown encoding {encoding} in the XML declaration") from None
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        said = "as the XML declaration says" if match else "the encoding when no XML declaration names another"
        raise BpmnFileError(f"{path}:{line}: not valid {encoding} text ({said}): export the diagram again as "
                            "UTF-8 BPMN 2.0 XML") from None
    if match:
        _refuse_utf8_declared_as_latin(path, content, encoding)
        text = re.sub(r"(<\?xml[^>]*?encoding\s*=\s*[\"'])[^\"']+", r"\g<1>UTF-8", text, count=1)
    return text


_ARCHIVES = {b"PK\x03\x04": "a ZIP archive", b"\x1f\x8b": "a gzip archive"}
_LATIN = {"iso-8859-1", "latin-1", "latin1", "iso8859-1", "windows-1252", "cp1252", "iso-8859-15"}


def _refuse_what_is_not_xml(path: str, content: bytes) -> None:
    """Empty files and archives get a sentence of their own instead of the XML parser's."""
    if not content.strip():
        raise BpmnFileError(f"{path}:1: the file is empty: export the diagram as BPMN 2.0 XML")
    for magic, what in _ARCHIVES.items():
        if content.startswith(magic):
            raise BpmnFileError(f"{path}:1: {what}, not BPMN XML: unpack it and use the .bpmn file inside")


def _refuse_utf8_declared_as_latin(path: str, content: bytes, encoding: str) -> None:
    """A file that says ISO-8859-1 (or windows-1252) but holds UTF-8 would run with garbled names
    ("PrÃ¼fung"): its non-ASCII bytes all decode as UTF-8, which Latin-1 text practically never does."""
    if encoding.lower() not in _LATIN or content.isascii():
        return
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return
    line = content[: next(i for i, byte in enumerate(content) if byte > 127)].count(b"\n") + 1
    raise BpmnFileError(f"{path}:{line}: the XML declaration says {encoding}, but the text is UTF-8: change "
                        "the declaration to encoding=\"UTF-8\"")


@dataclass
class Element:
    id: str
    tag: str
    name: str
    line: int
    properties: dict[str, str] = field(default_factory=dict)
    operator: str | None = None
    lane: str | None = None
    attached_to: str | None = None
    called_element: str | None = None
    event_definitions: list[str] = field(default_factory=list)
    inline_form: dict | None = None       # a form drawn in the diagram (camunda:formData), as JSON Schema
    inline_form_notes: list[str] = field(default_factory=list)   # what of it the schema cannot hold


@dataclass
class ProcessInfo:
    id: str
    name: str
    file: str                     # path relative to the models directory
    executable: bool              # isExecutable is not "false" (missing means true, as for SpiffWorkflow)
    line: int
    executable_attr: str | None = None   # the attribute as written, for messages
    elements: dict[str, Element] = field(default_factory=dict)
    called_elements: set[str] = field(default_factory=set)
    unsupported: list[tuple[str, int, str]] = field(default_factory=list)   # (element id, line, why)
    foreign_extensions: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        """A process with flow elements (a pool that only documents a participant has none)."""
        return bool(self.elements)

    def element(self, element_id: str) -> Element | None:
        return self.elements.get(element_id)

    @property
    def start_form(self) -> str | None:
        for el in self.elements.values():
            if el.tag == "startEvent" and el.properties.get("formJsonSchemaFilename"):
                return el.properties["formJsonSchemaFilename"]
        return None

    def forms(self) -> dict[str, str]:
        """Element id → form file name, for user tasks and start events."""
        return {el.id: el.properties["formJsonSchemaFilename"]
                for el in self.elements.values() if el.properties.get("formJsonSchemaFilename")}


@dataclass
class BpmnFile:
    path: str
    processes: list[ProcessInfo]
    di_element_ids: set[str]
    lines: dict[str, int] = field(default_factory=dict)     # every element id → its line
    owners: dict[str, str] = field(default_factory=dict)    # element id → id of the process holding it
    flow_elements: int = 0
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (line, element id, sentence)


def _local(tag: str) -> str:
    return tag.split("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def parse_bpmn(path: str, content: bytes) -> BpmnFile:
    """Read ``content`` (the bytes of ``path``); raises :class:`BpmnFileError` for malformed XML."""
    doctype = _DOCTYPE.search(content[:4096])
    if doctype and content[doctype.end():doctype.end() + 5].strip().lower().startswith(b"html"):
        raise BpmnFileError(f"{path}:1: an HTML page, not BPMN 2.0 XML (a download that saved a web page?): "
                            "export the diagram again")
    if doctype:
        line = content[:doctype.start()].count(b"\n") + 1
        raise BpmnFileError(f"{path}:{line}: the file declares a DOCTYPE; "
                            "BPMN 2.0 XML has none (its entities could expand or read other files): remove it")
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise BpmnFileError(f"{path}:{exc.lineno or 0}: {_syntax_sentence(content, exc)}") from None
    if _ns(root.tag) != BPMN_NS or _local(root.tag) != "definitions":
        raise BpmnFileError(f"{path}:{root.sourceline}: {_foreign_root(root)}")
    processes = [_process(path, el) for el in root.iter(f"{{{BPMN_NS}}}process")]
    di_ids = {el.get("bpmnElement") for el in root.iter() if _ns(el.tag) == DI_NS and el.get("bpmnElement")}
    lines = {el.get("id"): el.sourceline or 0 for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    flow_elements = sum(1 for el in root.iter() if _ns(el.tag) == BPMN_NS
                        and (_local(el.tag) in FLOW_NODE_TAGS or _local(el.tag) == "sequenceFlow"))
    owners = {el.get("id"): proc.get("id", "") for proc in root.iter(f"{{{BPMN_NS}}}process")
              for el in proc.iter() if isinstance(el.tag, str) and el.get("id")}
    return BpmnFile(path=path, processes=processes, di_element_ids=di_ids, lines=lines, flow_elements=flow_elements,
                    owners=owners,
                    # lint refuses a file over the size limit before anything else: no need to walk it again
                    problems=structure_problems(root) if flow_elements <= bounds.MAX_FLOW_ELEMENTS else [])


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_LIBXML_PLACE = re.compile(r",? line \d+, column \d+\s*$")
_OTHER_NAMESPACES = {
    "http://www.omg.org/spec/BPMN/20100501/MODEL": "the BPMN 2.0 beta namespace (2010-05-01)",
    "http://schema.omg.org/spec/BPMN/2.0": "a BPMN 2.0 draft namespace",
    "http://www.omg.org/bpmn20": "a BPMN 2.0 draft namespace",
}


def _syntax_sentence(content: bytes, exc: etree.XMLSyntaxError) -> str:
    """lxml's complaint without its repeated location; text that is not markup at all says so."""
    if not content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "not XML (the text does not start with \u201c<\u201d): export the diagram as BPMN 2.0 XML"
    message = _LIBXML_PLACE.sub("", exc.msg or "unreadable").rstrip(". ")
    if message.startswith("xmlns") and "is not a valid URI" in message:
        return (f"malformed XML: {message}: write the namespace without spaces (BPMN 2.0's is "
                f"{BPMN_NS})")
    return f"malformed XML: {message}"


def _foreign_root(root: etree._Element) -> str:
    """Why a well-formed file is not BPMN 2.0, naming what it is when we can tell."""
    namespace, local = _ns(root.tag), _local(root.tag)
    if local == "mxfile" or local == "mxGraphModel":
        return ("a draw.io diagram, not BPMN 2.0 XML: draw.io's own format cannot run; redraw it in a BPMN "
                "modeler, or export it with a BPMN 2.0 exporter")
    if local.lower() == "html":
        return "an HTML page, not BPMN 2.0 XML (a download that saved a web page?): export the diagram again"
    if "DMN" in namespace:
        return "a DMN decision file, not a BPMN process: name it .dmn"
    if local == "definitions" and namespace.strip() == BPMN_NS:
        return (f"the BPMN namespace has spaces around it (\u201c{namespace}\u201d): remove them, it must be "
                f"exactly {BPMN_NS}")
    if local == "definitions" and namespace in _OTHER_NAMESPACES:
        return (f"the root element is in {_OTHER_NAMESPACES[namespace]} ({namespace}), not BPMN 2.0 "
                f"({BPMN_NS}): export the diagram as BPMN 2.0")
    where = f" in namespace {namespace}" if namespace else " without a namespace"
    return (f"not a BPMN 2.0 file: the root element is \u201c{local}\u201d{where}; a BPMN file's root is "
            f"definitions in {BPMN_NS}")


_CONTAINER_TAGS = {"process", "subProcess", "transaction", "adHocSubProcess"}


def structure_problems(root: etree._Element) -> list[tuple[int, str, str]]:
    """References SpiffWorkflow would silently drop or misreport: duplicate ids, sequence flows,
    defaults and boundary events naming an element that is not there, processes without an id.

    Each is (line, element id, sentence); lint reports them as errors before SpiffWorkflow parses.
    """
    problems = _duplicate_ids(root)
    for proc in root.iter(f"{{{BPMN_NS}}}process"):
        if not (proc.get("id") or "").strip():
            problems.append((proc.sourceline or 0, "", "process has no id: give <process> an id (it names the "
                                                       "model)"))
    for container in root.iter(*(f"{{{BPMN_NS}}}{tag}" for tag in _CONTAINER_TAGS)):
        problems.extend(_container_problems(container))
    problems.extend(_unwritten_data_objects(root))
    return problems


def _unwritten_data_objects(root: etree._Element) -> list[tuple[int, str, str]]:
    """A data object read by a task (a data input association) that nothing in the file ever writes:
    SpiffWorkflow stops the run with an incident when the task starts. Documentation diagrams draw such
    inputs; lint names them instead."""
    b = f"{{{BPMN_NS}}}"
    objects = {el.get("id"): el for el in root.iter(f"{b}dataObject") if el.get("id")}
    ref_elements = {el.get("id"): el for el in root.iter(f"{b}dataObjectReference") if el.get("id")}
    refs = {ref_id: el.get("dataObjectRef") for ref_id, el in ref_elements.items()}
    written = set()
    for assoc in root.iter(f"{b}dataOutputAssociation"):
        for target in assoc.iter(f"{b}targetRef"):
            ref = (target.text or "").strip()
            written.add(refs.get(ref, ref))
    for el in root.iter(f"{b}loopDataOutputRef"):
        ref = (el.text or "").strip()
        written.add(refs.get(ref, ref))
    problems = []
    for assoc in root.iter(f"{b}dataInputAssociation"):
        task = assoc.getparent()
        for source in assoc.iter(f"{b}sourceRef"):
            ref = (source.text or "").strip()
            obj = refs.get(ref, ref)
            if obj in objects and obj not in written:
                label = objects[obj].get("name") or (ref_elements[ref].get("name") if ref in ref_elements else "") or obj
                problems.append((task.sourceline or 0, task.get("id", ""),
                                 f"reads data object \u201c{label}\u201d, which nothing in this file writes (no data "
                                 "output association targets it), so the run would stop here: remove the input "
                                 "association, or write the object first"))
    return problems


def _duplicate_ids(root: etree._Element) -> list[tuple[int, str, str]]:
    seen: dict[str, etree._Element] = {}
    problems = []
    for el in root.iter(f"{{{BPMN_NS}}}*"):
        element_id = el.get("id")
        if not element_id:
            continue
        first = seen.setdefault(element_id, el)
        if first is not el:
            problems.append((el.sourceline or 0, element_id,
                             f"id \u201c{element_id}\u201d is used twice (this {_local(el.tag)} and the "
                             f"{_local(first.tag)} on line {first.sourceline}): ids must be unique in a file, "
                             "rename one"))
    return problems


def _definitions(node: etree._Element) -> set[str]:
    return {_local(child.tag) for child in node if _local(child.tag).endswith("EventDefinition")}


def _flow_meaning_problems(container: etree._Element, nodes: dict[str, etree._Element],
                           flows: list[etree._Element]) -> list[tuple[int, str, str]]:
    """What SpiffWorkflow runs differently from what the diagram says, without an error of its own:
    conditions after a parallel gateway (ignored), several plain start events (only the first runs),
    elements no flow reaches (never run) and, on a process, a timer start (fired inside one instance)."""
    problems = []
    for flow in flows:
        source = nodes.get((flow.get("sourceRef") or "").strip())
        if source is not None and _local(source.tag) == "parallelGateway" \
                and flow.find(f"{{{BPMN_NS}}}conditionExpression") is not None:
            problems.append((flow.sourceline or 0, flow.get("id", ""), "a condition on a flow leaving a parallel "
                             "gateway is never evaluated (every flow is taken): use an inclusive gateway, or "
                             "remove the condition"))
    starts = [n for n in nodes.values() if _local(n.tag) == "startEvent"]
    plain = [n for n in starts if not _definitions(n)]
    if len(plain) > 1:
        problems.append((plain[1].sourceline or 0, plain[1].get("id", ""), f"{len(plain)} start events without a "
                         f"trigger ({', '.join(n.get('id', '') for n in plain)}): only the first would run; keep "
                         "one, or join their paths after a single start event"))
    if _local(container.tag) == "process":
        for start in starts:
            if "timerEventDefinition" in _definitions(start):
                problems.append((start.sourceline or 0, start.get("id", ""), "a timer start event starts new "
                                 "instances on a schedule in other engines; Scopeflow starts an instance when "
                                 "asked (scopeflow start, the API): use a start event without a trigger"))
    if starts:
        problems.extend(_unreachable(nodes, flows))
    return problems


def _unreachable(nodes: dict[str, etree._Element], flows: list[etree._Element]) -> list[tuple[int, str, str]]:
    """Flow nodes without an incoming flow where the container has a start event: nothing ever runs them."""
    targets = {(flow.get("targetRef") or "").strip() for flow in flows}
    problems = []
    for node_id, node in nodes.items():
        tag = _local(node.tag)
        if node_id in targets or tag in ("startEvent", "boundaryEvent") or node.get("isForCompensation") == "true" \
                or node.get("triggeredByEvent") == "true" or "linkEventDefinition" in _definitions(node):
            continue
        problems.append((node.sourceline or 0, node_id or "", "no sequence flow leads here, and the process or "
                         "subprocess has a start event, so this never runs: connect it, or delete it"))
    return problems


def _container_problems(container: etree._Element) -> list[tuple[int, str, str]]:
    """Flows, defaults and attachments of one process or subprocess, checked against its own nodes."""
    children = [el for el in container if _ns(el.tag) == BPMN_NS]
    nodes = {el.get("id"): el for el in children if _local(el.tag) in FLOW_NODE_TAGS | {"adHocSubProcess",
                                                                                          "complexGateway"}}
    flows = [el for el in children if _local(el.tag) == "sequenceFlow"]
    outgoing: dict[str, set[str]] = {}
    problems = []
    for flow in flows:
        flow_id = flow.get("id", "")
        for end, attr in (("starts at", "sourceRef"), ("leads to", "targetRef")):
            ref = (flow.get(attr) or "").strip()
            if not ref:
                problems.append((flow.sourceline or 0, flow_id, f"sequence flow has no {attr}: connect both of "
                                 "its ends in the modeler, or delete it"))
            elif ref not in nodes:
                problems.append((flow.sourceline or 0, flow_id, f"sequence flow {end} \u201c{ref}\u201d, which "
                                 "is not an element of this process or subprocess: connect it in the modeler, "
                                 "or delete it"))
        outgoing.setdefault((flow.get("sourceRef") or "").strip(), set()).add(flow_id)
    problems.extend(_flow_meaning_problems(container, nodes, flows))
    for node_id, node in nodes.items():
        default = node.get("default")
        if default and default not in outgoing.get(node_id, set()):
            problems.append((node.sourceline or 0, node_id, f"default flow \u201c{default}\u201d is not a "
                             "sequence flow leaving this element: pick one of its outgoing flows as the default"))
        attached = node.get("attachedToRef") if _local(node.tag) == "boundaryEvent" else None
        if _local(node.tag) == "boundaryEvent" and (not attached or attached not in nodes):
            problems.append((node.sourceline or 0, node_id, f"boundary event is attached to "
                             f"\u201c{attached or ''}\u201d, which is not an activity of this process or "
                             "subprocess: attach it to a task or subprocess"))
    return problems


def _process(path: str, proc: etree._Element) -> ProcessInfo:
    info = ProcessInfo(
        id=proc.get("id", ""),
        name=proc.get("name") or proc.get("id", ""),
        file=path,
        executable=proc.get("isExecutable", "true").strip().lower() != "false",
        line=proc.sourceline or 0,
        executable_attr=proc.get("isExecutable"),
    )
    lanes = _lane_map(proc)
    for el in proc.iter():
        tag = _local(el.tag)
        ns = _ns(el.tag)
        if ns == BPMN_NS and tag in UNSUPPORTED_TAGS:
            owner = el.getparent() if tag.endswith("EventDefinition") else el
            info.unsupported.append((owner.get("id", "?"), el.sourceline or 0, UNSUPPORTED_TAGS[tag]))
        elif ns and ns not in (BPMN_NS, SPIFF_NS) and _local(el.getparent().tag) == "extensionElements":
            owner_id = el.getparent().getparent().get("id", "?")
            if (ns, tag) in RUNNING_EXTENSIONS and not _maps_everything(el):
                info.unsupported.append((owner_id, el.sourceline or 0, RUNNING_EXTENSIONS[(ns, tag)]))
            elif (ns, tag) == (CAMUNDA_NS, "formData") and _takes_inline_form(
                    _local(el.getparent().getparent().tag), _properties(el.getparent().getparent())):
                pass   # shown as the element's form (camunda_forms.py)
            elif (ns, tag) not in MAPPED_EXTENSIONS:
                info.foreign_extensions.append((owner_id, el.sourceline or 0, el.tag))
        if ns != BPMN_NS or tag not in FLOW_NODE_TAGS:
            continue
        element = Element(
            id=el.get("id", ""),
            tag=tag,
            name=el.get("name") or "",
            line=el.sourceline or 0,
            properties=_properties(el),
            operator=_operator(el),
            lane=lanes.get(el.get("id", "")),
            attached_to=el.get("attachedToRef"),
            called_element=called_element(el) if tag == "callActivity" else None,
            event_definitions=[_local(child.tag) for child in el if _local(child.tag).endswith("EventDefinition")],
        )
        _add_inline_form(path, el, element)
        info.elements[element.id] = element
        if tag == "callActivity" and element.called_element:
            info.called_elements.add(element.called_element)
    return info


def _takes_inline_form(tag: str, properties: dict[str, str]) -> bool:
    """A user task or start event that names no form file: its camunda:formData is its form."""
    return tag in ("userTask", "startEvent") and not properties.get("formJsonSchemaFilename")


def _add_inline_form(path: str, el: etree._Element, element: Element) -> None:
    """A user task or start event whose fields were drawn with camunda:formData (and that names no
    form file) gets them as its form."""
    drawn = el.find(f"{{{BPMN_NS}}}extensionElements/{{{CAMUNDA_NS}}}formData")
    if drawn is None or not _takes_inline_form(element.tag, element.properties):
        return
    element.inline_form = camunda_forms.schema_of(drawn, element.name)
    element.inline_form_notes = camunda_forms.not_carried_over(drawn)
    element.properties["formJsonSchemaFilename"] = camunda_forms.inline_name(path, element.id)


def _maps_everything(el: etree._Element) -> bool:
    """``camunda:in variables="all"`` (and ``out``) is what Scopeflow does anyway."""
    return _local(el.tag) in ("in", "out") and el.get("variables") == "all" and not el.get("source") \
        and not el.get("sourceExpression")


def called_element(call: etree._Element) -> str:
    """The process a call activity calls: ``calledElement``, else Zeebe's static ``processId``."""
    own = (call.get("calledElement") or "").strip()
    zeebe = call.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}calledElement")
    if own or zeebe is None:
        return own
    process_id = (zeebe.get("processId") or "").strip()
    return "" if process_id.startswith("=") else process_id


def _lane_map(proc: etree._Element) -> dict[str, str]:
    """Element id → lane name; without lanes, Camunda's first candidate group (as ``prepare`` maps it)."""
    lanes: dict[str, str] = {}
    for lane in proc.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.findall(f"{{{BPMN_NS}}}flowNodeRef"):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or lane.get("id", "")
    if proc.find(f"{{{BPMN_NS}}}laneSet") is None:
        for task in proc.iter(f"{{{BPMN_NS}}}userTask"):
            zeebe = task.find(f"{{{BPMN_NS}}}extensionElements/{{{ZEEBE_NS}}}assignmentDefinition")
            groups = task.get(f"{{{CAMUNDA_NS}}}candidateGroups") or (
                zeebe.get("candidateGroups", "") if zeebe is not None else "")
            group = groups.lstrip("=").strip().strip('"').split(",")[0].strip()
            if group:
                lanes[task.get("id", "")] = group
    return lanes


def _properties(el: etree._Element) -> dict[str, str]:
    props: dict[str, str] = {}
    for prop in el.iterfind(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}properties/{{{SPIFF_NS}}}property"):
        if prop.get("name"):
            props[prop.get("name")] = prop.get("value", "")
    instructions = el.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}instructionsForEndUser")
    if instructions is not None and instructions.text:
        props["instructionsForEndUser"] = instructions.text
    return props


def _operator(el: etree._Element) -> str | None:
    op = el.find(f"{{{BPMN_NS}}}extensionElements/{{{SPIFF_NS}}}serviceTaskOperator")
    return op.get("id") if op is not None else None


LANE_ROLES = {"submitter": "submitter", "agents": "agent", "agent": "agent",
              "technical operator": "operator", "operator": "operator", "reviewer": "reviewer",
              "designer": "designer", "auditor": "auditor", "admin": "admin"}


def lane_role(lane: str | None) -> str:
    """The role whose members may work a lane's tasks (unknown lanes: their lowercased name)."""
    if not lane:
        return "submitter"
    key = lane.strip().lower()
    return LANE_ROLES.get(key, key.replace(" ", "_"))
