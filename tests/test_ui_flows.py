"""Pages doing their work: submit (with validation and preview), inbox (claim, form, complete),
operator actions, trace and evidence, and escaping of user text everywhere."""

from __future__ import annotations

import io
import zipfile

import pytest

from scopeflow.engine.models import HumanTask, Instance
from scopeflow.engine.queries import list_tasks
from tests.test_ui_support import csrf, make_ui, signed_in, wait_for_status

HOSTILE = "<script>alert(1)</script>"
SCOPE = f"""# Shelf {HOSTILE}

A small app to track books.

## Entities
- Book: title (text, required), pages (integer)
"""


@pytest.fixture
def ui(tmp_path):
    return make_ui(tmp_path)


def _submit(client, **fields):
    data = {"csrf_token": csrf(client, "/submit"), "title": "", "scope": "", **fields}
    return client.post("/submit", data=data, content_type="multipart/form-data")


def test_submit_validates_fields_and_keeps_the_form(ui):
    app, engine = ui
    client = signed_in(app, "submitter")
    empty = _submit(client, title="Mine")
    assert empty.status_code == 400 and "scope is empty" in empty.get_data(as_text=True)
    huge = _submit(client, scope="x" * 1_000_001)
    assert huge.status_code in (400, 413)
    bad_option = _submit(client, scope=SCOPE, max_regenerations="many")
    assert bad_option.status_code == 400 and "must be a whole number" in bad_option.get_data(as_text=True)
    with engine.sessions() as session:
        assert session.query(Instance).count() == 0


def test_a_scope_between_half_a_megabyte_and_the_1_mb_limit_is_accepted_from_the_textarea(ui):
    app, _engine = ui
    client = signed_in(app, "submitter")
    padding = "\n".join(f"- note {i}: " + "x" * 60 for i in range(10_000))          # about 700 KB
    big = SCOPE + "\n## Notes\n" + padding
    assert 600_000 < len(big.encode()) < 1_000_000
    preview = client.post("/submit/preview", data={"scope": big, "csrf_token": csrf(client, "/submit")},
                          content_type="multipart/form-data")                      # as the page's FormData posts it
    assert preview.status_code == 200 and preview.get_json()["spec"]["entities"][0]["name"] == "Book"
    too_big = _submit(client, scope="x" * 1_000_001)
    body = too_big.get_data(as_text=True)
    assert too_big.status_code == 400 and "larger than 1 MB" in body and 'aria-describedby="scope-error"' in body


def test_submit_starts_a_delivery_instance_at_its_first_human_task(ui):
    app, engine = ui
    client = signed_in(app, "submitter")
    response = _submit(client, scope=SCOPE, max_regenerations="1")
    assert response.status_code == 302
    instance_id = response.headers["Location"].rsplit("/", 1)[-1]
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        assert row.model_name == "delivery" and row.created_by == "submitter" and row.status == "waiting"
        assert row.title == f"Shelf {HOSTILE}"
        assert [t["bpmn_id"] for t in list_tasks(session, instance_id=instance_id)] == ["confirm_scope"]
    page = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="diagram-xml"' in page and "confirm_scope" in page


def test_upload_wins_over_the_textarea(ui):
    app, engine = ui
    client = signed_in(app, "submitter")
    response = _submit(client, scope="", scope_file=(io.BytesIO(SCOPE.encode()), "scope.md"))
    assert response.status_code == 302
    binary = _submit(client, scope_file=(io.BytesIO(b"\xff\xfe\x00bad"), "scope.md"))
    assert binary.status_code == 400 and "not UTF-8" in binary.get_data(as_text=True)


def test_preview_returns_the_parsed_spec_without_starting_anything(ui):
    app, engine = ui
    client = signed_in(app, "submitter")
    data = client.post("/submit/preview", data={"scope": SCOPE, "csrf_token": csrf(client, "/submit")}).get_json()
    assert data["spec"]["entities"][0]["name"] == "Book" and "1 entities" in data["summary"]
    assert client.post("/submit/preview", data={"scope": " ", "csrf_token": csrf(client, "/submit")}).get_json() \
        == {"error": "scope is empty"}
    with engine.sessions() as session:
        assert session.query(Instance).count() == 0


def _approval(engine, requester: str = "alice") -> tuple[str, str]:
    instance_id = engine.start("approval", {"requester": requester}, actor="submitter", title=f"Pay {HOSTILE}")
    with engine.sessions() as session:
        return instance_id, list_tasks(session, instance_id=instance_id)[0]["id"]


def test_inbox_shows_tasks_for_my_roles_only(ui):
    app, engine = ui
    _instance_id, task_id = _approval(engine)
    reviewer = signed_in(app, "reviewer").get("/tasks").get_data(as_text=True)
    assert f"/tasks/{task_id}" in reviewer and HOSTILE not in reviewer
    operator = signed_in(app, "operator").get("/tasks").get_data(as_text=True)
    assert f"/tasks/{task_id}" not in operator


def test_task_form_from_schema_validates_and_completes(ui):
    app, engine = ui
    instance_id, task_id = _approval(engine)
    client = signed_in(app, "reviewer")
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert '<select name="f.decision"' in page and "Approve or reject the request." in page
    token = csrf(client, f"/tasks/{task_id}")
    bad = client.post(f"/tasks/{task_id}", data={"csrf_token": token, "f.decision": "maybe",
                                                 "f.comment": HOSTILE})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "is not one of" in body and HOSTILE not in body
    done = client.post(f"/tasks/{task_id}", data={"csrf_token": token, "f.decision": "approve", "f.comment": HOSTILE})
    assert done.status_code == 302
    wait_for_status(engine, instance_id, "completed")  # the request returned before the rest ran
    with engine.sessions() as session:
        task = session.get(HumanTask, task_id)
        assert task.status == "completed" and task.completed_by == "reviewer"
        assert task.data == {"decision": "approve", "comment": HOSTILE}
    page = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert HOSTILE not in page


def test_claim_unclaim_and_someone_elses_claim(ui):
    app, engine = ui
    from scopeflow.engine.accounts import create_user

    create_user(engine.sessions, "rita", ["reviewer"], "correct horse battery")
    _instance_id, task_id = _approval(engine)
    rita = signed_in(app, "rita")
    rita.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf(rita, "/tasks")})
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).assignee == "rita"
    other = signed_in(app, "reviewer")
    shown = other.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="task-form"' not in shown and "Claimed by <strong>rita</strong>" in shown   # no form to lose
    token = csrf(other, "/tasks")
    refused = other.post(f"/tasks/{task_id}", data={"csrf_token": token, "f.decision": "approve"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 409 and "rita claimed this task while you were filling it in" in body
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).status == "open"
    rita.post(f"/tasks/{task_id}/unclaim", data={"csrf_token": csrf(rita, "/tasks")})
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).assignee is None


def test_operator_actions_cancel_and_refused_retry(ui):
    app, engine = ui
    instance_id, _task_id = _approval(engine)
    client = signed_in(app, "operator")
    token = csrf(client, f"/instances/{instance_id}")
    not_json = client.post(f"/instances/{instance_id}/retry", data={"csrf_token": token, "data": "{oops"},
                           follow_redirects=True)
    assert "not valid JSON" in not_json.get_data(as_text=True)
    refused = client.post(f"/instances/{instance_id}/retry", data={"csrf_token": token, "data": "{}"},
                          follow_redirects=True)
    assert "only an instance in error or blocked" in refused.get_data(as_text=True)
    unconfirmed = client.post(f"/instances/{instance_id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "not cancelled: tick the box" in unconfirmed.get_data(as_text=True)
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).status == "waiting"
    client.post(f"/instances/{instance_id}/cancel", data={"csrf_token": token, "confirm": "yes"})
    with engine.sessions() as session:
        assert session.get(Instance, instance_id).status == "cancelled"
    page = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert "Cancelled by <strong>operator</strong>" in page and "cancelled at " in page and "100%" not in page


def test_instance_list_filters_and_pages(ui):
    app, engine = ui
    for _ in range(3):
        _approval(engine)
    client = signed_in(app, "auditor")
    page = client.get("/instances?status=waiting").get_data(as_text=True)
    assert page.count("/instances/") >= 3 and "page 1 of 1" in page
    assert "No instances match these filters." in client.get("/instances?status=completed").get_data(as_text=True)
    assert client.get("/instances?status=bogus").status_code == 400


def test_an_empty_instance_list_tells_a_submitter_how_to_start_one(ui):
    app, _engine = ui
    page = signed_in(app, "submitter").get("/instances").get_data(as_text=True)
    assert 'No instances match. <a href="/submit">Submit a scope</a> to start one.' in page


def test_state_json_colours_the_waiting_task_active(ui):
    app, engine = ui
    instance_id, _task_id = _approval(engine)
    state = signed_in(app, "submitter").get(f"/instances/{instance_id}/state.json").get_json()
    assert state["status"] == "waiting" and state["elements"]["approve"]["state"] == "active"
    assert any(v["state"] == "completed" for v in state["elements"].values())


def test_workspace_zip_and_confined_file_download(ui):
    app, engine = ui
    instance_id, _task_id = _approval(engine)
    workspace = engine.workspace(instance_id)
    (workspace / "notes").mkdir(parents=True, exist_ok=True)
    (workspace / "notes" / "a.txt").write_text("hello")
    (workspace.parent / "secret.txt").write_text("not yours")
    client = signed_in(app, "submitter")
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/instances/{instance_id}/workspace.zip").data))
    assert archive.namelist() == ["notes/a.txt"]
    assert client.get(f"/instances/{instance_id}/files/notes/a.txt").data == b"hello"
    assert client.get(f"/instances/{instance_id}/files/../secret.txt").status_code == 404
    assert client.get(f"/instances/{instance_id}/files/%2e%2e/secret.txt").status_code == 404


def test_report_markdown_is_rendered_with_html_escaped(ui):
    app, engine = ui
    instance_id, _task_id = _approval(engine)
    workspace = engine.workspace(instance_id)
    (workspace / "DELIVERY.md").write_text(f"# Delivered\n\n{HOSTILE}\n\n[x](javascript:alert(1))\n")
    page = signed_in(app, "submitter").get(f"/instances/{instance_id}").get_data(as_text=True)
    assert "<h1>Delivered</h1>" in page and HOSTILE not in page and 'href="javascript:' not in page


def test_trace_page_shows_spans_evidence_and_integrity(ui):
    app, engine = ui
    client = signed_in(app, "submitter")
    instance_id = _submit(client, scope=SCOPE).headers["Location"].rsplit("/", 1)[-1]
    auditor = signed_in(app, "auditor")
    page = auditor.get(f"/instances/{instance_id}/trace").get_data(as_text=True)
    assert 'id="waterfall"' in page and "analyze_scope" in page
    assert 'id="evidence"' in page and 'class="rule' in page
    assert "intact" in page and HOSTILE not in page
    evidence = auditor.get(f"/instances/{instance_id}/evidence.json").get_json()
    assert evidence["integrity"]["ok"] is True and evidence["evidence"]["rules"]
    otlp = auditor.get(f"/instances/{instance_id}/trace/otlp.json").get_json()
    assert otlp["resourceSpans"][0]["scopeSpans"][0]["spans"]


def test_trace_page_says_when_a_model_has_no_rules(ui):
    app, engine = ui
    instance_id, _task_id = _approval(engine)
    page = signed_in(app, "auditor").get(f"/instances/{instance_id}/trace").get_data(as_text=True)
    assert "has no evidence rules" in page


def test_a_run_that_cannot_be_resumed_offers_no_retry_and_says_what_to_do(ui):
    from scopeflow.lifecycle import submit

    app, engine = ui
    result = submit(engine, "Please help.", yes=True)       # nothing buildable: ends for good
    assert result.status == "blocked"
    page = signed_in(app, "operator").get(f"/instances/{result.instance_id}").get_data(as_text=True)
    assert "cannot be resumed" in page and "SCOPE.md" in page
    assert f'action="/instances/{result.instance_id}/retry"' not in page


@pytest.mark.parametrize(("incident", "retry_offered"), [
    ({"bpmn_id": "gw", "error_type": "WorkflowTaskException", "cause": "model",
      "message": "Error evaluating expression 'x ==': ScriptError: expression refused: SyntaxError"}, False),
    ({"bpmn_id": "gw", "error_type": "WorkflowTaskException",   # recorded before the cause was
      "message": "Error evaluating expression 'x ==': ScriptError: expression refused: SyntaxError"}, False),
    ({"bpmn_id": "gw", "error_type": "NameError", "cause": "run", "message": "name 'x' is not defined"}, True),
])
def test_an_incident_caused_by_the_model_offers_no_retry_and_says_to_fix_the_diagram(ui, incident, retry_offered):
    from sqlalchemy import update

    app, engine = ui
    instance_id, _task_id = _approval(engine)
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id).values(status="error", incident=incident))
    page = signed_in(app, "operator").get(f"/instances/{instance_id}").get_data(as_text=True)
    assert (f'action="/instances/{instance_id}/retry"' in page) is retry_offered
    assert ("The model is wrong at gw" in page) is not retry_offered
    assert f'action="/instances/{instance_id}/cancel"' in page


def test_a_recorded_incident_names_its_cause():
    from scopeflow.engine.runner import incident_from

    assert incident_from(SyntaxError("invalid syntax"))["cause"] == "model"
    assert incident_from(NameError("name 'x' is not defined"))["cause"] == "run"
