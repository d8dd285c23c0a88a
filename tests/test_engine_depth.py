"""Instances of any depth and size run to their real end.

Stock SpiffWorkflow 3.2.0 walks its task tree with an iterator that stops at depth 1000: a loop
iterated a few hundred times stopped half-way and was reported ``completed``, a long linear model
left its last task READY, and models of ~490 tasks did not even parse (RecursionError).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scopeflow.engine import flow
from scopeflow.engine.models import Instance, SpanRow
from scopeflow.engine.service import Engine
from scopeflow.engine.spiff import build_parser
from scopeflow.processes.synth import linear_process
from tests.conftest import make_settings

LOOP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="defs_loop" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="loop" name="Loop" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="again" name="Again?"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:scriptTask id="count" name="Count"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:script>counter = counter + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="done" name="Done?" default="f3"><bpmn:incoming>f4</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f5</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="again"/>
    <bpmn:sequenceFlow id="f2" sourceRef="again" targetRef="count"/>
    <bpmn:sequenceFlow id="f3" sourceRef="done" targetRef="again"/>
    <bpmn:sequenceFlow id="f4" sourceRef="count" targetRef="done"/>
    <bpmn:sequenceFlow id="f5" sourceRef="done" targetRef="end">
      <bpmn:conditionExpression>counter &gt;= limit</bpmn:conditionExpression></bpmn:sequenceFlow>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p" bpmnElement="loop">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="100" y="100" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="again_di" bpmnElement="again"><dc:Bounds x="180" y="93" width="50" height="50"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="count_di" bpmnElement="count"><dc:Bounds x="280" y="78" width="100" height="80"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="done_di" bpmnElement="done"><dc:Bounds x="430" y="93" width="50" height="50"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="530" y="100" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="136" y="118"/><di:waypoint x="180" y="118"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="230" y="118"/><di:waypoint x="280" y="118"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f3_di" bpmnElement="f3"><di:waypoint x="455" y="143"/><di:waypoint x="455" y="200"/>
      <di:waypoint x="205" y="200"/><di:waypoint x="205" y="143"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f4_di" bpmnElement="f4"><di:waypoint x="380" y="118"/><di:waypoint x="430" y="118"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f5_di" bpmnElement="f5"><di:waypoint x="480" y="118"/><di:waypoint x="530" y="118"/></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def _engine(tmp_path, name: str, xml: str) -> Engine:
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / f"{name}.bpmn").write_text(xml, encoding="utf-8")
    return Engine(make_settings(tmp_path / "home", models))


def _row(engine: Engine, instance_id: str) -> Instance:
    with engine.sessions() as session:
        return session.get(Instance, instance_id)


def _task_spans(engine: Engine, instance_id: str, element_id: str) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(SpanRow).where(
            SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id == element_id,
            SpanRow.name == element_id.capitalize()))


def test_a_loop_of_5000_iterations_runs_to_its_real_end(tmp_path):
    engine = _engine(tmp_path, "loop", LOOP)
    instance_id = engine.start("loop", {"counter": 0, "limit": 5000})
    row = _row(engine, instance_id)
    assert (row.status, row.progress) == ("completed", 100)
    assert engine.instance_data(instance_id)["counter"] == 5000
    assert _task_spans(engine, instance_id, "count") == 5000   # one span per task run, none lost


def test_a_2000_task_linear_model_parses_and_runs_to_its_end(tmp_path):
    steps = [(f"t{i}", "noop", {}) for i in range(2000)]
    engine = _engine(tmp_path, "long", linear_process("long", steps))
    instance_id = engine.start("long", {})
    row = _row(engine, instance_id)
    assert (row.status, row.progress) == ("completed", 100)
    with engine.sessions() as session:
        elements = set(session.scalars(select(SpanRow.bpmn_element_id).where(
            SpanRow.instance_id == instance_id)))
    assert {f"t{i}" for i in range(2000)} <= elements
    assert "end" in elements


def test_a_5000_task_model_parses():
    parser = build_parser(validate=True)
    parser.add_bpmn_str(linear_process("huge", [(f"t{i}", "noop", {}) for i in range(5000)]).encode(),
                        filename="huge.bpmn")
    assert len(parser.get_spec("huge").task_specs) > 5000


def test_completed_is_refused_while_a_task_is_still_ready(tmp_path, monkeypatch):
    """What stock Spiff did past depth 1000: it said completed with work left. The engine checks."""
    engine = _engine(tmp_path, "loop", LOOP)
    monkeypatch.setattr(flow.FlowWorkflow, "is_completed", lambda self: True)
    monkeypatch.setattr("scopeflow.engine.spiff.do_engine_steps", lambda wf, will, did: None)
    monkeypatch.setattr("scopeflow.engine.runner.do_engine_steps", lambda wf, will, did: None)
    instance_id = engine.start("loop", {"counter": 0, "limit": 3})
    row = _row(engine, instance_id)
    assert row.status == "error"
    assert "still READY or WAITING" in row.incident["message"]


@pytest.mark.parametrize("levels", [10, 50_000])
def test_the_recursion_limit_only_grows(levels):
    import sys

    before = sys.getrecursionlimit()
    flow.ensure_recursion_depth(levels)
    assert sys.getrecursionlimit() >= max(before, levels)


def test_task_ids_are_random_version_4_uuids_and_a_forked_child_draws_its_own():
    """Task ids come from os.urandom read in blocks: unique, version 4, and never the same in a
    forked worker as in its parent (the child does not reuse the parent's unread block)."""
    import os
    import uuid

    from scopeflow.engine.flow import _TASK_IDS

    ids = [_TASK_IDS.new() for _ in range(1000)]   # more than one 4 KiB block
    assert len(set(ids)) == 1000 and {i.version for i in ids} == {4} and {i.variant for i in ids} == {uuid.RFC_4122}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: report the next ids it draws, then leave without pytest's teardown
        os.write(write, "".join(str(_TASK_IDS.new()) for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode()
    os.waitpid(pid, 0)
    parent = "".join(str(_TASK_IDS.new()) for _ in range(3))
    assert len(child) == 108 and child != parent
