"""The ``Plan``: a DAG of build tasks, each owning the files it writes.

File ownership is explicit so that tasks the DAG allows to run in parallel never write the same
file; the planner guarantees it and ``planner.validate_plan`` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.serde import from_data, to_data

PHASES = ("mvp", "enhanced", "polish")


@dataclass
class PlanTask:
    id: str                        # stable identifier, e.g. "entity-book"
    title: str
    kind: str                      # what the builder does: app_core | entity | auth | tests | unbuildable | ...
    files: list[str] = field(default_factory=list)        # workspace-relative paths this task owns
    depends_on: list[str] = field(default_factory=list)   # ids of tasks that must be built first
    phase: str = "mvp"
    entity: str | None = None      # Entity.name for per-entity tasks
    buildable: bool = True
    reason: str = ""               # why not buildable offline
    author: str = "template"       # template | llm
    requirements: list[str] = field(default_factory=list)  # ids of the requirements it realises


@dataclass
class Plan:
    tasks: list[PlanTask] = field(default_factory=list)
    phases: list[str] = field(default_factory=lambda: ["mvp"])
    feedback: str | None = None    # human or design-review text the plan was (re)made with
    notes: list[str] = field(default_factory=list)         # planning decisions worth reviewing

    def task(self, task_id: str) -> PlanTask:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(f"no plan task {task_id!r}")

    def to_data(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Plan:
        return from_data(cls, data)
