"""The script environment SpiffWorkflow calls: small expressions in-process, everything else in a worker.

Every BPMN script, condition and expression is compiled under the policy of
:mod:`scopeflow.engine.script_guards`. Where it then runs depends on its shape:

- **fast path, in the engine's process**: an expression, or a script of plain assignments, built
  only from names, constants, subscripts, slices, comparisons, ``and``/``or``/``not``, ``x if c else
  y``, arithmetic, literals, ``len``/``bool``/``abs``/``min``/``max``/``int``/``float`` and
  ``.get(...)``. No loop, no function, no lambda, no comprehension, no other call, no assignment to
  a subscript or attribute, at most :data:`FAST_MAX_NODES` nodes: its work is bounded by its length
  times the size of the data, and it cannot change the data it reads. Each arithmetic step is held
  to much smaller limits (:data:`FAST_MAX_SEQUENCE_LEN`, :data:`FAST_MAX_INT_BITS`); a step above
  them abandons the fast path (nothing was changed) and the expression runs in a worker instead.
  Gateway conditions, service parameters and counters (``deploy_retries + 1``) take this path, so
  the engine does not pay a process round trip for them.
- **everything else, in a worker process** (:mod:`scopeflow.engine.script_pool`): only the task
  data the script names is sent (as JSON); the variables it leaves come back (as JSON) and replace
  those in the task data. A condition evaluated there works on a copy, so it cannot change the data.
  The deadline is kept from outside and the worker is killed when it passes; whatever a script
  raises, ``SystemExit`` included, becomes a :class:`ScriptError`.

Either way, what a script leaves must be plain JSON (:mod:`scopeflow.engine.plain_json`) within
``MAX_DATA_UNITS``.
"""

from __future__ import annotations

import ast
import builtins
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

from scopeflow.engine import script_runner
from scopeflow.engine.plain_json import first_problem
from scopeflow.engine.script_guards import (  # noqa: F401 - the public names of the script sandbox
    _BINOPS,
    DEFAULT_TIME_BUDGET_S,
    MAX_DATA_UNITS,
    MAX_INT_BITS,
    MAX_MODULAR_BITS,
    MAX_RANGE_LEN,
    MAX_SEQUENCE_LEN,
    MAX_SUM_WORK,
    ScriptError,
    ScriptTimeout,
    ScriptTooLarge,
    _check_binop,
    _inplacevar,
    compile_errors,
    compile_eval,
    compile_exec,
    data_units,
    guards,
)
from scopeflow.engine.script_pool import ScriptPool, WorkerFailed, default_pool

FAST_MAX_NODES = 400
FAST_MAX_SEQUENCE_LEN = 100_000
FAST_MAX_INT_BITS = 10_000
FAST_CALLS = frozenset({"len", "bool", "abs", "min", "max", "int", "float"})
_FAST_NODES = (
    ast.Expression, ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.Name, ast.Load, ast.Store,
    ast.Constant, ast.Subscript, ast.Slice, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.IfExp,
    ast.Dict, ast.List, ast.Tuple, ast.Call, ast.Attribute,
    ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)


class _NeedsWorker(Exception):
    """A fast-path step went past the fast limits: run the whole thing in a worker instead."""


def _fast_binop(op: str, left: Any, right: Any) -> Any:
    try:
        _check_binop(op, left, right, FAST_MAX_SEQUENCE_LEN, FAST_MAX_INT_BITS)
    except ScriptTooLarge:
        raise _NeedsWorker from None
    return _BINOPS[op](left, right)


def _fast_inplacevar(op: str, left: Any, right: Any) -> Any:
    if op[:-1] not in _BINOPS:
        return _inplacevar(op, left, right)   # refuses it with the usual message
    return _fast_binop(op[:-1], left, right)


def _fast_getattr(obj: Any, name: str, default: Any = None) -> Any:
    if name != "get" or not isinstance(obj, dict):
        raise _NeedsWorker   # the worker gives the usual answer (or refusal)
    return obj.get


FAST_GUARDS = {**guards(), "_binop_": _fast_binop, "_inplacevar_": _fast_inplacevar, "_getattr_": _fast_getattr}


@dataclass(frozen=True)
class _Plan:
    code: Any                 # restricted bytecode (compiled here, so refusals need no worker)
    names: frozenset[str]     # every name the code can read or write
    fast: bool


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _is_fast(tree: ast.AST) -> bool:
    nodes = list(ast.walk(tree))
    if len(nodes) > FAST_MAX_NODES:
        return False
    for node in nodes:
        if not isinstance(node, _FAST_NODES):
            return False
        if isinstance(node, ast.Assign) and not all(isinstance(t, ast.Name) for t in node.targets):
            return False
        if isinstance(node, ast.AugAssign) and not isinstance(node.target, ast.Name):
            return False
        if isinstance(node, ast.Call) and not _fast_call(node):
            return False
        if isinstance(node, ast.Attribute) and node.attr != "get":
            return False
    return True


def _fast_call(node: ast.Call) -> bool:
    if node.keywords or len(node.args) > 2 or any(isinstance(a, ast.Starred) for a in node.args):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id in FAST_CALLS) or (
        isinstance(func, ast.Attribute) and func.attr == "get")


@lru_cache(maxsize=4096)
def _plan(source: str, mode: str) -> _Plan:
    code = compile_eval(source) if mode == "eval" else compile_exec(source)
    tree = ast.parse(source, mode=mode)
    return _Plan(code, frozenset(_code_names(code)), _is_fast(tree))


_KNOWN_ERRORS: dict[str, type[Exception]] = {
    "ScriptError": ScriptError, "ScriptTimeout": ScriptTimeout, "ScriptTooLarge": ScriptTooLarge}


def _raise_reply(error_type: str, message: str, args: tuple[str, ...]) -> None:
    """Raise what the script raised in the worker: our errors and builtin exceptions by type, others
    as a ScriptError naming them (nothing but a name and text crosses the pipe)."""
    cls = _KNOWN_ERRORS.get(error_type)
    if cls is None:
        candidate = getattr(builtins, error_type, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception):
            cls = candidate
    if cls is None:
        raise ScriptError(f"{error_type}: {message}")
    try:
        error = cls(*args)
    except Exception:   # noqa: BLE001 - an exception type with other arguments: keep the text
        error = ScriptError(f"{error_type}: {message}")
    raise error


class RestrictedEnvironment(TaskDataEnvironment):
    """SpiffWorkflow's script environment: restricted, fast path in-process, the rest in a worker."""

    def __init__(self, time_budget_s: float = DEFAULT_TIME_BUDGET_S, pool: ScriptPool | None = None):
        super().__init__({})
        self.time_budget_s = time_budget_s
        self._pool = pool
        self.pool.prewarm()

    @property
    def pool(self) -> ScriptPool:
        return self._pool or default_pool()

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict | None = None) -> Any:
        expression = expression.strip()
        plan = _plan(expression, "eval")
        names = _named({**(external_context or {}), **context}, plan.names)
        if plan.fast:
            try:
                return _fast(script_runner.evaluate, plan.code, names)
            except _NeedsWorker:
                pass
        return self._in_worker("eval", expression, names, ())

    def execute(self, script: str, context: dict[str, Any], external_context: dict | None = None) -> bool:
        external = external_context or {}
        self.check_for_overwrite(context, external)
        plan = _plan(script, "exec")
        names = _named({**external, **context}, plan.names)
        keep_out = frozenset(external) & frozenset(names)
        results = None
        if plan.fast:
            try:
                results = _fast(script_runner.execute, plan.code, names, keep_out)
            except _NeedsWorker:
                results = None
        if results is None:
            results = self._in_worker("exec", script, names, keep_out)
        context.update(results)
        return True

    def call_service(self, context, **kwargs):
        raise ScriptError("service calls go through the operator registry, not the script environment")

    def _in_worker(self, mode: str, source: str, names: dict[str, Any], keep_out: frozenset[str] | tuple) -> Any:
        request = {"mode": mode, "source": source, "names": names, "keep_out": sorted(keep_out)}
        try:
            json.dumps(names)
        except (TypeError, ValueError) as exc:
            problem = first_problem(names, "")
            where = f"{problem[0].lstrip('.')} {problem[1]}" if problem else str(exc)
            raise ScriptError(f"task data given to the script is not plain JSON: {where}") from None
        try:
            reply = self.pool.run(request, self.time_budget_s)
        except WorkerFailed as failure:
            raise (ScriptTimeout if failure.timed_out else ScriptError)(str(failure)) from None
        if not reply.ok:
            _raise_reply(reply.error_type, reply.message, reply.args)
        return reply.value


def _named(available: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """Only the task data a script can name (its code's names): all a worker needs to be sent."""
    if len(wanted) < len(available):
        return {name: available[name] for name in wanted if name in available}
    return {name: value for name, value in available.items() if name in wanted}


def _fast(run, code: Any, *args: Any) -> Any:
    """``run`` (evaluate or execute) in this process with the fast path's tighter guards."""
    try:
        return run(code, *args, guard_set=FAST_GUARDS)
    except RecursionError:
        raise ScriptError("expression recursed too deeply (Python's recursion limit)") from None
