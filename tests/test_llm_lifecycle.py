"""The delivery lifecycle with LLM-backed agents, end to end, against scripted model answers.

Three full submits: a prose-only scope delivered through the LLM analyst, builder and reviewer; a
builder whose code always fails its tests, stopped by the token cap with a blocker plan; and the
same prose scope with no endpoint configured, which ends exactly as the offline lifecycle does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers.llm import estimate_tokens
from scopeflow.handlers.plan import Plan
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.spans.evidence import evaluate
from scopeflow.spans.registry_check import check_spans as registry_problems
from scopeflow.spans.registry_check import undeclared_attributes
from scopeflow.spans.rules import parse_rules
from tests.conftest import MODELS, make_settings
from tests.fake_llm_server import FakeLlmServer, json_reply
from tests.test_llm_agents import (
    EXT_CODE,
    EXT_MODULE,
    EXT_TESTS,
    MODEL,
    PLANT_ANSWER,
    PROSE_SCOPE,
    STRUCTURED_SCOPE,
    builder_answer,
    ext_tests,
)

pytestmark = pytest.mark.slow

RATIONALE = "Plants and waterings can be listed and edited; the reminder endpoint is LLM-written and tested."


def engine_over(models_dir, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    settings = make_settings(home, models_dir=models_dir)
    return Engine(settings), settings


@pytest.fixture
def engine(tmp_path, monkeypatch):
    engine, settings = engine_over(MODELS, tmp_path, monkeypatch)
    yield engine
    stop_all(settings.releases_dir)


# The repository's delivery model has no external_blocker boundary on build_each yet, so a spent
# budget during the build would be an incident. This adds that route (to the blocker path, like
# deploy_blocked) in a private copy; once the model has its own route, the copy is used unchanged.
_BUILD_BLOCKED = """
  <bpmn:boundaryEvent id="build_blocked" name="Build blocked externally" attachedToRef="build_each" cancelActivity="true">
    <bpmn:outgoing>Flow_build_blocked__rec_build_blocked</bpmn:outgoing>
    <bpmn:errorEventDefinition id="ErrorDef_build_blocked" errorRef="Error_external_blocker" />
  </bpmn:boundaryEvent>
  <bpmn:scriptTask id="rec_build_blocked" name="Record: build blocked">
    <bpmn:incoming>Flow_build_blocked__rec_build_blocked</bpmn:incoming>
    <bpmn:outgoing>Flow_rec_build_blocked__merge_blocked</bpmn:outgoing>
    <bpmn:script>blocker = {"stage": "execution", "kind": error_payload["kind"], "message": error_payload["message"], "details": error_payload.get("details", {})}</bpmn:script>
  </bpmn:scriptTask>
  <bpmn:sequenceFlow id="Flow_build_blocked__rec_build_blocked" sourceRef="build_blocked" targetRef="rec_build_blocked" />
  <bpmn:sequenceFlow id="Flow_rec_build_blocked__merge_blocked" sourceRef="rec_build_blocked" targetRef="merge_blocked" />
"""
_BUILD_BLOCKED_DI = """
      <bpmndi:BPMNShape id="build_blocked_di" bpmnElement="build_blocked">
        <dc:Bounds x="2067" y="527" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="rec_build_blocked_di" bpmnElement="rec_build_blocked">
        <dc:Bounds x="2210" y="805" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_build_blocked__rec_build_blocked_di" bpmnElement="Flow_build_blocked__rec_build_blocked">
        <di:waypoint x="2103" y="545" />
        <di:waypoint x="2260" y="545" />
        <di:waypoint x="2260" y="805" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_rec_build_blocked__merge_blocked_di" bpmnElement="Flow_rec_build_blocked__merge_blocked">
        <di:waypoint x="2260" y="885" />
        <di:waypoint x="2260" y="975" />
        <di:waypoint x="4885" y="975" />
      </bpmndi:BPMNEdge>
"""


def _build_blockers_routed(text: str) -> bool:
    bpmn = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
    root = ET.fromstring(text.encode("utf-8"))
    return any(event.get("attachedToRef") == "build_each"
               and any(d.get("errorRef") == "Error_external_blocker" for d in event.iter(f"{bpmn}errorEventDefinition"))
               for event in root.iter(f"{bpmn}boundaryEvent"))


def route_build_blockers(models_dir) -> None:
    path = models_dir / "delivery.bpmn"
    text = path.read_text(encoding="utf-8")
    if _build_blockers_routed(text):
        return
    text = text.replace('<bpmn:flowNodeRef>build_design_flaw</bpmn:flowNodeRef>',
                        '<bpmn:flowNodeRef>build_design_flaw</bpmn:flowNodeRef>\n'
                        '      <bpmn:flowNodeRef>build_blocked</bpmn:flowNodeRef>\n'
                        '      <bpmn:flowNodeRef>rec_build_blocked</bpmn:flowNodeRef>', 1)
    text = text.replace('<bpmn:outgoing>Flow_merge_blocked__write_blocker_plan_task</bpmn:outgoing>',
                        '<bpmn:incoming>Flow_rec_build_blocked__merge_blocked</bpmn:incoming>\n'
                        '    <bpmn:outgoing>Flow_merge_blocked__write_blocker_plan_task</bpmn:outgoing>', 1)
    text = text.replace("</bpmn:process>", _BUILD_BLOCKED + "  </bpmn:process>", 1)
    text = text.replace("</bpmndi:BPMNPlane>", _BUILD_BLOCKED_DI + "    </bpmndi:BPMNPlane>", 1)
    path.write_text(text, encoding="utf-8")


def stored_spans(engine: Engine, instance_id: str):
    with engine.sessions() as session:
        return load_spans(session, instance_id)


def final_data(engine: Engine, instance_id: str) -> dict:
    from scopeflow.engine.models import Instance
    from scopeflow.engine.spiff import deserialize

    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        return dict(deserialize(row.state).last_task.data)


def test_a_prose_scope_is_delivered_by_the_llm_agents_with_gen_ai_evidence(engine, llm_env):
    script = [json_reply(PLANT_ANSWER, usage=(420, 180)), builder_answer(usage=(900, 600)),
              json_reply({"rationale": RATIONALE}, usage=(700, 90))]
    with FakeLlmServer(script) as server:
        llm_env(server)
        result = submit(engine, PROSE_SCOPE, yes=True)
        assert (server.remaining, server.unscripted) == (0, 0)
    assert (result.status, result.outcome) == ("completed", "delivered"), result
    assert result.checks["tests_failed"] == 0 and result.checks["lint_errors"] == 0

    data = final_data(engine, result.instance_id)
    assert [e["name"] for e in data["spec"]["entities"]] == ["Plant", "Watering"]
    llm_task = next(t for t in Plan.from_data(data["plan"]).tasks if t.author == "llm")
    assert llm_task.files == [EXT_MODULE, EXT_TESTS]
    assert data["review"]["rationale"] == RATIONALE
    assert (engine.workspace(result.instance_id) / EXT_MODULE).is_file()

    spans = stored_spans(engine, result.instance_id)
    gen_ai = [s for s in spans if s.attributes.get("scopeflow.span.type") == "gen_ai"]
    where = [(s.attributes["scopeflow.llm.role"], s.attributes["scopeflow.bpmn.element.id"]) for s in gen_ai]
    assert where == [("analyst", "analyze_scope_task"), ("builder", "build_each"),
                     ("reviewer", "review_changes_task")]
    for span, (tokens_in, tokens_out) in zip(gen_ai, [(420, 180), (900, 600), (700, 90)], strict=True):
        attrs = span.attributes
        assert span.name == f"chat {MODEL}" and span.status != "ERROR"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai_compatible"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == MODEL
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (tokens_in, tokens_out)
        assert attrs["scopeflow.llm.usage_estimated"] is False
        assert attrs["scopeflow.instance.id"] == attrs["session.id"] == result.instance_id
        assert span.kind == "CLIENT"
        assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", server.port)
        assert attrs["gen_ai.output.type"] == "json" and attrs["scopeflow.llm.output_mode"] == "json_schema"
    by_id = {s.span_id: s for s in spans}
    parents = [by_id[s.parent_span_id] for s in gen_ai]
    assert [p.attributes.get("scopeflow.span.type") for p in parents] == ["bpmn.task", "handler", "bpmn.task"]
    assert parents[1].name == "scopeflow.build.llm"
    assert by_id[parents[1].parent_span_id].attributes["scopeflow.bpmn.element.id"] == "build_each"
    assert registry_problems(spans) == [] and undeclared_attributes(spans) == set()
    rules = parse_rules((MODELS / "delivery.evidence.toml").read_text(encoding="utf-8"))
    report = evaluate(rules, spans, stage="final")
    assert report.ok, [r.name for r in report.failed]


def test_the_token_cap_stops_a_builder_whose_code_always_fails_with_a_blocker_plan(
        llm_env, models_dir, tmp_path, monkeypatch):
    route_build_blockers(models_dir)
    engine, settings = engine_over(models_dir, tmp_path, monkeypatch)
    failing = [builder_answer("1999-12-31", usage=(3000, 1000)) for _ in range(3)]
    try:
        with FakeLlmServer(failing) as server:
            llm_env(server, MAX_TOKENS_PER_INSTANCE="3500")
            result = submit(engine, STRUCTURED_SCOPE, yes=True, start_data={"max_regenerations": 3})
            requests = list(server.requests)
    finally:
        stop_all(settings.releases_dir)
    assert (result.status, result.outcome) == ("blocked", "blocked"), result
    assert len(requests) == 1    # the first rebuild found 4000 of 3500 tokens spent and asked nothing
    prompt = estimate_tokens("".join(m["content"] for m in requests[0].body["messages"]))
    assert requests[0].body["max_tokens"] == 3500 - prompt   # the reply may use only what the cap leaves
    (blocker,) = result.blockers
    assert blocker["kind"] == "external_blocker" and blocker["stage"] == "execution"
    assert "LLM budget exceeded: 4000 tokens spent, cap 3500" in blocker["message"]
    data = final_data(engine, result.instance_id)
    assert data["regenerations"] == 1 and data["error_payload"]["details"]["spent_tokens"] == 4000
    spans = stored_spans(engine, result.instance_id)
    assert sum(s.attributes.get("scopeflow.span.type") == "gen_ai" for s in spans) == 1
    builds = [s for s in spans if s.attributes.get("scopeflow.bpmn.element.id") == "build_each"
              and s.attributes.get("scopeflow.span.type") == "bpmn.task"]
    failed = [s.attributes["scopeflow.failure.kind"] for s in builds if "scopeflow.failure.kind" in s.attributes]
    assert failed == ["external_blocker"]


def test_with_no_endpoint_the_prose_scope_ends_as_the_offline_lifecycle_ends_it(engine, llm_env):
    with FakeLlmServer([json_reply(PLANT_ANSWER)]) as server:
        result = submit(engine, PROSE_SCOPE, yes=True)
        assert server.requests == []
    assert (result.status, result.outcome) == ("blocked", "blocked")
    assert [b["kind"] for b in result.blockers] == ["unbuildable"]
    assert [q["topic"] for q in result.questions] == ["data:none"]
    spans = stored_spans(engine, result.instance_id)
    assert not any(s.attributes.get("scopeflow.span.type") == "gen_ai" for s in spans)
    assert not any(key.startswith(("scopeflow.spec.author", "scopeflow.build.author"))
                   for s in spans for key in s.attributes)


def test_the_private_model_copy_gets_the_build_blocker_route_once(models_dir):
    route_build_blockers(models_dir)
    route_build_blockers(models_dir)
    text = (models_dir / "delivery.bpmn").read_text(encoding="utf-8")
    assert text.count('id="build_blocked"') == 1 and _build_blockers_routed(text)


# ------------------------------------------------------------------------------ credentials follow the code
PAYING_ANSWER = {**PLANT_ANSWER, "integrations": [{"label": "Payment gateway", "credentials": ["PAYMENT_API_KEY"]}]}
# The model's feature module, plus a charge helper that cannot work without the payment key.
PAYING_CODE = EXT_CODE.replace("from datetime import date, timedelta\n",
                               "import os\nfrom datetime import date, timedelta\n").replace(
    "def register(app: Flask) -> None:",
    'def charge_header() -> dict[str, str]:\n'
    '    return {"Authorization": "Bearer " + os.environ["PAYMENT_API_KEY"]}\n\n\n'
    "def register(app: Flask) -> None:")


def paying_run(engine, llm_env, code: str, **kw):
    script = [json_reply(PAYING_ANSWER), json_reply({"files": {EXT_MODULE: code, EXT_TESTS: ext_tests()}}),
              json_reply({"rationale": RATIONALE})]
    with FakeLlmServer(script) as server:
        llm_env(server)
        result = submit(engine, PROSE_SCOPE, yes=True, **kw)
        assert (server.remaining, server.unscripted) == (0, 0)
    return result


def test_llm_written_code_that_reads_the_payment_key_makes_the_deploy_wait_for_it(engine, llm_env):
    assert "os.environ[\"PAYMENT_API_KEY\"]" in PAYING_CODE
    result = paying_run(engine, llm_env, PAYING_CODE)
    assert (result.status, result.outcome) == ("blocked", "blocked"), result.reason
    assert result.checks["tests_failed"] == 0
    assert "deferred providing credentials" in result.reason
    assert "- **Needed:** credential(s): PAYMENT\\_API\\_KEY" in Path(result.report).read_text(encoding="utf-8")
    checked = [s for s in stored_spans(engine, result.instance_id)
               if s.attributes.get("scopeflow.bpmn.element.id") == "check_credentials_task"]
    assert checked[0].attributes["scopeflow.credentials.missing_names"] == ["PAYMENT_API_KEY"]
    assert result.credentials["required"] == ["PAYMENT_API_KEY"] and result.credentials["not_built"] == []


def test_llm_written_code_that_reads_the_payment_key_gets_it_in_its_release(engine, llm_env):
    result = paying_run(engine, llm_env, PAYING_CODE, secrets={"PAYMENT_API_KEY": "pk-test-31f5a9d2c8e4"})
    assert (result.status, result.outcome) == ("completed", "delivered"), result.reason
    run_sh = Path(result.release["path"], "run.sh").read_text(encoding="utf-8")
    assert "given to this release: PAYMENT_API_KEY\n" in run_sh and "pk-test" not in run_sh


def test_llm_written_code_that_does_not_read_the_payment_key_does_not_wait_for_it(engine, llm_env):
    result = paying_run(engine, llm_env, EXT_CODE)
    assert (result.status, result.outcome) == ("completed", "delivered"), result.reason
    assert result.credentials["not_built"] == [{"integration": "Payment gateway", "names": ["PAYMENT_API_KEY"]}]
    assert "Needed once Payment gateway is built: PAYMENT\\_API\\_KEY" in Path(result.report).read_text(encoding="utf-8")
