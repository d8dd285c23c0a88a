"""Expressions written for other engines, translated to the Python that Scopeflow's sandbox runs.

Camunda 7 writes conditions in JUEL (``${approved}``), Camunda 8 in FEEL (``= amount > 100``), and
most modelers write timers as bare ISO 8601 text (``P7D``) where SpiffWorkflow expects a Python
expression (``"P7D"``). This module translates what it can translate *exactly* and refuses the rest
with a sentence a designer can act on; it never guesses.

The subset, for JUEL (``${…}`` or ``#{…}``) and FEEL (a leading ``=``, or ``language="feel"``):

- literals: integers, decimals, strings in single or double quotes, ``true``, ``false``, ``null``;
- variables and dotted paths (``order.total`` reads ``order["total"]`` of the task data);
- comparisons ``== != < > <= >=`` (FEEL's equality is a single ``=``; JUEL also has ``eq ne lt gt
  le ge``);
- boolean ``and or not`` (JUEL also ``&& || !`` and ``empty x``; FEEL ``not(x)``);
- arithmetic ``+ - * /`` (JUEL also ``%``, ``div``, ``mod``) and parentheses;
- JUEL ``execution.getVariable("x")`` reads the variable ``x``.

Anything else (method calls, ternaries, FEEL ranges, lists, ``in``, functions, Groovy or JavaScript)
is refused: :class:`DialectError` names the token that is outside the subset.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

JUEL, FEEL, PYTHON = "JUEL", "FEEL", "Python"


class DialectError(ValueError):
    """An expression that cannot be translated to Python honestly (the message says why)."""


@dataclass(frozen=True)
class Translation:
    python: str
    dialect: str          # JUEL, FEEL or Python (unchanged)


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<getvar>execution\.getVariable\(\s*(?:"[A-Za-z_]\w*"|'[A-Za-z_]\w*')\s*\))
  | (?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!=()+\-*/%])
""", re.VERBOSE)

_WORDS = {
    JUEL: {"and": "and", "or": "or", "not": "not", "eq": "==", "ne": "!=", "lt": "<", "gt": ">",
           "le": "<=", "ge": ">=", "div": "/", "mod": "%", "empty": "not", "true": "True",
           "false": "False", "null": "None"},
    FEEL: {"and": "and", "or": "or", "not": "not", "true": "True", "false": "False", "null": "None"},
}
_OPS = {
    JUEL: {"&&": "and", "||": "or", "!": "not", "==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=",
           ">=": ">=", "(": "(", ")": ")", "+": "+", "-": "-", "*": "*", "/": "/", "%": "%"},
    FEEL: {"=": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "(": "(", ")": ")",
           "+": "+", "-": "-", "*": "*", "/": "/"},
}
_ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
                  ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Compare, ast.Eq, ast.NotEq,
                  ast.Lt, ast.Gt, ast.LtE, ast.GtE, ast.Name, ast.Load, ast.Constant, ast.Subscript)


def detect(text: str, language: str | None = None) -> str:
    """Which dialect ``text`` is written in (the ``language`` attribute wins when it names one)."""
    lang = (language or "").strip().lower()
    stripped = text.strip()
    named = lang.rstrip("/").rsplit("/", 1)[-1]   # https://www.omg.org/spec/DMN/20191111/FEEL/ names FEEL
    if lang and "feel" not in named and named not in ("juel", "uel", "el") and not any(
            word in lang for word in ("python", "xpath", "spiff", "tformalexpression")):
        raise DialectError(f"expression language {language} is not supported (Scopeflow runs Python, "
                           "simple JUEL and simple FEEL)")
    if "feel" in named or (stripped.startswith("=") and not stripped.startswith("==")):
        return FEEL
    if named in ("juel", "uel", "el") or stripped.startswith(("${", "#{")):
        return JUEL
    return PYTHON


def translate(text: str, language: str | None = None) -> Translation:
    """``text`` as a Python expression; unchanged when it already is Python."""
    dialect = detect(text, language)
    if dialect == PYTHON:
        return Translation(text.strip(), PYTHON)
    body = text.strip()
    if dialect == JUEL:
        match = re.fullmatch(r"[$#]\{(.*)\}", body, re.S)
        if match is None:
            raise DialectError(f"JUEL expression {_quoted(body)} must be one ${{…}} block")
        body = match.group(1)
    elif body.startswith("="):
        body = body[1:]
    python = " ".join(_tokens(body, dialect))
    if not python:
        raise DialectError(f"{dialect} expression {_quoted(text)} is empty")
    _check_subset(python, dialect, text)
    return Translation(python, dialect)


def _tokens(body: str, dialect: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None:
            raise DialectError(f"{dialect} expression {_quoted(body.strip())}: {_quoted(body[pos:pos + 12])} "
                               "is outside the supported subset")
        pos = match.end()
        kind, value = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind in ("string", "number"):
            out.append(value)
        elif kind == "getvar" and dialect == JUEL:
            out.append(re.search(r"[\"']([A-Za-z_]\w*)[\"']", value).group(1))
        elif kind == "name":
            out.append(_name(value, dialect, body))
        elif kind == "op" and value in _OPS[dialect]:
            out.append(_OPS[dialect][value])
        else:
            raise DialectError(f"{dialect} expression {_quoted(body.strip())}: {_quoted(value)} is outside "
                               "the supported subset")
    return out


def _name(value: str, dialect: str, body: str) -> str:
    word = value.lower() if dialect == JUEL else value
    if "." not in value and word in _WORDS[dialect]:
        return _WORDS[dialect][word]
    head, *path = value.split(".")
    if head in _WORDS[dialect] or head in ("execution", "task", "environment"):
        raise DialectError(f"{dialect} expression {_quoted(body.strip())}: {_quoted(value)} is outside "
                           "the supported subset")
    return head + "".join(f'["{part}"]' for part in path)


def _check_subset(python: str, dialect: str, original: str) -> None:
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError:
        raise DialectError(f"{dialect} expression {_quoted(original.strip())} is not a complete expression "
                           "of the supported subset") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise DialectError(f"{dialect} expression {_quoted(original.strip())} uses a construct outside "
                               "the supported subset")


# ------------------------------------------------------------------------------ timers

_ISO_DURATION = r"-?P(?=\d|T\d)(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?W)?(?:\d+(?:[.,]\d+)?D)?" \
                r"(?:T(?=\d)(?:\d+(?:[.,]\d+)?H)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?S)?)?"
_ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_ISO_POINT = rf"(?:{_ISO_DURATION}|{_ISO_DATETIME})"
_ISO_TIMER = re.compile(rf"(?:R\d*/{_ISO_POINT}(?:/{_ISO_POINT})?|{_ISO_POINT})", re.IGNORECASE)


def is_iso_literal(text: str) -> bool:
    """``P7D``, ``PT5M``, ``R3/PT1H``, ``2030-01-01T09:00:00Z``: ISO text that is not yet a Python string."""
    return bool(_ISO_TIMER.fullmatch(text.strip()))


def timer_expression(text: str, language: str | None = None) -> Translation:
    """A timer's text as a Python expression: bare ISO text is quoted, JUEL/FEEL translated."""
    stripped = text.strip()
    if is_iso_literal(stripped):
        return Translation(repr(stripped), "ISO 8601")
    if _CRON.fullmatch(stripped):
        raise DialectError(f"cron expression {_quoted(stripped)} is not supported: use an ISO 8601 cycle "
                           "such as R/PT5M or R/2030-01-01T06:00:00Z/P1D")
    return translate(stripped, language)


_CRON = re.compile(r"(?:[0-9*?/,LW#A-Z-]+\s+){4,6}[0-9*?/,LW#A-Z-]+", re.IGNORECASE)


def literal_value(expression: str) -> str | None:
    """The string an expression stands for when it is a plain string literal, else None."""
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        return None
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _quoted(text: str) -> str:
    short = text if len(text) <= 80 else text[:77] + "..."
    return f"\u201c{short}\u201d"
