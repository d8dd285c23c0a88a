"""The reviewer: summarises what was built, the decisions behind it, its risks, and how confident
the checks make us (a number with the arithmetic that produced it).

Confidence starts at 1.0 and loses, for what the verifier measured:

  ====================================  =========================  ============
  finding                               deduction                  at most
  ====================================  =========================  ============
  any compile error                     0.50                       0.50
  each failed or erroring test          0.10                       0.50
  no passing test at all                0.30                       0.30
  < 5 passing tests per entity          0.10                       0.10
  each lint error                       0.02                       0.20
  each high-severity security finding   0.25                       0.50
  each medium-severity finding          0.05                       0.15
  each requirement ``not built``        0.03                       0.30
  each requirement ``assumed``          0.03                       0.30
  each requirement ``not understood``   0.05                       0.30
  a requirement without a verdict, or   0.50                       0.50
  delivered without a passing test
  ====================================  =========================  ============

and is then clamped to [0, 1] and rounded to two decimals. ``confidence_basis`` lists each
deduction that applied. The requirement verdicts come from the matrix
(:func:`scopeflow.handlers.requirements.decide`): a scope whose entities or fields the analyst had
to invent therefore never scores 1.00.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers import requirements as req
from scopeflow.handlers.builder import app_endpoints
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import DESIGN_FLAW, TaskFailure
from scopeflow.handlers.plan import Plan
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.requirements import Requirement
from scopeflow.handlers.serde import to_data
from scopeflow.handlers.spec import Spec

CHECK_KEYS = ("compile_errors", "lint_errors", "tests_passed", "tests_failed", "tests_errors",
              "security_high", "security_medium")
TESTS_PER_ENTITY = 5


@dataclass
class Decision:
    decision: str
    rationale: str


@dataclass
class ReviewSummary:
    files: list[str] = field(default_factory=list)       # workspace paths the buildable tasks own
    entities: list[str] = field(default_factory=list)    # entity names
    endpoints: list[str] = field(default_factory=list)   # "METHOD /path" the app serves


@dataclass
class Review:
    summary: ReviewSummary
    decisions: list[Decision] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    confidence: float = 0.0
    confidence_basis: str = ""
    requirements: list[Requirement] = field(default_factory=list)   # the matrix, with verdicts
    verdicts: dict[str, int] = field(default_factory=dict)           # requirements.counts of it

    def to_data(self) -> dict[str, Any]:
        return to_data(self)


def read_checks(checks: dict[str, Any]) -> dict[str, int]:
    """The verifier's counts this reviewer uses; ValueError when one is missing or not a count."""
    missing = [key for key in CHECK_KEYS if key not in checks]
    if missing:
        raise ValueError(f"checks is missing {', '.join(missing)}")
    counts = {}
    for key in CHECK_KEYS:
        value = checks[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"checks.{key} must be a count (int >= 0), got {value!r}")
        counts[key] = value
    return counts


def score(counts: dict[str, int], verdicts: dict[str, int], entities: int) -> tuple[float, str]:
    """Confidence and the text of how it was computed (the table in the module docstring);
    ``verdicts`` is :func:`scopeflow.handlers.requirements.counts` of the matrix."""
    failing = counts["tests_failed"] + counts["tests_errors"]
    unproven = verdicts["without_verdict"] + verdicts["delivered_without_test"]
    rules = [
        (counts["compile_errors"] > 0, 0.5, f"{counts['compile_errors']} compile error(s)"),
        (failing > 0, min(0.5, 0.1 * failing), f"{failing} failed/erroring test(s)"),
        (counts["tests_passed"] == 0, 0.3, "no passing test"),
        (0 < counts["tests_passed"] < TESTS_PER_ENTITY * max(entities, 1), 0.1,
         f"fewer than {TESTS_PER_ENTITY} passing tests per entity"),
        (counts["lint_errors"] > 0, min(0.2, 0.02 * counts["lint_errors"]), f"{counts['lint_errors']} lint error(s)"),
        (counts["security_high"] > 0, min(0.5, 0.25 * counts["security_high"]),
         f"{counts['security_high']} high-severity security finding(s)"),
        (counts["security_medium"] > 0, min(0.15, 0.05 * counts["security_medium"]),
         f"{counts['security_medium']} medium-severity security finding(s)"),
        (verdicts["not_built"] > 0, min(0.3, 0.03 * verdicts["not_built"]),
         f"{verdicts['not_built']} requirement(s) not built"),
        (verdicts["assumed"] > 0, min(0.3, 0.03 * verdicts["assumed"]),
         f"{verdicts['assumed']} requirement(s) assumed by the analyst"),
        (verdicts["not_understood"] > 0, min(0.3, 0.05 * verdicts["not_understood"]),
         f"{verdicts['not_understood']} scope line(s) not understood"),
        (unproven > 0, 0.5, f"{unproven} requirement(s) without a verdict or without a passing test"),
    ]
    value, parts = 1.0, ["1.00 start"]
    for applies, deduction, reason in rules:
        if applies:
            value -= deduction
            parts.append(f"-{deduction:.2f} for {reason}")
    value = round(min(1.0, max(0.0, value)), 2)
    return value, "; ".join(parts) + f" = {value:.2f} (clamped to [0, 1])"


def _decisions(spec: Spec, plan: Plan) -> list[Decision]:
    login = any(t.kind == "auth" for t in plan.tasks)
    decisions = [
        Decision("Flask + SQLAlchemy 2 app from the flask_app template pack",
                 "deterministic templates build offline and are tested by the generated test suite"),
        Decision("validation in one place for pages and API (400 with a message per field)",
                 "required, unique, choices, bounds and references behave the same for every client"),
        Decision("deleting a row other rows reference answers 409",
                 "the database's foreign-key constraint refuses it; nothing is deleted in cascade"),
        Decision(f"{len(plan.phases)} phase(s): {', '.join(plan.phases)}",
                 f"scope complexity is {spec.complexity!r}"),
    ]
    if login:
        decisions.append(Decision("session login with Werkzeug password hashes",
                                  "the scope asks for login; the API answers 401 rather than redirecting"))
    if plan.feedback:
        decisions.append(Decision("plan made with reviewer feedback", plan.feedback))
    decisions.extend(Decision("reference cycle", note) for note in plan.notes)
    return decisions


def _risks(spec: Spec, plan: Plan, counts: dict[str, int]) -> list[str]:
    risks = [f"not built: {t.title} ({t.reason})" for t in plan.tasks if not t.buildable]
    if counts["tests_failed"] + counts["tests_errors"]:
        risks.append(f"{counts['tests_failed']} failed and {counts['tests_errors']} erroring test(s)")
    if counts["compile_errors"]:
        risks.append(f"{counts['compile_errors']} file(s) do not compile")
    if counts["security_high"] or counts["security_medium"]:
        risks.append(f"security findings: {counts['security_high']} high, {counts['security_medium']} medium")
    if counts["lint_errors"]:
        risks.append(f"{counts['lint_errors']} lint error(s)")
    if any(t.kind == "auth" for t in plan.tasks):
        risks.append("HTML forms carry no CSRF token; only SameSite=Lax session cookies guard them")
    if spec.questions:
        risks.append(f"{len(spec.questions)} open question(s) were answered with defaults")
    return risks


def make_review(spec: Spec, plan: Plan, checks: dict[str, Any]) -> Review:
    """The review of a build of ``plan`` whose verification produced ``checks``."""
    counts = read_checks(checks)
    login = any(t.kind == "auth" for t in plan.tasks)
    files = sorted(path for t in plan.tasks if t.buildable for path in t.files)
    results = checks.get("requirements")
    matrix = req.decide(spec.requirements, [to_data(t) for t in plan.tasks],
                        results if isinstance(results, dict) else {})
    verdicts = req.counts(matrix)
    confidence, basis = score(counts, verdicts, len(spec.entities))
    summary = ReviewSummary(files=files, entities=[e.name for e in spec.entities],
                            endpoints=app_endpoints(spec, login))
    risks = _risks(spec, plan, counts) + [f"assumed: {r.text} ({r.reason})" for r in matrix if r.verdict == req.ASSUMED]
    return Review(summary=summary, decisions=_decisions(spec, plan), risks=risks,
                  confidence=confidence, confidence_basis=basis, requirements=matrix, verdicts=verdicts)


@operator("review_changes", retry=NO_RETRY)
def review_changes(ctx: TaskContext, spec: dict[str, Any], plan: dict[str, Any],
                   checks: dict[str, Any]) -> dict[str, Any]:
    """Review a verified build: summary, decisions, risks and a confidence with its basis."""
    try:
        parsed_spec, parsed_plan = Spec.from_data(spec), Plan.from_data(plan)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TaskFailure(DESIGN_FLAW, f"review_changes: spec or plan is malformed: {exc}", {}) from None
    review = make_review(parsed_spec, parsed_plan, checks)
    ctx.record({"scopeflow.review.confidence": review.confidence, **req.span_attributes(review.verdicts)})
    # -- LLM reviewer (only with SCOPEFLOW_LLM_BASE_URL set): the rationale is the model's words
    from scopeflow.handlers import llm_agents

    settings = llm_agents.settings_from_env()
    if settings is not None:
        written = llm_agents.llm_written_files(parsed_plan)
        if written:
            review.risks.append("written by an LLM, not by templates: " + ", ".join(f["path"] for f in written))
        try:
            rationale = llm_agents.review_rationale(ctx, settings, parsed_spec, parsed_plan, review.to_data())
        except TaskFailure as failure:
            # The rationale is optional: the review above is complete without it. Say why it is missing.
            reason = f"{failure.kind}: {failure.message}"
            ctx.record({"scopeflow.review.rationale_missing": reason})
            review.risks.append(f"no LLM rationale: {reason}")
            return {"review": review.to_data(), "rationale": None, "rationale_missing": reason}
        ctx.record({"scopeflow.review.rationale_author": llm_agents.LLM_AUTHOR})
        return {"review": review.to_data(), "rationale": rationale}
    # -- end of the LLM reviewer
    return {"review": review.to_data()}
