"""The reviewer: summary, decisions, risks, and a confidence whose arithmetic is spelled out."""

from __future__ import annotations

import pytest

from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.planner import make_plan
from scopeflow.handlers.review import make_review, review_changes, score
from scopeflow.handlers.spec import Entity, Feature, Field, Question, Spec

NO_VERDICTS = {"total": 0, "delivered": 0, "not_built": 0, "assumed": 0, "not_understood": 0,
               "without_verdict": 0, "delivered_without_test": 0}
CLEAN = {"compile_errors": 0, "lint_errors": 0, "tests_passed": 40, "tests_failed": 0, "tests_errors": 0,
         "security_high": 0, "security_medium": 0}


def spec(**extra) -> Spec:
    return Spec(title="Shop", entities=[
        Entity("Product", "Product", "products", [Field("name", "Name", "text", required=True)]),
        Entity("Order", "Order", "orders", [Field("product", "Product", "reference", reference="Product")]),
    ], **extra)


def test_clean_checks_give_full_confidence():
    review = make_review(spec(), make_plan(spec()), CLEAN)
    assert review.confidence == 1.0
    assert review.confidence_basis == "1.00 start = 1.00 (clamped to [0, 1])"
    assert review.risks == []


def test_summary_lists_files_entities_and_endpoints():
    review = make_review(spec(wants_login=True), make_plan(spec(wants_login=True)), CLEAN)
    assert review.summary.entities == ["Product", "Order"]
    assert "app/webapp/entities/orders.py" in review.summary.files
    assert "app/webapp/auth.py" in review.summary.files
    assert "GET|PUT|DELETE /api/orders/<id>" in review.summary.endpoints
    assert "GET|POST /login" in review.summary.endpoints


def test_each_finding_lowers_confidence_as_documented():
    checks = {**CLEAN, "tests_failed": 2, "tests_errors": 1, "lint_errors": 3, "security_high": 1,
              "security_medium": 1}
    verdicts = {**NO_VERDICTS, "not_built": 2, "assumed": 1, "not_understood": 1}
    confidence, basis = score(checks, verdicts, entities=2)
    # 1.0 - 0.3 (3 failing) - 0.06 (lint) - 0.25 (high) - 0.05 (medium) - 0.06 (2 not built)
    #     - 0.03 (1 assumed) - 0.05 (1 not understood)
    assert confidence == 0.2
    for part in ("-0.30 for 3 failed/erroring test(s)", "-0.06 for 3 lint error(s)",
                 "-0.25 for 1 high-severity", "-0.05 for 1 medium-severity", "-0.06 for 2 requirement(s) not built",
                 "-0.03 for 1 requirement(s) assumed", "-0.05 for 1 scope line(s) not understood"):
        assert part in basis


def test_a_requirement_delivered_without_a_passing_test_costs_half():
    confidence, basis = score(CLEAN, {**NO_VERDICTS, "delivered_without_test": 1}, entities=2)
    assert confidence == 0.5
    assert "without a verdict or without a passing test" in basis


def test_confidence_never_drops_below_zero():
    checks = {**CLEAN, "compile_errors": 3, "tests_passed": 0, "tests_failed": 9, "security_high": 4}
    confidence, basis = score(checks, {**NO_VERDICTS, "not_built": 9}, entities=1)
    assert confidence == 0.0
    assert "no passing test" in basis and "compile error" in basis


def test_few_tests_per_entity_cost_a_little():
    confidence, basis = score({**CLEAN, "tests_passed": 6}, NO_VERDICTS, entities=2)
    assert confidence == 0.9
    assert "fewer than 5 passing tests per entity" in basis


def test_risks_name_unbuildable_features_failures_and_open_questions():
    s = spec(features=[Feature("AI pricing", "custom", False, reason="needs a model")],
             questions=[Question("q1", "Currency?", "EUR")], wants_login=True)
    review = make_review(s, make_plan(s, feedback="add stock levels"), {**CLEAN, "tests_failed": 1})
    assert "not built: AI pricing (needs a model)" in review.risks
    assert "1 failed and 0 erroring test(s)" in review.risks
    assert "1 open question(s) were answered with defaults" in review.risks
    assert any("CSRF" in risk for risk in review.risks)
    assert {"decision": "plan made with reviewer feedback", "rationale": "add stock levels"} in [
        {"decision": d.decision, "rationale": d.rationale} for d in review.decisions]


def test_operator_returns_review_data_and_records_confidence(tmp_path):
    ctx = RecordingContext(instance_id="i", task_id="t", bpmn_id="review", workspace=tmp_path)
    result = review_changes(ctx, spec().to_data(), make_plan(spec()).to_data(), {**CLEAN, "lint_errors": 5})
    assert result["review"]["confidence"] == 0.9
    assert ctx.recorded == {"scopeflow.review.confidence": 0.9, **{
        f"scopeflow.requirements.{key}": value for key, value in NO_VERDICTS.items()}}
    assert result["review"]["summary"]["entities"] == ["Product", "Order"]


@pytest.mark.parametrize("checks, message", [
    ({k: v for k, v in CLEAN.items() if k != "tests_passed"}, "checks is missing tests_passed"),
    ({**CLEAN, "lint_errors": -1}, "checks.lint_errors must be a count"),
    ({**CLEAN, "tests_failed": "2"}, "checks.tests_failed must be a count"),
])
def test_bad_checks_are_refused_with_a_clear_message(tmp_path, checks, message):
    ctx = RecordingContext(instance_id="i", task_id="t", bpmn_id="review", workspace=tmp_path)
    with pytest.raises(ValueError, match=message):
        review_changes(ctx, spec().to_data(), make_plan(spec()).to_data(), checks)


def test_malformed_plan_is_a_design_flaw(tmp_path):
    ctx = RecordingContext(instance_id="i", task_id="t", bpmn_id="review", workspace=tmp_path)
    with pytest.raises(TaskFailure, match="malformed"):
        review_changes(ctx, spec().to_data(), {"tasks": [], "bogus": 1}, CLEAN)


# ------------------------------------------------------------------ the requirement matrix

def _all_passing(spec_: Spec) -> dict:
    return {**CLEAN, "requirements": {r.id: {"passed": [f"tests::proves_{r.id}"], "failed": []}
                                      for r in spec_.requirements}}


def test_a_scope_with_invented_entities_cannot_score_full_confidence():
    from scopeflow.handlers.scope import analyze

    invented = analyze("# Rota\n\nCoordinators create shifts with a date and a location.\n")
    review = make_review(invented, make_plan(invented), _all_passing(invented))
    assert review.verdicts["assumed"] >= 3          # Shift, date, location: all read from prose
    assert review.confidence < 1.0
    assert any(r.startswith("assumed: entity Shift") for r in review.risks)


def test_verdicts_follow_the_plan_and_the_tests():
    from scopeflow.handlers.scope import analyze

    s = analyze("# Club\n## Entities\n- Member: name (text, required)\n## Features\n- Search members\n"
                "- API with rate limiting\n## Constraints\n- Runs on one server\n")
    checks = _all_passing(s)
    [name_required] = [r for r in s.requirements if r.text == "Member.name is required"]
    checks["requirements"][name_required.id] = {"passed": [], "failed": ["tests::test_name_is_required"]}
    review = make_review(s, make_plan(s), checks)
    verdict = {r.text: (r.verdict, r.reason) for r in review.requirements}
    assert verdict["entity Member"] == ("delivered", "")
    assert verdict["Member.name is required"] == ("not built", "its tests failed: tests::test_name_is_required")
    assert verdict["API with rate limiting"][0] == "not built"
    assert verdict["Runs on one server"] == ("not built",
                                             "the offline templates neither enforce nor test this constraint")
    assert review.verdicts["delivered_without_test"] == 0 and review.verdicts["without_verdict"] == 0


def test_a_built_requirement_no_test_names_is_not_delivered():
    from scopeflow.handlers.scope import analyze

    s = analyze("# Club\n## Entities\n- Member: name (text, required)\n")
    review = make_review(s, make_plan(s), {**CLEAN, "requirements": {}})
    assert {r.verdict for r in review.requirements} == {"not built"}
    assert {r.reason for r in review.requirements} == {"built, but no generated test proves it"}


# -- added by the gate mutation audit: each of these made a weakened check of review.py or
#    requirements.py go unnoticed (see tests/test_gate_mutations_*.py for the real-run ones)

def test_exactly_five_passing_tests_per_entity_costs_nothing():
    assert score({**CLEAN, "tests_passed": 10}, NO_VERDICTS, entities=2)[0] == 1.0
    assert score({**CLEAN, "tests_passed": 9}, NO_VERDICTS, entities=2)[0] == 0.9


def test_a_boolean_is_not_a_count():
    with pytest.raises(ValueError, match=r"checks.tests_failed must be a count \(int >= 0\), got False"):
        make_review(spec(), make_plan(spec()), {**CLEAN, "tests_failed": False})


def _requirement(**fields):
    from scopeflow.handlers.requirements import Requirement

    return Requirement(**{"id": "R-1", "kind": "entity", "text": "entity Member", "line": 1, **fields})


BUILT = [{"id": "T-1", "buildable": True, "files": ["app/members.py"], "requirements": ["R-1"]}]
PASSED = {"R-1": {"passed": ["tests::test_members"], "failed": []}}


def test_without_verification_nothing_is_delivered():
    from scopeflow.handlers.requirements import decide

    [r] = decide([_requirement()], BUILT, None)
    assert (r.verdict, r.reason) == ("not built", "verification did not run, so no test proves it")
    [r] = decide([_requirement()], BUILT, PASSED)
    assert (r.verdict, r.reason) == ("delivered", "")


def test_a_line_only_partly_built_is_not_delivered_even_with_passing_tests():
    from scopeflow.handlers.requirements import decide

    [r] = decide([_requirement(unbuilt_part="the rate limit is not built")], BUILT, PASSED)
    assert (r.verdict, r.reason) == ("not built", "the rate limit is not built")


def test_a_line_not_understood_stays_not_understood_whatever_was_built():
    from scopeflow.handlers.requirements import decide

    [r] = decide([_requirement(status="not understood", reason="which members?")], BUILT, PASSED)
    assert (r.verdict, r.reason) == ("not understood", "which members?")


def test_counts_catch_a_delivered_verdict_without_a_test_and_an_unknown_verdict():
    from scopeflow.handlers.requirements import counts

    untested = _requirement(verdict="delivered")
    assumed = _requirement(id="R-2", verdict="assumed")
    odd = _requirement(id="R-3", verdict="total")            # not a verdict, though it names a counter
    found = counts([untested, assumed, odd])
    assert found["delivered_without_test"] == 2
    assert found["without_verdict"] == 1 and found["total"] == 3
    assert make_review(spec(), make_plan(spec()), CLEAN).verdicts["delivered_without_test"] == 0
