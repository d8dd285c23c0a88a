"""Hostile models (issue 19, item 7): huge timers, zero-length cycles, call recursion, huge
multi-instance counts, oversized models and non-JSON script data are lint errors or incidents —
never a hang, never an instance retried forever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scopeflow.engine.models import Instance
from scopeflow.engine.service import Engine
from scopeflow.processes import bounds
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import errors, lint_catalog
from scopeflow.processes.synth import linear_process
from tests.bpmn_text import definitions, flow, process, script
from tests.conftest import make_settings


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "models"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def timer_model(pid: str, definition: str, *, boundary: bool = False) -> str:
    if boundary:  # a non-interrupting timer on a waiting user task
        body = ['<bpmn:startEvent id="s"/>', flow("f0", "s", "wait"), '<bpmn:userTask id="wait"/>',
                flow("f1", "wait", "e"), '<bpmn:endEvent id="e"/>',
                f'<bpmn:boundaryEvent id="t" attachedToRef="wait" cancelActivity="false">{definition}</bpmn:boundaryEvent>',
                flow("f2", "t", "e2"), '<bpmn:endEvent id="e2"/>']
    else:
        body = ['<bpmn:startEvent id="s"/>', flow("f0", "s", "t"),
                f'<bpmn:intermediateCatchEvent id="t">{definition}</bpmn:intermediateCatchEvent>',
                flow("f1", "t", "e"), '<bpmn:endEvent id="e"/>']
    return definitions(process(pid, "\n".join(body)))


def mi_model(pid: str, cardinality: str, sequential: bool = False) -> str:
    body = ['<bpmn:startEvent id="s"/>', flow("f0", "s", "many"),
            f'<bpmn:scriptTask id="many"><bpmn:multiInstanceLoopCharacteristics isSequential="{str(sequential).lower()}">'
            f'<bpmn:loopCardinality>{cardinality}'
            '</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics><bpmn:script>x = 1</bpmn:script>'
            '</bpmn:scriptTask>', flow("f1", "many", "e"), '<bpmn:endEvent id="e"/>']
    return definitions(process(pid, "\n".join(body)))


def incident_of(tmp_path: Path, root: Path, model: str, data: dict) -> dict:
    engine = Engine(make_settings(tmp_path / "home", root))
    started = time.process_time()
    instance_id = engine.start(model, data)
    assert time.process_time() - started < 30  # a hang would never return; this only guards a regression
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "error", row.status
        assert row.needs_advance is False  # an incident, not an instance a worker retries forever
        return row.incident


# ------------------------------------------------------------------------------ lint

@pytest.mark.parametrize(("name", "xml", "element", "fragment"), [
    ("huge_duration", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeDuration>P999999999999Y"
                                       "</bpmn:timeDuration></bpmn:timerEventDefinition>"), "t", "longer than the limit"),
    ("zero_cycle", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>R/PT0S</bpmn:timeCycle>"
                                    "</bpmn:timerEventDefinition>", boundary=True), "t", "minimum interval"),
    ("short_cycle", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>R5/PT10S</bpmn:timeCycle>"
                                     "</bpmn:timerEventDefinition>", boundary=True), "t", "minimum interval is 60s"),
    ("many_cycles", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>R99999999/PT1H</bpmn:timeCycle>"
                                     "</bpmn:timerEventDefinition>", boundary=True), "t", "repeats more than"),
    ("past_start", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>R/2000-01-01T00:00:00Z/PT1M"
                                    "</bpmn:timeCycle></bpmn:timerEventDefinition>", boundary=True),
     "t", "intervals in the past"),
    ("huge_cardinality", mi_model("m", "10000000"), "many", "cardinality 10,000,000 is above the limit"),
])
def test_a_literal_over_a_limit_is_a_located_lint_error(tmp_path, name, xml, element, fragment):
    [problem] = errors(lint_catalog(scan(write(tmp_path, {"m.bpmn": xml}))))
    assert problem.element == element and problem.line > 0 and fragment in problem.message


def test_call_activity_self_and_mutual_recursion_are_lint_errors(tmp_path):
    def caller(pid: str, callee: str) -> str:
        return definitions(process(pid, '<bpmn:startEvent id="s"/>' + flow("f0", "s", f"call_{callee}")
                                   + f'<bpmn:callActivity id="call_{callee}" calledElement="{callee}"/>'
                                   + flow("f1", f"call_{callee}", "e") + '<bpmn:endEvent id="e"/>'))
    root = write(tmp_path, {"self.bpmn": caller("selfish", "selfish"), "a.bpmn": caller("ping", "pong"),
                            "b.bpmn": caller("pong", "ping")})
    problems = {(p.file, p.element): p.message for p in errors(lint_catalog(scan(root)))}
    assert "call activities recurse: selfish \u2192 selfish" in problems[("self.bpmn", "call_selfish")]
    assert "ping \u2192 pong \u2192 ping" in problems[("a.bpmn", "call_pong")]
    assert "pong \u2192 ping \u2192 pong" in problems[("b.bpmn", "call_ping")]


def test_a_model_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    steps = [(f"s{i}", "noop", {}) for i in range(bounds.MAX_FLOW_ELEMENTS // 2 + 10)]
    root = write(tmp_path, {"big.bpmn": linear_process("big", steps)})
    [problem] = errors(lint_catalog(scan(root)))
    assert problem.code == "bounds" and "split it with call activities" in problem.message


# ------------------------------------------------------------------------------ run time: computed values

@pytest.mark.parametrize(("name", "xml", "data", "fragment"), [
    ("computed_duration", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeDuration>wait_for"
                                           "</bpmn:timeDuration></bpmn:timerEventDefinition>"),
     {"wait_for": "P999999999999Y"}, "longer than the limit"),
    ("computed_cycle", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>every</bpmn:timeCycle>"
                                        "</bpmn:timerEventDefinition>", boundary=True),
     {"every": "R/PT0S"}, "minimum interval"),
    ("computed_past_start", timer_model("m", "<bpmn:timerEventDefinition><bpmn:timeCycle>every</bpmn:timeCycle>"
                                             "</bpmn:timerEventDefinition>", boundary=True),
     {"every": "R/2000-01-01T00:00:00Z/PT1M"}, "intervals in the past"),
    ("computed_cardinality", mi_model("m", "n"), {"n": 10_000_000}, "above the limit of 1,000"),
    ("computed_sequential", mi_model("m", "n", sequential=True), {"n": 10_000_000}, "above the limit of 1,000"),
    ("input_collection", mi_model("m", "n").replace(
        "<bpmn:loopCardinality>n</bpmn:loopCardinality>",
        '<bpmn:loopDataInputRef>items</bpmn:loopDataInputRef><bpmn:inputDataItem id="item" name="item"/>'),
     {"items": list(range(5000))}, "cardinality 5,000 is above the limit"),
])
def test_a_computed_value_over_a_limit_becomes_an_incident(tmp_path, name, xml, data, fragment):
    root = write(tmp_path, {"m.bpmn": xml})
    assert errors(lint_catalog(scan(root))) == []
    incident = incident_of(tmp_path, root, "m", data)
    assert fragment in incident["message"]


def test_a_computed_value_under_the_limits_still_runs(tmp_path):
    root = write(tmp_path, {"m.bpmn": mi_model("m", "n")})
    engine = Engine(make_settings(tmp_path / "home", root))
    instance_id = engine.start("m", {"n": 3})
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).status == "completed"


@pytest.mark.parametrize(("code", "fragment"), [
    ("tags = set(['a', 'b'])", "tags is a set"),
    ("loop = []\nloop.append(loop)", "loop[0] refers to itself"),
    ("raw = b'bytes'", "raw is a bytes"),
])
def test_a_script_leaving_non_json_data_is_an_incident_not_a_retry_loop(tmp_path, code, fragment):
    body = '<bpmn:startEvent id="s"/>' + flow("f0", "s", "run") + script("run", code) + flow("f1", "run", "e") \
        + '<bpmn:endEvent id="e"/>'
    root = write(tmp_path, {"m.bpmn": definitions(process("m", body))})
    incident = incident_of(tmp_path, root, "m", {})
    assert incident["bpmn_id"] == "run" and fragment in incident["message"]
