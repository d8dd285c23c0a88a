"""BPMN scripts, conditions and expressions under RestrictedPython, bounded in time and size.

SpiffWorkflow's stock environment runs them with plain ``exec``/``eval``, and ``safe_globals`` alone
can be escaped through dunder attributes (notes §5). Here every expression and script is compiled
with ``compile_restricted`` (plus the extra rewrites of :class:`_ScriptPolicy`) and run with guards
and an explicit allow-list of builtins. Three budgets apply:

- **time**: a line tracer, limited to the script's own frames, stops a script after
  ``time_budget_s``. It cannot interrupt one long C-level call, hence the next two budgets;
- **size of one operation**: ``*``, ``+``, ``**``, ``<<``, ``%``, f-string format specs, ``range``,
  ``pow``, ``sum`` with a non-numeric start and the padding/joining/replacing methods of text are
  checked *before* they run, so ``"a" * 10**10`` or ``10**10**8`` is refused instead of eating the
  machine's memory or CPU (limits: :data:`MAX_SEQUENCE_LEN`, :data:`MAX_INT_BITS`, :data:`MAX_RANGE_LEN`);
- **size of the result**: the task data a script leaves behind (and an expression's value) is
  measured, shared references counted as often as serialisation would write them, and refused
  above :data:`MAX_DATA_UNITS`, so a checkpoint never has to serialise a giant structure.

What is not bounded in-process: ``str()``/``repr()`` of a structure built from many references to
one large object (output grows with the product of the sizes). That raises ``MemoryError`` (reported
as a :class:`ScriptError`) or, in the worst case, meets the operating system's OOM killer; the engine's
checkpoints make such a crash lose only the step in progress.
"""

from __future__ import annotations

import ast
import copy
import operator
import re
import sys
import time
from collections.abc import Callable, Iterable
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
from RestrictedPython.transformer import RestrictingNodeTransformer
from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

from scopeflow.engine.plain_json import first_problem

SCRIPT_FILENAME = "<bpmn script>"
DEFAULT_TIME_BUDGET_S = 1.0
MAX_SEQUENCE_LEN = 10_000_000   # characters, bytes or items one operation may produce
MAX_INT_BITS = 100_000          # about 30,000 decimal digits
MAX_RANGE_LEN = 1_000_000       # items in one range()
MAX_DATA_UNITS = 20_000_000     # items + characters of the task data a script leaves behind


class ScriptError(Exception):
    """A BPMN script or expression was refused or failed (message names why)."""


class ScriptTimeout(ScriptError):
    pass


class ScriptTooLarge(ScriptError):
    """An operation or a result would exceed one of the module's size limits."""


# ------------------------------------------------------------------------------ size checks

def _refuse(what: str, size: int, limit: int) -> None:
    if size > limit:
        raise ScriptTooLarge(f"{what} would have size {size:,}, above the script limit of {limit:,}")


def _int_bits(value: Any) -> int | None:
    return abs(value).bit_length() if isinstance(value, int) else None


def _check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse ``left op right`` when its result would be too large; fast for ordinary values."""
    sized = (str, bytes, bytearray, list, tuple)
    if op == "+" and isinstance(left, sized) and isinstance(right, sized):
        _refuse("concatenation", len(left) + len(right), MAX_SEQUENCE_LEN)
    elif op == "*":
        if isinstance(left, sized) and isinstance(right, int):
            _refuse("repetition", len(left) * max(right, 0), MAX_SEQUENCE_LEN)
        elif isinstance(right, sized) and isinstance(left, int):
            _refuse("repetition", len(right) * max(left, 0), MAX_SEQUENCE_LEN)
        elif isinstance(left, int) and isinstance(right, int):
            _refuse("integer product (bits)", _int_bits(left) + _int_bits(right), MAX_INT_BITS)
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _refuse("integer power (bits)", right * _int_bits(left), MAX_INT_BITS)
    elif op == "<<" and isinstance(left, int) and isinstance(right, int) and left:
        _refuse("left shift (bits)", _int_bits(left) + max(right, 0), MAX_INT_BITS)
    elif op == "%" and isinstance(left, (str, bytes)):
        _check_printf_format(left)


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf_format(template: str | bytes) -> None:
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    for match in _PRINTF_SPEC.finditer(text.replace("%%", "")):
        for number in match.groups():
            if number == "*":
                raise ScriptTooLarge("'*' widths in %-formatting are not allowed in scripts")
            if number:
                _refuse("%-format width", int(number), MAX_SEQUENCE_LEN)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "<<": operator.lshift,
    ">>": operator.rshift, "&": operator.and_, "|": operator.or_, "^": operator.xor,
}


def _binop(op: str, left: Any, right: Any) -> Any:
    """What ``left op right`` compiles to in a script: size-checked, then computed."""
    _check_binop(op, left, right)
    return _BINOPS[op](left, right)


def _inplacevar(op: str, left: Any, right: Any) -> Any:
    """What ``name op= value`` compiles to (RestrictedPython's ``_inplacevar_`` hook)."""
    base = op[:-1]
    if not op.endswith("=") or base not in _BINOPS:
        raise ScriptError(f"operator {op} is not allowed in scripts")
    return _binop(base, left, right)


def _format_value(value: Any, conversion: int, spec: str) -> str:
    """What an f-string field with a format spec compiles to: the spec's widths are bounded."""
    for number in re.findall(r"\d+", spec):
        _refuse("f-string format width", int(number), MAX_SEQUENCE_LEN)
    converters = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
    if conversion in converters:
        value = converters[conversion](value)
    return format(value, spec)


def _bounded_method(owner: Any, name: str, method: Callable) -> Callable:
    """Wrap a text/list/int method that can build a result much larger than its inputs."""

    def call(*args: Any, **kwargs: Any) -> Any:
        _refuse(f"{type(owner).__name__}.{name}() result", _method_result_size(owner, name, args), MAX_SEQUENCE_LEN)
        return method(*args, **kwargs)

    if name == "join":
        def join(items: Iterable) -> Any:
            items = list(items)
            total = sum(len(item) for item in items if isinstance(item, (str, bytes)))
            _refuse("join() result", total + len(owner) * max(len(items) - 1, 0), MAX_SEQUENCE_LEN)
            return method(items)
        return join
    return call


def _method_result_size(owner: Any, name: str, args: tuple) -> int:
    if name in ("ljust", "rjust", "center", "zfill", "to_bytes"):
        return args[0] if args and isinstance(args[0], int) else 0
    if name == "expandtabs":
        tabsize = args[0] if args and isinstance(args[0], int) else 8
        return len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * max(tabsize, 0)
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0 else None
        hits = owner.count(old) if old else len(owner) + 1
        hits = hits if count is None else min(hits, count)
        return len(owner) + hits * max(len(new) - len(old), 0)
    if name == "extend" and args:
        return len(owner) + (len(args[0]) if hasattr(args[0], "__len__") else 0)
    return 0


_AMPLIFIERS = {
    str: {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join"},
    bytes: {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join"},
    int: {"to_bytes"},
    list: {"extend"},
}


def _getattr(obj: Any, name: str, default: Any = None) -> Any:
    """RestrictedPython's ``safer_getattr``, with amplifying methods wrapped in size checks."""
    value = safer_getattr(obj, name, default)
    if name in _AMPLIFIERS.get(type(obj), ()):
        return _bounded_method(obj, name, value)
    return value


def _range(*args: int) -> range:
    span = range(*args)
    _refuse("range()", len(span), MAX_RANGE_LEN)
    return span


def _pow(base: Any, exponent: Any, modulus: Any = None) -> Any:
    if modulus is None:
        return _binop("**", base, exponent)
    return pow(base, exponent, modulus)


def _sum(items: Iterable, start: Any = 0) -> Any:
    """``sum``; with a non-numeric start each step is size-checked (``sum(lists, [])`` concatenates)."""
    if isinstance(start, (int, float, complex)):
        return sum(items, start)
    total = start
    for item in items:
        total = _binop("+", total, item)
    return total


def _print_refused(_getattr_: Any) -> None:
    raise ScriptError("print() is not available in BPMN scripts: put values in task data instead")


_WALKED = (str, bytes, list, tuple, dict, set, frozenset)


def data_units(value: Any, limit: int = MAX_DATA_UNITS) -> int:
    """How big ``value`` is when serialised: items plus characters, shared objects counted per use.

    Each distinct container is walked once (its size is remembered by identity), so the walk costs
    what the structure occupies in memory even when its serialised form would be enormous.
    """
    sizes: dict[int, int] = {}

    def size(item: Any) -> int:
        if isinstance(item, (str, bytes)):
            return len(item) + 1
        if not isinstance(item, (list, tuple, dict, set, frozenset)):
            return 1
        known = sizes.get(id(item))
        if known is not None:
            return known
        sizes[id(item)] = 1   # a cycle counts once; serialisation will refuse it anyway
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        if set(map(type, children)).isdisjoint(_WALKED):   # only scalars (checked in C, fast)
            sizes[id(item)] = 1 + len(children)
            return 1 + len(children)
        nested = [child for child in children if isinstance(child, _WALKED)]   # scalars count 1 each
        total = 1 + len(children) - len(nested)
        for child in nested:
            total += size(child)
            if total > limit:
                break
        sizes[id(item)] = total
        return total

    return size(value)


# ------------------------------------------------------------------------------ builtins and guards

ALLOWED_BUILTINS: dict[str, Any] = {
    **safe_builtins,
    "dict": dict, "list": list, "set": set, "sorted": sorted, "sum": _sum, "min": min, "max": max,
    "any": any, "all": all, "enumerate": enumerate, "zip": zip, "map": map, "filter": filter,
    "reversed": reversed, "range": _range, "pow": _pow,
}
for _unsafe in ("__import__", "open", "compile", "eval", "exec", "globals", "locals", "vars", "getattr",
                "setattr", "delattr", "type", "object", "memoryview", "breakpoint", "input", "help",
                "__build_class__", "_getattr_"):
    ALLOWED_BUILTINS.pop(_unsafe, None)


def _guards() -> dict[str, Any]:
    return {
        "__builtins__": ALLOWED_BUILTINS,
        "_getattr_": _getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_write_": full_write_guard,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_inplacevar_": _inplacevar,
        "_binop_": _binop,
        "_format_": _format_value,
        "_print_": _print_refused,
    }


GUARD_NAMES = set(_guards())
_GUARDED_OPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}


class _ScriptPolicy(RestrictingNodeTransformer):
    """RestrictedPython's checks, plus: size-guarded operators and format specs, no classes."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()),
                        args=[ast.Constant(symbol), node.left, node.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        node = self.node_contents_visit(node)
        if node.format_spec is None:
            return node
        call = ast.Call(func=ast.Name("_format_", ast.Load()),
                        args=[node.value, ast.Constant(node.conversion), node.format_spec], keywords=[])
        node.value, node.conversion, node.format_spec = call, -1, None
        return ast.fix_missing_locations(ast.copy_location(node, node))

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed in BPMN scripts")
        return node


@lru_cache(maxsize=2048)
def _compile_eval(expression: str) -> Any:
    result = compile_restricted_eval(expression, filename=SCRIPT_FILENAME, policy=_ScriptPolicy)
    if result.errors:
        raise ScriptError(f"expression {expression!r} refused: {'; '.join(result.errors)}")
    return result.code


@lru_cache(maxsize=1024)
def _compile_exec(script: str) -> Any:
    result = compile_restricted_exec(script, filename=SCRIPT_FILENAME, policy=_ScriptPolicy)
    if result.errors:
        raise ScriptError(f"script refused: {'; '.join(result.errors)}")
    return result.code


# ------------------------------------------------------------------------------ running

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
            return eval(code, namespace)  # noqa: S307  # nosec B307 - restricted bytecode, guarded namespace
        exec(code, namespace)  # noqa: S102  # nosec B102 - restricted bytecode, guarded namespace
        return None
    except RecursionError:
        raise ScriptError("script recursed too deeply (Python's recursion limit)") from None
    except MemoryError:
        raise ScriptTooLarge("script ran out of memory building a value") from None
    finally:
        sys.settrace(previous)


def _check_result(what: str, value: Any) -> None:
    _refuse(f"{what} (items + characters)", data_units(value), MAX_DATA_UNITS)


class RestrictedEnvironment(TaskDataEnvironment):
    """SpiffWorkflow's script environment, compiled with RestrictedPython, time- and size-bounded."""

    def __init__(self, time_budget_s: float = DEFAULT_TIME_BUDGET_S, helpers: dict[str, Any] | None = None):
        super().__init__(dict(helpers or {}))
        self.time_budget_s = time_budget_s

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict | None = None) -> Any:
        namespace = {**self.globals, **(external_context or {}), **context, **_guards()}
        value = _run(_compile_eval(expression.strip()), namespace, self.time_budget_s, "eval")
        _check_result("expression value", value)
        return value

    def execute(self, script: str, context: dict[str, Any], external_context: dict | None = None) -> bool:
        self.check_for_overwrite(context, external_context or {})
        namespace = {**self.globals, **(external_context or {}), **copy.copy(context), **_guards()}
        before = set(namespace)
        _run(_compile_exec(script), namespace, self.time_budget_s, "exec")
        results = {}
        for key, value in namespace.items():
            if key in GUARD_NAMES or key in self.globals or (external_context and key in external_context):
                continue
            if callable(value) and key not in before:
                continue  # functions defined by the script do not belong in task data
            results[key] = value
        _check_result("task data left by the script", results)
        problem = first_problem(results, "")
        if problem is not None:
            where = problem[0].lstrip(".") or "the data"
            raise ScriptError(f"script left a value task data cannot hold: {where} {problem[1]}")
        context.update(results)
        return True

    def call_service(self, context, **kwargs):
        raise ScriptError("service calls go through the operator registry, not the script environment")


def compile_errors(source: str, mode: str = "eval") -> list[str]:
    """Why ``source`` would be refused when it runs (empty when it compiles): lint's view of the
    sandbox, so a model whose expressions the sandbox refuses is refused at deploy time."""
    compile_ = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    return list(compile_(source.strip() if mode == "eval" else source, filename=SCRIPT_FILENAME,
                         policy=_ScriptPolicy).errors)
