"""BPMN scripts, conditions and expressions under RestrictedPython.

SpiffWorkflow's stock environment runs them with plain ``exec``/``eval``, and ``safe_globals`` alone
can be escaped through dunder attributes (notes §5). Here every expression and script is compiled
with ``compile_restricted`` and run with guards and an explicit allow-list of builtins, under a time
budget enforced by a line tracer limited to the script's own frames.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

SCRIPT_FILENAME = "<bpmn script>"
DEFAULT_TIME_BUDGET_S = 1.0

ALLOWED_BUILTINS: dict[str, Any] = {
    **safe_builtins,
    "dict": dict, "list": list, "set": set, "sorted": sorted, "sum": sum, "min": min, "max": max,
    "any": any, "all": all, "enumerate": enumerate, "zip": zip, "map": map, "filter": filter,
    "reversed": reversed, "range": range,
}
for _unsafe in ("__import__", "open", "compile", "eval", "exec", "globals", "locals", "vars", "getattr",
                "setattr", "delattr", "type", "object", "memoryview", "breakpoint", "input", "help"):
    ALLOWED_BUILTINS.pop(_unsafe, None)


class ScriptError(Exception):
    """A BPMN script or expression was refused or failed (message names why)."""


class ScriptTimeout(ScriptError):
    pass


def _inplacevar(op: str, x: Any, y: Any) -> Any:
    operations: dict[str, Callable[[Any, Any], Any]] = {
        "+=": lambda a, b: a + b, "-=": lambda a, b: a - b, "*=": lambda a, b: a * b,
        "/=": lambda a, b: a / b, "//=": lambda a, b: a // b, "%=": lambda a, b: a % b,
    }
    if op not in operations:
        raise ScriptError(f"operator {op} is not allowed in scripts")
    return operations[op](x, y)


def _guards() -> dict[str, Any]:
    return {
        "__builtins__": ALLOWED_BUILTINS,
        "_getattr_": safer_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_write_": full_write_guard,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_inplacevar_": _inplacevar,
        "_print_": None,
    }


GUARD_NAMES = set(_guards())


@lru_cache(maxsize=2048)
def _compile_eval(expression: str) -> Any:
    result = compile_restricted_eval(expression, filename=SCRIPT_FILENAME)
    if result.errors:
        raise ScriptError(f"expression {expression!r} refused: {'; '.join(result.errors)}")
    return result.code


@lru_cache(maxsize=1024)
def _compile_exec(script: str) -> Any:
    result = compile_restricted_exec(script, filename=SCRIPT_FILENAME)
    if result.errors:
        raise ScriptError(f"script refused: {'; '.join(result.errors)}")
    return result.code


class _Budget:
    """A line tracer that stops a script once its time budget is spent."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename != SCRIPT_FILENAME:
            return None
        return self._local

    def _local(self, frame, event, arg):
        if event == "line" and time.monotonic() > self.deadline:
            raise ScriptTimeout(f"script exceeded its time budget of {self.seconds:g}s")
        return self._local


def _run(code: Any, namespace: dict[str, Any], budget_s: float, mode: str) -> Any:
    previous = sys.gettrace()
    sys.settrace(_Budget(budget_s))
    try:
        if mode == "eval":
            return eval(code, namespace)  # noqa: S307 - restricted bytecode, guarded namespace
        exec(code, namespace)  # noqa: S102 - restricted bytecode, guarded namespace
        return None
    finally:
        sys.settrace(previous)


class RestrictedEnvironment(TaskDataEnvironment):
    """SpiffWorkflow's script environment, compiled with RestrictedPython and time-bounded."""

    def __init__(self, time_budget_s: float = DEFAULT_TIME_BUDGET_S, helpers: dict[str, Any] | None = None):
        super().__init__(dict(helpers or {}))
        self.time_budget_s = time_budget_s

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict | None = None) -> Any:
        namespace = {**self.globals, **(external_context or {}), **context, **_guards()}
        return _run(_compile_eval(expression.strip()), namespace, self.time_budget_s, "eval")

    def execute(self, script: str, context: dict[str, Any], external_context: dict | None = None) -> bool:
        self.check_for_overwrite(context, external_context or {})
        namespace = {**self.globals, **(external_context or {}), **copy.copy(context), **_guards()}
        before = set(namespace)
        _run(_compile_exec(script), namespace, self.time_budget_s, "exec")
        for key, value in namespace.items():
            if key in GUARD_NAMES or key in self.globals or (external_context and key in external_context):
                continue
            if callable(value) and key not in before:
                continue  # functions defined by the script do not belong in task data
            context[key] = value
        return True

    def call_service(self, context, **kwargs):
        raise ScriptError("service calls go through the operator registry, not the script environment")
