"""Run one compiled script or expression against a namespace of plain data, and judge what it left.

Used in two places: inside a worker process for every job (:func:`run_job`), and in the engine's
own process for the small expressions and assignments the fast path admits
(:mod:`scopeflow.engine.sandbox`). Either way a script's exception becomes a plain ``(type,
message)`` reply, and what it leaves behind must be plain JSON within :data:`MAX_DATA_UNITS`.
"""

from __future__ import annotations

from typing import Any

from scopeflow.engine.plain_json import first_problem
from scopeflow.engine.script_guards import (
    GUARD_NAMES,
    MAX_DATA_UNITS,
    ScriptError,
    ScriptTooLarge,
    _refuse,
    compile_eval,
    compile_exec,
    data_units,
    guards,
)

_SMALL_SCALARS = frozenset({bool, int, float, type(None)})


def check_result(what: str, value: Any) -> None:
    """Refuse a result that is too large or not plain JSON (:mod:`scopeflow.engine.plain_json`: the
    engine stores task data as JSON and never revives objects from it)."""
    if type(value) in _SMALL_SCALARS:   # a condition's answer: nothing to walk (integers are bounded
        return                          # by the integer guards)
    if type(value) is str:              # a parameter's usual answer: only its length matters
        _refuse(f"{what} (characters)", len(value), MAX_DATA_UNITS)
        return
    units = data_units(value)
    if units > MAX_DATA_UNITS:
        _refuse(f"{what} (items + characters)", units, MAX_DATA_UNITS)
    problem = first_problem(value, "")
    if problem is not None:
        where = problem[0].lstrip(".") or "the value"
        raise ScriptError(f"{what} is not plain JSON: {where} {problem[1]}")


def execute(code: Any, names: dict[str, Any], keep_out: frozenset[str] = frozenset(),
            guard_set: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run script ``code`` over ``names``; return the variables it leaves (checked), except functions
    it defined and the names in ``keep_out`` (globals and external context, which are not task data)."""
    namespace = {**names, **(guard_set or guards())}
    exec(code, namespace)  # noqa: S102  # nosec B102 - restricted bytecode, guarded namespace
    results = {key: value for key, value in namespace.items()
               if key not in GUARD_NAMES and key not in keep_out and not (callable(value) and key not in names)}
    check_result("task data left by the script", results)
    return results


def evaluate(code: Any, names: dict[str, Any], guard_set: dict[str, Any] | None = None) -> Any:
    value = eval(code, {**names, **(guard_set or guards())})  # noqa: S307  # nosec B307 - restricted bytecode, guarded namespace
    check_result("expression value", value)
    return value


def run_job(request: dict[str, Any]) -> dict[str, Any]:
    """One job in a worker: ``{"mode": "eval"|"exec", "source", "names", "keep_out"}`` → a reply dict.

    Every exception, ``BaseException`` subclasses included, becomes an error reply.
    """
    try:
        names = request["names"]
        if request["mode"] == "eval":
            return {"ok": True, "value": evaluate(compile_eval(request["source"]), names)}
        keep_out = frozenset(request.get("keep_out", ()))
        return {"ok": True, "value": execute(compile_exec(request["source"]), names, keep_out)}
    except RecursionError:
        return _error(ScriptError("script recursed too deeply (Python's recursion limit)"))
    except MemoryError:
        return _error(ScriptTooLarge("script ran out of memory building a value (the worker's memory limit)"))
    except Exception as exc:   # noqa: BLE001 - every failure of a script is reported, none crashes the worker
        return _error(exc)
    except BaseException as exc:   # SystemExit, KeyboardInterrupt, GeneratorExit raised by the script
        return _error(ScriptError(f"script raised {type(exc).__name__}, which BPMN scripts may not raise"))


def _error(exc: BaseException) -> dict[str, Any]:
    args = [arg for arg in exc.args if isinstance(arg, str)] if exc.args else []
    return {"ok": False, "type": type(exc).__name__, "message": str(exc)[:2000],
            "args": args if len(args) == len(exc.args) else [str(exc)[:2000]]}
