"""Task data is plain JSON: nothing a script, a form or a message writes comes back as a live object.

The attack these tests replay: SpiffWorkflow's serializer revives any dict with a ``"typename"`` key
when a state is loaded. A script that plants a dict shaped like a serialized ``BpmnWorkflow`` and
then waits would get back a workflow object whose stock script engine runs anything. Each test runs
a real instance through a wait (a human task), so the state is written and read back in between.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from sqlalchemy import select

from scopeflow.engine.models import HumanTask, Instance
from scopeflow.engine.plain_json import NotPlainJson, first_problem
from scopeflow.engine.service import Engine
from scopeflow.engine.spiff import deserialize, serialize
from tests.conftest import add_account, make_settings


def _wait_model(process_id: str, before: str, after: str) -> str:
    """start → script ``plant`` → user task ``wait`` → script ``use`` → end, with DI."""
    def shape(element: str, x: int, w: int = 100, h: int = 80) -> str:
        return (f'<bpmndi:BPMNShape id="{element}_di" bpmnElement="{element}">'
                f'<dc:Bounds x="{x}" y="80" width="{w}" height="{h}"/></bpmndi:BPMNShape>')

    def edge(flow: str, x: int) -> str:
        return (f'<bpmndi:BPMNEdge id="{flow}_di" bpmnElement="{flow}"><di:waypoint x="{x}" y="120"/>'
                f'<di:waypoint x="{x + 50}" y="120"/></bpmndi:BPMNEdge>')

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        f'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="defs_{process_id}" '
        'targetNamespace="http://bpmn.io/schema/bpmn">'
        f'<bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">'
        '<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:scriptTask id="plant" name="plant"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>'
        f'<bpmn:script>{escape(before)}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:userTask id="wait" name="wait"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>'
        '</bpmn:userTask>'
        '<bpmn:scriptTask id="use" name="use"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>'
        f'<bpmn:script>{escape(after)}</bpmn:script></bpmn:scriptTask>'
        '<bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="plant"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="plant" targetRef="wait"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="use"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="use" targetRef="end"/></bpmn:process>'
        f'<bpmndi:BPMNDiagram id="d_{process_id}"><bpmndi:BPMNPlane id="p_{process_id}" bpmnElement="{process_id}">'
        + shape("start", 100, 36, 36) + shape("plant", 180) + shape("wait", 330) + shape("use", 480)
        + shape("end", 630, 36, 36) + edge("f0", 136) + edge("f1", 280) + edge("f2", 430) + edge("f3", 580)
        + "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>\n"
    )


def _stock_serialized_workflow() -> dict:
    """What SpiffWorkflow's own serializer writes for a tiny workflow: the object an attacker mimics."""
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(_wait_model("victim", "a = 1", "b = 2").encode(), filename="victim.bpmn")
    workflow = BpmnWorkflow(parser.get_spec("victim"))
    stock = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
    return json.loads(stock.serialize_json(workflow))


MARKER = "scopeflow-typename-attack-marker"


@pytest.fixture(scope="module")
def attack_engine(tmp_path_factory) -> tuple[Engine, Path]:
    root = tmp_path_factory.mktemp("typename")
    models = root / "models"
    models.mkdir()
    marker = root / MARKER
    payload = repr(_stock_serialized_workflow())
    use = f"x.script_engine.environment.execute(\"open('{marker}', 'w').write('pwned')\", {{}})\nused = 1"
    models.joinpath("revive_workflow.bpmn").write_text(
        _wait_model("revive_workflow", f"x = {payload}", use), encoding="utf-8")
    models.joinpath("revive_datetime.bpmn").write_text(_wait_model(
        "revive_datetime", "when = {'typename': 'datetime', 'value': '2020-01-02T03:04:05'}",
        "kind = when['typename']"), encoding="utf-8")
    models.joinpath("plain.bpmn").write_text(_wait_model("plain", "a = 1", "b = a + 1"), encoding="utf-8")
    models.joinpath("leaves_set.bpmn").write_text(_wait_model("leaves_set", "s = {1, 2}", "b = 1"),
                                                  encoding="utf-8")
    models.joinpath("leaves_generator.bpmn").write_text(
        _wait_model("leaves_generator", "g = (i for i in [1, 2])", "b = 1"), encoding="utf-8")
    engine = Engine(make_settings(root / "home", models))
    add_account(engine, "admin", "admin")
    return engine, marker


def _open_task(engine: Engine, instance_id: str) -> str:
    with engine.sessions() as session:
        return session.scalars(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                          HumanTask.status == "open")).one()


def _row(engine: Engine, instance_id: str) -> Instance:
    with engine.sessions() as session:
        return session.get(Instance, instance_id)


def test_a_planted_serialized_workflow_comes_back_as_a_dict_and_runs_nothing(attack_engine):
    engine, marker = attack_engine
    instance_id = engine.start("revive_workflow", {})
    assert _row(engine, instance_id).status == "waiting"
    status = engine.complete_task(_open_task(engine, instance_id), {}, actor="admin")

    assert not marker.exists(), "the planted workflow was revived and ran code"
    assert status == "error"
    incident = _row(engine, instance_id).incident
    assert incident["bpmn_id"] == "use"
    assert "'NoneType' object is not callable" in incident["message"]   # a dict has no script_engine
    planted = deserialize(_row(engine, instance_id).state).get_next_task(spec_name="use").data["x"]
    assert type(planted) is dict and planted["typename"] == "BpmnWorkflow"


def test_any_typename_dict_in_script_data_stays_a_dict(attack_engine):
    engine, _ = attack_engine
    instance_id = engine.start("revive_datetime", {})
    assert engine.complete_task(_open_task(engine, instance_id), {}, actor="admin") == "completed"
    data = _row(engine, instance_id).outcome or {}
    state = deserialize(_row(engine, instance_id).state)
    end_data = state.get_next_task(spec_name="end").data
    assert end_data["when"] == {"typename": "datetime", "value": "2020-01-02T03:04:05"}
    assert end_data["kind"] == "datetime"
    assert isinstance(data, dict)


@pytest.mark.parametrize("answers", [
    {"answers": {"typename": "nope"}},
    {"answers": {"typename": "BpmnWorkflow", "spec": {}, "tasks": {}}},
    {"typename": "Task", "nested": [{"typename": "UUID", "value": "not-a-uuid"}]},
])
def test_form_data_with_reserved_keys_is_stored_as_is_and_the_instance_stays_usable(attack_engine, answers):
    engine, _ = attack_engine
    instance_id = engine.start("plain", {})
    assert engine.complete_task(_open_task(engine, instance_id), answers, actor="admin") == "completed"
    state = deserialize(_row(engine, instance_id).state)
    end_data = state.get_next_task(spec_name="end").data
    for key, value in answers.items():
        assert end_data[key] == value
    assert end_data["b"] == 2


def test_start_data_with_reserved_keys_is_stored_as_is(attack_engine):
    engine, _ = attack_engine
    start = {"payload": {"typename": "BpmnWorkflow"}}
    instance_id = engine.start("plain", start)
    engine.cancel(instance_id, actor="admin")   # loads and rewrites the state
    assert _row(engine, instance_id).status == "cancelled"
    assert deserialize(_row(engine, instance_id).state).task_tree.data["payload"] == {"typename": "BpmnWorkflow"}


@pytest.mark.parametrize(("model", "what"), [("leaves_set", "s is a set"), ("leaves_generator", "g is a generator")])
def test_a_script_that_leaves_non_json_values_becomes_an_incident_naming_the_task(attack_engine, model, what):
    engine, _ = attack_engine
    instance_id = engine.start(model, {})
    row = _row(engine, instance_id)
    assert row.status == "error"
    assert row.incident["bpmn_id"] == "plant"
    assert what in row.incident["message"]
    # The refused script left nothing behind, and the stored state reads back.
    plant = deserialize(row.state).get_next_task(spec_name="plant")
    assert model[7:] not in plant.data


def test_the_store_refuses_a_non_json_value_however_it_got_there(attack_engine):
    """The backstop: a value no script check saw (here put in by hand) is refused when the state is
    written, with an incident naming the task, and the last good state is kept."""
    engine, _ = attack_engine
    instance_id = engine.start("plain", {})
    before = _row(engine, instance_id)
    with engine._work(instance_id) as work:
        task = work.workflow.get_next_task(spec_name="wait")
        task.data["bad"] = {1, 2}
        status = engine._run(work, "test", steps=False)
    after = _row(engine, instance_id)
    assert status == "error" and after.status == "error"
    assert after.incident["error_type"] == "UnsaveableState"
    assert "task 'wait'" in after.incident["message"] and "data.bad is a set" in after.incident["message"]
    assert after.state == before.state
    assert after.lock_owner is None
    # Retry runs on from the last checkpoint.
    assert engine.retry(instance_id, actor="admin") == "waiting"


def test_serializer_round_trip_keeps_reserved_keys_and_refuses_objects():
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(_wait_model("rt", "a = 1", "b = 2").encode(), filename="rt.bpmn")
    workflow = BpmnWorkflow(parser.get_spec("rt"))
    root = workflow.task_tree
    root.data["x"] = {"typename": "datetime", "value": "2020-01-01T00:00:00"}
    root.internal_data["scopeflow_failure"] = {"details": {"typename": "UUID", "value": "x"}}
    workflow.data["obj"] = {"typename": "BpmnWorkflow"}
    again = deserialize(serialize(workflow))
    assert again.task_tree.data["x"] == {"typename": "datetime", "value": "2020-01-01T00:00:00"}
    assert again.task_tree.internal_data["scopeflow_failure"]["details"]["typename"] == "UUID"
    assert again.data["obj"] == {"typename": "BpmnWorkflow"}

    from datetime import datetime
    root.data["when"] = datetime(2020, 1, 1)
    with pytest.raises(NotPlainJson, match=r"data\.when is a datetime"):
        serialize(workflow)


def test_the_library_s_own_internal_objects_are_written_but_user_objects_beside_them_are_refused():
    """A multiple event keeps library objects (``seen_events``) in internal data: the strict encode
    refuses them, every task is then checked (user values must still be plain), and Spiff's encoder
    writes the library's objects, which come back as they were."""
    from datetime import datetime

    from SpiffWorkflow.bpmn.specs.event_definitions.simple import CancelEventDefinition
    from SpiffWorkflow.bpmn.util import BpmnEvent

    parser = SpiffBpmnParser()
    parser.add_bpmn_str(_wait_model("seen", "a = 1", "b = 2").encode(), filename="seen.bpmn")
    workflow = BpmnWorkflow(parser.get_spec("seen"))
    task = workflow.task_tree.children[0]
    task.internal_data["seen_events"] = [BpmnEvent(CancelEventDefinition(), payload={"n": 1})]
    again = deserialize(serialize(workflow))
    restored = again.get_task_from_id(task.id).internal_data["seen_events"]
    assert [type(event).__name__ for event in restored] == ["BpmnEvent"] and restored[0].payload == {"n": 1}

    task.internal_data["mine"] = datetime(2020, 1, 1)
    with pytest.raises(NotPlainJson, match=r"internal data\.mine is a datetime"):
        serialize(workflow)


@pytest.mark.parametrize(("value", "expected"), [
    ({"a": [1, "x", None, True, 1.5, {"b": (1, 2)}]}, None),
    ({"a": {1, 2}}, ("data.a", "is a set")),
    ({"a": [b"x"]}, ("data.a[0]", "is a bytes")),
    ({(1, 2): 3}, ("data", "has a key of type tuple")),
])
def test_first_problem_names_the_path(value, expected):
    found = first_problem(value)
    if expected is None:
        assert found is None
    else:
        assert found[0] == expected[0] and expected[1] in found[1]


def test_a_reference_cycle_is_not_plain_json():
    cyclic: dict = {"a": []}
    cyclic["a"].append(cyclic)
    assert first_problem(cyclic) == ("data.a[0]", "refers to itself (a reference cycle)")


def test_instructions_cannot_change_the_task_data_they_render():
    from scopeflow.engine.task_rows import instructions as _instructions

    data = {"answers": {"a": 1}, "items": [1]}
    text = _instructions({"instructionsForEndUser": "{{ answers.update({'typename': 'BpmnWorkflow'}) }}"
                                                    "{{ items.append(items) }}"}, data)
    assert data == {"answers": {"a": 1}, "items": [1]}
    assert "could not be rendered" in text and "SecurityError" in text


def test_a_message_payload_with_reserved_keys_arrives_as_plain_data(engine):
    """A message payload is user data too."""
    instance_id = engine.start("message", {"order_id": "A-1"})
    payload = {"amount": 5, "meta": {"typename": "BpmnWorkflow", "spec": {}}}
    assert engine.send_message("payment_received", payload, correlation_key="A-1") == [instance_id]
    row = _row(engine, instance_id)
    assert row.status == "completed"
    tasks = deserialize(row.state).get_tasks()
    assert any(json.dumps(payload["meta"]) in json.dumps(task.data) for task in tasks)
