"""``Checks``: what the verifier measured about a built workspace.

Every count here comes from a tool's machine-readable output (compile results, ruff JSON, the
JUnit XML pytest wrote, bandit JSON), never from scraping human-oriented text, so the numbers that
land on spans are evidence, not a model's opinion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scopeflow.handlers.serde import from_data, to_data

OUTPUT_KEEP_CHARS = 4000   # per tool: enough to see what went wrong, small enough for task data


def trim_output(text: str, keep: int = OUTPUT_KEEP_CHARS) -> str:
    """The tail of a tool's output (where errors usually are), marked when shortened."""
    if len(text) <= keep:
        return text
    return f"[… {len(text) - keep} characters trimmed]\n" + text[-keep:]


@dataclass
class Checks:
    compile_errors: int = 0
    lint_errors: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    tests_errors: int = 0
    tests_skipped: int = 0
    security_high: int = 0
    security_medium: int = 0
    security_low: int = 0
    durations: dict[str, float] = field(default_factory=dict)   # check name → seconds
    outputs: dict[str, str] = field(default_factory=dict)       # check name → trimmed tool output
    failures: list[str] = field(default_factory=list)           # short descriptions of what failed
    # requirement id → {"passed": [test ids], "failed": [test ids]}, from the tests' requirement marks
    requirements: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Compiles, lints clean, at least one test ran and none failed, no high-severity finding."""
        return (
            self.compile_errors == 0
            and self.lint_errors == 0
            and self.tests_failed + self.tests_errors == 0
            and self.tests_passed > 0
            and self.security_high == 0
        )

    def problems(self) -> list[str]:
        """One phrase per failed criterion of :attr:`ok`, in check order."""
        found = []
        if self.compile_errors:
            found.append(f"{self.compile_errors} file(s) do not compile")
        if self.lint_errors:
            found.append(f"{self.lint_errors} lint error(s)")
        if self.tests_failed or self.tests_errors:
            found.append(f"{self.tests_failed} test(s) failed, {self.tests_errors} errored")
        elif self.tests_passed == 0:
            found.append("no test passed")
        if self.security_high:
            found.append(f"{self.security_high} high-severity security finding(s)")
        return found

    def summary(self) -> str:
        """One line: either what failed or the passing figures."""
        problems = self.problems()
        if problems:
            return "checks failed: " + "; ".join(problems)
        return (f"checks passed: {self.tests_passed} tests passed, {self.tests_skipped} skipped, "
                f"{self.security_medium} medium / {self.security_low} low security findings")

    def to_data(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Checks:
        return from_data(cls, data)
