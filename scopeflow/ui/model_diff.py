"""Differences between two versions of a model, element by element (id, tag, name, properties)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scopeflow.processes.bpmn_xml import BpmnFileError, Element, parse_bpmn


@dataclass
class ElementChange:
    element_id: str
    change: str                       # added | removed | changed
    tag: str
    name: str
    details: list[str] = field(default_factory=list)   # "name: 'A' → 'B'", one per changed aspect


def _elements(path: str, text: str) -> dict[str, Element]:
    elements: dict[str, Element] = {}
    for process in parse_bpmn(path, text.encode("utf-8")).processes:
        elements.update(process.elements)
    return elements


def _aspects(el: Element) -> dict[str, object]:
    return {"tag": el.tag, "name": el.name, "operator": el.operator, "lane": el.lane,
            "attached_to": el.attached_to, "events": sorted(el.event_definitions),
            **{f"property {k}": v for k, v in sorted(el.properties.items())}}


def diff_files(path: str, old_text: str, new_text: str) -> list[ElementChange]:
    """Element changes from ``old_text`` to ``new_text``; BpmnFileError when either does not parse."""
    old, new = _elements(path, old_text), _elements(path, new_text)
    changes = []
    for element_id in sorted(set(old) | set(new)):
        before, after = old.get(element_id), new.get(element_id)
        if before is None:
            changes.append(ElementChange(element_id, "added", after.tag, after.name))
        elif after is None:
            changes.append(ElementChange(element_id, "removed", before.tag, before.name))
        else:
            a, b = _aspects(before), _aspects(after)
            details = [f"{key}: {a.get(key)!r} → {b.get(key)!r}" for key in sorted(set(a) | set(b))
                       if a.get(key) != b.get(key)]
            if details:
                changes.append(ElementChange(element_id, "changed", after.tag, after.name, details))
    return changes


__all__ = ["BpmnFileError", "ElementChange", "diff_files"]
