"""The verifier: compile, lint, test and scan a built app, and say exactly what failed.

Four checks run one after the other, each in its own child span and each as a sandboxed
subprocess (:func:`scopeflow.handlers.sandbox.run_untrusted`) of the tools in *our* virtualenv
(``sys.executable -m ...``), so the generated code never runs inside the Scopeflow process:

1. **compile** – ``py_compile`` every ``.py`` file (bytecode goes to a temporary directory, not
   into the app);
2. **lint** – ``ruff check --output-format json``; the app's own ``ruff.toml``/``pyproject.toml``
   when it has one, ruff's defaults (``--isolated``) otherwise, so a config file above the
   workspace never changes the verdict. Syntax errors are counted by *compile*, not again here;
3. **tests** – ``pytest -q -p no:cacheprovider --junitxml=…``; the counts come from the JUnit XML
   pytest wrote, not from its console output;
4. **security** – ``bandit -r -f json``, the ``tests`` directory excluded; findings counted by
   severity.

A tool that cannot run at all (missing, crashed, unreadable output) is a ``configuration``
failure: the verdict would otherwise be made up.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # nosec B405 - parses the report our own pytest run wrote
from pathlib import Path
from typing import Any

from scopeflow.handlers.app_content import tree_digest
from scopeflow.handlers.checks import Checks, trim_output
from scopeflow.handlers.context import TaskContext
from scopeflow.handlers.failures import CONFIGURATION, DESIGN_FLAW, RECOVERABLE, TaskFailure
from scopeflow.handlers.registry import NO_RETRY, operator
from scopeflow.handlers.sandbox import RunResult, isolation_support, run_untrusted
from scopeflow.spans import semconv

DEFAULT_TIMEOUT_S = 300.0
MAX_FAILURES_PER_CHECK = 10
_SKIP_DIRS = {"__pycache__", "node_modules", "venv", "site-packages"}

_COMPILE_SCRIPT = """
import json, os, py_compile, sys, tempfile
errors = []
with tempfile.TemporaryDirectory() as out:
    for i, path in enumerate(sys.argv[1:]):
        try:
            py_compile.compile(path, cfile=os.path.join(out, f"{i}.pyc"), doraise=True)
        except py_compile.PyCompileError as exc:
            line = getattr(exc.exc_value, "lineno", None)
            text = getattr(exc.exc_value, "msg", None) or str(exc.exc_value)
            errors.append({"file": path, "line": line, "message": str(text).splitlines()[0]})
print(json.dumps(errors))
"""


class _ToolFailed(Exception):
    """A check's tool could not produce a verdict."""


def python_files(app_dir: Path) -> list[str]:
    """App-relative paths of the Python sources to check (hidden and cache directories skipped)."""
    found = []
    for path in sorted(app_dir.rglob("*.py")):
        rel = path.relative_to(app_dir)
        if any(part.startswith(".") or part in _SKIP_DIRS for part in rel.parts[:-1]):
            continue
        found.append(rel.as_posix())
    return found


def hidden_from_checks(workspace: Path) -> Path:
    """The directory the checked code must not see: the Scopeflow home (database, ``secret.key``,
    every instance's workspace) when the workspace has the engine's ``<home>/workspaces/<id>``
    layout, otherwise at least the workspace's parent (its sibling workspaces)."""
    workspace = Path(workspace).resolve()
    return workspace.parent.parent if workspace.parent.name == "workspaces" else workspace.parent


def _run(argv: list[str], app_dir: Path, timeout_s: float, name: str, hide: tuple[Path, ...] = ()) -> RunResult:
    result = run_untrusted(argv, cwd=app_dir, timeout_s=timeout_s, hide=hide)
    if result.returncode == 127 and not result.timed_out:
        raise _ToolFailed(f"{name}: {result.stderr.strip()}")
    return result


def _load_json(result: RunResult, name: str) -> Any:
    try:
        return json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise _ToolFailed(f"{name} gave no readable report (exit {result.returncode}): {last}") from None


def check_compile(app_dir: Path, checks: Checks, timeout_s: float,
                  hide: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Check 1: every Python file compiles. Returns the span attributes it measured."""
    files = python_files(app_dir)
    if not files:
        checks.failures.append("compile: the app has no Python files")
        return {"scopeflow.check.files": 0, semconv.COMPILE_ERRORS: 0}
    result = _run([sys.executable, "-c", _COMPILE_SCRIPT, *files], app_dir, timeout_s, "compile", hide)
    if result.timed_out:
        raise _ToolFailed(f"compile: timed out after {timeout_s:g}s")
    errors = _load_json(result, "compile")
    checks.compile_errors = len(errors)
    checks.outputs["compile"] = trim_output(result.stderr or result.stdout)
    for error in errors[:MAX_FAILURES_PER_CHECK]:
        checks.failures.append(f"compile: {error['file']}:{error['line']}: {error['message']}")
    return {"scopeflow.check.files": len(files), semconv.COMPILE_ERRORS: checks.compile_errors}


def _ruff_config(app_dir: Path) -> list[str]:
    for name in ("ruff.toml", ".ruff.toml", "pyproject.toml"):
        if (app_dir / name).is_file():
            return ["--config", str(app_dir / name)]
    return ["--isolated"]


def check_lint(app_dir: Path, checks: Checks, timeout_s: float,
               hide: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Check 2: ruff finds nothing (syntax errors excluded: *compile* counts those)."""
    argv = [sys.executable, "-m", "ruff", "check", "--output-format", "json", "--no-cache",
            *_ruff_config(app_dir), "."]
    result = _run(argv, app_dir, timeout_s, "ruff", hide)
    if result.timed_out or result.returncode not in (0, 1):
        raise _ToolFailed(f"ruff failed (exit {result.returncode}): {result.stderr.strip()[:300]}")
    findings = [f for f in _load_json(result, "ruff") if f.get("code") not in (None, "invalid-syntax")]
    checks.lint_errors = len(findings)
    checks.outputs["lint"] = trim_output(result.stderr)
    for finding in findings[:MAX_FAILURES_PER_CHECK]:
        where = Path(finding["filename"]).resolve()
        rel = where.relative_to(app_dir) if where.is_relative_to(app_dir) else where
        row = finding.get("location", {}).get("row")
        checks.failures.append(f"lint: {rel}:{row}: {finding['code']} {finding['message']}")
    return {semconv.LINT_ERRORS: checks.lint_errors}


def check_tests(app_dir: Path, checks: Checks, timeout_s: float,
                hide: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Check 3: pytest, counted from the JUnit XML it writes."""
    # Inside the app: under namespace isolation the child's /tmp is private, and the app
    # directory is the only place it can write that we can read back.
    with tempfile.TemporaryDirectory(prefix=".scopeflow-junit-", dir=app_dir) as tmp:
        report = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
        result = _run(argv, app_dir, timeout_s, "pytest", hide)
        checks.outputs["tests"] = trim_output(result.stdout + result.stderr)
        if result.timed_out:
            checks.tests_errors += 1
            checks.failures.append(f"tests: pytest timed out after {timeout_s:g}s")
        elif not report.is_file():
            checks.tests_errors += 1
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            checks.failures.append(f"tests: pytest wrote no report (exit {result.returncode}): {last}")
        else:
            _count_junit(report, checks)
            if result.returncode == 5:
                checks.failures.append("tests: pytest collected no tests")
    return {
        semconv.TESTS_PASSED: checks.tests_passed, semconv.TESTS_FAILED: checks.tests_failed,
        semconv.TESTS_ERRORS: checks.tests_errors, "scopeflow.tests.skipped": checks.tests_skipped,
        **requirement_counts(checks),
    }


def _count_junit(report: Path, checks: Checks) -> None:
    try:
        root = ET.parse(report).getroot()  # nosec B314 - written by our own pytest run
    except ET.ParseError as exc:
        raise _ToolFailed(f"pytest report is not valid XML: {exc}") from None
    for case in root.iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        _count_requirements(case, outcome, checks)
        if outcome is None:
            checks.tests_passed += 1
            continue
        if outcome.tag == "skipped":
            checks.tests_skipped += 1
            continue
        if outcome.tag == "failure":
            checks.tests_failed += 1
        else:
            checks.tests_errors += 1
        if len(checks.failures) < 4 * MAX_FAILURES_PER_CHECK:
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            message = (outcome.get("message") or outcome.text or "").strip().splitlines()
            checks.failures.append(f"tests: {outcome.tag} {test_id}: {message[0] if message else ''}")


def _count_requirements(case: ET.Element, outcome: ET.Element | None, checks: Checks) -> None:
    """Credit the requirement ids a test case carries (its ``requirements`` property, written by
    the generated conftest from the test's ``@pytest.mark.requirements``) with its outcome."""
    if outcome is not None and outcome.tag == "skipped":
        return
    test_id = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
    for prop in case.iter("property"):
        if prop.get("name") != "requirements":
            continue
        for rid in (prop.get("value") or "").split():
            bucket = checks.requirements.setdefault(rid, {"passed": [], "failed": []})
            bucket["passed" if outcome is None else "failed"].append(test_id)


def requirement_counts(checks: Checks) -> dict[str, int]:
    """Span attributes: requirements some passing test names, and those some failing test names."""
    return {
        semconv.REQUIREMENTS_TESTED: sum(1 for r in checks.requirements.values() if r["passed"]),
        semconv.REQUIREMENTS_FAILING: sum(1 for r in checks.requirements.values() if r["failed"]),
    }


def check_security(app_dir: Path, checks: Checks, timeout_s: float,
                   hide: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Check 4: bandit over the app (tests excluded), findings counted by severity."""
    argv = [sys.executable, "-m", "bandit", "-r", ".", "-f", "json", "-q", "-x", "./tests"]
    result = _run(argv, app_dir, timeout_s, "bandit", hide)
    if result.timed_out or result.returncode not in (0, 1):
        raise _ToolFailed(f"bandit failed (exit {result.returncode}): {result.stderr.strip()[:300]}")
    report = _load_json(result, "bandit")
    counts = {"HIGH": 0, "MEDIUM": 0, "LOW": 0}
    for finding in report.get("results", []):
        severity = finding.get("issue_severity", "LOW")
        counts[severity] = counts.get(severity, 0) + 1
        if severity == "HIGH" and len(checks.failures) < 5 * MAX_FAILURES_PER_CHECK:
            where = f"{finding['filename'].removeprefix('./')}:{finding.get('line_number')}"
            checks.failures.append(f"security: {where}: {finding['test_id']} {finding['issue_text']}")
    checks.security_high, checks.security_medium, checks.security_low = (
        counts["HIGH"], counts["MEDIUM"], counts["LOW"])
    checks.outputs["security"] = trim_output(result.stderr)
    return {semconv.SECURITY_HIGH: checks.security_high, semconv.SECURITY_MEDIUM: checks.security_medium,
            "scopeflow.security.low": checks.security_low}


CHECKS = (("compile", check_compile), ("lint", check_lint), ("tests", check_tests),
          ("security", check_security))


def verify_workspace(ctx: TaskContext, app_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Checks:
    """Run the four checks on ``app_dir`` (each bounded by ``timeout_s`` and the task's deadline).

    Raises ``TaskFailure("configuration")`` when a tool cannot give a verdict.
    """
    app_dir = Path(app_dir).resolve()
    checks = Checks()
    hide = (hidden_from_checks(ctx.workspace),)
    isolation = isolation_support()     # what every run_untrusted call of these checks uses
    for name, check in CHECKS:
        left = ctx.time_left()
        budget = timeout_s if left is None else max(1.0, min(timeout_s, left))
        with ctx.span(f"check {name}", **{"scopeflow.check.name": name,
                                           semconv.SANDBOX_ISOLATION: isolation.mode,
                                           semconv.SANDBOX_ISOLATION_REASON: isolation.reason}) as span:
            started = time.monotonic()
            try:
                measured = check(app_dir, checks, budget, hide)
            except _ToolFailed as exc:
                span.set(**{"scopeflow.check.error": str(exc)})
                raise TaskFailure(CONFIGURATION, f"{name} check could not run: {exc}",
                                  {"check": name}) from None
            checks.durations[name] = round(time.monotonic() - started, 3)
            span.set(**measured, **{"scopeflow.check.duration_s": checks.durations[name]})
    return checks


def _app_path(ctx: TaskContext, app_dir: str) -> Path:
    workspace = Path(ctx.workspace).resolve()
    path = (workspace / app_dir).resolve()
    if not path.is_relative_to(workspace):
        raise TaskFailure(DESIGN_FLAW, f"app directory {app_dir!r} lies outside the workspace",
                          {"app_dir": app_dir})
    if not path.is_dir():
        raise TaskFailure(DESIGN_FLAW, f"app directory {app_dir!r} does not exist in the workspace",
                          {"app_dir": app_dir})
    return path


@operator("verify_build", expensive=True, retry=NO_RETRY)
def verify_build(ctx: TaskContext, app_dir: str = "app") -> dict[str, Any]:
    """Compile, lint, test and scan the built app; a failed check is a recoverable failure."""
    checks = verify_workspace(ctx, _app_path(ctx, app_dir))
    ctx.record({
        semconv.TESTS_PASSED: checks.tests_passed, semconv.TESTS_FAILED: checks.tests_failed,
        semconv.TESTS_ERRORS: checks.tests_errors, semconv.LINT_ERRORS: checks.lint_errors,
        semconv.COMPILE_ERRORS: checks.compile_errors, semconv.SECURITY_HIGH: checks.security_high,
        semconv.SECURITY_MEDIUM: checks.security_medium, **requirement_counts(checks),
    })
    if not checks.ok:
        raise TaskFailure(RECOVERABLE, checks.summary(),
                          {"checks": checks.to_data(), "failures": list(checks.failures)})
    # The digest of exactly what was checked: the deployer ships this content or nothing.
    return {"checks": checks.to_data(), "ok": True, "app_sha256": tree_digest(_app_path(ctx, app_dir))}
