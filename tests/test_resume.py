"""Every stop is resumable or says what to do instead, and its instructions work as printed.

Each test stops a real run of ``delivery.bpmn`` one way (an operator that fails in-process, a
rule that cannot hold, a scope with nothing buildable), then follows what BLOCKERS.md says,
literally: the commands in its "How to resume" block are run as printed, through the installed
command line, in a separate process where the cause is gone (the real operators run there).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from scopeflow.engine.models import HumanTask, Instance
from scopeflow.engine.service import Engine, EngineError
from scopeflow.handlers import registry
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.program import program
from tests.conftest import MODELS, add_account, make_settings

pytestmark = pytest.mark.slow

SCOPE = "# Reading list\n\n## Entities\n- Book: title (text, required), pages (integer)\n"
NOTHING = "Please help."


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An engine and the environment a CLI process needs to reach the same store and models."""
    models = tmp_path / "models"
    shutil.copytree(MODELS, models)
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    engine = Engine(make_settings(home, models))
    cli_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCOPEFLOW_HOME": str(home),
               "SCOPEFLOW_MODELS": str(models), "SCOPEFLOW_RELEASES": str(home / "releases")}
    yield engine, cli_env
    stop_all(engine.settings.releases_dir)


def scopeflow(cli_env: dict[str, str], command: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run one printed command line exactly as printed, in a shell (its ``# comment`` included)."""
    assert command.startswith(f"{program()} "), command
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=cli_env, input=stdin,
                          timeout=600)


def printed_commands(report: Path) -> list[str]:
    """The commands of the blocker sections' "how to go on" blocks (not the delivered app's)."""
    text = report.read_text(encoding="utf-8")
    blocks = re.findall(r"(?:How to resume:|submit it again:)\n\n```sh\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def failing(monkeypatch, operator: str, kind: str, message: str) -> None:
    original = registry.get(operator)

    def fail(ctx, **params):
        raise TaskFailure(kind, message, {"operator": operator})

    monkeypatch.setitem(registry._REGISTRY, operator, registry.Operator(name=operator, fn=fail, retry=original.retry))


def finish_with_defaults(engine: Engine, instance_id: str) -> str:
    """Answer what the resumed run asks with each form's defaults, as an admin account."""
    add_account(engine, "ada", "admin")
    for _ in range(10):
        with engine.sessions() as session:
            row = session.get(Instance, instance_id)
            task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                           HumanTask.status == "open")).first()
        if row.status != "waiting" or task is None:
            return row.status
        engine.complete_task(task.id, {"action": "provide"} if task.bpmn_id == "provide_credentials" else {},
                             actor="ada")
    return row.status


@pytest.mark.parametrize(("operator", "stage"), [("build_task", "execution"), ("analyze_scope", "ideation"),
                                                 ("deploy_release", "deploy")])
def test_a_failure_blocker_resumes_with_the_printed_retry(env, monkeypatch, operator, stage):
    engine, cli_env = env
    failing(monkeypatch, operator, "external_blocker", "LLM budget exceeded: 120 tokens spent, cap 100")
    result = submit(engine, SCOPE, yes=True)
    assert result.status == "blocked", result
    report = Path(result.report)
    assert report.name == "BLOCKERS.md"
    text = report.read_text(encoding="utf-8")
    assert "budget exceeded" in text and stage in text
    [command] = printed_commands(report)
    assert command == f"{program()} instances retry {result.instance_id}"
    resumed = scopeflow(cli_env, command)
    assert resumed.returncode == 0, resumed.stderr
    assert finish_with_defaults(engine, result.instance_id) == "completed"
    assert (Path(result.workspace) / "DELIVERY.md").is_file()
    assert not report.exists(), "the stale blocker plan is removed once the run is delivered"


def test_an_optional_llm_rationale_failure_degrades_instead_of_failing(env, monkeypatch):
    engine, _ = env
    from scopeflow.handlers import llm_agents

    monkeypatch.setattr(llm_agents, "settings_from_env", lambda: object())
    monkeypatch.setattr(llm_agents, "llm_written_files", lambda plan: [])

    def over_budget(*args, **kwargs):
        raise TaskFailure("external_blocker", "LLM budget exceeded in the rationale")

    monkeypatch.setattr(llm_agents, "review_rationale", over_budget)
    result = submit(engine, SCOPE, yes=True)
    assert (result.status, result.outcome) == ("completed", "delivered")
    from scopeflow.engine.spanstore import load_spans

    with engine.sessions() as session:
        spans = load_spans(session, result.instance_id)
    [review] = [s for s in spans if s.attributes.get("scopeflow.bpmn.element.id") == "review_changes_task"
                and s.attributes.get("scopeflow.span.type") == "bpmn.task"]
    assert review.attributes["scopeflow.review.rationale_missing"] == \
        "external_blocker: LLM budget exceeded in the rationale"


def test_a_failing_reviewer_agent_ends_with_a_blocker_plan_not_an_incident(env, monkeypatch):
    engine, cli_env = env
    failing(monkeypatch, "review_changes", "external_blocker", "reviewer service down")
    result = submit(engine, SCOPE, yes=True)
    assert result.status == "blocked"
    [command] = printed_commands(Path(result.report))
    assert scopeflow(cli_env, command).returncode == 0
    assert finish_with_defaults(engine, result.instance_id) == "completed"


def test_nothing_buildable_waits_for_a_clarification_that_resumes_the_analysis(env):
    engine, cli_env = env
    result = submit(engine, NOTHING, yes=False)
    assert result.status == "waiting"
    [task] = result.waiting_for
    assert task["bpmn_id"] == "clarify_scope" and task["role"] == "submitter"
    add_account(engine, "sue", "submitter")
    addition = json.dumps({"addition": "## Entities\n- Book: title (text, required)"})
    done = subprocess.run([sys.executable, "-m", "scopeflow", "tasks", "complete", task["id"], "--as", "sue",
                           "--data", addition], capture_output=True, text=True, env=cli_env, timeout=300)
    assert done.returncode == 0, done.stderr
    with engine.sessions() as session:
        [next_task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == result.instance_id,
                                                              HumanTask.status == "open")).all()
    assert next_task.bpmn_id == "confirm_scope"
    assert next_task.instructions.startswith("1 entities, 1 fields")


def test_with_yes_an_unbuildable_scope_ends_blocked_and_says_to_submit_again(env):
    engine, cli_env = env
    result = submit(engine, NOTHING, yes=True)
    assert result.status == "blocked"
    report = Path(result.report)
    text = report.read_text(encoding="utf-8")
    assert "the defaults cannot make it buildable" in text
    assert "This run cannot be resumed" in text
    with pytest.raises(EngineError, match="cannot be resumed: it stopped on a blocker of kind unbuildable"):
        engine.retry(result.instance_id)
    [command] = printed_commands(report)
    scope_file = Path(command.split("#")[0].split()[-1])
    assert scope_file.read_text(encoding="utf-8") == NOTHING
    scope_file.write_text(SCOPE, encoding="utf-8")          # "edit the scope first"
    again = scopeflow(cli_env, command)
    assert again.returncode == 4, again.stderr                # a new run, waiting to confirm the scope
    assert "waiting for submitter: Confirm scope" in again.stdout


def test_a_failed_evidence_gate_says_to_submit_again_and_retry_refuses(env):
    engine, cli_env = env
    rules = engine.settings.models_dir / "delivery.evidence.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + '''
[[rule]]
name = "impossible"
stage = "deploy"
selector = 'span[scopeflow.bpmn.element.id="verify_build_task"]:last'
assert = ["attr:scopeflow.tests.passed > 1000000"]
''', encoding="utf-8")
    result = submit(engine, SCOPE, yes=True)
    assert result.status == "blocked"
    [command] = printed_commands(Path(result.report))
    assert command.startswith(f"{program()} submit ") and command.endswith("# edit the scope first")
    refused = scopeflow(cli_env, f"{program()} instances retry {result.instance_id}")
    assert refused.returncode == 2 and "cannot be resumed: it stopped on a blocker of kind evidence" in refused.stderr


def test_a_missing_credential_resumes_with_the_printed_commands(env):
    engine, cli_env = env
    scope = ("# Reading list\n\n## Entities\n- Reader: name (text, required), email (email, required)\n"
             "- Book: title (text, required), reader (-> Reader), due_on (date)\n\n## Features\n"
             "- Email readers a reminder when their books are due\n\n"
             "## Integrations\n- Mail relay (needs SMTP_PASSWORD)\n- Payment gateway (needs PAYMENT_API_KEY)\n")
    result = submit(engine, scope, yes=True)
    assert result.status == "blocked"
    commands = printed_commands(Path(result.report))
    assert [c.split("#")[0].strip() for c in commands if " secrets set " in c] == [
        f"{program()} secrets set {name}" for name in ("SMTP_PASSWORD", "SMTP_HOST", "SMTP_USER")]
    for command in commands:
        ran = scopeflow(cli_env, command, stdin="sk-test-value\n")
        assert ran.returncode == 0, (command, ran.stderr)
    assert finish_with_defaults(engine, result.instance_id) == "completed"
