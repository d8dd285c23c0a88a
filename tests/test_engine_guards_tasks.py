"""Refusals of a human task's completion that no other test made fail, each through a real run of
the approval example (its task is in the Reviewer lane): the refusal's own message, and nothing
stored — the task row stays as it was, the instance keeps its state and no completion is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scopeflow.engine.errors import EngineError
from scopeflow.engine.models import AuditEvent, HumanTask, Instance
from tests.conftest import add_account


@pytest.fixture
def approval(engine) -> tuple[str, str]:
    add_account(engine, "rita", "reviewer")
    instance_id = engine.start("approval", {"requester": "ann"})
    with engine.sessions() as session:
        [task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)).all()
        return instance_id, task.id


def _stored(engine, instance_id: str, task_id: str) -> tuple:
    with engine.sessions() as session:
        row, task = session.get(Instance, instance_id), session.get(HumanTask, task_id)
        completions = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.instance_id == instance_id, AuditEvent.action == "task.complete"))
        return row.status, row.row_version, task.status, task.completed_by, completions


@pytest.mark.parametrize("data", [["approve"], "approve", None])
def test_task_data_that_is_not_an_object_is_refused_as_such(engine, approval, data):
    instance_id, task_id = approval
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(EngineError, match="^task data must be a JSON object$"):
        engine.complete_task(task_id, data, actor="rita")
    assert _stored(engine, instance_id, task_id) == before


def test_a_completed_task_is_refused_by_its_status_before_anything_runs(engine, approval):
    instance_id, task_id = approval
    assert engine.complete_task(task_id, {"decision": "approve"}, actor="rita") == "completed"
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(EngineError, match=f"^task {task_id} is completed, not open$"):
        engine.complete_task(task_id, {"decision": "reject"}, actor="rita")
    assert _stored(engine, instance_id, task_id) == before == ("completed", before[1], "completed", "rita", 1)


def test_a_cancelled_task_is_refused_by_its_status(engine, approval):
    instance_id, task_id = approval
    engine.cancel(instance_id, actor="olga")
    before = _stored(engine, instance_id, task_id)
    assert before[0] == "cancelled" and before[2] != "open"
    with pytest.raises(EngineError, match=f"^task {task_id} is {before[2]}, not open$"):
        engine.complete_task(task_id, {"decision": "approve"}, actor="rita")
    assert _stored(engine, instance_id, task_id) == before


def test_a_deactivated_account_cannot_complete_a_task(engine, approval):
    from scopeflow.engine.models import User

    instance_id, task_id = approval
    with engine.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "rita")).one().active = False
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(EngineError, match="'rita' is deactivated"):
        engine.complete_task(task_id, {"decision": "approve"}, actor="rita")
    assert _stored(engine, instance_id, task_id) == before


def test_the_accounts_suggested_for_a_task_leave_out_a_deactivated_one(engine, approval):
    from scopeflow.engine.models import User
    from scopeflow.engine.people import accounts_for

    add_account(engine, "rex", "reviewer")
    with engine.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "rex")).one().active = False
    with engine.sessions() as session:
        assert accounts_for(session, "reviewer") == ["rita"]


def test_given_answers_are_kept_and_only_left_out_fields_take_their_defaults(engine, approval):
    instance_id, task_id = approval
    engine.complete_task(task_id, {"decision": "reject", "comment": "no budget"}, actor="rita")
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).data == {"decision": "reject", "comment": "no budget"}
    second = engine.start("approval", {"requester": "bob"})
    with engine.sessions() as session:
        [task] = session.scalars(select(HumanTask).where(HumanTask.instance_id == second)).all()
    engine.complete_task(task.id, {"comment": "fine"}, actor="rita")
    with engine.sessions() as session:
        assert session.get(HumanTask, task.id).data == {"decision": "approve", "comment": "fine"}


def test_an_invalid_answer_names_the_first_field_by_path(engine, approval):
    instance_id, task_id = approval
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(EngineError, match=f"^task {task_id} is invalid at comment: 5 is not of type 'string'$"):
        engine.complete_task(task_id, {"decision": "maybe", "comment": 5}, actor="rita")
    assert _stored(engine, instance_id, task_id) == before


def _claimed_by_rita(engine, approval) -> tuple[str, str]:
    from scopeflow.engine import human_tasks

    instance_id, task_id = approval
    add_account(engine, "rex", "reviewer")
    human_tasks.claim(engine.sessions, task_id, "rita")
    return instance_id, task_id


def test_a_task_claimed_by_one_person_is_refused_to_another_with_the_role(engine, approval):
    from scopeflow.engine.errors import Forbidden

    instance_id, task_id = _claimed_by_rita(engine, approval)
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(Forbidden, match=f"^task {task_id} is claimed by rita$"):
        engine.complete_task(task_id, {"decision": "reject"}, actor="rex")
    assert _stored(engine, instance_id, task_id) == before
    add_account(engine, "ada", "admin")   # an admin may override a claim, as on the task page
    assert engine.complete_task(task_id, {"decision": "approve"}, actor="ada") == "completed"
    assert _stored(engine, instance_id, task_id)[2:4] == ("completed", "ada")


def test_the_claimant_completes_a_claimed_task(engine, approval):
    instance_id, task_id = _claimed_by_rita(engine, approval)
    assert engine.complete_task(task_id, {"decision": "approve"}, actor="rita") == "completed"
    assert _stored(engine, instance_id, task_id)[2:] == ("completed", "rita", 1)


def test_the_cli_refuses_a_claimed_task_on_one_line(engine, approval):
    from click.testing import CliRunner

    from scopeflow.cli import main

    instance_id, task_id = _claimed_by_rita(engine, approval)
    settings = engine.settings
    env = {"SCOPEFLOW_HOME": str(settings.home), "SCOPEFLOW_MODELS": str(settings.models_dir),
           "SCOPEFLOW_DATABASE_URL": settings.database_url}
    result = CliRunner().invoke(main, ["tasks", "complete", task_id, "--as", "rex", "--data", '{"decision": "reject"}'],
                                env=env)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: task {task_id} is claimed by rita"
    assert _stored(engine, instance_id, task_id)[2] == "open"


def test_a_claim_made_while_the_completion_runs_wins(engine, approval, monkeypatch):
    """The claim is checked again in the checkpoint's transaction: a person who claims the task after
    the first check (here: just before the completion's unit of work) keeps it."""
    from scopeflow.engine import human_tasks

    instance_id, task_id = approval
    add_account(engine, "rex", "reviewer")
    unit_of_work = human_tasks.open_work

    def claimed_meanwhile(*args, **kwargs):
        human_tasks.claim(engine.sessions, task_id, "rita")
        return unit_of_work(*args, **kwargs)

    monkeypatch.setattr(human_tasks, "open_work", claimed_meanwhile)
    before = _stored(engine, instance_id, task_id)
    with pytest.raises(EngineError, match="no longer open to rex"):
        engine.complete_task(task_id, {"decision": "reject"}, actor="rex")
    assert _stored(engine, instance_id, task_id) == before
    with engine.sessions() as session:
        assert session.get(HumanTask, task_id).assignee == "rita"
        assert session.get(Instance, instance_id).lock_owner is None
