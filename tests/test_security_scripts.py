"""Escape attempts from BPMN scripts and expressions: each is refused with a clear error.

The same hostile snippets run twice: directly against ``RestrictedEnvironment`` (the unit under
test) and inside real BPMN models run by the engine, where each must become an *incident* on the
instance — the runner keeps serving other instances afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sqlalchemy import select

from scopeflow.engine.models import Instance
from scopeflow.engine.sandbox import (
    MAX_DATA_UNITS,
    RestrictedEnvironment,
    ScriptError,
    ScriptTimeout,
    ScriptTooLarge,
    compile_errors,
    data_units,
)
from scopeflow.engine.service import Engine, EngineError
from scopeflow.processes.catalog import scan
from scopeflow.processes.lint import errors, lint_catalog
from scopeflow.processes.synth import linear_process
from tests.conftest import make_settings

# (probe id, script, exception type expected from RestrictedEnvironment, fragment of its message)
ESCAPES = [
    ("dunder_walk", "x = ().__class__.__bases__[0].__subclasses__()", ScriptError, "starts with \"_\""),
    ("import", "x = __import__('os')", ScriptError, "__import__"),
    ("import_statement", "import os\nx = os.getcwd()", ImportError, "__import__ not found"),
    ("open", "x = open('/etc/passwd').read()", NameError, "'open' is not defined"),
    ("getattr", "x = getattr((), '__class__')", NameError, "'getattr' is not defined"),
    ("vars", "x = vars()", NameError, "'vars' is not defined"),
    ("globals", "x = globals()", NameError, "'globals' is not defined"),
    ("builtins_name", "x = __builtins__", ScriptError, "starts with \"_\""),
    ("str_format", "x = '{0.__class__}'.format(1)", NotImplementedError, "format*() methods"),
    ("str_format_unbound", "x = str.format('{0.__class__.__bases__}', 1)", NotImplementedError, "format*()"),
    ("format_map", "x = '{a.__class__}'.format_map({'a': 1})", NotImplementedError, "format*()"),
    ("fstring_dunder", "x = f'{().__class__}'", ScriptError, "__class__"),
    ("generator_frame", "g = (i for i in [1])\nx = g.gi_frame.f_globals", ScriptError, "gi_frame"),
    ("generator_code", "g = (i for i in [1])\nx = g.gi_code", ScriptError, "gi_code"),
    ("traceback_frame", "try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__.tb_frame",
     ScriptError, "tb_frame"),
    ("function_globals", "def f():\n    pass\nx = f.__globals__", ScriptError, "__globals__"),
    ("type_three_args", "x = type('A', (), {})", NameError, "'type' is not defined"),
    ("class_statement", "class A:\n    pass\nx = 1", ScriptError, "class definitions are not allowed"),
    ("exec", "exec('x = 1')", ScriptError, "Exec calls are not allowed"),
    ("eval", "x = eval('1')", ScriptError, "Eval calls are not allowed"),
    ("compile", "x = compile('1', 'f', 'eval')", NameError, "'compile' is not defined"),
    ("print", "print('hello')", ScriptError, "print() is not available"),
    ("recursion", "def f(n):\n    return f(n + 1)\nx = f(0)", ScriptError, "recursed too deeply"),
    ("huge_string", "x = 'a' * 10**10", ScriptTooLarge, "repetition"),
    ("huge_list", "x = [0] * 10**10", ScriptTooLarge, "repetition"),
    ("huge_augmented", "x = 'ab'\nx *= 10**9", ScriptTooLarge, "repetition"),
    ("huge_power", "x = 10 ** 10 ** 8", ScriptTooLarge, "integer power"),
    ("huge_pow_builtin", "x = pow(7, 10**9)", ScriptTooLarge, "integer power"),
    ("huge_shift", "x = 1 << 10**10", ScriptTooLarge, "left shift"),
    ("huge_range_sum", "x = sum(range(10**12))", ScriptTooLarge, "range()"),
    ("huge_pad", "x = 'a'.ljust(10**10)", ScriptTooLarge, "ljust"),
    ("huge_to_bytes", "x = (1).to_bytes(10**10, 'big')", ScriptTooLarge, "to_bytes"),
    ("huge_join", "x = ''.join(['a' * 10**6] * 1000)", ScriptTooLarge, "join"),
    ("huge_replace", "x = ('a' * 10**6).replace('a', 'b' * 100)", ScriptTooLarge, "replace"),
    ("huge_percent_width", "x = '%999999999d' % 1", ScriptTooLarge, "%-format width"),
    ("star_percent_width", "x = '%*d' % (10**9, 1)", ScriptTooLarge, "'*' widths"),
    ("huge_fstring_width", "n = 10**9\nx = f'{1:{n}}'", ScriptTooLarge, "f-string format width"),
    ("doubling_loop", "x = 'a'\nfor i in range(64):\n    x = x + x", ScriptTooLarge, "concatenation"),
    ("sum_of_lists", "x = sum([[0] * 10**6] * 100, [])", ScriptTooLarge, "concatenation"),
    ("shared_references", "row = [0] * 10**6\nx = [row] * 50", ScriptTooLarge, "task data left by the script"),
    ("endless_loop", "while True:\n    pass", ScriptTimeout, "time budget"),
    ("nested_generator_loop", "x = sum(1 for i in range(10**6) for j in range(10**6))", ScriptTimeout,
     "time budget"),
]


@pytest.mark.parametrize(("probe", "script", "error", "fragment"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_restricted_environment_refuses_each_escape(probe, script, error, fragment):
    env = RestrictedEnvironment(time_budget_s=0.5)
    data = {"before": 1}
    started = time.monotonic()
    with pytest.raises(error) as caught:
        env.execute(script, data)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value).strip() or error is ScriptError  # compile errors list lines
    assert time.monotonic() - started < 5
    assert data == {"before": 1}, "a refused script must not leave partial task data behind"


def test_ordinary_scripts_still_work():
    env = RestrictedEnvironment()
    data = {"items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}], "name": "shop"}
    env.execute(
        "total = 0\n"
        "for item in items:\n"
        "    total += item['price'] * item['qty']\n"
        "label = f'{name:>6}: {total:05d}' + ' (%s items)' % len(items)\n"
        "squares = [n ** 2 for n in range(5)]\n"
        "big = 2 ** 64\n"
        "joined = ', '.join(sorted(['b', 'a']))\n"
        "padded = 'x'.ljust(3, '.')\n",
        data,
    )
    assert data["total"] == 11
    assert data["label"] == "  shop: 00011 (2 items)"
    assert data["squares"] == [0, 1, 4, 9, 16]
    assert data["big"] == 18446744073709551616
    assert (data["joined"], data["padded"]) == ("a, b", "x..")


@pytest.mark.parametrize(("expression", "fragment"), [
    ("().__class__", "starts with \"_\""),
    ("'a' * 10**10", "repetition"),
    ("'{0.__class__}'.format(1)", "format*()"),
    ("[0] * 10**6 and [[0] * 10**6] * 30", "expression value"),
])
def test_expressions_are_restricted_too(expression, fragment):
    with pytest.raises((ScriptError, NotImplementedError), match=None) as caught:
        RestrictedEnvironment().evaluate(expression, {})
    assert fragment in str(caught.value)


def test_data_units_counts_shared_references_as_serialisation_would_but_walks_them_once():
    row = [0] * 1000
    assert data_units({"a": "bc"}) == 1 + 2 + 3      # the dict, key 'a' (1+1), value 'bc' (2+1)
    assert data_units([row] * 1000) == 1 + 1000 * 1001
    started = time.monotonic()
    assert data_units([[0] * 10**6] * 10**6) > MAX_DATA_UNITS
    assert time.monotonic() - started < 3


# ------------------------------------------------------------------------------ through the engine

def _script_model(process_id: str, script: str) -> str:
    """start → scriptTask ``run`` → end, with diagram interchange so it lints like a real model."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
        f'id="defs_{process_id}" targetNamespace="http://bpmn.io/schema/bpmn">'
        f'<bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">'
        '<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>'
        '<bpmn:scriptTask id="run" name="run"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>'
        f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>"
        '<bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="run"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="run" targetRef="end"/></bpmn:process>'
        f'<bpmndi:BPMNDiagram id="d_{process_id}"><bpmndi:BPMNPlane id="p_{process_id}" bpmnElement="{process_id}">'
        '<bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="100" y="100" width="36" height="36"/>'
        '</bpmndi:BPMNShape><bpmndi:BPMNShape id="run_di" bpmnElement="run">'
        '<dc:Bounds x="200" y="80" width="100" height="80"/></bpmndi:BPMNShape>'
        '<bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="350" y="100" width="36" height="36"/>'
        '</bpmndi:BPMNShape><bpmndi:BPMNEdge id="f0_di" bpmnElement="f0"><di:waypoint x="136" y="118"/>'
        '<di:waypoint x="200" y="118"/></bpmndi:BPMNEdge><bpmndi:BPMNEdge id="f1_di" bpmnElement="f1">'
        '<di:waypoint x="300" y="118"/><di:waypoint x="350" y="118"/></bpmndi:BPMNEdge>'
        "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>\n"
    )


def _condition_model(process_id: str, condition: str) -> str:
    """A model whose exclusive gateway evaluates ``condition`` (the hostile expression)."""
    xml = _script_model(process_id, "x = 1")
    gateway = (
        '<bpmn:exclusiveGateway id="gw" default="f_default"><bpmn:incoming>f1</bpmn:incoming>'
        '<bpmn:outgoing>f_yes</bpmn:outgoing><bpmn:outgoing>f_default</bpmn:outgoing></bpmn:exclusiveGateway>'
        '<bpmn:endEvent id="end_yes"><bpmn:incoming>f_yes</bpmn:incoming></bpmn:endEvent>'
        '<bpmn:sequenceFlow id="f_yes" sourceRef="gw" targetRef="end_yes">'
        '<bpmn:conditionExpression xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression></bpmn:sequenceFlow>'
        '<bpmn:sequenceFlow id="f_default" sourceRef="gw" targetRef="end"/>'
    )
    xml = xml.replace('<bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming>',
                      '<bpmn:endEvent id="end"><bpmn:incoming>f_default</bpmn:incoming>')
    xml = xml.replace('targetRef="end"/></bpmn:process>', 'targetRef="gw"/>' + gateway + "</bpmn:process>")
    return xml


_ENGINE_PROBED = [p for p in ESCAPES if p[0] in {
    "dunder_walk", "import_statement", "open", "str_format", "generator_frame", "traceback_frame",
    "type_three_args", "exec", "recursion", "huge_string", "huge_power", "huge_range_sum", "huge_pad",
    "huge_fstring_width", "shared_references", "endless_loop",
}]
# What the sandbox refuses when it compiles is refused by lint at deploy time (lint equals runtime);
# the rest compiles and must become an incident when it runs.
LINT_PROBES = [p for p in _ENGINE_PROBED if compile_errors(p[1], "exec")]
ENGINE_PROBES = [p for p in _ENGINE_PROBED if not compile_errors(p[1], "exec")]
_CONDITIONS = [
    ("cond_dunder", "().__class__.__bases__[0].__subclasses__()", "starts with \"_\""),
    ("cond_format", "'{0.__class__}'.format(x)", "format*()"),
    ("cond_huge", "len('a' * 10**10) > 1", "repetition"),
]
LINT_CONDITIONS = [p for p in _CONDITIONS if compile_errors(p[1])]
CONDITION_PROBES = [p for p in _CONDITIONS if not compile_errors(p[1])]


@pytest.fixture(scope="module")
def hostile_engine(tmp_path_factory) -> Engine:
    root = tmp_path_factory.mktemp("hostile")
    models = root / "models"
    models.mkdir()
    for probe, script, _error, _fragment in ENGINE_PROBES:
        (models / f"{probe}.bpmn").write_text(_script_model(probe, script), encoding="utf-8")
    for probe, condition, _fragment in CONDITION_PROBES:
        (models / f"{probe}.bpmn").write_text(_condition_model(probe, condition), encoding="utf-8")
    (models / "benign.bpmn").write_text(_script_model("benign", "answer = 6 * 7"), encoding="utf-8")
    (models / "param_huge.bpmn").write_text(
        linear_process("param_huge", [("step", "sum_values", {"values": "[1] * 10**10"})]), encoding="utf-8")
    return Engine(make_settings(root / "home", Path(models)))


@pytest.mark.parametrize(("probe", "source", "fragment"),
                         [(p[0], p[1], p[3]) for p in LINT_PROBES] + LINT_CONDITIONS,
                         ids=[p[0] for p in LINT_PROBES + LINT_CONDITIONS])
def test_a_script_the_sandbox_refuses_to_compile_is_a_located_lint_error(tmp_path, probe, source, fragment):
    models = tmp_path / "models"
    models.mkdir()
    model = _script_model(probe, source) if not probe.startswith("cond_") else _condition_model(probe, source)
    (models / f"{probe}.bpmn").write_text(model, encoding="utf-8")
    [message] = errors(lint_catalog(scan(models)))
    assert message.file == f"{probe}.bpmn" and message.line > 0 and message.element
    assert "does not compile in the script sandbox" in message.message
    engine = Engine(make_settings(tmp_path / "home", models))
    with pytest.raises(EngineError, match="lint error"):
        engine.start(probe, {})


def _incident_after(engine: Engine, model: str) -> dict:
    instance_id = engine.start(model, {})
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.status == "error", f"{model} should have stopped with an incident, got {row.status}"
        return row.incident


@pytest.mark.parametrize(("probe", "script", "error", "fragment"), ENGINE_PROBES,
                         ids=[p[0] for p in ENGINE_PROBES])
def test_a_hostile_script_task_becomes_an_incident(hostile_engine, probe, script, error, fragment):
    incident = _incident_after(hostile_engine, probe)
    assert incident["bpmn_id"] == "run"
    assert fragment in incident["message"]
    # SpiffWorkflow wraps script errors in WorkflowTaskException and names the original in the message.
    assert incident["error_type"] == error.__name__ or f"{error.__name__}:" in incident["message"]
    # The runner is unharmed: the next instance runs to completion.
    benign = hostile_engine.start("benign", {})
    with hostile_engine.sessions() as session:
        assert session.get(Instance, benign).status == "completed"


@pytest.mark.parametrize(("probe", "condition", "fragment"), CONDITION_PROBES, ids=[p[0] for p in CONDITION_PROBES])
def test_a_hostile_gateway_condition_becomes_an_incident(hostile_engine, probe, condition, fragment):
    incident = _incident_after(hostile_engine, probe)
    assert condition in incident["message"]
    assert fragment in incident["traceback"]   # the reason; see the next test for the message


def test_a_hostile_operator_parameter_expression_becomes_an_incident(hostile_engine):
    incident = _incident_after(hostile_engine, "param_huge")
    assert incident["bpmn_id"] == "step"
    assert "[1] * 10**10" in incident["message"]
    assert "repetition" in incident["traceback"]


def test_an_expression_incident_message_says_why_it_was_refused(hostile_engine):
    incident = _incident_after(hostile_engine, "cond_huge")
    assert "repetition" in incident["message"]


def test_incidents_left_every_instance_in_a_consistent_state(hostile_engine):
    with hostile_engine.sessions() as session:
        statuses = set(session.scalars(select(Instance.status)))
    assert statuses <= {"error", "completed"}
