"""The verifier measures real workspaces: compile, lint, tests (from JUnit XML), security."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scopeflow.handlers.checks import Checks
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import TaskFailure
from scopeflow.handlers.verifier import verify_build, verify_workspace
from scopeflow.spans import semconv

CALC = "def add(a, b):\n    return a + b\n"
PASSING_TESTS = """
    from calc import add


    def test_add():
        assert add(1, 2) == 3


    def test_add_negative():
        assert add(-1, -2) == -3
"""


def _ctx(tmp_path: Path) -> RecordingContext:
    return RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="verify", workspace=tmp_path)


def _app(tmp_path: Path, files: dict[str, str]) -> Path:
    app = tmp_path / "app"
    for rel, text in {"calc.py": CALC, "tests/test_calc.py": PASSING_TESTS, **files}.items():
        path = app / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return app


def test_a_clean_app_passes_every_check_and_records_the_figures(tmp_path):
    _app(tmp_path, {})
    ctx = _ctx(tmp_path)
    result = verify_build(ctx)
    assert result["ok"] is True
    checks = Checks.from_data(result["checks"])
    assert (checks.compile_errors, checks.lint_errors, checks.tests_passed, checks.tests_failed) == (0, 0, 2, 0)
    assert checks.security_high == 0
    assert ctx.recorded[semconv.TESTS_PASSED] == 2
    assert ctx.recorded[semconv.LINT_ERRORS] == 0
    assert [s.name for s in ctx.child_spans] == ["check compile", "check lint", "check tests", "check security"]
    tests_span = ctx.child_spans[2]
    assert tests_span.attributes[semconv.TESTS_PASSED] == 2
    assert tests_span.attributes["scopeflow.check.duration_s"] > 0


def test_a_failing_test_is_a_recoverable_failure_naming_the_test(tmp_path):
    _app(tmp_path, {"tests/test_wrong.py": """
        from calc import add


        def test_add_wrong():
            assert add(1, 2) == 4
    """})
    ctx = _ctx(tmp_path)
    with pytest.raises(TaskFailure) as caught:
        verify_build(ctx)
    failure = caught.value
    assert failure.kind == "recoverable"
    assert "1 test(s) failed" in failure.message
    checks = Checks.from_data(failure.details["checks"])
    assert (checks.tests_passed, checks.tests_failed, checks.tests_errors) == (2, 1, 0)
    [line] = [f for f in failure.details["failures"] if f.startswith("tests:")]
    assert "test_add_wrong" in line and "assert 3 == 4" in line
    assert ctx.recorded[semconv.TESTS_FAILED] == 1


def test_a_test_that_cannot_import_counts_as_an_error(tmp_path):
    _app(tmp_path, {"tests/test_broken.py": "import no_such_module_xyz\n\n\ndef test_x():\n    pass\n"})
    checks = verify_workspace(_ctx(tmp_path), tmp_path / "app")
    assert checks.tests_errors == 1
    assert not checks.ok


def test_a_lint_error_is_counted(tmp_path):
    _app(tmp_path, {"calc.py": "import os\n\n\n" + CALC})
    checks = verify_workspace(_ctx(tmp_path), tmp_path / "app")
    assert checks.lint_errors == 1
    assert any("F401" in f and "calc.py:1" in f for f in checks.failures)
    assert checks.tests_passed == 2
    assert not checks.ok


def test_a_syntax_error_is_a_compile_error_counted_once(tmp_path):
    _app(tmp_path, {"broken.py": "def oops(:\n    pass\n"})
    checks = verify_workspace(_ctx(tmp_path), tmp_path / "app")
    assert checks.compile_errors == 1
    assert checks.lint_errors == 0
    assert any(f.startswith("compile: broken.py:1") for f in checks.failures)
    assert not checks.ok


def test_shell_injection_is_a_high_severity_finding(tmp_path):
    _app(tmp_path, {"runner.py": """
        import subprocess


        def run(command):
            return subprocess.call(command, shell=True)
    """})
    checks = verify_workspace(_ctx(tmp_path), tmp_path / "app")
    assert checks.security_high == 1
    assert checks.security_low >= 1        # B404: importing subprocess
    assert any("B602" in f for f in checks.failures)
    assert not checks.ok


def test_an_app_without_tests_does_not_pass(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "calc.py").write_text(CALC)
    checks = verify_workspace(_ctx(tmp_path), app)
    assert checks.tests_passed == 0
    assert "no test passed" in checks.summary()
    assert not checks.ok


@pytest.mark.parametrize("app_dir", ["missing", "../elsewhere"])
def test_an_absent_or_escaping_app_dir_is_a_design_flaw(tmp_path, app_dir):
    (tmp_path / "elsewhere").mkdir()
    ctx = _ctx(tmp_path / "ws")
    (tmp_path / "ws").mkdir()
    with pytest.raises(TaskFailure) as caught:
        verify_build(ctx, app_dir=app_dir)
    assert caught.value.kind == "design_flaw"


def test_checks_round_trip_and_judge_ok():
    checks = Checks(tests_passed=3, security_medium=2, durations={"tests": 0.5}, failures=[])
    assert checks.ok
    assert Checks.from_data(checks.to_data()) == checks
    assert not Checks(tests_passed=3, security_high=1).ok
    assert not Checks(tests_passed=0).ok
    assert Checks(tests_passed=1, tests_failed=1).problems() == ["1 test(s) failed, 0 errored"]


def test_junit_requirement_properties_are_counted_per_requirement(tmp_path):
    from scopeflow.handlers.verifier import _count_junit, requirement_counts

    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="tests.test_books" name="test_crud"><properties>'
        '<property name="requirements" value="R-1 R-2"/></properties></testcase>'
        '<testcase classname="tests.test_books" name="test_title_is_required"><properties>'
        '<property name="requirements" value="R-2"/></properties><failure message="boom"/></testcase>'
        '<testcase classname="tests.test_books" name="test_skipped"><properties>'
        '<property name="requirements" value="R-3"/></properties><skipped/></testcase>'
        '<testcase classname="tests.test_core" name="test_unmarked"/>'
        '</testsuite></testsuites>', encoding="utf-8")
    checks = Checks()
    _count_junit(report, checks)
    assert checks.requirements == {
        "R-1": {"passed": ["tests.test_books::test_crud"], "failed": []},
        "R-2": {"passed": ["tests.test_books::test_crud"], "failed": ["tests.test_books::test_title_is_required"]},
    }
    assert requirement_counts(checks) == {"scopeflow.requirements.tested": 2, "scopeflow.requirements.failing": 1}
