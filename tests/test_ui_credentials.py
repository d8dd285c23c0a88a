"""The credentials checkpoint: the operator must choose an action, cannot "provide" nothing, is told
by name what is missing, and reads durations in words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scopeflow.engine.models import HumanTask
from scopeflow.engine.service import EngineError
from tests.conftest import REPO
from tests.test_ui_review import drive_to, open_task
from tests.test_ui_support import csrf, make_ui, signed_in

SCOPE = (REPO / "examples" / "scopes" / "email-reminders.md").read_text()   # its built outbox needs SMTP


@pytest.fixture(scope="module")
def credential_task(tmp_path_factory):
    """One run at the credentials checkpoint; every test but the last leaves the task open."""
    app, engine = make_ui(tmp_path_factory.mktemp("credentials"))
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Lending Library")
    return app, engine, instance_id, drive_to(engine, instance_id, "provide_credentials")


def test_the_page_names_each_missing_credential_preselects_nothing_and_speaks_in_words(credential_task):
    app, _engine, _instance_id, task = credential_task
    page = signed_in(app, "operator").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert '<input type="radio" name="f.action" value="provide" >' in page
    assert '<input type="radio" name="f.action" value="defer" >' in page           # neither checked
    assert "<code>SMTP_PASSWORD</code>" in page
    instructions = page[page.index('class="instructions"'):page.index('id="task-form"')]
    assert "24 hours" in instructions and "PT24H" not in instructions
    assert "`" not in instructions and "<code>values</code>" in instructions


def post(client, task_id: str, **fields):
    data = {"csrf_token": csrf(client, f"/tasks/{task_id}"), **fields}
    return client.post(f"/tasks/{task_id}", data=data)


def test_no_action_and_an_empty_provide_are_refused_with_a_message_and_the_task_stays_open(credential_task):
    app, engine, instance_id, task = credential_task
    client = signed_in(app, "operator")
    silent = post(client, task.id, **{"f.values.key": "SMTP_HOST", "f.values.value": ""})
    assert silent.status_code == 400 and "choose one of: provide, defer" in silent.get_data(as_text=True)
    empty = post(client, task.id, **{"f.action": "provide", "f.values.key": "SMTP_HOST", "f.values.value": ""})
    body = empty.get_data(as_text=True)
    assert empty.status_code == 400 and "enter a value for SMTP_HOST, SMTP_USER, SMTP_PASSWORD" in body
    assert 'aria-describedby="help-values error-values"' in body                   # the error is tied to its field
    assert open_task(engine, instance_id).id == task.id
    assert not engine.secrets.has("SMTP_HOST")


def test_the_cli_refuses_an_empty_provide_in_one_line_like_the_page(credential_task):
    _app, engine, instance_id, task = credential_task
    env = {"PATH": "/usr/bin:/bin", "HOME": str(engine.settings.home.parent),
           "SCOPEFLOW_HOME": str(engine.settings.home), "SCOPEFLOW_MODELS": str(engine.settings.models_dir)}
    done = subprocess.run([sys.executable, "-m", "scopeflow", "tasks", "complete", task.id, "--as", "operator",
                           "--data", '{"action": "provide"}'], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "values: enter a value for SMTP_HOST, SMTP_USER, SMTP_PASSWORD" in done.stderr
    assert open_task(engine, instance_id).id == task.id


def test_the_schema_refuses_a_name_the_store_would_refuse_outside_the_ui_too(credential_task):
    _app, engine, _instance_id, task = credential_task
    with pytest.raises(EngineError, match="my key!"):            # refused before any value is stored
        engine.complete_task(task.id, {"action": "provide", "values": {"SMTP_HOST": "sk", "my key!": "x"}},
                             actor="operator")
    assert not engine.secrets.has("SMTP_HOST")


def test_a_name_the_secret_store_would_refuse_is_refused_with_a_message_before_anything_is_stored(credential_task):
    app, engine, instance_id, task = credential_task
    client = signed_in(app, "operator")
    names = ["SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD", "my key!"]
    refused = post(client, task.id, **{"f.action": "provide", "f.values.key": names,
                                       "f.values.value": ["smtp.test", "mailer", "pw", "x"]})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "&#39;my key!&#39; is not a usable name" in body
    assert not engine.secrets.has("SMTP_HOST") and open_task(engine, instance_id).id == task.id

def test_a_provided_value_goes_to_the_secret_store_and_the_run_moves_on(credential_task):
    app, engine, instance_id, task = credential_task
    client = signed_in(app, "operator")
    names = ["SMTP_HOST", "SMTP_USER", "SMTP_PASSWORD"]
    partial = post(client, task.id, **{"f.action": "provide", "f.values.key": names[:1], "f.values.value": ["h"]})
    assert partial.status_code == 400
    assert "also enter a value for SMTP_USER, SMTP_PASSWORD" in partial.get_data(as_text=True)
    assert not engine.secrets.has(names[0])                       # nothing is stored from a refused answer
    done = post(client, task.id, **{"f.action": "provide", "f.values.key": names,
                                    "f.values.value": ["smtp.test", "mailer", "pw-1"]})
    assert done.status_code == 302
    assert all(engine.secrets.has(name) for name in names)
    with engine.sessions() as session:
        assert session.get(HumanTask, task.id).status == "completed"



def test_an_empty_provide_is_accepted_once_the_credentials_were_stored_meanwhile(tmp_path):
    app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Lending Library")
    task = drive_to(engine, instance_id, "provide_credentials")
    client = signed_in(app, "operator")
    for name in ("SMTP_HOST", "SMTP_USER"):                               # scopeflow secrets set, out of band
        engine.secrets.set(name, f"{name.lower()}-value", actor="operator")
    half = post(client, task.id, **{"f.action": "provide", "f.values.key": "SMTP_HOST", "f.values.value": ""})
    assert half.status_code == 400
    assert "enter a value for SMTP_PASSWORD (or store it first" in half.get_data(as_text=True)
    engine.secrets.set("SMTP_PASSWORD", "pw-value", actor="operator")
    done = post(client, task.id, **{"f.action": "provide", "f.values.key": "SMTP_HOST", "f.values.value": ""})
    assert done.status_code == 302


def test_the_api_refuses_an_empty_provide_too(tmp_path):
    from scopeflow.engine.accounts import issue_api_token

    app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Lending Library")
    task = drive_to(engine, instance_id, "provide_credentials")
    bearer = {"Authorization": f"Bearer {issue_api_token(engine.sessions, 'operator')}"}
    empty = app.test_client().post(f"/api/v1/tasks/{task.id}/complete", json={"data": {"action": "provide"}},
                                   headers=bearer)
    assert empty.status_code == 400 and "enter a value for SMTP_HOST" in empty.get_json()["fields"]["values"]
    assert open_task(engine, instance_id).id == task.id
