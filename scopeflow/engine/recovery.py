"""Operator actions on a stopped instance: retry the failed task (with edited data) or cancel.

Retry resets the workflow to the task that failed — the incident's task for an instance in
``error``, or the last failure a boundary event routed to the blocker path for a ``blocked`` one —
and runs on from there. A run ended by a decision or a verdict is refused: running the same steps
again would decide the same. So is an incident caused by the model (``engine/incidents.py``): the
instance runs its deployed version again, so no edited data gets it past that error.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BoundaryEventSplit
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import update

from scopeflow.engine.checkpoint import audit_row, checkpoint
from scopeflow.engine.errors import UNSAVEABLE_STATE, EngineError, NotFound
from scopeflow.engine.incidents import caused_by_model
from scopeflow.engine.models import BLOCKED, CANCELLED, ERROR, FINAL_STATUSES, Instance, utcnow
from scopeflow.engine.unit_of_work import Work, open_work, run
from scopeflow.handlers.failures import resumable
from scopeflow.program import program

if TYPE_CHECKING:
    from scopeflow.engine.service import Engine


def retry(engine: Engine, instance_id: str, data: dict[str, Any] | None = None, *, actor: str = "cli") -> str:
    """Run the failed task again (with edited data) and advance; see :meth:`Engine.retry`."""
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"unknown instance {instance_id}")
        if row.status == ERROR and row.incident:
            _refuse_if_caused_by_model(row)
            task_id = row.incident.get("task_id")
        elif row.status == BLOCKED:
            task_id = None
        else:
            raise EngineError(f"instance {instance_id} is {row.status}; only an instance in error or "
                              "blocked by a failure can be retried")
        blocked = row.status == BLOCKED
        error_type = (row.incident or {}).get("error_type")

    def reset(work: Work) -> None:
        if not blocked and error_type == UNSAVEABLE_STATE:
            return  # nothing failed in the saved state: run on from the last checkpoint
        if blocked:
            _refuse_unless_resumable(work.workflow, instance_id)
        target = _last_routed_failure(work.workflow) if blocked else _errored_task(work.workflow, task_id)
        if target is None:
            raise EngineError(f"instance {instance_id} was not stopped by a failed task "
                              "(a person's decision ended it): submit the scope again")
        work.workflow.reset_from_task_id(target.id, data=None)
        work.workflow.completed = False  # Spiff leaves a finished workflow marked completed after a reset
        reset_task = work.workflow.get_task_from_id(target.id)
        reset_task.internal_data.pop("scopeflow_failure", None)
        if data:
            reset_task.data.update(data)

    audit = [audit_row(actor, "instance.retry", instance_id, instance_id,
                       {"edited": sorted(data or {}), "was": "blocked" if blocked else "error"})]
    with open_work(engine, instance_id) as work:
        status = run(engine, work, "retry", before=reset, audit=audit)
    if blocked:
        with engine.sessions.begin() as session:
            session.execute(update(Instance).where(Instance.id == instance_id).values(
                ended_at=None if status not in FINAL_STATUSES else utcnow()))
    return status


def cancel(engine: Engine, instance_id: str, *, actor: str = "cli") -> str:
    """Cancel a running or waiting instance (its open tasks, timers and subscriptions go with it)."""
    with engine.sessions() as session:
        row = session.get(Instance, instance_id)
        if row is None:
            raise NotFound(f"unknown instance {instance_id}")
        if row.status in FINAL_STATUSES:
            raise EngineError(f"instance {instance_id} is already {row.status}")
    audit = [audit_row(actor, "instance.cancel", instance_id, instance_id)]
    with open_work(engine, instance_id) as work:
        with work.runner.advance_span(work.carrier, "cancel") as carrier:
            work.carrier = carrier
            work.workflow.cancel()
        return checkpoint(engine, work, final=True, audit=audit, status=CANCELLED)


def _refuse_if_caused_by_model(row: Instance) -> None:
    """An incident the model caused (an expression that does not compile, an unreadable timer) comes
    back on every retry, since the instance keeps running its deployed version: say what fixes it."""
    if caused_by_model(row.incident):
        where = row.incident.get("bpmn_id") or "?"
        raise EngineError(f"instance {row.id} cannot be retried: its incident was caused by the model at {where}, "
                          f"which a retry would run again; fix the diagram ({program()} models lint), then start "
                          f"a new instance of {row.model_name}")


def _errored_task(wf: BpmnWorkflow, task_id: str | None):
    """The incident's task, else any errored task. ``get_tasks(state=ERROR)`` misses an errored
    multi-instance child in SpiffWorkflow 3.2, so look the id up directly and scan every task."""
    if task_id:
        task = wf.tasks.get(_uuid(task_id))
        for sub in wf.subprocesses.values():
            task = task or sub.tasks.get(_uuid(task_id))
        if task is not None and task.state == TaskState.ERROR:
            return task
    failed = [t for t in wf.get_tasks() if t.state == TaskState.ERROR]
    return failed[0] if failed else None


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _refuse_unless_resumable(wf: BpmnWorkflow, instance_id: str) -> None:
    """A run ended by a decision or a verdict (not a failure of the taxonomy) cannot be retried."""
    blocker = (wf.last_task.data.get("blocker") if wf.last_task is not None else None) or {}
    kind = blocker.get("kind") if isinstance(blocker, dict) else None
    if isinstance(kind, str) and not resumable(kind):
        raise EngineError(f"instance {instance_id} cannot be resumed: it stopped on a blocker of kind {kind} "
                          f"({blocker.get('message', 'see BLOCKERS.md')}), and running the same steps again "
                          "would decide the same; edit the scope and submit it again (BLOCKERS.md names the file)")


def _last_routed_failure(wf: BpmnWorkflow):
    """The most recent task whose failure a boundary event caught (it led to the blocker path)."""
    failed = [t for t in wf.get_tasks() if t.internal_data.get("scopeflow_failure")]
    task = max(failed, key=lambda t: t.last_state_change, default=None)
    # The caught failure's path hangs off the boundary-event split above the task; resetting there
    # discards that path too (resetting the task alone would leave the finished blocker path in place).
    if task is not None and isinstance(task.parent.task_spec, BoundaryEventSplit):
        return task.parent
    return task
