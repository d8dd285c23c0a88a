"""The engine's public read and write functions the CLI and the web UI call instead of querying rows:
unknown ids are NotFound, claims are refused with the reason the inbox shows, and what they return
holds no ORM row."""

from __future__ import annotations

import pytest

from scopeflow.engine import accounts, human_tasks, reads, versions
from scopeflow.engine.errors import EngineError, NotFound
from scopeflow.processes.catalog import scan
from tests.conftest import MODELS, add_account


def _approval(engine) -> tuple[str, str]:
    instance_id = engine.start("approval", {"requester": "ann"}, actor="ann", title="Approve")
    return instance_id, reads.tasks(engine.sessions, instance_id=instance_id)[0]["id"]


@pytest.mark.parametrize("read", [
    lambda s: reads.instance_record(s, "nope"),
    lambda s: reads.task_record(s, "nope"),
    lambda s: reads.last_task_data(s, "nope"),
    lambda s: reads.model_version(s, "approval", 999),
    lambda s: reads.version_by_id(s, "nope"),
])
def test_unknown_ids_are_not_found(engine, read):
    with pytest.raises(NotFound, match="unknown"):
        read(engine.sessions)


def test_records_carry_the_columns_the_pages_show(engine):
    instance_id, task_id = _approval(engine)
    record = reads.instance_record(engine.sessions, instance_id)
    assert (record.id, record.model_name, record.created_by, record.status) == (instance_id, "approval", "ann", "waiting")
    task = reads.task_record(engine.sessions, task_id)
    assert (task.instance_id, task.instance_created_by, task.status, task.assignee) == (instance_id, "ann", "open", None)
    assert reads.last_task_data(engine.sessions, instance_id, task.spiff_task_id)["requester"] == "ann"
    activity = reads.activity(engine.sessions, instance_id)
    assert activity.open_task_elements == [task.bpmn_id] and [t["id"] for t in activity.tasks] == [task_id]
    assert reads.diagram_xml(engine.sessions, record.model_version_id).lstrip().startswith("<?xml")
    assert reads.diagram_xml(engine.sessions, "nope") == "" and reads.evidence_rules(engine.sessions, "nope") == ""
    assert reads.cancelled_by(engine.sessions, instance_id) is None
    engine.cancel(instance_id, actor="olga")
    assert reads.cancelled_by(engine.sessions, instance_id)["actor"] == "olga"


def test_a_claim_is_refused_while_another_person_holds_the_task(engine):
    instance_id, task_id = _approval(engine)
    human_tasks.claim(engine.sessions, task_id, "rita")
    with pytest.raises(EngineError, match="^already claimed by rita$"):
        human_tasks.claim(engine.sessions, task_id, "rex")
    with pytest.raises(EngineError, match="^only rita or an admin can unclaim this task$"):
        human_tasks.claim(engine.sessions, task_id, "rex", release=True)
    assert reads.task_record(engine.sessions, task_id).assignee == "rita"
    human_tasks.claim(engine.sessions, task_id, "ada", release=True, admin=True)
    assert reads.task_record(engine.sessions, task_id).assignee is None
    actions = [e["action"] for e in reads.instance_detail(engine.sessions, instance_id)["audit"]]
    assert actions.count("task.claim") == 1 and actions.count("task.unclaim") == 1


def test_a_closed_or_unknown_task_cannot_be_claimed(engine):
    instance_id, task_id = _approval(engine)
    with pytest.raises(NotFound, match="unknown task nope"):
        human_tasks.claim(engine.sessions, "nope", "rita")
    add_account(engine, "rita", "reviewer")
    engine.complete_task(task_id, {"decision": "approve"}, actor="rita")
    with pytest.raises(EngineError, match="^task is completed$"):
        human_tasks.claim(engine.sessions, task_id, "rita")


def test_store_deploys_once_per_bundle_and_versions_are_read_back(engine):
    catalog = scan(MODELS)
    [(model, number, created)] = versions.store(engine.sessions, catalog, ["approval"])
    assert (model, created) == ("approval", True)
    assert versions.store(engine.sessions, catalog, ["approval"]) == [("approval", number, False)]
    stored = reads.model_version(engine.sessions, "approval", number)
    assert stored.files[reads.main_file(stored)].lstrip().startswith("<?xml")
    assert reads.version_numbers(engine.sessions, "approval")[0] == number
    assert {(v["name"], v["version"]) for v in reads.model_versions(engine.sessions)} >= {("approval", number)}


def test_run_history_is_every_instance_of_the_model_with_its_spans(engine):
    instance_id, _task_id = _approval(engine)
    rows, spans = reads.run_history(engine.sessions, "approval")
    assert [r["id"] for r in rows] == [instance_id] and spans[instance_id]
    assert reads.run_history(engine.sessions, "no-such-model") == ([], {})


def test_accounts_are_listed_and_counted_without_rows(engine):
    assert accounts.user_count(engine.sessions) == 0
    accounts.create_user(engine.sessions, "ann", ["submitter", "auditor"], "correct horse battery")
    assert accounts.user_count(engine.sessions) == 1
    assert accounts.list_users(engine.sessions) == [
        {"name": "ann", "roles": "auditor,submitter", "active": True, "last_login_at": None}]
