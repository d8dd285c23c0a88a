"""Small operators the example models in ``bpmn-models/examples/`` use.

They do real (if tiny) work, so the examples show the engine's behaviour: data flowing through
service tasks, a failure of each kind reaching its boundary event, a transient failure retried.
``sleep``, ``fail`` and ``flaky`` exist only to demonstrate that behaviour (``examples_only``):
lint refuses them in any model outside ``examples/``, so a real process cannot call them.
"""

from __future__ import annotations

import time
from typing import Any

from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import KINDS, TaskFailure
from scopeflow.handlers.registry import NO_RETRY, RetryPolicy, operator


@operator("noop", retry=NO_RETRY)
def noop(ctx: TaskContext) -> dict[str, Any]:
    """Does nothing; the benchmark's unit of engine overhead."""
    return {}


@operator("echo", retry=NO_RETRY)
def echo(ctx: TaskContext, **values: Any) -> dict[str, Any]:
    """Returns its parameters, so a model can move data between variables."""
    return dict(values)


@operator("sum_values", retry=NO_RETRY)
def sum_values(ctx: TaskContext, values: list[float]) -> dict[str, Any]:
    """Adds a list of numbers and records how many it added."""
    total = sum(values)
    ctx.record({"scopeflow.example.count": len(values)})
    return {"total": total, "count": len(values)}


@operator("square", retry=NO_RETRY)
def square(ctx: TaskContext, value: float) -> dict[str, Any]:
    """Squares one number (the per-item operator of the multi-instance example)."""
    return {"value": value, "square": value * value}


@operator("sleep", retry=NO_RETRY, expensive=True, examples_only=True)
def sleep(ctx: TaskContext, seconds: float = 0.05) -> dict[str, Any]:
    """Sleeps, standing in for I/O-bound work in tests and benchmarks."""
    start = time.monotonic()
    time.sleep(float(seconds))
    return {"slept_s": round(time.monotonic() - start, 4)}


@operator("fail", retry=NO_RETRY, examples_only=True)
def fail(ctx: TaskContext, kind: str, message: str = "example failure") -> dict[str, Any]:
    """Always fails with the given kind, to exercise a model's error boundaries."""
    if kind not in KINDS:
        raise ValueError(f"fail: unknown kind {kind!r}")
    raise TaskFailure(kind, message, {"operator": "fail"})


@operator("flaky", retry=RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05), examples_only=True)
def flaky(ctx: TaskContext, failures: int = 2) -> dict[str, Any]:
    """Fails transiently on its first ``failures`` attempts, then succeeds."""
    if ctx.attempt <= int(failures):
        raise TaskFailure("transient", f"flaky: attempt {ctx.attempt} failed on purpose", {"attempt": ctx.attempt})
    return {"attempts": ctx.attempt}
