"""The evidence rule language: selectors, assertions, rules files and their lint."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.spans.record import SpanRecord
from scopeflow.spans.rules import (
    RuleError,
    lint_rules,
    lint_rules_text,
    load_rules,
    parse_assertion,
    parse_rules,
    parse_selector,
    select,
)

TRACE = "ab" * 16


def span(span_id: str, name: str = "task", start: int = 0, parent: str | None = None,
         status: str = "UNSET", duration: int = 10, **attributes: object) -> SpanRecord:
    attrs = {k.replace("__", "."): v for k, v in attributes.items()}
    return SpanRecord(TRACE, span_id, parent, name, start, start + duration, status=status, attributes=attrs)


@pytest.fixture
def spans() -> list[SpanRecord]:
    return [
        span("a" * 16, "advance", start=0, duration=1000),
        span("b" * 16, "verify_build", start=10, parent="a" * 16,
             scopeflow__bpmn__element__id="verify_build", scopeflow__tests__passed=7, scopeflow__tests__failed=0),
        span("c" * 16, "pytest", start=20, parent="b" * 16, tool="pytest", flags=["fast", "unit"]),
        span("d" * 16, "verify_build", start=30, parent="a" * 16, status="ERROR",
             scopeflow__bpmn__element__id="verify_build", scopeflow__tests__passed=5, scopeflow__tests__failed=2),
        span("e" * 16, "deploy", start=40, scopeflow__bpmn__element__id="deploy_release", ok=True),
    ]


def ids(selected: list[SpanRecord]) -> list[str]:
    return [s.span_id[0] for s in selected]


def test_bare_span_selects_everything_in_start_order(spans):
    assert ids(select(parse_selector("span"), list(reversed(spans)))) == ["a", "b", "c", "d", "e"]


def test_attribute_filters_are_anded(spans):
    selector = parse_selector('span[scopeflow.bpmn.element.id="verify_build" scopeflow.tests.failed > 0]')
    assert ids(select(selector, spans)) == ["d"]


def test_comma_is_or_without_duplicates(spans):
    selector = parse_selector('span[name="deploy"], span[ok=true], span[name="advance"]')
    assert ids(select(selector, spans)) == ["a", "e"]


def test_own_fields_are_addressable(spans):
    assert ids(select(parse_selector('span[status="ERROR"]'), spans)) == ["d"]
    assert ids(select(parse_selector('span[kind="INTERNAL" duration >= 1us]'), spans)) == ["a"]


def test_contains_works_on_strings_and_lists(spans):
    assert ids(select(parse_selector('span[name contains "build"]'), spans)) == ["b", "d"]
    assert ids(select(parse_selector('span[flags contains "unit"]'), spans)) == ["c"]
    assert ids(select(parse_selector('span[flags not-contains "slow"]'), spans)) == ["c"]


def test_missing_attribute_never_matches_even_with_not_equal(spans):
    assert ids(select(parse_selector('span[tool != "ruff"]'), spans)) == ["c"]


def test_types_are_not_coerced(spans):
    assert select(parse_selector('span[scopeflow.tests.failed="0"]'), spans) == []
    assert ids(select(parse_selector("span[scopeflow.tests.failed=0]"), spans)) == ["b"]


def test_pseudo_classes_pick_by_start_time(spans):
    base = 'span[scopeflow.bpmn.element.id="verify_build"]'
    assert ids(select(parse_selector(base + ":first"), spans)) == ["b"]
    assert ids(select(parse_selector(base + ":last"), spans)) == ["d"]
    assert ids(select(parse_selector(base + ":nth_child(2)"), spans)) == ["d"]
    assert select(parse_selector(base + ":nth_child(3)"), spans) == []


def test_descendant_selects_below_any_ancestor(spans):
    assert ids(select(parse_selector('span[name="advance"] span[tool="pytest"]'), spans)) == ["c"]
    assert ids(select(parse_selector('span[name="verify_build"]:last span'), spans)) == []
    assert ids(select(parse_selector('span[name="advance"] span[name="verify_build"]:last'), spans)) == ["d"]


def test_descendant_survives_a_parent_cycle():
    looped = [span("a" * 16, parent="b" * 16), span("b" * 16, parent="a" * 16)]
    assert select(parse_selector('span[name="other"] span'), looped) == []


@pytest.mark.parametrize("text, position", [
    ("span[a=]", 8), ("span[a 1]", 8), ("spam", 1), ("span:lst", 6), ("span[a=1", 9),
    ("span x", 6), ("span[a=1] ,", 12), ("span[a=@]", 8),
])
def test_bad_selectors_name_the_position(text, position):
    with pytest.raises(RuleError, match=rf"^selector: .* at position {position} in "):
        parse_selector(text)


def test_assertions_parse_values_and_durations():
    assert parse_assertion("attr:duration < 30s").expected == 30 * 10**9
    assert parse_assertion("attr:duration <= 1.5ms").expected == 1_500_000
    assert parse_assertion('attr:name = "say \\"hi\\""').expected == 'say "hi"'
    assert parse_assertion("attr:ok = false").expected is False
    assert parse_assertion("attr:x >= -2.5").expected == -2.5
    count = parse_assertion("count = 0")
    assert count.is_count and count.holds_on_empty()
    assert not parse_assertion("count >= 1").holds_on_empty()


@pytest.mark.parametrize("text", ["attr:x", "count = 1.5", "count contains 1", "x = 1", "attr:x = foo",
                                  "attr:x = 1 2", "attr x = 1", ""])
def test_bad_assertions_raise_one_line_rule_errors(text):
    with pytest.raises(RuleError) as info:
        parse_assertion(text)
    assert "\n" not in str(info.value) and str(info.value).startswith("assertion: ")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "delivery.evidence.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = '''
[[rule]]
name = "tests ran and passed"
selector = 'span[scopeflow.bpmn.element.id="verify_build"]:last'
assert = ["attr:scopeflow.tests.failed = 0", "attr:scopeflow.tests.passed > 0"]
stage = "deploy"
description = "the last verification run was green"

[[rule]]
name = "deployed once"
selector = 'span[scopeflow.bpmn.element.id="deploy_release"]'
assert = "count = 1"
'''


def test_load_rules_reads_every_rule(tmp_path):
    rules = load_rules(write(tmp_path, GOOD))
    assert [r.name for r in rules] == ["tests ran and passed", "deployed once"]
    assert [r.stage for r in rules] == ["deploy", "final"]
    assert rules[0].description == "the last verification run was green"
    assert [a.text for a in rules[1].assertions] == ["count = 1"]
    assert rules[0].due_at("deploy") and rules[0].due_at("final")
    assert not rules[1].due_at("deploy") and rules[1].due_at("final")


@pytest.mark.parametrize("body, expected", [
    ('[[rule]]\nname = "r"\nselector = "span["\nassert = ["count = 1"]', "rule 'r': selector: expected"),
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = ["attr:x ="]', "rule 'r': assertion: expected"),
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = []', "'assert' must be a non-empty list"),
    ('[[rule]]\nname = "r"\nselector = "span"\nasert = ["count = 1"]', "unknown key 'asert'"),
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = ["count = 1"]\nstage = "later"', "'stage' must be one of"),
    ('[[rule]]\nselector = "span"\nassert = ["count = 1"]', "rule #1: 'name' must be"),
    ('[[rule]]\nname = "r"\nassert = ["count = 1"]', "'selector' is missing"),
    ('[[rule]]\nname = "r"\nselector = 3\nassert = ["count = 1"]', "expected a string, got int"),
    ('[rules]\nx = 1', "unknown top-level key(s) rules"),
    ('[[rule]\nname=', "not valid TOML"),
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = ["count = 1"]\n[[rule]]\nname = "r"\n'
     'selector = "span"\nassert = ["count = 2"]', "rule 'r': duplicate rule name"),
])
def test_load_rules_rejects_bad_files_in_one_line(tmp_path, body, expected):
    with pytest.raises(RuleError) as info:
        load_rules(write(tmp_path, body))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_load_rules_on_a_missing_file_says_so(tmp_path):
    with pytest.raises(RuleError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.evidence.toml")


def test_before_is_not_a_rule_key(tmp_path):
    body = '[[rule]]\nname = "r"\nselector = "span"\nassert = ["count = 1"]\nbefore = "deploy_release"'
    with pytest.raises(RuleError, match="unknown key 'before'"):
        load_rules(write(tmp_path, body))


def test_lint_reports_every_problem_including_unknown_element_ids(tmp_path):
    body = GOOD + '''
[[rule]]
name = "bad one"
selector = 'span[scopeflow.bpmn.element.id="no_such_task"], span[scopeflow.bpmn.element.id="verify_build"]'
assert = ["count >= 1"]

[[rule]]
name = "broken"
selector = "span[x=]"
assert = ["count ~ 1", "attr:y = 1"]
extra = 1

[[rule]]
name = "deployed once"
selector = "span"
assert = ["count = 1"]
'''
    problems = lint_rules(write(tmp_path, body), {"verify_build", "deploy_release"})
    assert problems == [
        "delivery.evidence.toml: rule 'broken': unknown key 'extra' (allowed: name, selector, assert, stage, description, reference, decisions)",
        "delivery.evidence.toml: rule 'broken': selector: expected a value (number, duration, quoted string, "
        "true or false), found ']' at position 8 in 'span[x=]'",
        "delivery.evidence.toml: rule 'broken': assertion: unexpected character '~' at position 7 in 'count ~ 1'",
        "delivery.evidence.toml: rule 'deployed once': duplicate rule name",
        "delivery.evidence.toml: rule 'bad one': selector names unknown element id 'no_such_task'",
    ]


def test_lint_of_a_clean_file_is_empty(tmp_path):
    assert lint_rules(write(tmp_path, GOOD), {"verify_build", "deploy_release"}) == []


def test_rules_text_parses_like_a_file_and_names_its_source():
    assert [r.name for r in parse_rules(GOOD)] == ["tests ran and passed", "deployed once"]
    with pytest.raises(RuleError, match=r"^rule 'r': selector: "):
        parse_rules('[[rule]]\nname = "r"\nselector = "span["\nassert = ["count = 1"]')
    with pytest.raises(RuleError, match=r"^delivery.evidence.toml: not valid TOML"):
        parse_rules("[[rule", "delivery.evidence.toml")


def test_lint_rules_text_checks_element_ids_without_a_file():
    assert lint_rules_text(GOOD, {"verify_build"}) == [
        "rule 'deployed once': selector names unknown element id 'deploy_release'"
    ]


# -- added by the gate mutation audit: rule-file defects the parser (and so lint, at deploy) must
#    refuse; each was accepted when its check was switched off and no test noticed

@pytest.mark.parametrize("body,message", [
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = ["count = @scopeflow.plan.build_tasks"]',
     "an assertion compares with '@<key>' but the rule has no 'reference' selector"),
    ('[[rule]]\nname = "r"\nselector = "span"\nassert = ["count = 1"]\ndecisions = "sometimes"',
     "'decisions' must be one of any, people, automated, not 'sometimes'"),
    ('[[rule]]\nname = "r"\nselector = "span:nth_child(0)"\nassert = ["count = 1"]',
     "expected a positive whole number, found '0'"),
])
def test_rule_file_defects_are_refused_in_one_line(body, message):
    with pytest.raises(RuleError) as caught:
        parse_rules(body, "x.evidence.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
