"""What the final reviewer decides on, read from the task's data: requirement verdicts, the change
summary and rationale, the decisions and risks, the confidence with its deductions in words, the
verifier's counts with their tool output, and the requirements (features) built or not.

Only what the data holds is shown; a missing piece is left out, never invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scopeflow.engine.answers import unwrap

CHECK_LABELS = {
    "tests_passed": "tests passed", "tests_failed": "tests failed", "tests_errors": "tests erroring",
    "tests_skipped": "tests skipped", "compile_errors": "files that do not compile",
    "lint_errors": "lint errors", "security_high": "high-severity security findings",
    "security_medium": "medium-severity security findings", "security_low": "low-severity security findings",
}
GOOD_WHEN_ZERO = {"tests_failed", "tests_errors", "compile_errors", "lint_errors", "security_high",
                  "security_medium"}
OUTPUT_TITLES = {"tests": "Test output", "lint": "Lint output", "security": "Security scan output",
                 "compile": "Compile output"}
VERDICT_KEYS = ("requirement_verdicts", "verdicts", "requirements")
_DEDUCTION = re.compile(r"-(\d+\.\d+) for ([^;=]+)")


@dataclass
class CheckRow:
    key: str
    label: str
    value: Any
    ok: bool | None          # None: neither good nor bad (e.g. skipped tests)


@dataclass
class Confidence:
    value: float | None
    deductions: list[tuple[str, str]] = field(default_factory=list)   # (amount, reason)

    @property
    def words(self) -> str:
        if self.value is None:
            return ""
        if not self.deductions:
            return f"{self.value:.2f} of 1.00: no deduction applied"
        return f"{self.value:.2f} of 1.00 after " + "; ".join(f"−{a} for {r.strip()}" for a, r in self.deductions)


@dataclass
class FinalReview:
    verdicts: list[dict[str, Any]]
    summary: dict[str, list[str]]
    rationale: str
    decisions: list[dict[str, str]]
    risks: list[str]
    confidence: Confidence
    checks: list[CheckRow]
    outputs: list[tuple[str, str, float | None]]       # (title, text, seconds)
    failures: list[str]
    features: list[dict[str, Any]]

    @property
    def checks_pass(self) -> bool:
        return all(row.ok is not False for row in self.checks)


def confidence(review: dict[str, Any]) -> Confidence:
    value = review.get("confidence")
    basis = str(review.get("confidence_basis") or "")
    return Confidence(float(value) if isinstance(value, int | float) else None, _DEDUCTION.findall(basis))


def _verdicts(review: dict[str, Any], outer: dict[str, Any]) -> list[dict[str, Any]]:
    for source in (review, outer):
        for key in VERDICT_KEYS:
            found = source.get(key)
            if isinstance(found, list) and found:
                return [v if isinstance(v, dict) else {"requirement": str(v)} for v in found]
    return []


def check_rows(checks: dict[str, Any]) -> list[CheckRow]:
    rows = []
    for key, value in checks.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        ok = (value == 0) if key in GOOD_WHEN_ZERO else (value > 0) if key == "tests_passed" else None
        rows.append(CheckRow(key, CHECK_LABELS.get(key, key.replace("_", " ")), value, ok))
    return rows


def final_review(data: dict[str, Any]) -> FinalReview:
    """The final review's context from the task data (the ``review`` and ``verification`` variables)."""
    outer = data.get("review") if isinstance(data.get("review"), dict) else {}
    review = unwrap(outer, "review")
    verification = unwrap(data.get("verification"), "verification")
    checks = verification.get("checks") if isinstance(verification.get("checks"), dict) else {}
    outputs_raw = checks.get("outputs") if isinstance(checks.get("outputs"), dict) else {}
    seconds = checks.get("durations") if isinstance(checks.get("durations"), dict) else {}
    outputs = [(OUTPUT_TITLES.get(k, k), str(v), seconds.get(k)) for k, v in outputs_raw.items()
               if k in OUTPUT_TITLES]
    outputs.sort(key=lambda o: list(OUTPUT_TITLES.values()).index(o[0]))
    summary = review.get("summary") if isinstance(review.get("summary"), dict) else {}
    spec = unwrap(data.get("spec"), "spec")
    return FinalReview(
        verdicts=_verdicts(review, outer),
        summary={k: [str(x) for x in v] for k, v in summary.items() if isinstance(v, list)},
        rationale=str(outer.get("rationale") or review.get("rationale") or ""),
        decisions=[d for d in review.get("decisions") or [] if isinstance(d, dict)],
        risks=[str(r) for r in review.get("risks") or []],
        confidence=confidence(review),
        checks=check_rows(checks),
        outputs=outputs,
        failures=[str(f) for f in checks.get("failures") or []],
        features=[f for f in spec.get("features") or [] if isinstance(f, dict)],
    )


FINAL_REVIEW_FORM = "final_review.schema.json"   # the form of the task that decides on a verified build


@dataclass
class BuildPanel:
    """The build under review: file tree, the selected file, and the diff against the earlier build."""

    tree: Any
    file_count: int
    selected: str
    code: Any                 # highlighted Markup, or None
    selected_problem: str
    diffs: list[Any]
    diff_base: str            # what the diff compares with, in words


def build_panel(home, workspace, instance_id: str, task_id: str, earlier_task_ids: list[str],
                selected: str) -> BuildPanel:
    """Snapshot what this review shows, and diff it against the latest earlier review's snapshot."""
    from scopeflow.ui import code_view, workspace_files

    listing = [(p, s) for p, s in workspace_files.listing(workspace) if code_view.reviewable(p)]
    current = code_view.snapshot(workspace, [p for p, _ in listing])
    code_view.save_snapshot(home, instance_id, task_id, current)
    mine = code_view.load_snapshot(home, instance_id, task_id) or current
    base, base_words = None, "no earlier review of this instance: every file is new"
    for earlier in earlier_task_ids:
        base = code_view.load_snapshot(home, instance_id, earlier)
        if base is not None:
            base_words = "the build shown at the previous review of this instance"
            break
    if base is None and earlier_task_ids:
        base_words = "the earlier build was reviewed outside this page, so no copy of it was kept: every file is shown as new"
    code, problem = code_view.shown_file(workspace, selected, "this build") if selected else (None, "")
    return BuildPanel(code_view.file_tree(listing), len(listing), selected, code, problem,
                      code_view.diff_builds(base or {}, mine), base_words)
