"""Evaluate evidence rules over an instance's stored spans, giving an :class:`EvidenceReport`.

The report is what the evidence gate decides on and what the CLI and UI show, so it keeps what was
observed, not just pass/fail: which spans each rule matched and, per assertion, the value seen on
each span next to the expectation.

Two principles from the design: an empty selection fails every assertion except an explicit
``count`` one that holds for zero spans, and a gate at which no rule is due does not pass
(nothing was shown, so nothing is proven).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scopeflow.handlers.serde import from_data, to_data
from scopeflow.spans import semconv
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.rules import (
    MISSING,
    STAGES,
    Assertion,
    Ref,
    Rule,
    compare,
    format_value,
    select,
    span_value,
)

EMPTY_SELECTION = "empty selection"
PEOPLE, AUTOMATED, NO_DECISIONS = "people", "automated", "none"
DECISION_SETS = {
    NO_DECISIONS: "no human decision was recorded: rules for decisions by people apply",
    PEOPLE: "every human decision was made by a person (an account holding the task's role)",
    AUTOMATED: "at least one human decision was automated (e.g. submit --yes): the weaker rule set for "
               "automated decisions was applied, and this run is not verified as decided by people",
}


@dataclass
class Observation:
    """The value one assertion saw: on one span, or the selection size for ``count``."""

    value: Any                      # None when the attribute is missing
    passed: bool
    span_id: str | None = None      # None for a count observation
    missing: bool = False


@dataclass
class AssertionResult:
    assertion: str                  # as written in the rule
    expected: str                   # e.g. "= 0", "< 30000000000"
    passed: bool
    message: str = ""               # why it failed ("empty selection", "1 of 3 spans: …"), "" on pass
    observed: list[Observation] = field(default_factory=list)


@dataclass
class MatchedSpan:
    span_id: str
    name: str
    element_id: str | None = None   # scopeflow.bpmn.element.id, when the span has one


@dataclass
class RuleResult:
    name: str
    selector: str
    stage: str
    passed: bool
    description: str = ""
    matched: list[MatchedSpan] = field(default_factory=list)
    assertions: list[AssertionResult] = field(default_factory=list)


@dataclass
class EvidenceReport:
    stage: str | None               # the gate's stage; None when every rule was evaluated
    ok: bool
    evaluated_at: str               # ISO 8601, UTC
    at_element: str | None = None   # the BPMN element of the gate that asked (recorded only)
    message: str = ""               # report-level reason, e.g. no rule was due
    rules: list[RuleResult] = field(default_factory=list)
    decisions: str = NO_DECISIONS   # which rule set applied: "people", "automated" or "none"

    def to_data(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> EvidenceReport:
        return from_data(cls, data)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]


def evaluate(rules: list[Rule], spans: list[SpanRecord], *, stage: str | None = None,
             at_element: str | None = None) -> EvidenceReport:
    """Check every rule due at ``stage`` against ``spans``.

    ``stage`` is "deploy" (only rules with ``stage = "deploy"``), "final" (every rule) or None
    (every rule, for the CLI). ``at_element`` is recorded in the report; it does not change which
    rules are due. An unknown stage raises ValueError.
    """
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown evidence stage {stage!r}; expected one of {', '.join(STAGES)}")
    decisions = decisions_of(spans)
    rule_set = AUTOMATED if decisions == AUTOMATED else PEOPLE
    due = [rule for rule in rules if rule.due_at(stage) and rule.applies_to(rule_set)]
    results = [evaluate_rule(rule, spans) for rule in due]
    message = "" if due else f"no evidence rule is due at stage {stage or 'any'}"
    return EvidenceReport(
        stage=stage,
        ok=bool(results) and all(r.passed for r in results),
        evaluated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        at_element=at_element,
        message=message,
        rules=results,
        decisions=decisions,
    )


def decisions_of(spans: list[SpanRecord]) -> str:
    """``automated`` when any human-task span records an automatic decision, ``people`` when there
    are human decisions and none was automated, ``none`` without any (rules for people apply)."""
    flags = [span.attributes.get(semconv.HUMAN_AUTOMATED) for span in spans
             if semconv.HUMAN_ACTOR in span.attributes]
    if any(flag is True for flag in flags):
        return AUTOMATED
    return PEOPLE if flags else NO_DECISIONS


def evaluate_rule(rule: Rule, spans: list[SpanRecord]) -> RuleResult:
    """One rule: select, then run every assertion on the selection."""
    selected = select(rule.selector, spans)
    reference = select(rule.reference, spans)[-1:] if rule.reference is not None else []
    checks = [check_assertion(assertion, selected, reference[0] if reference else None)
              for assertion in rule.assertions]
    return RuleResult(
        name=rule.name,
        selector=rule.selector.text,
        stage=rule.stage,
        passed=all(c.passed for c in checks),
        description=rule.description,
        matched=[_matched(span) for span in selected],
        assertions=checks,
    )


def check_assertion(assertion: Assertion, selected: list[SpanRecord],
                    reference: SpanRecord | None = None) -> AssertionResult:
    """Run one assertion: ``count`` on the selection size, ``distinct`` on the number of different
    values, any other on every selected span. ``@key`` expectations read ``reference``."""
    expected = assertion.expectation()
    target = assertion.expected
    if isinstance(target, Ref):
        target = span_value(reference, target.key) if reference is not None else MISSING
        if target is MISSING:
            where = "the reference span" if reference is not None else "any span (the reference selected none)"
            return AssertionResult(assertion.text, expected, False, f"{assertion.expected} is missing on {where}")
        expected = f"{expected} ({format_value(target)})"
    key = assertion.key
    if key is None or assertion.distinct:
        size = len(selected) if key is None else len(_distinct_values(key, selected))
        what = "count" if key is None else f"distinct {key}"
        passed = compare(size, assertion.op, target)
        message = "" if passed else f"{what} is {size}, expected {expected}"
        return AssertionResult(assertion.text, expected, passed, message, [Observation(size, passed)])
    if not selected:
        return AssertionResult(assertion.text, expected, False, EMPTY_SELECTION)
    observed = [_observe(key, assertion.op, target, span) for span in selected]
    failing = [o for o in observed if not o.passed]
    message = ""
    if failing:
        first = failing[0]
        seen = "missing" if first.missing else format_value(first.value)
        message = f"{len(failing)} of {len(observed)} span(s) fail; span {first.span_id} has {seen}"
    return AssertionResult(assertion.text, expected, not failing, message, observed)


def _distinct_values(key: str, spans: list[SpanRecord]) -> set[str]:
    values = (span_value(span, key) for span in spans)
    return {format_value(value) for value in values if value is not MISSING}


def _observe(key: str, op: str, expected: Any, span: SpanRecord) -> Observation:
    value = span_value(span, key)
    passed = compare(value, op, expected)
    if value is MISSING:
        return Observation(None, passed, span.span_id, missing=True)
    return Observation(value, passed, span.span_id)


def _matched(span: SpanRecord) -> MatchedSpan:
    element = span.attributes.get(semconv.BPMN_ELEMENT_ID)
    return MatchedSpan(span.span_id, span.name, element if isinstance(element, str) else None)


def render_text(report: EvidenceReport) -> str:
    """The report for a terminal: a headline, one ✓/✗ line per rule, details under failures."""
    held = sum(r.passed for r in report.rules)
    verdict = "HOLDS" if report.ok else "DOES NOT HOLD"
    lines = [f"Evidence (stage {report.stage or 'all'}): {held} of {len(report.rules)} rule(s) hold — {verdict}",
             f"  Rule set: {report.decisions} — {DECISION_SETS.get(report.decisions, '')}"]
    if report.message:
        lines.append(f"  {report.message}")
    for rule in report.rules:
        mark = "✓" if rule.passed else "✗"
        lines.append(f"{mark} {rule.name}  ({len(rule.matched)} span(s))")
        if rule.passed:
            continue
        lines.append(f"    selector: {rule.selector}")
        for check in rule.assertions:
            if not check.passed:
                lines.append(f"    {check.assertion}: {check.message}")
    return "\n".join(lines)
