"""The LLM-backed agents against a real loopback server with scripted answers.

Each agent is run as its operator (``analyze_scope``, ``plan_build``, ``build_task``,
``review_changes``) with ``SCOPEFLOW_LLM_*`` set the way a user would set them, so the tests also
show that the agent modules call into ``llm_agents`` only when an endpoint is configured.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from scopeflow.handlers import llm_agents
from scopeflow.handlers.builder import build_task
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import CONFIGURATION, EXTERNAL_BLOCKER, RECOVERABLE, TaskFailure
from scopeflow.handlers.plan import Plan
from scopeflow.handlers.planner import check_spec, make_plan, plan_build
from scopeflow.handlers.review import make_review, review_changes
from scopeflow.handlers.scope import analyze, analyze_scope, resolve_answers
from scopeflow.handlers.spec import Spec
from scopeflow.spans.record import SpanRecord
from tests.fake_llm_server import FakeLlmServer, json_reply

MODEL = "fake-model-1"
PROSE_SCOPE = "I want something to keep track of my plants and when I watered them."
STRUCTURED_SCOPE = textwrap.dedent("""\
    # Plant diary
    ## Entities
    - Plant: name (text, required), water every days (integer, min 1)
    - Watering: plant (-> Plant, required), watered on (date, required)
    ## Features
    - List and edit plants
    - Reminders for thirsty plants
""")
SLUG = "reminders_for_thirsty_plants"
EXT_MODULE = f"app/webapp/ext/{SLUG}.py"
EXT_TESTS = f"app/tests/test_llm_{SLUG}.py"

# What a model might answer for PROSE_SCOPE (valid against llm_agents.ANALYST_SCHEMA).
PLANT_ANSWER = {
    "title": "Plant watering diary",
    "summary": "Keep track of plants and when they were watered.",
    "entities": [
        {"label": "Plant", "fields": [
            {"label": "name", "type": "text", "required": True},
            {"label": "water every days", "type": "integer", "required": True, "minimum": 1},
        ]},
        {"label": "Watering", "fields": [
            {"label": "plant", "type": "reference", "reference": "Plant", "required": True},
            {"label": "watered on", "type": "date", "required": True},
        ]},
    ],
    "features": ["List and edit plants", "Record when I watered a plant", "Reminders for thirsty plants"],
    "questions": ["How often should each plant be watered by default?"],
}

EXT_CODE = textwrap.dedent('''\
    """When a plant needs water next: GET /ext/watering-due?last=YYYY-MM-DD&every=N."""

    from __future__ import annotations

    from datetime import date, timedelta

    from flask import Blueprint, Flask, jsonify, request

    blueprint = Blueprint("ext_reminders", __name__, url_prefix="/ext")


    def next_watering(last: date, every_days: int) -> date:
        return last + timedelta(days=every_days)


    @blueprint.get("/watering-due")
    def watering_due():
        due = next_watering(date.fromisoformat(request.args["last"]), int(request.args.get("every", "7")))
        return jsonify({"next": due.isoformat(), "due": due <= date.today()})


    def register(app: Flask) -> None:
        app.register_blueprint(blueprint)
''')


def ext_tests(expected_next: str = "2024-01-04") -> str:
    """The feature's test file; a wrong ``expected_next`` makes it fail (a looping builder)."""
    return textwrap.dedent(f'''\
        def test_next_watering_is_the_last_one_plus_the_interval(app):
            # create_app() registered webapp/ext/{SLUG}.py already
            response = app.test_client().get("/ext/watering-due?last=2024-01-01&every=3")
            assert response.status_code == 200
            assert response.get_json()["next"] == "{expected_next}"
    ''')


def builder_answer(expected_next: str = "2024-01-04", **kw):
    return json_reply({"files": {EXT_MODULE: EXT_CODE, EXT_TESTS: ext_tests(expected_next)}}, **kw)


@pytest.fixture
def ctx(tmp_path):
    return RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="task", workspace=tmp_path)


def gen_ai_spans(ctx):
    return [s for s in ctx.child_spans if s.attributes.get("scopeflow.span.type") == "gen_ai"]


def user_prompt(server, index=-1) -> str:
    return server.requests[index].body["messages"][-1]["content"]


def structured_spec() -> Spec:
    return analyze(STRUCTURED_SCOPE)


def llm_plan(spec: Spec) -> Plan:
    return llm_agents.plan_llm_features(make_plan(spec), spec)


def gen_ai_record(tokens_in, tokens_out, cost=0, span_type="gen_ai", **extra):
    attributes = {"scopeflow.span.type": span_type, "gen_ai.usage.input_tokens": tokens_in,
                  "gen_ai.usage.output_tokens": tokens_out, "scopeflow.llm.cost": cost, **extra}
    return SpanRecord(trace_id="0" * 32, span_id="1" * 16, parent_span_id=None, name="chat fake-model-1",
                      start_ns=1, end_ns=2, attributes=attributes)


# -- settings and the budget from evidence ------------------------------------------------------


def test_without_a_base_url_the_agents_have_no_llm_settings(llm_env):
    assert llm_agents.settings_from_env() is None


def test_unreadable_llm_settings_are_a_configuration_failure(llm_env, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_LLM_BASE_URL", "ftp://models.example")
    with pytest.raises(TaskFailure) as caught:
        llm_agents.settings_from_env()
    assert caught.value.kind == CONFIGURATION and "http(s)" in caught.value.message


def test_other_llm_variables_are_not_read_without_a_base_url(llm_env, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_LLM_TIMEOUT", "soon")
    assert llm_agents.settings_from_env() is None
    monkeypatch.setenv("SCOPEFLOW_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(TaskFailure, match="SCOPEFLOW_LLM_TIMEOUT must be a number"):
        llm_agents.settings_from_env()


def test_the_spend_is_summed_from_the_gen_ai_spans_only(llm_env, ctx, monkeypatch):
    with FakeLlmServer() as server:
        llm_env(server, MAX_TOKENS_PER_INSTANCE="5000")
        ctx.recorded_spans = lambda: [
            gen_ai_record(100, 20, cost=7),
            gen_ai_record(30, 0, cost=0, **{"error.type": "invalid_json"}),
            gen_ai_record(999, 999, cost=999, span_type="handler"),
            gen_ai_record(True, "12", cost=-4),
        ]
        budget = llm_agents.spent_budget(llm_agents.settings_from_env(), ctx)
    assert (budget.spent_tokens, budget.spent_cost, budget.calls, budget.failed_calls) == (150, 7, 3, 1)
    assert budget.max_tokens == 5000 and budget.max_cost is None


def test_outside_the_engine_the_spend_starts_at_zero(llm_env, ctx):
    with FakeLlmServer() as server:
        llm_env(server)
        budget = llm_agents.spent_budget(llm_agents.settings_from_env(), ctx)
    assert (budget.spent_tokens, budget.calls) == (0, 0)


def test_an_instance_over_its_token_cap_is_blocked_before_any_request(llm_env, ctx):
    with FakeLlmServer([json_reply(PLANT_ANSWER)]) as server:
        llm_env(server, MAX_TOKENS_PER_INSTANCE="100")
        ctx.recorded_spans = lambda: [gen_ai_record(90, 20)]
        with pytest.raises(TaskFailure) as caught:
            analyze_scope(ctx, scope=PROSE_SCOPE)
        assert server.requests == []
    assert caught.value.kind == EXTERNAL_BLOCKER
    assert "110 tokens spent, cap 100" in caught.value.message
    assert caught.value.details["spent_tokens"] == 110


# -- analyst ------------------------------------------------------------------------------------


def test_a_prose_scope_is_read_into_a_spec_by_the_llm_analyst(llm_env, ctx):
    with FakeLlmServer([json_reply(PLANT_ANSWER, usage=(400, 150))]) as server:
        llm_env(server)
        result = analyze_scope(ctx, scope=PROSE_SCOPE)
        assert PROSE_SCOPE in user_prompt(server)
    spec = Spec.from_data(result["spec"])
    assert result["buildable"] is True
    assert [(e.name, e.table) for e in spec.entities] == [("Plant", "plants"), ("Watering", "waterings")]
    plant_ref = spec.entity("Watering").fields[0]
    assert (plant_ref.name, plant_ref.type, plant_ref.reference, plant_ref.required) == ("plant", "reference",
                                                                                         "Plant", True)
    assert spec.entity("Plant").fields[1].minimum == 1
    reminders = spec.features[2]
    assert (reminders.kind, reminders.buildable) == ("custom", False)
    first = spec.questions[0]
    assert (first.topic, first.default) == ("entities:prose", "yes")
    assert "Plant (name, water_every_days)" in first.text and "How often" in first.text
    assert ctx.recorded["scopeflow.spec.author"] == "llm" and ctx.recorded["scopeflow.spec.entities"] == 2
    check_spec(spec)   # the planner accepts it as it is
    (span,) = gen_ai_spans(ctx)
    assert span.attributes["scopeflow.llm.role"] == "analyst"
    assert span.attributes["gen_ai.usage.input_tokens"] == 400


def test_a_scope_with_an_entities_section_is_never_sent_to_the_llm(llm_env, ctx):
    with FakeLlmServer([json_reply(PLANT_ANSWER)]) as server:
        llm_env(server)
        result = analyze_scope(ctx, scope=STRUCTURED_SCOPE)
        assert server.requests == []
    assert result["spec"] == structured_spec().to_data()
    assert "scopeflow.spec.author" not in ctx.recorded


def test_unsafe_names_from_the_llm_become_safe_and_every_question_is_answerable(llm_env, ctx):
    answer = {
        "title": "<b>Odd</b> app", "entities": [
            {"label": "None", "fields": [
                {"label": "id", "type": "text"},
                {"label": "kind", "type": "choice", "choices": []},
                {"label": "owner", "type": "reference", "reference": "Gardener"},
            ]},
            {"label": "Notes", "fields": []},
        ],
        "features": ["Charts of watering"], "questions": [],
        "integrations": [{"label": "Weather (forecast)", "credentials": []}],
    }
    with FakeLlmServer([json_reply(answer)]) as server:
        llm_env(server)
        result = analyze_scope(ctx, scope=PROSE_SCOPE)
    spec = Spec.from_data(result["spec"])
    check_spec(spec)
    odd = spec.entities[0]
    assert odd.name == "NoneEntity" and [f.name for f in odd.fields][:2] == ["id_field", "kind"]
    assert odd.fields[1].type == "text"   # a choice without values asks and stays text
    assert "Gardener" in [e.name for e in spec.entities]
    topics = {q.topic.partition(":")[0] for q in spec.questions}
    assert {"entities", "field_type", "reference", "fields", "credentials"} <= topics
    answered = resolve_answers(spec, {q.id: q.default for q in spec.questions})
    assert answered.spec.questions == []


def test_an_llm_answer_that_breaks_the_schema_is_asked_again(llm_env, ctx):
    broken = dict(PLANT_ANSWER, entities=[{"label": "Plant", "fields": [{"label": "x", "type": "money"}]}])
    with FakeLlmServer([json_reply(broken), json_reply(PLANT_ANSWER)]) as server:
        llm_env(server)
        result = analyze_scope(ctx, scope=PROSE_SCOPE)
        assert "breaks the schema" in user_prompt(server)
    assert len(result["spec"]["entities"]) == 2


# -- planner ------------------------------------------------------------------------------------


def test_with_an_llm_the_planner_makes_unbuilt_features_llm_tasks(llm_env, ctx):
    spec = structured_spec()
    with FakeLlmServer() as server:
        llm_env(server)
        result = plan_build(ctx, spec=spec.to_data())
        assert server.requests == []         # planning the structure needs no model call
    plan = Plan.from_data(result["plan"])
    task = plan.task("feature-2")
    assert (task.kind, task.author, task.buildable, task.reason) == ("llm_feature", "llm", True, "")
    assert task.files == [EXT_MODULE, EXT_TESTS]
    assert task.depends_on == ["app-core", "entity-plants"]      # the entity the feature names
    assert result["unbuildable"] == [] and "feature-2" in result["build_order"]
    assert llm_agents.llm_written_files(result["plan"]) == [
        {"task_id": "feature-2", "title": "Reminders for thirsty plants", "path": EXT_MODULE},
        {"task_id": "feature-2", "title": "Reminders for thirsty plants", "path": EXT_TESTS},
    ]


def test_without_an_llm_the_plan_is_exactly_the_offline_plan(llm_env, ctx):
    spec = structured_spec()
    result = plan_build(ctx, spec=spec.to_data())
    assert result["plan"] == make_plan(spec).to_data()
    assert result["plan"]["tasks"][-1]["buildable"] is False


def test_feature_modules_never_take_a_file_the_plan_already_owns(llm_env):
    spec = Spec.from_data(structured_spec().to_data())
    spec.features.append(spec.features[1])              # the same feature twice
    plan = llm_plan(spec)
    files = [t.files for t in plan.tasks if t.author == "llm"]
    assert files[0] == [EXT_MODULE, EXT_TESTS]
    assert files[1] == [f"app/webapp/ext/{SLUG}_2.py", f"app/tests/test_llm_{SLUG}_2.py"]


# -- builder ------------------------------------------------------------------------------------


def test_the_builder_writes_an_llm_task_from_the_models_files(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    with FakeLlmServer([builder_answer()]) as server:
        llm_env(server)
        result = build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
        assert "Reminders for thirsty plants" in user_prompt(server) and EXT_MODULE in user_prompt(server)
    assert result["author"] == "llm" and [f["path"] for f in result["files"]] == [EXT_MODULE, EXT_TESTS]
    assert (ctx.workspace / EXT_MODULE).read_text() == EXT_CODE
    assert ctx.recorded["scopeflow.build.author"] == "llm"
    assert ctx.recorded["scopeflow.build.feedback_used"] is False


def test_a_file_outside_the_task_is_refused_and_asked_for_again(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    escaping = {"files": {EXT_MODULE: EXT_CODE, EXT_TESTS: ext_tests(), "app/webapp/__init__.py": "x = 1\n"}}
    with FakeLlmServer([json_reply(escaping), builder_answer()]) as server:
        llm_env(server)
        build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
        assert len(server.requests) == 2 and "breaks the schema" in user_prompt(server)
    assert not (ctx.workspace / "app/webapp/__init__.py").exists()


def test_a_module_without_register_is_written_then_reported_recoverable(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    answer = {"files": {EXT_MODULE: "VALUE = 1\n", EXT_TESTS: ext_tests()}}
    with FakeLlmServer([json_reply(answer)]) as server:
        llm_env(server)
        with pytest.raises(TaskFailure) as caught:
            build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
    assert caught.value.kind == RECOVERABLE and "register(app)" in caught.value.message
    assert (ctx.workspace / EXT_MODULE).read_text() == "VALUE = 1\n"


def test_an_llm_task_without_an_endpoint_is_a_configuration_failure(llm_env, ctx):
    spec = structured_spec()
    with pytest.raises(TaskFailure) as caught:
        build_task(ctx, spec=spec.to_data(), plan=llm_plan(spec).to_data(), task_id="feature-2")
    assert caught.value.kind == CONFIGURATION and "SCOPEFLOW_LLM_BASE_URL" in caught.value.message


def test_a_rebuild_gives_the_model_the_feedback_its_files_and_their_failing_output(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    app = ctx.workspace / "app"
    (app / "tests").mkdir(parents=True)
    (app / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (app / "tests" / "conftest.py").write_text(
        "import pytest\nfrom flask import Flask\n\n\n@pytest.fixture\ndef app():\n    return Flask('t')\n")
    with FakeLlmServer([builder_answer("2024-01-09"), builder_answer()]) as server:
        llm_env(server)
        build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
        feedback = "recoverable: checks failed: 1 test(s) failed, 0 errored"
        build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2", feedback=feedback)
        prompt = user_prompt(server)
    assert feedback in prompt
    assert "(your current version)" in prompt and '"2024-01-09"' in prompt
    assert "1 failed" in prompt and "AssertionError" in prompt     # pytest's own output on its tests
    assert ctx.recorded["scopeflow.build.feedback_used"] is True
    assert '"2024-01-04"' in (ctx.workspace / EXT_TESTS).read_text()


def app_that_registers_the_feature(ctx) -> None:
    """A minimal app dir whose ``app`` fixture registers the LLM feature module, as create_app() does."""
    app = ctx.workspace / "app"
    (app / "tests").mkdir(parents=True)
    (app / "webapp" / "ext").mkdir(parents=True)
    (app / "webapp" / "__init__.py").write_text("")
    (app / "webapp" / "ext" / "__init__.py").write_text("")
    (app / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (app / "tests" / "conftest.py").write_text(textwrap.dedent(f"""\
        import importlib

        import pytest
        from flask import Flask


        @pytest.fixture
        def app():
            app = Flask("t")
            importlib.import_module("webapp.ext.{SLUG}").register(app)
            return app
    """))


def test_a_rebuild_after_failed_checks_keeps_an_llm_task_whose_own_tests_and_lint_pass(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    app_that_registers_the_feature(ctx)
    with FakeLlmServer([builder_answer()]) as server:
        llm_env(server)
        first = build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
        again = build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2",
                           feedback="recoverable: checks failed: 2 lint error(s)")
        assert len(server.requests) == 1 and server.unscripted == 0
    assert again["kept"] is True and again["files"] == first["files"]
    assert ctx.recorded["scopeflow.build.kept"] is True and ctx.recorded["scopeflow.build.feedback_used"] is False
    [check] = [s for s in ctx.child_spans if s.name == "scopeflow.build.self_check"]
    assert (check.attributes["scopeflow.build.self_check.pytest_exit"],
            check.attributes["scopeflow.build.self_check.ruff_exit"]) == (0, 0)


@pytest.mark.parametrize("feedback", [
    "recoverable: checks failed: 1 high-severity security finding(s)",   # not something its self-check sees
    "Please show the next watering date in the list page too.",           # a reviewer's request
])
def test_a_rebuild_the_self_check_cannot_clear_asks_the_model_again(llm_env, ctx, feedback):
    spec = structured_spec()
    plan = llm_plan(spec)
    app_that_registers_the_feature(ctx)
    with FakeLlmServer([builder_answer(), builder_answer()]) as server:
        llm_env(server)
        build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2")
        again = build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="feature-2", feedback=feedback)
        assert len(server.requests) == 2
        assert feedback in user_prompt(server)
    assert "kept" not in again and ctx.recorded["scopeflow.build.feedback_used"] is True


def test_template_tasks_stay_template_rendered_with_an_llm_configured(llm_env, ctx, tmp_path):
    spec = structured_spec()
    plan = llm_plan(spec)
    offline = RecordingContext(instance_id="i-2", task_id="t", bpmn_id="b", workspace=tmp_path / "offline")
    expected = build_task(offline, spec=spec.to_data(), plan=plan.to_data(), task_id="entity-plants")
    with FakeLlmServer() as server:
        llm_env(server)
        result = build_task(ctx, spec=spec.to_data(), plan=plan.to_data(), task_id="entity-plants")
        assert server.requests == []
    assert result == expected


# -- reviewer -----------------------------------------------------------------------------------

CHECKS = {"compile_errors": 0, "lint_errors": 0, "tests_passed": 12, "tests_failed": 0, "tests_errors": 0,
          "security_high": 0, "security_medium": 0}


def test_with_an_llm_the_review_rationale_is_the_models_and_the_confidence_stays_computed(llm_env, ctx):
    spec = structured_spec()
    plan = llm_plan(spec)
    rationale = "Two entities and a reminder endpoint were built; all 12 tests pass."
    with FakeLlmServer([json_reply({"rationale": rationale})]) as server:
        llm_env(server)
        result = review_changes(ctx, spec=spec.to_data(), plan=plan.to_data(), checks=CHECKS)
        facts = json.loads(user_prompt(server))
    offline = make_review(spec, plan, CHECKS)
    assert result["rationale"] == rationale
    assert result["review"]["confidence"] == offline.confidence
    assert result["review"]["confidence_basis"] == offline.confidence_basis
    assert result["review"]["risks"][-1] == f"written by an LLM, not by templates: {EXT_MODULE}, {EXT_TESTS}"
    assert facts["files_written_by_an_llm"] == [EXT_MODULE, EXT_TESTS]
    assert facts["review"]["confidence"] == offline.confidence
    assert ctx.recorded["scopeflow.review.rationale_author"] == "llm"
    (span,) = gen_ai_spans(ctx)
    assert span.attributes["scopeflow.llm.role"] == "reviewer"


def test_without_an_llm_the_review_has_no_rationale_key(llm_env, ctx):
    spec = structured_spec()
    result = review_changes(ctx, spec=spec.to_data(), plan=make_plan(spec).to_data(), checks=CHECKS)
    assert result == {"review": make_review(spec, make_plan(spec), CHECKS).to_data()}


def test_no_endpoint_means_no_request_from_any_agent(llm_env, ctx):
    """A server is up, but without SCOPEFLOW_LLM_BASE_URL no agent may talk to it."""
    spec = structured_spec()
    with FakeLlmServer([json_reply(PLANT_ANSWER)]) as server:
        analyzed = analyze_scope(ctx, scope=PROSE_SCOPE)
        planned = plan_build(ctx, spec=spec.to_data())
        review_changes(ctx, spec=spec.to_data(), plan=planned["plan"], checks=CHECKS)
        assert server.requests == []
    assert analyzed["spec"] == analyze(PROSE_SCOPE).to_data() and analyzed["buildable"] is False
    assert gen_ai_spans(ctx) == []


def test_llm_written_files_reads_plans_as_data_or_objects():
    spec = structured_spec()
    plan = llm_plan(spec)
    assert llm_agents.llm_written_files(plan) == llm_agents.llm_written_files(plan.to_data())
    assert llm_agents.llm_written_files(make_plan(spec)) == []
