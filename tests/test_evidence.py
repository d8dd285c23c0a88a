"""Evaluating evidence rules over stored spans: the report the evidence gate decides on."""

from __future__ import annotations

import json

import pytest

from scopeflow.spans.evidence import EMPTY_SELECTION, EvidenceReport, evaluate, render_text
from scopeflow.spans.record import SpanRecord
from scopeflow.spans.rules import Rule, parse_assertion, parse_selector

TRACE = "12" * 16


def task_span(span_id: str, element: str, start: int, duration_ns: int = 5_000, **attributes: object) -> SpanRecord:
    attrs = {"scopeflow.bpmn.element.id": element}
    attrs.update({k.replace("__", "."): v for k, v in attributes.items()})
    return SpanRecord(TRACE, span_id, None, element, start, start + duration_ns, attributes=attrs)


def rule(name: str, selector: str, *assertions: str, stage: str = "final") -> Rule:
    return Rule(name, parse_selector(selector), tuple(parse_assertion(a) for a in assertions), stage)


SPANS = [
    task_span("1" * 16, "verify_build", 100, scopeflow__tests__passed=3, scopeflow__tests__failed=1),
    task_span("2" * 16, "verify_build", 200, scopeflow__tests__passed=4, scopeflow__tests__failed=0),
    task_span("3" * 16, "deploy_release", 300, duration_ns=45 * 10**9),
]
TESTS_GREEN = rule("tests green", 'span[scopeflow.bpmn.element.id="verify_build"]:last',
                   "attr:scopeflow.tests.failed = 0", "attr:scopeflow.tests.passed > 0", stage="deploy")
DEPLOYED = rule("deployed once", 'span[scopeflow.bpmn.element.id="deploy_release"]', "count = 1")


def test_passing_rules_make_an_ok_report_with_what_was_observed():
    report = evaluate([TESTS_GREEN, DEPLOYED], SPANS, stage="final", at_element="final_gate")
    assert report.ok and report.stage == "final" and report.at_element == "final_gate"
    green = report.rules[0]
    assert green.passed and [m.span_id for m in green.matched] == ["2" * 16]
    assert green.matched[0].element_id == "verify_build"
    assert [(o.span_id, o.value, o.passed) for o in green.assertions[0].observed] == [("2" * 16, 0, True)]
    assert green.assertions[0].expected == "= 0"
    assert report.rules[1].assertions[0].observed[0].value == 1


def test_an_assertion_must_hold_on_every_selected_span():
    all_runs = rule("every run green", 'span[scopeflow.bpmn.element.id="verify_build"]', "attr:scopeflow.tests.failed = 0")
    report = evaluate([all_runs], SPANS)
    check = report.rules[0].assertions[0]
    assert not report.ok and not check.passed
    assert [o.passed for o in check.observed] == [False, True]
    assert check.message == f"1 of 2 span(s) fail; span {'1' * 16} has 1"


def test_empty_selection_fails_unless_counting_zero():
    nothing = 'span[scopeflow.bpmn.element.id="security_scan"]'
    report = evaluate([rule("scanned", nothing, "attr:scopeflow.security.high = 0"),
                       rule("never rolled back", nothing, "count = 0"),
                       rule("at least one", nothing, "count >= 1")], SPANS)
    scanned, never, at_least = report.rules
    assert not scanned.passed and scanned.assertions[0].message == EMPTY_SELECTION
    assert never.passed
    assert not at_least.passed and at_least.assertions[0].message == "count is 0, expected >= 1"


def test_missing_attribute_is_reported_as_missing():
    report = evaluate([rule("lint ran", 'span[scopeflow.bpmn.element.id="deploy_release"]', "attr:scopeflow.lint.errors = 0")], SPANS)
    observation = report.rules[0].assertions[0].observed[0]
    assert observation.missing and observation.value is None and not observation.passed
    assert report.rules[0].assertions[0].message.endswith("has missing")


def test_duration_assertions_use_units():
    slow = rule("deploy is quick", 'span[scopeflow.bpmn.element.id="deploy_release"]', "attr:duration < 30s")
    fast = rule("deploy under an hour", 'span[scopeflow.bpmn.element.id="deploy_release"]', "attr:duration < 1h")
    report = evaluate([slow, fast], SPANS)
    assert [r.passed for r in report.rules] == [False, True]


def test_deploy_gate_checks_only_deploy_rules_and_final_gate_checks_all():
    assert [r.name for r in evaluate([TESTS_GREEN, DEPLOYED], SPANS, stage="deploy").rules] == ["tests green"]
    assert [r.name for r in evaluate([TESTS_GREEN, DEPLOYED], SPANS, stage="final").rules] == ["tests green", "deployed once"]


def test_a_gate_with_no_due_rule_does_not_pass():
    report = evaluate([DEPLOYED], SPANS, stage="deploy")
    assert not report.ok and report.rules == []
    assert report.message == "no evidence rule is due at stage deploy"


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown evidence stage 'deploy2'"):
        evaluate([DEPLOYED], SPANS, stage="deploy2")


def test_report_round_trips_through_plain_json():
    report = evaluate([TESTS_GREEN, DEPLOYED, rule("none", 'span[name="x"]', "attr:a = 1")], SPANS, stage="final")
    data = json.loads(json.dumps(report.to_data()))
    assert EvidenceReport.from_data(data) == report


def test_render_text_marks_each_rule_and_explains_failures():
    report = evaluate([TESTS_GREEN, rule("scanned", 'span[name="scan"]', "attr:scopeflow.security.high = 0")], SPANS, stage="final")
    assert render_text(report).splitlines() == [
        "Evidence (stage final): 1 of 2 rule(s) hold — DOES NOT HOLD",
        "  Rule set: none — no human decision was recorded: rules for decisions by people apply",
        "✓ tests green  (1 span(s))",
        "✗ scanned  (0 span(s))",
        '    selector: span[name="scan"]',
        "    attr:scopeflow.security.high = 0: empty selection",
    ]
