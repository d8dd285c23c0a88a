"""The evidence gates and the human checkpoints can fail, and when they do, the run says so.

Each gate is made to fail inside a real run of ``delivery.bpmn`` (an impossible rule in a private
copy of the rules, or a builder that silently skips a plan task), and the test asserts the path the
diagram then takes. If a gate's result were ignored (or replaced by "always ok"), these runs would
end delivered and the tests would go red.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from scopeflow.engine.models import HumanTask
from scopeflow.engine.service import Engine, EngineError, Forbidden
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers import registry
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.spans.evidence import evaluate
from scopeflow.spans.rules import parse_rules
from tests.conftest import MODELS, add_account, make_settings

pytestmark = pytest.mark.slow

SCOPE = "# Reading list\n\n## Entities\n- Book: title (text, required), pages (integer)\n"
IMPOSSIBLE = '''
[[rule]]
name = "impossible {stage} rule"
stage = "{stage}"
selector = 'span[scopeflow.bpmn.element.id="verify_build_task" scopeflow.span.type="bpmn.task"]:last'
assert = ["attr:scopeflow.tests.passed > 1000000"]
'''


def _engine(tmp_path: Path, monkeypatch, extra_rules: str = "") -> Engine:
    models = tmp_path / "models"
    import shutil

    shutil.copytree(MODELS, models)
    rules = models / "delivery.evidence.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + extra_rules, encoding="utf-8")
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    return Engine(make_settings(home, models))


@pytest.fixture
def make_engine(tmp_path, monkeypatch):
    made: list[Engine] = []

    def build(extra_rules: str = "") -> Engine:
        engine = _engine(tmp_path, monkeypatch, extra_rules)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        stop_all(engine.settings.releases_dir)


def _spans(engine: Engine, instance_id: str):
    with engine.sessions() as session:
        return load_spans(session, instance_id)


def test_a_failing_deploy_gate_blocks_the_run_and_deploys_nothing(make_engine):
    engine = make_engine(IMPOSSIBLE.format(stage="deploy"))
    result = submit(engine, SCOPE, yes=True)
    assert (result.status, result.outcome) == ("blocked", "blocked")
    assert result.release is None
    assert not any(s.name == "health check" for s in _spans(engine, result.instance_id))
    plan = Path(result.report)
    assert plan.name == "BLOCKERS.md"
    assert "impossible deploy rule" in plan.read_text(encoding="utf-8")


def test_a_failing_final_gate_is_never_reported_delivered(make_engine):
    engine = make_engine(IMPOSSIBLE.format(stage="final"))
    result = submit(engine, SCOPE, yes=True)
    assert (result.status, result.outcome) == ("blocked", "blocked")
    plan = Path(result.report)
    assert plan.name == "BLOCKERS.md"
    text = plan.read_text(encoding="utf-8")
    assert "impossible final rule" in text and "not verified" in text
    assert not (Path(result.workspace) / "DELIVERY.md").exists()


def test_a_silently_skipped_plan_task_fails_every_plan_task_built(make_engine, monkeypatch):
    """A builder that returns for the last plan task without building it (in every round): the
    app still passes its tests, and only the deploy gate's comparison with the plan catches it."""
    original = registry.get("build_task")
    skipped: list[str] = []

    def skipping(ctx, **params):
        last = [t["id"] for t in params["plan"]["tasks"] if t.get("buildable")][-1]
        if params["task_id"] == last:
            skipped.append(last)
            return {"built": {"task": last, "files": []}}
        return original.fn(ctx, **params)

    monkeypatch.setitem(registry._REGISTRY, "build_task",
                        registry.Operator(name="build_task", fn=skipping, retry=original.retry))
    engine = make_engine()
    result = submit(engine, SCOPE, yes=True)
    assert skipped and result.status == "blocked"
    report = evaluate(parse_rules((engine.settings.models_dir / "delivery.evidence.toml").read_text()),
                      _spans(engine, result.instance_id), stage="deploy")
    [failed] = [r for r in report.failed if r.name == "every plan task built"]
    assert "distinct scopeflow.build.task is" in failed.assertions[1].message


def test_yes_decisions_are_recorded_as_automated_and_reported_as_such(make_engine):
    engine = make_engine()
    result = submit(engine, SCOPE, yes=True)
    assert result.status == "completed"
    human = [s for s in _spans(engine, result.instance_id) if "scopeflow.human.actor" in s.attributes]
    assert human and all(s.attributes["scopeflow.human.automated"] is True for s in human)
    assert {s.attributes["scopeflow.human.policy"] for s in human} == {"--yes"}
    text = Path(result.report).read_text(encoding="utf-8")
    assert "auto-approved by --yes (not confirmed by a person)" in text
    assert "confirmed by a person" not in text.replace("not confirmed by a person", "")
    # The rules that need a person do not hold for this run: they were not what decided it.
    rules = parse_rules((MODELS / "delivery.evidence.toml").read_text(encoding="utf-8"))
    people_only = [r for r in rules if r.decisions == "people"]
    assert people_only
    from scopeflow.spans.evidence import evaluate_rule

    spans = _spans(engine, result.instance_id)
    assert not any(evaluate_rule(rule, spans).passed for rule in people_only)


def test_the_engine_refuses_a_reviewer_task_to_an_account_without_the_role(make_engine):
    engine = make_engine()
    result = submit(engine, SCOPE, yes=False)
    assert result.status == "waiting"
    with engine.sessions() as session:
        task = session.scalars(select(HumanTask).where(HumanTask.status == "open")).one()
    assert task.role == "submitter"
    add_account(engine, "rex", "reviewer")
    with pytest.raises(Forbidden, match="rex may not complete 'Confirm scope': it needs the role submitter"):
        engine.complete_task(task.id, {}, actor="rex")
    with pytest.raises(EngineError, match="'nobody' is not an account"):
        engine.complete_task(task.id, {}, actor="nobody")
    add_account(engine, "sue", "submitter")
    assert engine.complete_task(task.id, {}, actor="sue") == "waiting"   # now at the design review
    confirm = [s for s in _spans(engine, result.instance_id)
               if s.attributes.get("scopeflow.bpmn.element.id") == "confirm_scope"][-1]
    assert confirm.attributes["scopeflow.human.actor"] == "sue"
    assert confirm.attributes["scopeflow.human.automated"] is False
    assert list(confirm.attributes["scopeflow.human.roles"]) == ["submitter"]


def test_cli_completion_needs_an_account_with_the_role(tmp_path, cli):
    scope = tmp_path / "scope.md"
    scope.write_text(SCOPE)
    waiting = cli("submit", str(scope), "--json")
    assert waiting.returncode == 4, waiting.stderr          # waits for a person
    task_id = json.loads(waiting.stdout)["waiting_for"][0]["id"]
    assert cli("users", "add", "rex", "--role", "reviewer", "--password", "long-enough-pw").returncode == 0
    refused = cli("tasks", "complete", task_id, "--as", "rex", "--data", "{}")
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("error: rex may not complete 'Confirm scope': it needs the role submitter "
                                      "(held: reviewer)")
    unknown = cli("tasks", "complete", task_id, "--as", "mallory", "--data", "{}")
    assert unknown.returncode == 2 and "'mallory' is not an account" in unknown.stderr


def test_a_locked_account_cannot_complete_a_task(make_engine):
    from scopeflow.engine.accounts import lock

    engine = make_engine()
    result = submit(engine, SCOPE, yes=False)
    with engine.sessions() as session:
        task = session.scalars(select(HumanTask).where(HumanTask.status == "open")).one()
    add_account(engine, "sue", "submitter")
    lock(engine.sessions, "sue")
    with pytest.raises(EngineError, match="'sue' is locked"):
        engine.complete_task(task.id, {}, actor="sue")
    assert result.status == "waiting"


def test_the_accounts_suggested_for_a_task_are_those_the_engine_accepts(make_engine):
    from scopeflow.engine.accounts import lock
    from scopeflow.engine.people import accounts_for

    engine = make_engine()
    for name, roles in (("ada", ("admin",)), ("rex", ("reviewer",)), ("sue", ("submitter",)),
                        ("zed", ("submitter",))):
        add_account(engine, name, *roles)
    lock(engine.sessions, "zed")
    with engine.sessions() as session:
        assert accounts_for(session, "submitter") == ["ada", "sue"]   # not the locked one, not rex
        assert accounts_for(session, "reviewer") == ["ada", "rex"]
