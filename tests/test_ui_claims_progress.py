"""Who may act, said plainly: a 403 names the role needed; a task of another role is not offered as a
link. Progress never goes backwards, and only a delivered run reads 100%."""

from __future__ import annotations

from scopeflow.engine.models import Instance
from tests.test_ui_review import SCOPE, drive_to, open_task
from tests.test_ui_support import make_ui, signed_in


def progress(engine, instance_id: str) -> tuple[str, int]:
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        return row.status, row.progress


def test_a_403_names_the_role_needed_and_the_roles_held(tmp_path):
    app, engine = make_ui(tmp_path)
    instance_id = engine.start("approval", {"requester": "alice"}, actor="submitter", title="Approve it")
    task = open_task(engine, instance_id)
    submitter = signed_in(app, "submitter")
    page = submitter.get("/models")
    assert page.status_code == 403
    assert "this needs the role designer (or admin); your roles: submitter" in page.get_data(as_text=True)
    api = submitter.get(f"/api/v1/instances/{instance_id}/spans")
    assert api.status_code == 403 and "auditor or operator or reviewer" in api.get_json()["error"]
    operator = signed_in(app, "operator")
    refused = operator.get(f"/tasks/{task.id}")
    assert refused.status_code == 403
    assert "this task is for the reviewer role (or admin); your roles: operator" in refused.get_data(as_text=True)
    listed = operator.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert f'href="/tasks/{task.id}"' not in listed                 # not offered to a role that cannot open it
    assert f'href="/tasks/{task.id}"' in signed_in(app, "reviewer").get(f"/instances/{instance_id}").get_data(as_text=True)


def test_progress_never_falls_through_a_change_request_and_a_rejected_run_is_not_100(tmp_path):
    app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Shelf")
    seen = [progress(engine, instance_id)[1]]
    first = drive_to(engine, instance_id, "final_review")
    seen.append(progress(engine, instance_id)[1])
    engine.complete_task(first.id, {"decision": "request_changes", "comment": "again"}, actor="reviewer")
    seen.append(progress(engine, instance_id)[1])                   # the loop added tasks to the tree
    second = drive_to(engine, instance_id, "final_review")
    seen.append(progress(engine, instance_id)[1])
    assert seen == sorted(seen) and seen[-1] < 100, seen
    engine.complete_task(second.id, {"decision": "reject", "comment": "no"}, actor="reviewer")
    status, ended_at = progress(engine, instance_id)
    # Kept where it stopped, never 100 (a slow step on a loaded machine may checkpoint mid-run and
    # measure a little more on the way to the blocker: still not less, still not 100).
    assert status == "blocked" and seen[-1] <= ended_at < 100, (seen, ended_at)
    page = signed_in(app, "auditor").get(f"/instances/{instance_id}").get_data(as_text=True)
    assert f"blocked at {ended_at}%" in page and "progress-blocked" in page


def test_a_checkpoint_that_measures_less_than_before_keeps_the_higher_value(tmp_path):
    _app, engine = make_ui(tmp_path)
    instance_id = engine.start("delivery", {"scope": SCOPE}, actor="submitter", title="Shelf")
    with engine.sessions.begin() as session:      # as if an earlier step had measured more (a loop then added tasks)
        session.get(Instance, instance_id).progress = 95
    engine.complete_task(open_task(engine, instance_id).id, {}, actor="admin")
    assert progress(engine, instance_id) == ("waiting", 95)
