"""Evidence rules: the ``<model>.evidence.toml`` files and the selector/assertion language in them.

A rule picks spans with a *selector* and states *assertions* that must hold for them::

    [[rule]]
    name = "tests ran and passed"
    selector = 'span[scopeflow.bpmn.element.id="verify_build"]:last'
    assert = ["attr:scopeflow.tests.failed = 0", "attr:scopeflow.tests.passed > 0"]
    stage = "deploy"          # optional, "deploy" or "final" (default "final")
    description = "..."       # optional

``stage`` says which evidence gate a rule is due at: "deploy" rules are checked at the gate before
deploying *and* at the final gate, "final" rules only at the final gate. (An element-based
``before = <element id>`` was considered and left out: which gate runs "before" an element depends
on the diagram's paths, so it cannot be decided from the rules file alone.)

Selectors (Tracetest-like):

* ``span`` selects every span; ``span[key="v" key2=3]`` selects spans whose attributes match all
  filters (space = AND); ``a, b`` is the union of two selectors (OR).
* Filter operators: ``= != < <= > >= contains not-contains``. The keys ``name``, ``status``,
  ``kind`` and ``duration`` (nanoseconds) address the span's own fields instead of attributes.
* ``span[a] span[b]`` selects spans matching ``b`` that have an ancestor matching ``a``
  (by ``parent_span_id``, within one trace).
* ``:first``, ``:last``, ``:nth_child(n)`` (1-based) pick from one step's matches, by start time.

Assertions: ``attr:<key> <op> <value>`` (the same keys and operators), ``count <op> <integer>``, or
``distinct:<key> <op> <integer>`` (how many different values of ``key`` the selection has).
The expected side may be ``@<key>`` instead of a literal: the value of ``key`` on the one span the
rule's ``reference`` selector picks (its last match), so a rule can compare what it observes with
another observed value, e.g. the builds that completed with the tasks the planner planned::

    selector = 'span[scopeflow.bpmn.element.id="build_each" scopeflow.task.outcome="completed"]'
    reference = 'span[scopeflow.bpmn.element.id="plan_task"]:last'
    assert = ["distinct:scopeflow.build.task = @scopeflow.plan.build_tasks"]

A missing reference span or attribute fails the assertion.

``decisions = "people"`` or ``"automated"`` makes a rule apply only to runs whose human decisions
were all made by people (accounts), or to runs where a policy such as ``submit --yes`` decided at
least one (the weaker set, stated as such in every report); the default ``"any"`` applies always.
Values are numbers, quoted strings, ``true``/``false``, or durations (``30s``, ``500ms``; units
ns us ms s m h), which become integer nanoseconds. A missing attribute never matches, whatever the
operator. Numbers compare with numbers, strings with strings, booleans with booleans; a value of
another type does not match.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord

STAGES = ("deploy", "final")
DEFAULT_STAGE = "final"
RULE_KEYS = ("name", "selector", "assert", "stage", "description", "reference", "decisions")
DECISION_MODES = ("any", "people", "automated")
FIELD_KEYS = ("name", "status", "kind", "duration")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "contains", "not-contains")
COUNT_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
PSEUDO_CLASSES = ("first", "last", "nth_child")
DURATION_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}

Value = str | int | float | bool


class RuleError(ValueError):
    """A rules file or expression that cannot be used; the message is one line and says where."""


class _Missing:
    """Marks an attribute the span does not have (distinct from any stored value)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


# --------------------------------------------------------------------------- language objects


@dataclass(frozen=True)
class Filter:
    """One ``key op value`` test inside ``span[...]``."""

    key: str
    op: str
    value: Value

    def matches(self, span: SpanRecord) -> bool:
        return compare(span_value(span, self.key), self.op, self.value)


@dataclass(frozen=True)
class Step:
    """One ``span[...]:pseudo`` in a descendant chain."""

    filters: tuple[Filter, ...] = ()
    pseudo: str | None = None      # first | last | nth_child
    nth: int = 0                   # for nth_child, 1-based

    def matches(self, span: SpanRecord) -> bool:
        return all(f.matches(span) for f in self.filters)

    def pick(self, candidates: list[SpanRecord]) -> list[SpanRecord]:
        """Apply the pseudo-class to matches already ordered by start time."""
        if self.pseudo == "first":
            return candidates[:1]
        if self.pseudo == "last":
            return candidates[-1:]
        if self.pseudo == "nth_child":
            return candidates[self.nth - 1:self.nth]
        return candidates


@dataclass(frozen=True)
class Selector:
    """A parsed selector: alternatives (OR), each a descendant chain of steps."""

    text: str
    alternatives: tuple[tuple[Step, ...], ...]

    def filters(self) -> list[Filter]:
        return [f for chain in self.alternatives for step in chain for f in step.filters]

    def element_ids(self) -> set[str]:
        """The BPMN element ids this selector names (for linting against a diagram)."""
        return {str(f.value) for f in self.filters() if f.key == semconv.BPMN_ELEMENT_ID}


@dataclass(frozen=True)
class Ref:
    """``@<key>`` on the expected side: the value of ``key`` on the rule's reference span."""

    key: str

    def __str__(self) -> str:
        return f"@{self.key}"


@dataclass(frozen=True)
class Assertion:
    """``attr:<key> <op> <value>`` (``key`` set), ``count <op> <n>`` (``key`` is None) or
    ``distinct:<key> <op> <n>`` (``distinct`` set)."""

    text: str
    key: str | None
    op: str
    expected: Value | Ref
    distinct: bool = False

    @property
    def is_count(self) -> bool:
        return self.key is None

    def holds_on_empty(self) -> bool:
        """Whether this assertion passes when nothing was selected (only ``count`` ones can)."""
        return self.is_count and not isinstance(self.expected, Ref) and compare(0, self.op, self.expected)

    def expectation(self) -> str:
        """The expected side as written, e.g. ``= 0``, ``contains "ok"`` or ``= @scopeflow.plan.tasks``."""
        shown = str(self.expected) if isinstance(self.expected, Ref) else format_value(self.expected)
        return f"{self.op} {shown}"


@dataclass(frozen=True)
class Rule:
    name: str
    selector: Selector
    assertions: tuple[Assertion, ...]
    stage: str = DEFAULT_STAGE
    description: str = ""
    reference: Selector | None = None
    decisions: str = "any"

    def applies_to(self, decisions: str) -> bool:
        """Whether the rule belongs to the set for runs whose decisions were ``decisions``."""
        return self.decisions in ("any", decisions)

    def due_at(self, stage: str | None) -> bool:
        """Whether the gate for ``stage`` checks this rule (None: every rule is due)."""
        if stage is None or stage == "final":
            return True
        return self.stage == stage


# --------------------------------------------------------------------------- value semantics


def span_value(span: SpanRecord, key: str) -> Any:
    """What a key means on a span: one of its own fields, else its attribute (or MISSING)."""
    if key == "name":
        return span.name
    if key == "status":
        return span.status
    if key == "kind":
        return span.kind
    if key == "duration":
        return span.duration_ns
    return span.attributes.get(key, MISSING)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(actual: Any, expected: Value) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if _is_number(expected):
        return _is_number(actual) and actual == expected
    return isinstance(actual, str) and actual == expected


def _contains(actual: Any, expected: Value) -> bool | None:
    """None when ``contains`` does not apply to the stored value's type."""
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list | tuple):
        return any(_equal(item, expected) for item in actual)
    return None


def compare(actual: Any, op: str, expected: Value) -> bool:
    """``actual op expected`` under the rule language's typing (see the module docstring)."""
    if actual is MISSING:
        return False
    if op in ("contains", "not-contains"):
        hit = _contains(actual, expected)
        if hit is None:
            return False
        return hit if op == "contains" else not hit
    if op == "=":
        return _equal(actual, expected)
    if op == "!=":
        return not _equal(actual, expected)
    if not (_is_number(actual) and _is_number(expected)):
        return False
    return {"<": actual < expected, "<=": actual <= expected,
            ">": actual > expected, ">=": actual >= expected}[op]


def format_value(value: Any) -> str:
    """A value as a rule would spell it (strings quoted, booleans lowercase)."""
    if value is MISSING:
        return "<missing>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- tokenizer + parser

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?(?:ns|us|ms|s|m|h)?)(?![\w.])
      | (?P<op><=|>=|!=|=|<|>)
      | (?P<ref>@[A-Za-z_][A-Za-z0-9_.\-]*)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
      | (?P<punct>[\[\],:()])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str           # string | number | op | word | punct | end
    text: str
    pos: int            # 0-based offset into the expression


def _tokenize(text: str, what: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise RuleError(f"{what}: unexpected character {text[pos]!r} at position {pos + 1} in {text!r}")
        if m.lastgroup != "ws":
            tokens.append(_Token(m.lastgroup or "", m.group(), pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _Parser:
    """Recursive descent over the tokens of one selector or assertion."""

    def __init__(self, text: str, what: str):
        self.text = text
        self.what = what
        self.tokens = _tokenize(text, what)
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def fail(self, expected: str, token: _Token | None = None) -> RuleError:
        token = token or self.peek()
        found = "end of text" if token.kind == "end" else repr(token.text)
        return RuleError(f"{self.what}: expected {expected}, found {found} at position {token.pos + 1} "
                         f"in {self.text!r}")

    def expect_punct(self, char: str) -> None:
        if self.peek().kind != "punct" or self.peek().text != char:
            raise self.fail(repr(char))
        self.take()

    def at_punct(self, char: str) -> bool:
        return self.peek().kind == "punct" and self.peek().text == char

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.fail("end of text")

    def operator(self, allowed: Iterable[str]) -> str:
        token = self.peek()
        if token.kind in ("op", "word") and token.text in allowed:
            return self.take().text
        raise self.fail("an operator (" + " ".join(allowed) + ")")

    def value(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "number":
            return _number(token.text)
        if token.kind == "word" and token.text in ("true", "false"):
            return token.text == "true"
        raise self.fail("a value (number, duration, quoted string, true or false)", token)

    def key(self) -> str:
        if self.peek().kind != "word":
            raise self.fail("an attribute key")
        return self.take().text

    # selector := chain (',' chain)* ; chain := step+ ; step := 'span' ['[' filter* ']'] [':' pseudo]
    def selector(self) -> Selector:
        chains = [self.chain()]
        while self.at_punct(","):
            self.take()
            chains.append(self.chain())
        self.expect_end()
        return Selector(self.text, tuple(chains))

    def chain(self) -> tuple[Step, ...]:
        steps = [self.step()]
        while self.peek().kind == "word" and self.peek().text == "span":
            steps.append(self.step())
        return tuple(steps)

    def step(self) -> Step:
        if not (self.peek().kind == "word" and self.peek().text == "span"):
            raise self.fail("'span'")
        self.take()
        filters: list[Filter] = []
        if self.at_punct("["):
            self.take()
            while not self.at_punct("]"):
                if self.peek().kind != "word":
                    raise self.fail("an attribute key or ']'")
                filters.append(Filter(self.key(), self.operator(OPERATORS), self.value()))
            self.take()
        pseudo, nth = None, 0
        if self.at_punct(":"):
            self.take()
            pseudo, nth = self.pseudo()
        return Step(tuple(filters), pseudo, nth)

    def pseudo(self) -> tuple[str, int]:
        token = self.take()
        if token.kind != "word" or token.text not in PSEUDO_CLASSES:
            raise self.fail("a pseudo-class (first, last, nth_child(n))", token)
        if token.text != "nth_child":
            return token.text, 0
        self.expect_punct("(")
        n = self.take()
        if n.kind != "number" or not n.text.isdigit() or int(n.text) < 1:
            raise self.fail("a positive whole number", n)
        self.expect_punct(")")
        return "nth_child", int(n.text)

    def reference(self) -> Ref | None:
        if self.peek().kind == "ref":
            return Ref(self.take().text[1:])
        return None

    def whole_number(self, after: str) -> int | Ref:
        ref = self.reference()
        if ref is not None:
            return ref
        n = self.peek()
        expected = self.value()
        if not isinstance(expected, int) or isinstance(expected, bool) or not n.text.lstrip("-").isdigit():
            raise self.fail(f"a whole number or @<key> after '{after}'", n)
        return expected

    # assertion := 'count' op number | 'distinct' ':' key op number | 'attr' ':' key op value
    # (number and value may also be '@<key>', read from the rule's reference span)
    def assertion(self) -> Assertion:
        token = self.take()
        if token.kind == "word" and token.text == "count":
            op = self.operator(COUNT_OPERATORS)
            expected = self.whole_number(f"count {op}")
            self.expect_end()
            return Assertion(self.text, None, op, expected)
        if token.kind != "word" or token.text not in ("attr", "distinct"):
            raise self.fail("'attr:<key>', 'distinct:<key>' or 'count'", token)
        self.expect_punct(":")
        key = self.key()
        if token.text == "distinct":
            op = self.operator(COUNT_OPERATORS)
            expected = self.whole_number(f"distinct:{key} {op}")
            self.expect_end()
            return Assertion(self.text, key, op, expected, distinct=True)
        op = self.operator(OPERATORS)
        expected = self.reference() or self.value()
        self.expect_end()
        return Assertion(self.text, key, op, expected)


def _number(text: str) -> int | float:
    unit = re.search(r"[a-z]+$", text)
    if unit:
        return int(Decimal(text[:unit.start()]) * DURATION_NS[unit.group()])
    return float(text) if "." in text else int(text)


def parse_selector(text: str) -> Selector:
    """Parse a selector; raises :class:`RuleError` naming the position of the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("selector: empty selector (use 'span' to select every span)")
    return _Parser(text, "selector").selector()


def parse_assertion(text: str) -> Assertion:
    """Parse one assertion; raises :class:`RuleError` naming the position of the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("assertion: empty assertion")
    return _Parser(text, "assertion").assertion()


# --------------------------------------------------------------------------- selection


def select(selector: Selector, spans: list[SpanRecord]) -> list[SpanRecord]:
    """The spans a selector picks, ordered by start time (then ``seq``), without duplicates."""
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.seq))
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    chosen: dict[tuple[str, str], SpanRecord] = {}
    for chain in selector.alternatives:
        current: list[SpanRecord] | None = None
        for step in chain:
            candidates = [s for s in ordered if step.matches(s)]
            if current is not None:
                scope = {(s.trace_id, s.span_id) for s in current}
                candidates = [s for s in candidates if _has_ancestor_in(s, scope, by_id)]
            current = step.pick(candidates)
        for span in current or []:
            chosen[(span.trace_id, span.span_id)] = span
    return sorted(chosen.values(), key=lambda s: (s.start_ns, s.seq))


def _has_ancestor_in(span: SpanRecord, scope: set[tuple[str, str]],
                     by_id: dict[tuple[str, str], SpanRecord]) -> bool:
    seen: set[str] = set()
    parent = span.parent_span_id
    while parent and parent not in seen:
        seen.add(parent)
        key = (span.trace_id, parent)
        if key in scope:
            return True
        node = by_id.get(key)
        if node is None:
            return False
        parent = node.parent_span_id
    return False


# --------------------------------------------------------------------------- rules files


def load_rules(path: str | Path) -> list[Rule]:
    """Read a ``*.evidence.toml`` file; the first problem raises :class:`RuleError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read rules file ({getattr(exc, 'strerror', None) or exc})") from None
    return parse_rules(text, path.name)


def parse_rules(text: str, source: str = "") -> list[Rule]:
    """Rules from the text of a rules file; ``source`` (a file name) prefixes error messages."""
    rules, problems = _parse_text(text, source)
    if problems:
        raise RuleError(problems[0])
    return rules


def lint_rules(path: str | Path, known_element_ids: set[str]) -> list[str]:
    """Every problem in a rules file, one message each: unparsable expressions, unknown keys,
    duplicate names, and element ids (in selectors) that the diagram does not have."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read rules file ({getattr(exc, 'strerror', None) or exc})"]
    return lint_rules_text(text, known_element_ids, path.name)


def lint_rules_text(text: str, known_element_ids: set[str], source: str = "") -> list[str]:
    """:func:`lint_rules` for the text of a rules file (the model catalog holds files as text)."""
    rules, problems = _parse_text(text, source)
    prefix = f"{source}: " if source else ""
    for rule in rules:
        named = rule.selector.element_ids() | (rule.reference.element_ids() if rule.reference else set())
        for element_id in sorted(named - set(known_element_ids)):
            problems.append(f"{prefix}rule {rule.name!r}: selector names unknown element id {element_id!r}")
    return problems


def _parse_text(text: str, source: str) -> tuple[list[Rule], list[str]]:
    """(rules that parsed, problems) — a file-level problem returns no rules."""
    prefix = f"{source}: " if source else ""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return [], [f"{prefix}not valid TOML: {str(exc).splitlines()[0]}"]
    extra = sorted(set(document) - {"rule"})
    if extra:
        return [], [f"{prefix}unknown top-level key(s) {', '.join(extra)}; rules go in [[rule]] tables"]
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        return [], [f"{prefix}'rule' must be an array of tables ([[rule]])"]
    rules, problems, seen = [], [], set()
    for index, table in enumerate(tables, start=1):
        label = f"{prefix}rule {table.get('name')!r}" if table.get("name") else f"{prefix}rule #{index}"
        rule, rule_problems = _parse_table(table)
        problems += [f"{label}: {p}" for p in rule_problems]
        if rule is None:
            continue
        if rule.name in seen:
            problems.append(f"{label}: duplicate rule name")
            continue
        seen.add(rule.name)
        rules.append(rule)
    return rules, problems


def _parse_table(table: dict[str, Any]) -> tuple[Rule | None, list[str]]:
    problems = [f"unknown key {k!r} (allowed: {', '.join(RULE_KEYS)})" for k in sorted(set(table) - set(RULE_KEYS))]
    name, stage = table.get("name"), table.get("stage", DEFAULT_STAGE)
    description = table.get("description", "")
    if not isinstance(name, str) or not name.strip():
        problems.append("'name' must be a non-empty string")
    if stage not in STAGES:
        problems.append(f"'stage' must be one of {', '.join(STAGES)}, not {stage!r}")
    if not isinstance(description, str):
        problems.append("'description' must be a string")
    decisions = table.get("decisions", "any")
    if decisions not in DECISION_MODES:
        problems.append(f"'decisions' must be one of {', '.join(DECISION_MODES)}, not {decisions!r}")
    selector = _collect(problems, parse_selector, table.get("selector"), "'selector' is missing")
    reference = None
    if "reference" in table:
        reference = _collect(problems, parse_selector, table.get("reference"), "'reference' is empty")
    raw = table.get("assert")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        problems.append("'assert' must be a non-empty list of assertions")
        texts = []
    assertions = [_collect(problems, parse_assertion, text, "") for text in texts]
    if reference is None and any(isinstance(a.expected, Ref) for a in assertions if a is not None):
        problems.append("an assertion compares with '@<key>' but the rule has no 'reference' selector")
    if problems or selector is None or None in assertions:
        return None, problems
    return Rule(name, selector, tuple(assertions), stage, description, reference, decisions), []


def _collect(problems: list[str], parse: Any, text: Any, missing: str) -> Any:
    """Run a parser, appending its error (or ``missing`` for an absent value) to ``problems``."""
    if text is None and missing:
        problems.append(missing)
        return None
    if not isinstance(text, str):
        problems.append(f"expected a string, got {type(text).__name__}")
        return None
    try:
        return parse(text)
    except RuleError as exc:
        problems.append(str(exc))
        return None
