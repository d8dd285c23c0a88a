"""The main job: a submitted scope becomes a running, tested app — or a blocker plan."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from scopeflow.engine.models import SpanRow
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers import registry
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import ScopeRejected, submit
from scopeflow.spans.evidence import evaluate
from scopeflow.spans.rules import parse_rules
from tests.conftest import MODELS, REPO, add_account, make_settings
from tests.test_requirements_lifecycle import assert_an_example_run_ends_delivered_or_blocked

SCOPES = REPO / "examples" / "scopes"
RULES = parse_rules((MODELS / "delivery.evidence.toml").read_text(encoding="utf-8"))

pytestmark = pytest.mark.slow


@pytest.fixture
def engine(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))           # the deployer reads its releases dir from settings
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    settings = make_settings(home)
    yield Engine(settings)
    stop_all(settings.releases_dir)


def run(engine: Engine, scope: str, **kw):
    text = (SCOPES / scope).read_text(encoding="utf-8") if scope.endswith(".md") else scope
    return submit(engine, text, yes=True, **kw)


def spans(engine: Engine, instance_id: str):
    with engine.sessions() as session:
        return load_spans(session, instance_id)


def rerun_generated_tests(workspace: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=Path(workspace) / "app", capture_output=True, text=True, timeout=300)


def test_a_simple_scope_is_delivered_running_tested_and_verified(engine):
    result = run(engine, "simple-bookshelf.md")
    assert (result.status, result.outcome) == ("completed", "delivered")
    assert_an_example_run_ends_delivered_or_blocked("simple-bookshelf.md", result)
    assert result.checks["tests_passed"] > 0 and result.checks["tests_failed"] == 0
    assert result.checks["lint_errors"] == 0 and result.checks["security_high"] == 0
    with urllib.request.urlopen(result.release["url"] + "/healthz", timeout=10) as response:
        assert json.load(response) == {"status": "ok"}
    assert Path(result.report).name == "DELIVERY.md" and Path(result.report).is_file()
    rerun = rerun_generated_tests(result.workspace)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    report = evaluate(RULES, spans(engine, result.instance_id), stage="final")
    assert report.ok, [r.name for r in report.failed]
    assert engine.verify_chain(result.instance_id).ok


# Every example scope ending delivered or blocked, with its lines in the matrix, is one run per scope in
# tests/test_requirements_lifecycle.py (test_every_example_scope_ends_delivered_or_blocked_…), except the
# examples this module runs anyway (its RUN_IN_TEST_LIFECYCLE): their tests here assert the same on their run.


def test_credentials_of_integrations_nothing_built_reads_are_not_requested(engine):
    result = run(engine, "credential-shop.md")       # the offline builder builds no payment code
    assert (result.status, result.outcome) == ("completed", "delivered"), result.reason
    assert_an_example_run_ends_delivered_or_blocked("credential-shop.md", result)
    report = Path(result.report).read_text(encoding="utf-8")
    assert "Needed once Payment gateway is built: PAYMENT\\_API\\_KEY" in report
    assert "Needed once Accounting export service is built: ACCOUNTING\\_EXPORT\\_SERVICE\\_API\\_KEY" in report
    assert result.credentials["required"] == [] and result.credentials["not_built"][0] == {
        "integration": "Payment gateway", "names": ["PAYMENT_API_KEY"]}
    tasks = {s.attributes.get("scopeflow.bpmn.element.id"): s for s in spans(engine, result.instance_id)}
    assert "provide_credentials" not in tasks
    assert tasks["check_credentials_task"].attributes["scopeflow.credentials.not_built"] == [
        "PAYMENT_API_KEY", "ACCOUNTING_EXPORT_SERVICE_API_KEY"]
    run_sh = Path(result.release["path"], "run.sh").read_text(encoding="utf-8")
    assert "given to this release: none\n" in run_sh


SMTP = {"SMTP_HOST": "smtp.library.test", "SMTP_USER": "library-mailer", "SMTP_PASSWORD": "pw-6d1f0c2e9b",
        "SMTP_FROM": "desk@library.test"}


def test_the_release_gets_the_credentials_its_code_reads_and_no_others(engine):
    stored = {**SMTP, "PAYMENT_API_KEY": "pk-not-for-this-app"}
    result = run(engine, "email-reminders.md", secrets=stored)
    assert (result.status, result.outcome) == ("completed", "delivered"), result.blockers
    run_sh = Path(result.release["path"], "run.sh").read_text(encoding="utf-8")
    assert "given to this release: SMTP_HOST, SMTP_USER, SMTP_PASSWORD, SMTP_FROM\n" in run_sh
    assert not any(value in run_sh for value in stored.values())
    deploy_span = next(s for s in spans(engine, result.instance_id)
                       if s.attributes.get("scopeflow.bpmn.element.id") == "deploy_release_task")
    assert deploy_span.attributes["scopeflow.credentials.passed"] == ["SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD",
                                                                      "SMTP_FROM"]
    assert result.credentials["optional"] == ["SMTP_PORT", "SMTP_FROM"]


def test_a_credential_the_built_code_needs_blocks_with_the_buildable_part_delivered_and_resumes_once_stored(
        engine):
    result = run(engine, "email-reminders.md")       # reminders by email: the built outbox needs SMTP
    assert (result.status, result.outcome) == ("blocked", "blocked")
    assert_an_example_run_ends_delivered_or_blocked("email-reminders.md", result)
    report = Path(result.report).read_text(encoding="utf-8")
    assert Path(result.report).name == "BLOCKERS.md"
    assert "credential(s): SMTP\\_HOST, SMTP\\_USER, SMTP\\_PASSWORD" in report
    assert "secrets set SMTP_PASSWORD" in report and "Needed once" not in report
    assert result.checks["tests_passed"] > 0 and result.checks["tests_failed"] == 0
    assert result.requirements["not_built"] == 0          # the email integration is built by the recipe
    assert result.release is None

    # ...and once the credentials are stored, the same run resumes to its end
    add_account(engine, "olga", "operator")
    assert engine.retry(result.instance_id) == "waiting"  # back at the credentials checkpoint
    for name in ("SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD"):
        engine.secrets.set(name, SMTP[name], actor="olga")
    from scopeflow.engine.queries import list_tasks

    for expected in ("provide_credentials", "deploy_approval"):
        with engine.sessions() as session:
            [task] = list_tasks(session, instance_id=result.instance_id)
        assert task["bpmn_id"] == expected
        data = {"action": "provide"} if expected == "provide_credentials" else {}
        status = engine.complete_task(task["id"], data, actor="olga")
    assert status == "completed"


def test_generated_tests_that_fail_never_reach_deploy(engine, monkeypatch):
    original = registry.get("build_task")

    def sabotaged(ctx, **params):
        out = original.fn(ctx, **params)
        failing = ctx.workspace / "app" / "tests" / "test_sabotage.py"
        failing.write_text("def test_always_fails():\n    assert 1 == 2\n", encoding="utf-8")
        return out

    monkeypatch.setitem(registry._REGISTRY, "build_task", registry.Operator(
        name="build_task", fn=sabotaged, retry=original.retry))
    result = run(engine, "simple-bookshelf.md")
    assert result.status == "blocked"
    assert result.release is None
    with engine.sessions() as session:
        deploy_spans = session.query(SpanRow).filter(SpanRow.instance_id == result.instance_id,
                                                     SpanRow.bpmn_element_id == "deploy_release_task").count()
    assert deploy_spans == 0
    verify = [s for s in spans(engine, result.instance_id)
              if s.attributes.get("scopeflow.bpmn.element.id") == "verify_build_task"
              and s.attributes.get("scopeflow.span.type") == "bpmn.task"]
    assert len(verify) >= 2, "the recoverable loop must have rebuilt at least once"
    assert all(s.attributes["scopeflow.tests.failed"] >= 1 for s in verify)
    gate = evaluate(RULES, spans(engine, result.instance_id), stage="deploy")
    assert not gate.ok and "tests ran and passed" in [r.name for r in gate.failed]


def test_scopes_that_cannot_run_are_refused_or_blocked(engine):
    with pytest.raises(ScopeRejected, match="scope is empty"):
        submit(engine, "   \n\n", yes=True)
    with pytest.raises(ScopeRejected, match="larger than 1 MB"):
        submit(engine, "# Big\n" + "x" * 1_000_001, yes=True)
    result = submit(engine, "# Something nice\n\nMake my life better somehow.\n", yes=True)
    assert result.status == "blocked"
    assert result.questions, "what the analyst could not pin down is asked, with defaults"


def test_cli_submit_reports_json_and_exit_codes(tmp_path):
    env_home = tmp_path / "cli-home"
    env = {"PATH": "/usr/bin:/bin", "SCOPEFLOW_HOME": str(env_home), "SCOPEFLOW_MODELS": str(MODELS),
           "HOME": str(tmp_path)}
    empty = tmp_path / "empty.md"
    empty.write_text("\n")
    proc = subprocess.run([sys.executable, "-m", "scopeflow", "submit", str(empty), "--yes"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: scope is empty"
    assert "Traceback" not in proc.stderr


def test_a_build_blocked_from_outside_ends_with_a_blocker_plan(engine, monkeypatch):
    from scopeflow.handlers.failures import TaskFailure

    def blocked(ctx, **params):
        raise TaskFailure("external_blocker", "LLM budget exceeded: 120 tokens spent, cap 100", {"spent": 120})

    original = registry.get("build_task")
    monkeypatch.setitem(registry._REGISTRY, "build_task", registry.Operator(
        name="build_task", fn=blocked, retry=original.retry))
    result = run(engine, "simple-bookshelf.md")
    assert result.status == "blocked"
    text = Path(result.report).read_text(encoding="utf-8")
    assert "budget exceeded" in text and "execution" in text
