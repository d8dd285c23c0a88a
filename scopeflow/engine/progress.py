"""What a checkpoint reads from a workflow: status inputs, progress, human tasks, final data.

Every function here makes one flat pass over the tasks of the workflow and its subprocesses
(``FlowWorkflow.workflows()``): no tree walk, so no depth cut-off and no per-level recursion.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.util.task import TaskState

from scopeflow.engine.flow import FlowWorkflow
from scopeflow.redaction import redact_data


@dataclass
class Snapshot:
    """What a checkpoint needs from the task tree, gathered in one walk (each walk costs)."""

    completed: bool
    progress: int
    mode: str
    ready_automatic: bool
    ready_human: dict[str, Any]
    completed_elements: set[str]
    ended_with_leftovers: bool = False  # Spiff marked it completed while tasks are READY/WAITING


_ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
_DONE = TaskState.COMPLETED | TaskState.CANCELLED


def snapshot_of(wf: FlowWorkflow) -> Snapshot:
    """One flat pass over every task of the workflow and its subprocesses (no tree walk, no depth
    cut-off). Completed means Spiff says so *and* no task is left READY or WAITING anywhere."""
    total = done = 0
    mode = ""
    ready_automatic = False
    ready_human: dict[str, Any] = {}
    completed_elements: set[str] = set()
    for sub in wf.workflows():
        for task in sub.tasks.values():
            spec = task.task_spec
            state = task._state
            if state == TaskState.READY:
                if spec.manual:
                    ready_human[str(task.id)] = task
                else:
                    ready_automatic = True
            bpmn_id = getattr(spec, "bpmn_id", None)
            if not bpmn_id:
                continue
            total += 1
            if state & _DONE:
                done += 1
                if state == TaskState.COMPLETED:
                    completed_elements.add(bpmn_id)
            elif not mode and state & _ACTIVE:
                label = spec.bpmn_name or bpmn_id
                lane = getattr(spec, "lane", None)
                mode = f"{lane}: {label}" if lane else label
    leftover = wf.leftover_tasks()
    spiff_says_completed = wf.is_completed()
    completed = spiff_says_completed and not leftover
    progress = 100 if completed else (int(100 * done / total) if total else 0)
    return Snapshot(completed, progress, mode, ready_automatic, ready_human, completed_elements,
                     ended_with_leftovers=spiff_says_completed and bool(leftover))


def leftover_incident(wf: FlowWorkflow) -> dict[str, Any]:
    """SpiffWorkflow marked the workflow completed while tasks are still READY/WAITING: never
    report that as completed."""
    leftover = wf.leftover_tasks()
    names = ", ".join(sorted({getattr(t.task_spec, "bpmn_id", None) or t.task_spec.name for t in leftover}))
    return {"message": f"the workflow ended with {len(leftover)} task(s) still READY or WAITING ({names})",
            "task_id": str(leftover[0].id), "bpmn_id": getattr(leftover[0].task_spec, "bpmn_id", None),
            "error_type": "UnfinishedWorkflow", "traceback": ""}


def workflow_data(wf: FlowWorkflow, redact: Callable[[str], str]) -> dict[str, Any]:
    """The data a run has produced so far (the last completed task's, which at the end is the
    whole instance's), as JSON with every string redacted."""
    task = wf.last_task if wf.last_task is not None else wf.task_tree
    plain = json.loads(json.dumps(task.data, default=str))
    return redact_data(plain, redact, keys=True)

