"""A SpiffWorkflow workflow that knows its READY and WAITING tasks without walking its tree.

Stock SpiffWorkflow 3.2.0 finds READY tasks (``do_engine_steps``) and WAITING tasks (after every
completed task, ``update_waiting_tasks``) by walking the whole task tree. That makes each step cost
O(tree size), and its tree iterator stops at depth 1000: a loop iterated a few hundred times, or a
linear model of 1000 tasks, silently stops with tasks still READY. Here every task reports its state
changes to its workflow, which keeps insertion-ordered READY and WAITING indexes (one per workflow:
the top one and each subprocess), so finding work costs O(1) per task at any depth.

The classes are registered with the serializer under Spiff's own type names (``spiff.py``), so
states written before this module existed load as these classes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

_spiff_task_log = logging.getLogger("spiff.task")
_READY, _WAITING, _CANCELLED = TaskState.READY, TaskState.WAITING, TaskState.CANCELLED
_UNFINISHED = TaskState.NOT_FINISHED_MASK

# Spiff's own algorithms recurse once per tree level (parser, prediction, ancestor checks); the
# limit grows with the largest model or tree seen so they never stop at Python's default of 1000.
_FRAMES_PER_LEVEL = 4
_BASE_LIMIT = 3000


def ensure_recursion_depth(levels: int) -> None:
    """Raise (never lower) the interpreter's recursion limit so ``levels`` tree levels fit.

    Python 3.11 runs Python-to-Python calls without growing the C stack, so a higher limit is
    safe for Spiff's pure-Python recursion (a 20,000-task linear model parses and runs).
    """
    needed = _BASE_LIMIT + _FRAMES_PER_LEVEL * levels
    if needed > sys.getrecursionlimit():
        sys.setrecursionlimit(needed)


class _TaskIds:
    """Random (version 4) task ids like Spiff's ``uuid4()``, from the same source (``os.urandom``)
    read 4 KiB at a time: a start creates a task per element, and one system call per id cost
    more than the id. A forked child (a Celery worker) starts with an empty buffer of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0

    def new(self) -> uuid.UUID:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(4096), 0
            raw = self._buffer[self._offset:self._offset + 16]
            self._offset += 16
        return uuid.UUID(bytes=raw, version=4)


_TASK_IDS = _TaskIds()


class FlowTask(Task):
    """A task that tells its workflow when it enters or leaves READY or WAITING."""

    def __init__(self, workflow: Any, task_spec: Any, parent: Task | None = None,
                 state: int = TaskState.MAYBE, id: Any = None):
        super().__init__(workflow, task_spec, parent, state, id or _TASK_IDS.new())
        workflow.task_moved(self, 0, state)

    @property
    def id_text(self) -> str:
        """``str(self.id)``, computed once: a state holds each id three or four times (the task's,
        its parent's and child's references, the tasks mapping's key) at every checkpoint."""
        text = self.__dict__.get("_id_text")
        if text is None:
            text = self._id_text = str(self.id)
        return text

    def _set_state(self, value: int) -> None:
        old = self._state
        if value == old or _spiff_task_log.isEnabledFor(logging.INFO):
            super()._set_state(value)  # Spiff's own, which logs (and builds the log's extras first)
        else:
            now = time.time()
            self.last_state_change, self._state = now, value
        if value != old:
            self.workflow.task_moved(self, old, value)

    def _add_child(self, task_spec: Any, state: int = TaskState.MAYBE) -> FlowTask:
        # Same rules as Task._add_child; the child must be a FlowTask so it reports its states too.
        if self.has_state(TaskState.PREDICTED_MASK) and state & TaskState.PREDICTED_MASK == 0:
            raise WorkflowException("Attempt to add non-predicted child to predicted task", task_spec=self.task_spec)
        task = FlowTask(self.workflow, task_spec, self, state=state)
        task.thread_id = self.thread_id
        if state == _READY:
            task._ready()
        return task


class _Indexed:
    """The READY/WAITING indexes and the overrides that use them (mixed into both workflow classes)."""

    ready_tasks: dict
    waiting_tasks: dict
    cancellations: int
    tasks: dict

    def _init_index(self) -> None:
        self.ready_tasks = {}      # id -> task, in the order they became READY
        self.waiting_tasks = {}
        self.cancellations = 0     # how many tasks of this workflow were ever cancelled

    def task_moved(self, task: Task, old: int, new: int) -> None:
        if old == _READY:
            self.ready_tasks.pop(task.id, None)
        elif old == _WAITING:
            self.waiting_tasks.pop(task.id, None)
        if new == _READY:
            self.ready_tasks[task.id] = task
        elif new == _WAITING:
            self.waiting_tasks[task.id] = task
        elif new == _CANCELLED:
            self.cancellations += 1

    def _remove_task(self, task_id: Any) -> None:
        self.ready_tasks.pop(task_id, None)
        self.waiting_tasks.pop(task_id, None)
        super()._remove_task(task_id)

    def _new_root(self) -> None:
        """Workflow.__init__ with ``deserializing=False``, but the root is a FlowTask."""
        self.task_tree = FlowTask(self, self.spec.start, state=TaskState.FUTURE)
        self.task_tree.task_spec._predict(self.task_tree, mask=_UNFINISHED)
        self.task_tree._ready()

    def update_waiting_tasks(self) -> None:
        """Update the WAITING tasks (Spiff does this after every completed task) from the index."""
        for task in list(self.waiting_tasks.values()):
            if task._state == _WAITING and task.id in self.tasks:
                task.task_spec._update(task)

    def is_completed(self) -> bool:
        """Completed when no task is unfinished (a flat scan: the stock one stops at depth 1000)."""
        if not self.completed and not any(task._state & _UNFINISHED for task in self.tasks.values()):
            self.completed = True
        return self.completed

    def get_tasks_iterator(self, first_task: Task | None = None, **kwargs: Any) -> BpmnTaskIterator:
        """Spiff's tree iterator without its depth cut-off (gateways and events call this)."""
        kwargs.setdefault("max_depth", sys.maxsize)
        return BpmnTaskIterator(first_task or self.task_tree, **kwargs)

    def active_tasks(self) -> list[Task]:
        """READY then WAITING tasks of this workflow (not of its subprocesses)."""
        return [*self.ready_tasks.values(), *self.waiting_tasks.values()]


class FlowSubWorkflow(_Indexed, BpmnSubWorkflow):
    def __init__(self, spec: Any, parent_task_id: Any, top_workflow: Any, deserializing: bool = False):
        self._init_index()
        super().__init__(spec, parent_task_id, top_workflow, deserializing=True)
        if not deserializing:
            self._new_root()


class FlowWorkflow(_Indexed, BpmnWorkflow):
    """The workflow the engine runs: indexed READY/WAITING tasks, no depth cut-off anywhere."""

    def __init__(self, spec: Any, subprocess_specs: dict | None = None, script_engine: Any = None,
                 deserializing: bool = False):
        self._init_index()
        self.spec_ref: str | None = None   # the model version whose spec this is (spiff.py writes only the id)
        super().__init__(spec, subprocess_specs, script_engine, deserializing=True)
        if not deserializing:
            ensure_recursion_depth(len(spec.task_specs))
            self._new_root()

    def create_subprocess(self, my_task: Task, spec_name: str) -> FlowSubWorkflow:
        subprocess = FlowSubWorkflow(self.subprocess_specs[spec_name], parent_task_id=my_task.id,
                                     top_workflow=self)
        self.subprocesses[my_task.id] = subprocess
        return subprocess

    def cancel(self, workflow: Any = None) -> list[Task]:
        """Cancel every unfinished task (flat: the stock walk stops at depth 1000), subprocesses too."""
        wf = workflow or self
        wf.success, wf.completed = False, True
        cancelled = [task for task in wf.tasks.values() if task._state & _UNFINISHED]
        for task in cancelled:
            task.cancel()
        ids = {task.id for task in cancelled}
        for sub_id, sub in list(self.subprocesses.items()):
            if sub_id in ids:
                cancelled.extend(self.cancel(sub))
        return cancelled

    def workflows(self) -> list[Any]:
        """This workflow and every subprocess (deepest last)."""
        return [self, *self.subprocesses.values()]

    def leftover_tasks(self) -> list[Task]:
        """READY or WAITING tasks anywhere: a workflow that says it completed must have none."""
        return [task for wf in self.workflows() for task in wf.active_tasks()]
