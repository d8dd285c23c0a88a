"""Generate simple BPMN models in code: linear chains of service tasks, with full DI.

Benchmarks and tests need models of a given size (20 or 400 tasks); drawing them by hand would be
silly. The output is ordinary BPMN that lints, renders and runs like any designer's file.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr


def linear_process(process_id: str, steps: list[tuple[str, str, dict[str, str]]], name: str = "") -> str:
    """A start event, then one service task per ``(element id, operator, {param: expression})``, then an end."""
    nodes, flows, shapes, edges = [], [], [], []
    ids = ["start"] + [step[0] for step in steps] + ["end"]
    x = 100
    for index, element_id in enumerate(ids):
        incoming = f"<bpmn:incoming>f{index - 1}</bpmn:incoming>" if index > 0 else ""
        outgoing = f"<bpmn:outgoing>f{index}</bpmn:outgoing>" if index < len(ids) - 1 else ""
        if element_id == "start":
            nodes.append(f'<bpmn:startEvent id="start" name="Start">{outgoing}</bpmn:startEvent>')
            shapes.append(_shape("start", x, 102, 36, 36))
        elif element_id == "end":
            nodes.append(f'<bpmn:endEvent id="end" name="End">{incoming}</bpmn:endEvent>')
            shapes.append(_shape("end", x, 102, 36, 36))
        else:
            _, operator, params = steps[index - 1]
            rendered = "".join(
                f"<spiffworkflow:parameter id={quoteattr(k)} type=\"any\" value={quoteattr(v)}/>"
                for k, v in params.items())
            nodes.append(
                f'<bpmn:serviceTask id="{element_id}" name="{element_id}"><bpmn:extensionElements>'
                f'<spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="{element_id}_result">'
                f"<spiffworkflow:parameters>{rendered}</spiffworkflow:parameters>"
                f"</spiffworkflow:serviceTaskOperator></bpmn:extensionElements>{incoming}{outgoing}"
                f"</bpmn:serviceTask>")
            shapes.append(_shape(element_id, x, 80, 100, 80))
        if index < len(ids) - 1:
            nxt = ids[index + 1]
            flows.append(f'<bpmn:sequenceFlow id="f{index}" sourceRef="{element_id}" targetRef="{nxt}"/>')
            start_x = x + (36 if element_id == "start" else 100)
            edges.append(f'<bpmndi:BPMNEdge id="f{index}_di" bpmnElement="f{index}">'
                         f'<di:waypoint x="{start_x}" y="120"/><di:waypoint x="{start_x + 50}" y="120"/>'
                         f"</bpmndi:BPMNEdge>")
        x += (36 if element_id == "start" else 100) + 50
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="defs_' + process_id + '" '
        'targetNamespace="http://bpmn.io/schema/bpmn">'
        f'<bpmn:process id="{process_id}" name={quoteattr(name or process_id)} isExecutable="true">'
        + "".join(nodes) + "".join(flows) + "</bpmn:process>"
        f'<bpmndi:BPMNDiagram id="diagram_{process_id}"><bpmndi:BPMNPlane id="plane_{process_id}" '
        f'bpmnElement="{process_id}">' + "".join(shapes) + "".join(edges)
        + "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>\n"
    )


def _shape(element_id: str, x: int, y: int, w: int, h: int) -> str:
    return (f'<bpmndi:BPMNShape id="{element_id}_di" bpmnElement="{element_id}">'
            f'<dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}"/></bpmndi:BPMNShape>')
