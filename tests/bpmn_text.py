"""Hand-written BPMN for tests: a definitions header with the namespaces other modelers use."""

from __future__ import annotations

NAMESPACES = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def definitions(*processes: str, extra: str = "", encoding: str = "UTF-8") -> str:
    """A file holding ``processes`` (each a whole ``<bpmn:process>`` element) and ``extra`` elements."""
    return (f'<?xml version="1.0" encoding="{encoding}"?>\n'
            f'<bpmn:definitions {NAMESPACES} id="defs" targetNamespace="http://example.org/bpmn">\n'
            + extra + "\n".join(processes) + "\n</bpmn:definitions>\n")


def process(pid: str, body: str, attrs: str = 'isExecutable="true"') -> str:
    return f'<bpmn:process id="{pid}" {attrs}>\n{body}\n</bpmn:process>'


def flow(fid: str, source: str, target: str, condition: str | None = None) -> str:
    if condition is None:
        return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}"/>'
    return (f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">'
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>'
            '</bpmn:sequenceFlow>')


def script(sid: str, code: str, fmt: str = "python") -> str:
    return f'<bpmn:scriptTask id="{sid}" scriptFormat="{fmt}"><bpmn:script>{code}</bpmn:script></bpmn:scriptTask>'


def gateway_choice(pid: str, conditions: tuple[str, str]) -> str:
    """start → exclusive gateway → (yes | no) script tasks → ends; conditions for yes and no."""
    yes, no = conditions
    return process(pid, "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "gw"),
        '<bpmn:exclusiveGateway id="gw"/>', flow("f_yes", "gw", "yes", yes), flow("f_no", "gw", "no", no),
        script("yes", "path = 'yes'"), script("no", "path = 'no'"),
        '<bpmn:endEvent id="end_yes"/>', '<bpmn:endEvent id="end_no"/>',
        flow("f1", "yes", "end_yes"), flow("f2", "no", "end_no"),
    ]))
