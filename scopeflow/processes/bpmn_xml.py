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
}


class BpmnFileError(ValueError):
    """A file that is not usable BPMN at all (one line: file, line, reason)."""


_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"'][^>]*\?>")


def decode_xml(path: str, content: bytes) -> str:
    """The text of an XML file in whatever encoding its declaration (or BOM) names.

    The declaration is rewritten to say UTF-8, on the same line, so the text can be re-encoded as
    UTF-8 and line numbers stay those of the designer's file.
    """
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
        raise BpmnFileError(f"{path}:{line}: not valid {encoding} text (as the XML declaration says)") from None
    if match:
        text = re.sub(r"(<\?xml[^>]*?encoding\s*=\s*[\"'])[^\"']+", r"\g<1>UTF-8", text, count=1)
    return text


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
        raise BpmnFileError(f"{path}:{root.sourceline}: not a BPMN 2.0 file (the root element is "
                            f"\u201c{_local(root.tag)}\u201d, not bpmn:definitions)")
    processes = [_process(path, el) for el in root.iter(f"{{{BPMN_NS}}}process")]
    di_ids = {el.get("bpmnElement") for el in root.iter() if _ns(el.tag) == DI_NS and el.get("bpmnElement")}
    lines = {el.get("id"): el.sourceline or 0 for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
    flow_elements = sum(1 for el in root.iter() if _ns(el.tag) == BPMN_NS
                        and (_local(el.tag) in FLOW_NODE_TAGS or _local(el.tag) == "sequenceFlow"))
    owners = {el.get("id"): proc.get("id", "") for proc in root.iter(f"{{{BPMN_NS}}}process")
              for el in proc.iter() if isinstance(el.tag, str) and el.get("id")}
    return BpmnFile(path=path, processes=processes, di_element_ids=di_ids, lines=lines, flow_elements=flow_elements,
                    owners=owners)


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
            called_element=(el.get("calledElement") or "").strip() if tag == "callActivity" else None,
            event_definitions=[_local(child.tag) for child in el if _local(child.tag).endswith("EventDefinition")],
        )
        info.elements[element.id] = element
        if tag == "callActivity" and el.get("calledElement"):
            info.called_elements.add(el.get("calledElement"))
    return info


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
