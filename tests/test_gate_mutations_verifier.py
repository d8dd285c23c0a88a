"""The verifier's pass/fail decision on test counts, made inside a real run.

A small model on a tmp SQLite store: a service task writes an app into the instance's workspace
(a test-only operator; ``variant`` says which), the real ``verify_build`` checks it, and the real
``verify_evidence`` gate evaluates a "tests ran and passed" rule over the recorded spans. The run
may only complete when the app's tests really passed; each variant is what a miscount would let
through, and the test asserts the incident, the recorded figures and the evidence that follow.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scopeflow.engine import reads
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.registry import NO_RETRY, operator
from tests.bpmn_text import definitions, flow, process
from tests.conftest import make_settings

pytestmark = pytest.mark.slow

CALC = "def add(a, b):\n    return a + b\n"
VARIANTS = {
    "passing": """
        from calc import add


        def test_add():
            assert add(1, 2) == 3
    """,
    # every test skipped: nothing was shown to work
    "skipped": """
        import pytest

        from calc import add


        @pytest.mark.skip(reason="not run")
        def test_add():
            assert add(1, 2) == 3


        @pytest.mark.skip(reason="not run")
        def test_add_again():
            assert add(2, 2) == 4
    """,
    # one test passes, one fails
    "failing": """
        from calc import add


        def test_add():
            assert add(1, 2) == 3


        def test_add_wrong():
            assert add(1, 2) == 4
    """,
    # one test passes, one errors in its fixture: an error is not a pass
    "erroring": """
        import pytest

        from calc import add


        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")


        def test_add():
            assert add(1, 2) == 3


        def test_add_with_fixture(broken):
            assert add(1, 2) == 3
    """,
}


@operator("test_write_app", retry=NO_RETRY)
def write_app(ctx: TaskContext, variant: str) -> dict[str, Any]:
    """Writes the calc app with the tests of ``variant`` into the workspace (tests only)."""
    app = Path(ctx.workspace) / "app"
    (app / "tests").mkdir(parents=True, exist_ok=True)
    (app / "calc.py").write_text(CALC, encoding="utf-8")
    (app / "tests" / "__init__.py").write_text("", encoding="utf-8")
    (app / "tests" / "test_calc.py").write_text(textwrap.dedent(VARIANTS[variant]).lstrip(), encoding="utf-8")
    return {"written": variant}


def _service(sid: str, op: str, result: str, params: dict[str, str], incoming: str, outgoing: str) -> str:
    parameters = "".join(f'<spiffworkflow:parameter id="{k}" type="any" value="{v}"/>' for k, v in params.items())
    return (f'<bpmn:serviceTask id="{sid}" name="{sid}"><bpmn:extensionElements>'
            f'<spiffworkflow:serviceTaskOperator id="{op}" resultVariable="{result}">'
            f"<spiffworkflow:parameters>{parameters}</spiffworkflow:parameters>"
            f"</spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
            f"<bpmn:incoming>{incoming}</bpmn:incoming><bpmn:outgoing>{outgoing}</bpmn:outgoing>"
            "</bpmn:serviceTask>")


MODEL = definitions(process("verify_gate", "\n".join([
    '<bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>',
    _service("write", "test_write_app", "written", {"variant": "variant"}, "f1", "f2"),
    _service("verify", "verify_build", "verified", {}, "f2", "f3"),
    _service("gate", "verify_evidence", "evidence", {"stage": "'final'"}, "f3", "f4"),
    '<bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>',
    flow("f1", "start", "write"), flow("f2", "write", "verify"), flow("f3", "verify", "gate"),
    flow("f4", "gate", "end"),
])))

RULES = """
[[rule]]
name = "tests ran and passed"
selector = 'span[scopeflow.bpmn.element.id="verify" scopeflow.span.type="bpmn.task"]:last'
assert = ["attr:scopeflow.tests.failed = 0", "attr:scopeflow.tests.errors = 0", "attr:scopeflow.tests.passed > 0"]
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verifier-gate")
    models = tmp / "models"
    models.mkdir()
    (models / "verify_gate.bpmn").write_text(MODEL, encoding="utf-8")
    (models / "verify_gate.evidence.toml").write_text(RULES, encoding="utf-8")
    home = tmp / "home"
    yield Engine(make_settings(home, models))
    shutil.rmtree(home, ignore_errors=True)


def _verify_span(engine: Engine, instance_id: str):
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    return [s for s in spans if s.attributes.get("scopeflow.bpmn.element.id") == "verify"
            and s.attributes.get("scopeflow.span.type") == "bpmn.task"][-1]


def test_an_app_whose_tests_pass_completes_through_the_gate(engine):
    instance_id = engine.start("verify_gate", {"variant": "passing"})
    record = reads.instance(engine.sessions, instance_id)
    assert record["status"] == "completed", record
    assert reads.last_task_data(engine.sessions, instance_id)["evidence"]["ok"] is True
    span = _verify_span(engine, instance_id)
    assert (span.attributes["scopeflow.tests.passed"], span.attributes["scopeflow.tests.failed"]) == (1, 0)


@pytest.mark.parametrize("variant,figures,summary", [
    ("skipped", (0, 0, 0), "checks failed: no test passed"),
    ("failing", (1, 1, 0), "checks failed: 1 test(s) failed, 0 errored"),
    ("erroring", (1, 0, 1), "checks failed: 0 test(s) failed, 1 errored"),
])
def test_an_app_without_a_clean_pass_stops_at_the_verifier(engine, variant, figures, summary):
    instance_id = engine.start("verify_gate", {"variant": variant})
    record = reads.instance(engine.sessions, instance_id)
    assert record["status"] == "error", record
    assert summary in str(record["incident"]), record["incident"]
    span = _verify_span(engine, instance_id)
    assert (span.attributes["scopeflow.tests.passed"], span.attributes["scopeflow.tests.failed"],
            span.attributes["scopeflow.tests.errors"]) == figures
    data = reads.last_task_data(engine.sessions, instance_id)
    assert "evidence" not in data         # the gate never ran: nothing claims this build was verified
