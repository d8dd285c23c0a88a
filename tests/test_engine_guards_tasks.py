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
