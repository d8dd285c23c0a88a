"""``x-secret`` fields of a designer's own form, through a real completion: a single secret field
and a map whose values are secret both go to the secret store only — neither the task row, the
instance's state nor its spans hold the values (the shipped credential form is a map marked secret
at both levels, so it alone does not show a field marked at one level being split)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from scopeflow.engine.models import HumanTask, Instance, SpanRow
from scopeflow.engine.service import Engine
from tests.bpmn_text import definitions, flow, process
from tests.conftest import add_account, make_settings

TOKEN, SMTP = "tok-3f9a-very-secret", "smtp-pw-77e1-very-secret"
FORM = {
    "type": "object",
    "properties": {
        "api_token": {"type": "string", "x-secret": True},
        "more": {"type": "object", "additionalProperties": {"type": "string", "x-secret": True}},
        "note": {"type": "string", "default": ""},
    },
    "additionalProperties": False,
}


def _one_form_model(tmp_path, model: str, form_file: str, form_text: str):
    """A models directory holding ``model``: start, one user task ``ask`` with ``form_file``, end."""
    models = tmp_path / "models"
    (models / "forms").mkdir(parents=True)
    (models / "forms" / form_file).write_text(form_text, encoding="utf-8")
    user_task = ('<bpmn:userTask id="ask"><bpmn:extensionElements><spiffworkflow:properties>'
                 f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form_file}"/>'
                 '</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>')
    (models / f"{model}.bpmn").write_text(definitions(process(model, "\n".join([
        '<bpmn:startEvent id="start"/>', flow("f0", "start", "ask"), user_task,
        flow("f1", "ask", "end"), '<bpmn:endEvent id="end"/>']))), encoding="utf-8")
    return models


@pytest.fixture
def asked(tmp_path) -> tuple[Engine, str, str]:
    models = _one_form_model(tmp_path, "keys", "keys.schema.json", json.dumps(FORM))
    engine = Engine(make_settings(tmp_path / "home", models, migrated_copy=True))
    add_account(engine, "sam", "submitter")
    instance_id = engine.start("keys", {})
    with engine.sessions() as session:
        [task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        return engine, instance_id, task.id


def test_secret_fields_reach_the_store_and_nothing_else(asked):
    engine, instance_id, task_id = asked
    assert engine.complete_task(task_id, {"api_token": TOKEN, "more": {"SMTP_PASSWORD": SMTP},
                                          "note": "rotated today"}, actor="sam") == "completed"
    assert engine.secrets.get("api_token", actor="test") == TOKEN
    assert engine.secrets.get("SMTP_PASSWORD", actor="test") == SMTP
    with engine.sessions() as session:
        row = session.get(HumanTask, task_id)
        assert row.data == {"more": ["SMTP_PASSWORD"], "note": "rotated today"}
        stored = session.get(Instance, instance_id).state + json.dumps(row.data)
        stored += json.dumps([s.attributes for s in session.scalars(
            select(SpanRow).where(SpanRow.instance_id == instance_id))], default=str)
    assert TOKEN not in stored and SMTP not in stored


@pytest.fixture
def credentials_task(tmp_path) -> tuple[Engine, dict[str, str], str]:
    """A model of the designer's own asking with the shipped credential form, and nothing in its data
    that proposes credential names (no failure payload, no spec)."""
    from tests.conftest import MODELS

    form = (MODELS / "forms" / "provide_credentials.schema.json").read_text(encoding="utf-8")
    models = _one_form_model(tmp_path, "creds", "provide_credentials.schema.json", form)
    settings = make_settings(tmp_path / "home", models, migrated_copy=True)
    engine = Engine(settings)
    add_account(engine, "sam", "submitter")
    instance_id = engine.start("creds", {})
    with engine.sessions() as session:
        [task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
    env = {"SCOPEFLOW_HOME": str(settings.home), "SCOPEFLOW_MODELS": str(models),
           "SCOPEFLOW_DATABASE_URL": settings.database_url}
    return engine, env, task.id


def test_a_provide_with_no_names_at_all_is_refused_by_the_cli(credentials_task):
    from click.testing import CliRunner

    from scopeflow.cli import main

    engine, env, task_id = credentials_task
    refused = CliRunner().invoke(main, ["tasks", "complete", task_id, "--as", "sam", "--data",
                                        '{"action": "provide"}'], env=env)
    assert refused.exit_code == 2
    assert refused.output.strip() == "error: values: enter at least one name and value"
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).status == "open"
    done = CliRunner().invoke(main, ["tasks", "complete", task_id, "--as", "sam", "--data",
                                     '{"action": "provide", "values": {"STRIPE_API_KEY": "sk-123456"}}'], env=env)
    assert done.exit_code == 0, done.output
    assert engine.secrets.get("STRIPE_API_KEY", actor="test") == "sk-123456"
