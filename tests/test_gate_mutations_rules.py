"""The rule language's operators, selection and verdicts, each made to decide a real final gate.

One real run of ``delivery.bpmn`` (``submit --yes`` on a tmp SQLite store) with a private copy of
the evidence rules to which two sets of final-stage rules are added:

* TRAPS must NOT hold over the run's spans: each is what a weakened operator would let through
  (a boolean equal to 0, ``contains`` on a number, an empty selection, a rule with one failing
  assertion, a missing ``@reference``, ...). The final gate must fail with exactly these rules.
* SOUND rules must hold: each is what an off-by-one or a dropped filter would break (``>=`` and
  ``<=`` against the value itself, a union of selectors, ``distinct`` over repeated values, the
  reference span being the *last* match).

The gate's own result (``evidence_final`` in the task data), its span and BLOCKERS.md are checked,
so a mutant of ``spans/rules.py``, ``spans/evidence.py`` or ``handlers/evidence_gate.py`` that lets
a trap pass or makes a sound rule fail turns this red. Each rule names the mutation it catches.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scopeflow.engine import reads
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from tests.conftest import MODELS, make_settings

pytestmark = pytest.mark.slow

SCOPE = "# Reading list\n\n## Entities\n- Book: title (text, required), pages (integer)\n"
VERIFY = 'span[scopeflow.bpmn.element.id="verify_build_task" scopeflow.span.type="bpmn.task"]:last'
VERIFY_ALL = 'span[scopeflow.bpmn.element.id="verify_build_task"]'   # the task span and its 4 check spans
CONFIRM = 'span[scopeflow.bpmn.element.id="confirm_scope" scopeflow.span.type="bpmn.task"]:last'
NOTHING = 'span[name="no span has this name"]'

# name -> (selector, assertions, reference or None)
TRAPS = {
    # a boolean is not a number: 0 = false and true >= 1 must not match (_equal, _is_number)
    "trap zero is not false": (VERIFY, ["attr:scopeflow.tests.failed = false"], None),
    "trap true is not one": (CONFIRM, ["attr:scopeflow.human.automated = 1"], None),
    "trap a boolean is not ordered": (CONFIRM, ["attr:scopeflow.human.automated >= 1"], None),
    "trap a boolean is not greater than zero": (CONFIRM, ["attr:scopeflow.human.automated > 0"], None),
    # contains / not-contains on a number do not apply, so neither holds
    "trap contains on a number": (VERIFY, ["attr:scopeflow.tests.passed contains 1"], None),
    "trap not-contains on a number": (VERIFY, ["attr:scopeflow.tests.passed not-contains 1"], None),
    "trap not-contains of a present text": (VERIFY, ['attr:scopeflow.bpmn.element.name not-contains "Verify"'],
                                            None),
    "trap not equal to itself": (VERIFY, ["attr:scopeflow.tests.failed != 0"], None),
    # strict comparisons with the value itself
    "trap less than itself": (VERIFY, ["attr:scopeflow.tests.passed < @scopeflow.tests.passed"], VERIFY),
    "trap greater than itself": (VERIFY, ["attr:scopeflow.tests.passed > @scopeflow.tests.passed"], VERIFY),
    # a missing attribute never matches, not even !=
    "trap a missing attribute is not unequal": (VERIFY, ['attr:scopeflow.no.such.attribute != "x"'], None),
    # an empty selection fails an attr assertion and a count >= 1
    "trap empty selection": (NOTHING, ["attr:scopeflow.tests.failed = 0"], None),
    "trap empty count": (NOTHING, ["count >= 1"], None),
    # one span of several fails: the assertion fails (the check spans for lint have no tests.passed)
    "trap one span of two fails": ('span[scopeflow.check.name="tests"], span[scopeflow.check.name="lint"]',
                                   ["attr:scopeflow.tests.passed > 0"], None),
    # one assertion of two fails: the rule fails
    "trap one assertion of two fails": (VERIFY, ["attr:scopeflow.tests.failed = 0",
                                                 "attr:scopeflow.tests.failed = 1"], None),
    # a descendant step keeps only spans below the ancestor
    "trap check spans are not below confirm": (CONFIRM.replace(":last", "") + ' span[scopeflow.check.name="tests"]',
                                                ["count >= 1"], None),
    # the health check's ancestors include the advance still open at the gate (not yet recorded):
    # an unrecorded ancestor is not the one asked for
    "trap health check is not below confirm": (CONFIRM.replace(":last", "") + ' span[name="health check"]',
                                               ["count >= 1"], None),
    # an @reference the reference span does not carry fails, whatever the operator
    "trap missing reference value": (VERIFY, ["count != @scopeflow.no.such.attribute"], VERIFY),
}

SOUND = {
    "sound at least itself": (VERIFY, ["attr:scopeflow.tests.passed >= @scopeflow.tests.passed"], VERIFY),
    "sound at most itself": (VERIFY, ["attr:scopeflow.tests.passed <= @scopeflow.tests.passed"], VERIFY),
    "sound equal to itself": (VERIFY, ["attr:scopeflow.tests.passed = @scopeflow.tests.passed"], VERIFY),
    "sound not-contains of an absent text": (VERIFY, ['attr:scopeflow.bpmn.element.name not-contains "Deploy"'],
                                             None),
    "sound a union keeps every alternative": (f"{NOTHING}, {VERIFY}", ["count = 1"], None),
    "sound check spans are below verify": (VERIFY.replace(":last", "") + ' span[scopeflow.check.name="tests"]',
                                           ["count >= 1"], None),
    # five spans share one element id: distinct counts values, not spans; missing values do not count
    "sound distinct counts values": (VERIFY_ALL, ["distinct:scopeflow.bpmn.element.id = 1",
                                                  "distinct:scopeflow.tests.passed = 1"], None),
    # the reference is the LAST match of its selector (the security check runs after compile)
    "sound the reference is the last match": ('span[scopeflow.check.name="security"]',
                                              ["attr:scopeflow.check.name = @scopeflow.check.name"],
                                              'span[scopeflow.bpmn.element.id="verify_build_task" '
                                              'scopeflow.span.type="handler"]'),
    "sound every filter must match": ('span[scopeflow.bpmn.element.id="verify_build_task" '
                                      'scopeflow.check.name="tests"]', ["count = 1"], None),
}


def _toml(rules: dict[str, tuple[str, list[str], str | None]]) -> str:
    def quoted(text: str) -> str:
        return "'" + text + "'"

    blocks = []
    for name, (selector, asserts, reference) in rules.items():
        lines = ["[[rule]]", f'name = "{name}"', 'stage = "final"', f"selector = {quoted(selector)}",
                 "assert = [" + ", ".join(quoted(a) for a in asserts) + "]"]
        if reference:
            lines.append(f"reference = {quoted(reference)}")
        blocks.append("\n".join(lines))
    return "\n\n" + "\n\n".join(blocks) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rule-mutations")
    models = tmp / "models"
    shutil.copytree(MODELS, models)
    rules = models / "delivery.evidence.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + _toml(TRAPS) + _toml(SOUND), encoding="utf-8")
    home = tmp / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCOPEFLOW_HOME", str(home))
        patch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
        engine = Engine(make_settings(home, models))
        try:
            result = submit(engine, SCOPE, yes=True)
            data = reads.last_task_data(engine.sessions, result.instance_id)
            with engine.sessions() as session:
                spans = load_spans(session, result.instance_id)
        finally:
            stop_all(engine.settings.releases_dir)
    return result, data, spans


def test_the_final_gate_fails_with_exactly_the_trap_rules(run):
    result, data, _spans = run
    assert (result.status, result.outcome) == ("blocked", "blocked")
    gate = data["evidence_final"]
    assert gate["ok"] is False
    assert sorted(gate["failed"]) == sorted(TRAPS), "a trap held or a sound rule failed"
    assert not (Path(result.workspace) / "DELIVERY.md").exists()


def test_every_sound_rule_holds_with_every_assertion(run):
    _result, data, _spans = run
    by_name = {r["name"]: r for r in data["evidence_final"]["report"]["rules"]}
    for name in SOUND:
        assert by_name[name]["passed"] is True, by_name[name]
        assert all(a["passed"] for a in by_name[name]["assertions"]), by_name[name]


def test_trap_reports_say_why_they_fail(run):
    _result, data, _spans = run
    by_name = {r["name"]: r for r in data["evidence_final"]["report"]["rules"]}
    [empty] = by_name["trap empty selection"]["assertions"]
    assert (empty["passed"], empty["message"]) == (False, "empty selection")
    [count] = by_name["trap empty count"]["assertions"]
    assert count["message"] == "count is 0, expected >= 1"
    [partial] = by_name["trap one span of two fails"]["assertions"]
    assert partial["message"].startswith("1 of 2 span(s) fail; span ") and partial["message"].endswith("has missing")
    first, second = by_name["trap one assertion of two fails"]["assertions"]
    assert (first["passed"], second["passed"]) == (True, False)
    [missing] = by_name["trap missing reference value"]["assertions"]
    assert missing["message"] == "@scopeflow.no.such.attribute is missing on the reference span"


def test_the_gate_span_and_the_blocker_plan_name_the_failure(run):
    result, data, spans = run
    [gate_span] = [s for s in spans if s.attributes.get("scopeflow.bpmn.element.id") == "verify_evidence_final"]
    assert gate_span.attributes["scopeflow.evidence.ok"] is False
    assert gate_span.attributes["scopeflow.evidence.failed"] == len(TRAPS)
    assert gate_span.attributes["scopeflow.evidence.rules"] == len(data["evidence_final"]["report"]["rules"])
    assert gate_span.attributes["scopeflow.evidence.stage"] == "final"
    text = Path(result.report).read_text(encoding="utf-8")
    assert Path(result.report).name == "BLOCKERS.md"
    assert "The final evidence gate failed" in text
    assert f"- failed: {next(iter(TRAPS))}, " in text   # the list is cut short in the plan, in rule order
    assert not any(name in text for name in SOUND)


def test_the_deploy_gate_held_because_no_trap_is_due_there(run):
    """The traps are final-stage rules: the deploy gate (stage deploy) must not evaluate them."""
    _result, data, _spans = run
    deploy = data["evidence_deploy"]
    assert deploy["ok"] is True and deploy["failed"] == []
    names = {r["name"] for r in deploy["report"]["rules"]}
    assert names and not names & (set(TRAPS) | set(SOUND))
    assert {r["stage"] for r in deploy["report"]["rules"]} == {"deploy"}
