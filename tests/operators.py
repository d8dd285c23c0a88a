"""Operators only the test suite uses; never registered in a deployed Scopeflow.

In-process tests get them from ``tests/conftest.py``, which imports this module. A worker process a
test spawns registers them through the setting a deployment would use for its own operators:
``SCOPEFLOW_OPERATOR_MODULES=tests.operators`` (see :data:`WORKER_ENV`), with the repository on
``PYTHONPATH``.
"""

from __future__ import annotations

import time
from typing import Any

from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.registry import NO_RETRY, operator

WORKER_ENV = {"SCOPEFLOW_OPERATOR_MODULES": __name__}


@operator("mark", retry=NO_RETRY, expensive=True)
def mark(ctx: TaskContext, name: str, seconds: float = 0.0) -> dict[str, Any]:
    """Leaves one file per execution in ``<workspace>/marks/`` (tests count side effects with it)."""
    time.sleep(float(seconds))
    marks = ctx.workspace / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    path = marks / f"{name}-{ctx.task_id}-{time.time_ns()}"
    path.write_text(name, encoding="utf-8")
    return {"marked": name}
