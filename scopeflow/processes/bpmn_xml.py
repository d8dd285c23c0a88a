"""What Scopeflow needs to know about a BPMN file, read straight from its XML.

SpiffWorkflow parses the executable semantics; this module reads the rest — element names and line
numbers for lint messages, our ``spiffworkflow:properties`` conventions (forms, due times, message
correlation, end-event outcomes), lanes, and the call graph between files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
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
}


class BpmnFileError(ValueError):
    """A file that is not usable BPMN at all (one line: file, line, reason)."""


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
    event_definitions: list[str] = field(default_factory=list)


@dataclass
class ProcessInfo:
    id: str
    name: str
    file: str                     # path relative to the models directory
    executable: bool
    line: int
    elements: dict[str, Element] = field(default_factory=dict)
    called_elements: set[str] = field(default_factory=set)
    unsupported: list[tuple[str, int, str]] = field(default_factory=list)   # (element id, line, why)
    foreign_extensions: list[tuple[str, int, str]] = field(default_factory=list)

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


def _local(tag: str) -> str:
    return tag.split("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def parse_bpmn(path: str, content: bytes) -> BpmnFile:
    """Read ``content`` (the bytes of ``path``); raises :class:`BpmnFileError` for malformed XML."""
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or 0
        raise BpmnFileError(f"{path}:{line}: malformed XML: {exc.msg}") from None
    if _ns(root.tag) != BPMN_NS or _local(root.tag) != "definitions":
        raise BpmnFileError(f"{path}:{root.sourceline}: not a BPMN 2.0 file (root is {_local(root.tag)!r})")
    processes = [_process(path, el) for el in root.iter(f"{{{BPMN_NS}}}process")]
    di_ids = {el.get("bpmnElement") for el in root.iter() if _ns(el.tag) == DI_NS and el.get("bpmnElement")}
    return BpmnFile(path=path, processes=processes, di_element_ids=di_ids)


def _process(path: str, proc: etree._Element) -> ProcessInfo:
    info = ProcessInfo(
        id=proc.get("id", ""),
        name=proc.get("name") or proc.get("id", ""),
        file=path,
        executable=proc.get("isExecutable", "false").lower() == "true",
        line=proc.sourceline or 0,
    )
    lanes = _lane_map(proc)
    for el in proc.iter():
        tag = _local(el.tag)
        ns = _ns(el.tag)
        if ns == BPMN_NS and tag in UNSUPPORTED_TAGS:
            owner = el.getparent() if tag.endswith("EventDefinition") else el
            info.unsupported.append((owner.get("id", "?"), el.sourceline or 0, UNSUPPORTED_TAGS[tag]))
        elif ns and ns not in (BPMN_NS, SPIFF_NS) and _local(el.getparent().tag) == "extensionElements":
            info.foreign_extensions.append((el.getparent().getparent().get("id", "?"), el.sourceline or 0, el.tag))
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
            event_definitions=[_local(child.tag) for child in el if _local(child.tag).endswith("EventDefinition")],
        )
        info.elements[element.id] = element
        if tag == "callActivity" and el.get("calledElement"):
            info.called_elements.add(el.get("calledElement"))
    return info


def _lane_map(proc: etree._Element) -> dict[str, str]:
    lanes: dict[str, str] = {}
    for lane in proc.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.findall(f"{{{BPMN_NS}}}flowNodeRef"):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or lane.get("id", "")
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
