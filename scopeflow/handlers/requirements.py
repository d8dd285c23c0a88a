"""Requirements: what each line of a scope asks for, traced to the plan, the files, the tests, a verdict.

The analyst turns every meaningful scope line into :class:`Requirement` s (one per entity, field,
modifier, relation, feature, integration, constraint; the title and the summary too). Later steps
only *add* to them: the planner names the tasks that realise each (``PlanTask.requirements``), the
builder marks each generated test with the ids it proves (``@pytest.mark.requirements``), the
verifier reports which of those tests passed, and :func:`decide` gives each requirement its verdict:

- ``delivered``: realised by a buildable plan task, and at least one generated test that names it
  passed (none failed);
- ``assumed``: the analyst guessed it (says what); built and tested like ``delivered``;
- ``not built``: no template builds it, or no generated test proves it, or its tests failed
  (the reason says which);
- ``not understood``: the analyst could not place the line (a question asks about it).

Review, reports and evidence rules all read this one matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.serde import from_data, to_data

KINDS = ("title", "summary", "entity", "field", "modifier", "relation", "feature", "integration",
         "constraint", "line")
UNDERSTOOD, ASSUMED, NOT_UNDERSTOOD = "understood", "assumed", "not understood"
DELIVERED, NOT_BUILT = "delivered", "not built"
VERDICTS = (DELIVERED, NOT_BUILT, ASSUMED, NOT_UNDERSTOOD)
MARKER = "requirements"        # the pytest marker generated tests carry: @pytest.mark.requirements("R-1")


@dataclass
class Requirement:
    id: str                        # stable within a scope, … in reading order
    kind: str                      # one of KINDS
    text: str                      # what it asks for, in words ("Book.title is required")
    line: int                      # 1-based line of the scope it came from (0: not from the scope)
    source: str = ""               # that line as written
    subject: str = ""              # what in the spec realises it: entity:Book, field:Book.title, …
    status: str = UNDERSTOOD       # understood | assumed | not understood (the analyst's reading)
    assumption: str = ""           # what the analyst guessed, for status assumed
    question: str = ""             # id of the question about it, if any
    lines: list[int] = field(default_factory=list)      # every scope line it covers
    sentence: str = ""             # the sentence of its line it came from, when the line is prose
    tasks: list[str] = field(default_factory=list)      # plan tasks that realise it
    files: list[str] = field(default_factory=list)      # files those tasks wrote (not tests)
    tests: list[str] = field(default_factory=list)      # generated tests that passed and name it
    failed_tests: list[str] = field(default_factory=list)
    verdict: str = ""              # one of VERDICTS once decided
    reason: str = ""               # why not built / what was assumed / what was not understood
    recipe: str = ""               # the feature recipe(s) its line triggers (handlers/recipes), e.g. filter:overdue
    matched: list[str] = field(default_factory=list)    # the words of the line that triggered a recipe
    unbuilt_part: str = ""         # what of its line no recipe builds, when recipes build the rest


def load(data: Any) -> list[Requirement]:
    """Requirements from task data (a list of dicts); anything else is an empty list."""
    if not isinstance(data, list):
        return []
    return [from_data(Requirement, item) for item in data if isinstance(item, dict)]


def dump(requirements: list[Requirement]) -> list[dict[str, Any]]:
    return [to_data(r) for r in requirements]


# ------------------------------------------------------------------------------ coverage
def content_lines(text: str) -> list[int]:
    """1-based numbers of the scope's non-blank lines (what must each map to a requirement)."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def unmapped_lines(text: str, requirements: list[Requirement], structural: set[int]) -> list[int]:
    """Non-blank scope lines that are neither structure (headings, labels, table rules) nor covered
    by any requirement. Counted from the raw text, independently of the markdown reader."""
    covered = set(structural)
    for requirement in requirements:
        covered.update(requirement.lines or ([requirement.line] if requirement.line else []))
    return [number for number in content_lines(text) if number not in covered]


# ------------------------------------------------------------------------------ verdicts
def decide(requirements: list[Requirement], tasks: list[dict[str, Any]],
           results: dict[str, dict[str, list[str]]] | None) -> list[Requirement]:
    """Give every requirement its verdict from the plan tasks that realise it and the test results.

    ``tasks`` are plan tasks as data (``id``, ``buildable``, ``reason``, ``files``,
    ``requirements``); ``results`` maps a requirement id to the ``passed``/``failed`` test ids that
    named it (``None``: verification did not run).
    """
    by_requirement: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        for rid in task.get("requirements") or []:
            by_requirement.setdefault(rid, []).append(task)
    for requirement in requirements:
        realising = by_requirement.get(requirement.id, [])
        outcome = (results or {}).get(requirement.id, {})
        requirement.tasks = [t["id"] for t in realising]
        requirement.files = sorted({path for t in realising if t.get("buildable", True)
                                    for path in t.get("files") or [] if "/tests/" not in path})
        requirement.tests = sorted(outcome.get("passed") or [])
        requirement.failed_tests = sorted(outcome.get("failed") or [])
        requirement.verdict, requirement.reason = _verdict(requirement, realising, results is not None)
    return requirements


def _verdict(requirement: Requirement, realising: list[dict[str, Any]], verified: bool) -> tuple[str, str]:
    if requirement.status == NOT_UNDERSTOOD:
        return NOT_UNDERSTOOD, requirement.reason or "the analyst could not place this line"
    buildable = [t for t in realising if t.get("buildable", True)]
    if not buildable:
        reasons = [str(t.get("reason")) for t in realising if t.get("reason")]
        return NOT_BUILT, (reasons[0] if reasons else requirement.reason or "no plan task realises it")
    if not verified:
        return NOT_BUILT, "verification did not run, so no test proves it"
    if requirement.failed_tests:
        return NOT_BUILT, "its tests failed: " + ", ".join(requirement.failed_tests[:3])
    if not requirement.tests:
        return NOT_BUILT, "built, but no generated test proves it"
    if requirement.unbuilt_part:      # its tests prove the built part; the line asks for more
        return NOT_BUILT, requirement.unbuilt_part
    if requirement.status == ASSUMED:
        return ASSUMED, requirement.assumption or "the analyst guessed it"
    return DELIVERED, ""


def counts(requirements: list[Requirement]) -> dict[str, int]:
    """How many requirements have each verdict, plus the totals the evidence rules check."""
    found = {"total": len(requirements), "delivered": 0, "not_built": 0, "assumed": 0, "not_understood": 0,
             "without_verdict": 0, "delivered_without_test": 0}
    for requirement in requirements:
        key = requirement.verdict.replace(" ", "_")
        if key in found and requirement.verdict in VERDICTS:
            found[key] += 1
        else:
            found["without_verdict"] += 1
        if requirement.verdict in (DELIVERED, ASSUMED) and not requirement.tests:
            found["delivered_without_test"] += 1
    return found


def span_attributes(found: dict[str, int]) -> dict[str, int]:
    """:func:`counts` as ``scopeflow.requirements.*`` span attributes."""
    return {f"scopeflow.requirements.{key}": value for key, value in found.items()}


_ID = re.compile(r"^R-\d+$")


def is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_ID.match(value))
