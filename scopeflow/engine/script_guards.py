"""What a BPMN script or expression may do: RestrictedPython policy, guards and size checks.

SpiffWorkflow's stock environment runs scripts with plain ``exec``/``eval``, and ``safe_globals``
alone can be escaped through dunder attributes. Here every expression and script is compiled with
``compile_restricted`` (plus the extra rewrites of :class:`_ScriptPolicy`) and run with guards and an
explicit allow-list of builtins. Operations that can build a result much larger than their inputs,
or burn CPU inside one C call, are checked *before* they run, so ``"a" * 10**10`` is refused with a
message instead of eating the machine's memory or holding the interpreter for minutes:

- ``*``, ``+``, ``**``, ``<<`` and ``%`` (including ``%``-formatting of a tuple or mapping of
  large values), f-strings (each field and their total), ``range``, ``pow`` (also with a modulus),
  ``sum`` (numbers and sequences) and the padding/joining/replacing/translating methods of text
  (limits: :data:`MAX_SEQUENCE_LEN`, :data:`MAX_INT_BITS`, :data:`MAX_RANGE_LEN`, :data:`MAX_MODULAR_BITS`,
  :data:`MAX_SUM_WORK`);
- the task data a script leaves behind (and an expression's value) is measured, shared references
  counted as often as serialisation would write them, and refused above :data:`MAX_DATA_UNITS`.

These checks give clear messages; they are not the only bound. Time, memory and whatever they
miss (a loop of small appends, ``str()`` of a structure of shared references) are bounded by the
worker process a script runs in (:mod:`scopeflow.engine.script_pool`): a wall-clock deadline
enforced from outside, ``RLIMIT_AS`` and ``RLIMIT_CPU``.
"""

from __future__ import annotations

import ast
import operator
import re
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

SCRIPT_FILENAME = "<bpmn script>"
DEFAULT_TIME_BUDGET_S = 1.0
MAX_SEQUENCE_LEN = 10_000_000   # characters, bytes or items one operation may produce
MAX_INT_BITS = 100_000          # about 30,000 decimal digits
MAX_RANGE_LEN = 1_000_000       # items in one range()
MAX_DATA_UNITS = 20_000_000     # items + characters of the task data a script leaves behind
MAX_MODULAR_BITS = 4_096        # modulus and exponent of pow(a, b, m): about 0.15 s at the limit
MAX_SUM_WORK = 2_000_000_000    # items x bits of the largest integer that one sum() may add up


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


def _check_binop(op: str, left: Any, right: Any, seq_limit: int = MAX_SEQUENCE_LEN,
                 bits_limit: int = MAX_INT_BITS) -> None:
    """Refuse ``left op right`` when its result would be too large; fast for ordinary values.

    The limits are parameters so the in-process fast path can apply much smaller ones.
    """
    sized = (str, bytes, bytearray, list, tuple)
    if op == "+" and isinstance(left, sized) and isinstance(right, sized):
        _refuse("concatenation", len(left) + len(right), seq_limit)
    elif op == "*":
        if isinstance(left, sized) and isinstance(right, int):
            _refuse("repetition", len(left) * max(right, 0), seq_limit)
        elif isinstance(right, sized) and isinstance(left, int):
            _refuse("repetition", len(right) * max(left, 0), seq_limit)
        elif isinstance(left, int) and isinstance(right, int):
            _refuse("integer product (bits)", _int_bits(left) + _int_bits(right), bits_limit)
    elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        _refuse("integer power (bits)", right * _int_bits(left), bits_limit)
    elif op == "<<" and isinstance(left, int) and isinstance(right, int) and left:
        _refuse("left shift (bits)", _int_bits(left) + max(right, 0), bits_limit)
    elif op == "%" and isinstance(left, (str, bytes)):
        _check_printf_result(left, right, seq_limit)


_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf_result(template: str | bytes, args: Any, limit: int) -> None:
    """Refuse ``template % args`` when a width, or the text its arguments would produce, is too large.

    ``('%s' * n) % ((big,) * n)`` passes the two repetition checks and then builds n copies of
    ``big``: the estimate adds up every argument's text (a tuple) or takes the largest value once per
    field (a mapping: one key may be used by many fields).
    """
    text = template.decode("latin-1") if isinstance(template, bytes) else template
    fields = 0
    for match in _PRINTF_SPEC.finditer(text.replace("%%", "")):
        fields += 1
        for number in match.groups():
            if number == "*":
                raise ScriptTooLarge("'*' widths in %-formatting are not allowed in scripts")
            if number:
                _refuse("%-format width", int(number), limit)
    if isinstance(args, tuple):
        produced = sum(text_size(arg, limit) for arg in args)
    elif isinstance(args, dict):
        produced = fields * max((text_size(value, limit) for value in args.values()), default=0)
    else:
        produced = fields * text_size(args, limit)
    _refuse("%-formatting result", len(text) + produced, limit)


def text_size(value: Any, limit: int = MAX_SEQUENCE_LEN) -> int:
    """An upper estimate of ``len(str(value))``, computed without building the text.

    Shared references count once per use (as ``str`` would write them) but are walked once; the
    walk stops as soon as the estimate passes ``limit``.
    """
    sizes: dict[int, int] = {}

    def size(item: Any) -> int:
        if isinstance(item, (str, bytes, bytearray)):
            return len(item) + 3
        if isinstance(item, bool) or item is None:
            return 5
        if isinstance(item, int):
            return _int_bits(item) // 3 + 2
        if not isinstance(item, (list, tuple, dict, set, frozenset)):
            return 32
        known = sizes.get(id(item))
        if known is not None:
            return known
        sizes[id(item)] = 8
        total = 2
        for child in ([*item.keys(), *item.values()] if isinstance(item, dict) else item):
            total += size(child) + 2
            if total > limit:
                break
        sizes[id(item)] = total
        return total

    return size(value)


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
    """What an f-string field compiles to: the spec's widths and the field's text are bounded."""
    for number in re.findall(r"\d+", spec):
        _refuse("f-string format width", int(number), MAX_SEQUENCE_LEN)
    if not isinstance(value, str):
        _refuse("f-string field", text_size(value), MAX_SEQUENCE_LEN)
    converters = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
    if conversion in converters:
        value = converters[conversion](value)
    return format(value, spec)


def _join_fstring(parts: tuple[str, ...]) -> str:
    """What an f-string compiles to: its formatted fields joined, once their total is known to fit."""
    _refuse("f-string", sum(len(part) for part in parts), MAX_SEQUENCE_LEN)
    return "".join(parts)


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
    if name == "translate" and args and isinstance(owner, str):
        return len(owner) * max(1, _longest_replacement(args[0]))
    return 0


def _longest_replacement(table: Any) -> int:
    """The longest text a ``str.translate`` table can put in place of one character."""
    values = table.values() if isinstance(table, dict) else table if isinstance(table, (list, tuple)) else ()
    return max((len(value) for value in values if isinstance(value, str)), default=1)


_AMPLIFIERS = {
    str: {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "translate"},
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
    """``pow``: without a modulus as ``**``; with one, modulus and exponent are bounded in bits.

    Modular exponentiation is one C call whose time grows with the exponent's bits times the
    square (roughly) of the modulus' bits: a 20,000-bit modulus held the interpreter for 36 s.
    """
    if modulus is None:
        return _binop("**", base, exponent)
    if isinstance(modulus, int) and isinstance(exponent, int):
        _refuse("pow() modulus (bits)", _int_bits(modulus), MAX_MODULAR_BITS)
        _refuse("pow() exponent with a modulus (bits)", _int_bits(exponent), MAX_MODULAR_BITS)
    return pow(base, exponent, modulus)


def _sum(items: Iterable, start: Any = 0) -> Any:
    """``sum``, size-checked: sequences step by step, numbers by the work the C loop would do.

    ``sum(lists, [])`` concatenates (each step checked like ``+``); ``sum([1 << 99999] * 10**6)`` is
    one C loop adding 100,000-bit numbers a million times, refused above :data:`MAX_SUM_WORK`.
    """
    if isinstance(start, (int, float, complex)):
        items = list(items)
        widest = max((_int_bits(item) for item in items if type(item) is int), default=0)  # noqa: E721
        _refuse("sum() of integers (items x bits)", len(items) * max(widest, 64), MAX_SUM_WORK)
        return sum(items, start)
    items = list(items)
    sized = (str, bytes, bytearray, list, tuple)
    if isinstance(start, sized) and all(isinstance(item, sized) for item in items):
        _refuse("concatenation", len(start) + sum(len(item) for item in items), MAX_SEQUENCE_LEN)   # up front
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


def guards() -> dict[str, Any]:
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
        "_fstring_": _join_fstring,
        "_print_": _print_refused,
    }


GUARD_NAMES = set(guards())
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

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        """``f"a{x:>4}b"`` becomes ``_fstring_(("a", _format_(x, -1, ">4"), "b"))``: bounded fields, total."""
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = ast.Constant("") if value.format_spec is None else self.visit(value.format_spec)
                parts.append(ast.Call(func=ast.Name("_format_", ast.Load()), keywords=[],
                                      args=[self.visit(value.value), ast.Constant(value.conversion), spec]))
            else:
                parts.append(self.visit(value))
        call = ast.Call(func=ast.Name("_fstring_", ast.Load()), args=[ast.Tuple(parts, ast.Load())], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed in BPMN scripts")
        return node


@lru_cache(maxsize=2048)
def compile_eval(expression: str) -> Any:
    result = compile_restricted_eval(expression, filename=SCRIPT_FILENAME, policy=_ScriptPolicy)
    if result.errors:
        raise ScriptError(f"expression {expression!r} refused: {'; '.join(result.errors)}")
    return result.code


@lru_cache(maxsize=1024)
def compile_exec(script: str) -> Any:
    result = compile_restricted_exec(script, filename=SCRIPT_FILENAME, policy=_ScriptPolicy)
    if result.errors:
        raise ScriptError(f"script refused: {'; '.join(result.errors)}")
    return result.code


def compile_errors(source: str, mode: str = "eval") -> list[str]:
    """Why ``source`` would be refused when it runs (empty when it compiles): lint's view of the
    sandbox, so a model whose expressions the sandbox refuses is refused at deploy time."""
    compile_ = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    return list(compile_(source.strip() if mode == "eval" else source, filename=SCRIPT_FILENAME,
                         policy=_ScriptPolicy).errors)
