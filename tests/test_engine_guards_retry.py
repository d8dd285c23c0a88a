"""A retry of an incident the model caused is refused, by the engine and by the CLI: the instance
runs its deployed version again, so the same expression fails the same way whatever data is edited.
The models here are stored without lint, as a version deployed before lint checked them was."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from scopeflow.engine import versions
from scopeflow.engine.models import AuditEvent, Instance
from scopeflow.engine.service import Engine, EngineError
from scopeflow.processes.catalog import scan
from tests.bpmn_text import definitions, gateway_choice
from tests.conftest import make_settings


def _engine_with(tmp_path, name: str, conditions: tuple[str, str]) -> Engine:
    """An engine whose models directory holds one gateway model, stored without lint."""
    models = tmp_path / "models"
    models.mkdir()
    (models / f"{name}.bpmn").write_text(definitions(gateway_choice(name, conditions)), encoding="utf-8")
    engine = Engine(make_settings(tmp_path / "home", models, migrated_copy=True))
    versions.store(engine.sessions, scan(models), [name])
    return engine


def _row(engine: Engine, instance_id: str) -> Instance:
    with engine.sessions() as session:
        return session.get(Instance, instance_id)


def _retries_audited(engine: Engine, instance_id: str) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.instance_id == instance_id, AuditEvent.action == "instance.retry"))


@pytest.fixture
def broken(tmp_path) -> tuple[Engine, str]:
    """An instance in error because its gateway condition does not compile (the model's fault)."""
    engine = _engine_with(tmp_path, "broken", ("x ==", "True"))
    instance_id = engine.start("broken", {"x": 1})
    row = _row(engine, instance_id)
    assert row.status == "error" and row.incident["cause"] == "model", row.incident
    return engine, instance_id


def test_the_engine_refuses_to_retry_an_incident_the_model_caused(broken):
    engine, instance_id = broken
    before = _row(engine, instance_id)
    with pytest.raises(EngineError) as refused:
        engine.retry(instance_id, {"x": 2})
    message = str(refused.value)
    assert "caused by the model at gw" in message and "fix the diagram" in message
    assert "start a new instance of broken" in message and "\n" not in message
    after = _row(engine, instance_id)
    assert (after.status, after.row_version, after.incident) == ("error", before.row_version, before.incident)
    assert after.lock_owner is None
    assert _retries_audited(engine, instance_id) == 0


def test_the_cli_refuses_it_on_one_line_with_exit_2(broken, monkeypatch):
    from scopeflow.cli import main

    engine, instance_id = broken
    settings = engine.settings
    env = {"SCOPEFLOW_HOME": str(settings.home), "SCOPEFLOW_MODELS": str(settings.models_dir),
           "SCOPEFLOW_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(main, ["instances", "retry", instance_id, "--data", '{"x": 2}'], env=env)
    assert result.exit_code == 2, result.output
    [line] = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "cannot be retried" in line and "fix the diagram" in line and "Traceback" not in result.output
    assert _row(engine, instance_id).status == "error"


def test_an_incident_the_run_caused_is_still_retried_with_edited_data(tmp_path):
    engine = _engine_with(tmp_path, "needs_x", ("x == 1", "x != 1"))
    instance_id = engine.start("needs_x", {})          # x missing: a NameError, the run's fault
    row = _row(engine, instance_id)
    assert row.status == "error" and row.incident["cause"] == "run", row.incident
    assert engine.retry(instance_id, {"x": 1}) == "completed"
    assert _retries_audited(engine, instance_id) == 1


def test_a_run_ended_blocked_by_its_model_not_by_a_failure_is_refused_and_stays_blocked(engine):
    """The approval's SLA timer ends it on a blocked end event: nothing failed, so a retry has no task
    to run again. It is refused, and the refusal is not turned into an incident on the row."""
    from tests.conftest import add_account

    add_account(engine, "rita", "reviewer")
    instance_id = engine.start("approval", {"requester": "ann", "approval_sla": "PT0S"})
    engine.run_due()
    before = _row(engine, instance_id)
    assert before.status == "blocked", before.incident
    with pytest.raises(EngineError, match="was not stopped by a failed task"):
        engine.retry(instance_id, {"decision": "approve"})
    after = _row(engine, instance_id)
    assert (after.status, after.row_version, after.incident, after.lock_owner) == \
        ("blocked", before.row_version, None, None)
    assert _retries_audited(engine, instance_id) == 0


def test_a_resumed_blocked_run_that_stops_on_an_incident_is_no_longer_ended(engine):
    """A retry of a run a failure blocked resumes it: if it then stops on an incident (not a final
    status), its end time is cleared; once it ends again, it has one."""
    instance_id = engine.start("failures", {"failure_kind": "external_blocker"})
    blocked = _row(engine, instance_id)
    assert blocked.status == "blocked" and blocked.ended_at is not None
    assert engine.retry(instance_id, {"failure_kind": "no such kind"}) == "error"
    resumed = _row(engine, instance_id)
    assert resumed.ended_at is None and "unknown kind" in resumed.incident["message"]
    assert engine.retry(instance_id, {"failure_kind": "recoverable"}) == "completed"
    assert _row(engine, instance_id).ended_at is not None
    assert _retries_audited(engine, instance_id) == 2


def test_the_instance_page_s_retry_is_refused_with_the_same_sentence(tmp_path):
    """The page offers no Retry for such an incident; a POST made anyway (an old page, a script) is
    refused by the engine and the page says why."""
    import html

    from tests.test_ui_support import csrf, make_ui, signed_in

    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.bpmn").write_text(definitions(gateway_choice("broken", ("x ==", "True"))), encoding="utf-8")
    app, engine = make_ui(tmp_path, models)
    versions.store(engine.sessions, scan(models), ["broken"])
    instance_id = engine.start("broken", {"x": 1})
    client = signed_in(app, "operator")
    token = csrf(client, f"/instances/{instance_id}")
    page = client.post(f"/instances/{instance_id}/retry", data={"csrf_token": token, "data": '{"x": 2}'},
                       follow_redirects=True).get_data(as_text=True)
    assert "refused: " in page and "cannot be retried: its incident was caused by the model" in html.unescape(page)
    assert _row(engine, instance_id).status == "error"
    assert _retries_audited(engine, instance_id) == 0
