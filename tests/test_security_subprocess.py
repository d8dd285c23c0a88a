"""Generated code under the verifier: what its sandbox contains, checked by hostile generated tests.

Each test plants a hostile test file in a small generated app and runs it the way the verifier
does. What holds on every machine: the child sees none of our environment (``SCOPEFLOW_*``,
credentials), ``~`` and ``tempfile`` resolve inside the workspace, and a fork bomb ends at the
timeout with its whole process group killed. What does *not* hold (documented in
docs/security.md): reads and writes by absolute path are limited only by the permissions of the
user running Scopeflow — as root, none — and ``RLIMIT_NPROC`` is not enforced for root.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.sandbox import PRIVATE_TMP_PREFIX, Limits, run_sandboxed
from scopeflow.handlers.verifier import verify_workspace

APP = '''"""A tiny generated app."""


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
'''


def make_app(workspace: Path, hostile_test: str) -> Path:
    app = workspace / "app"
    (app / "tests").mkdir(parents=True)
    (app / "shop.py").write_text(APP, encoding="utf-8")
    (app / "tests" / "__init__.py").write_text("", encoding="utf-8")
    (app / "tests" / "test_shop.py").write_text(
        "from shop import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n", encoding="utf-8")
    (app / "tests" / "test_hostile.py").write_text(textwrap.dedent(hostile_test), encoding="utf-8")
    (app / "conftest.py").write_text("", encoding="utf-8")
    return app


def verify(tmp_path: Path, hostile_test: str):
    workspace = tmp_path / "workspace"
    app = make_app(workspace, hostile_test)
    ctx = RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="verify_build_task", workspace=workspace)
    return app, verify_workspace(ctx, app, timeout_s=60)


def test_a_generated_test_sees_no_scopeflow_settings_or_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_SECRET_KEY", "sf-secret-key-value")
    monkeypatch.setenv("SCOPEFLOW_DATABASE_URL", "postgresql://user:pw@db/scopeflow")
    monkeypatch.setenv("PAYMENT_API_KEY", "pk-live-value")
    _app, checks = verify(tmp_path, """
        import os


        def test_environment_is_clean():
            leaked = sorted(k for k in os.environ if k.startswith("SCOPEFLOW_") or k == "PAYMENT_API_KEY")
            values = [v for v in os.environ.values() if "sf-secret" in v or "pk-live" in v or "pw@db" in v]
            assert leaked == [] and values == []
    """)
    assert (checks.tests_passed, checks.tests_failed) == (2, 0), checks.failures


def test_home_and_tempfile_resolve_inside_the_workspace(tmp_path):
    app, checks = verify(tmp_path, """
        import os
        import tempfile
        from pathlib import Path


        def test_home_is_the_app_directory():
            assert Path.home() == Path.cwd()
            assert not (Path.home() / ".ssh").exists()          # ~/.ssh is the workspace's, and empty


        def test_temporary_files_stay_in_the_workspace():
            with tempfile.NamedTemporaryFile("w", delete=False) as handle:
                handle.write("scratch")
            assert Path(handle.name).resolve().is_relative_to(Path.cwd())
            Path(os.environ["TMPDIR"], "left-behind").write_text("x")
    """)
    assert (checks.tests_passed, checks.tests_failed) == (3, 0), checks.failures
    # The private TMPDIR is deleted after each run, with whatever the tests left in it.
    assert not list(app.glob(PRIVATE_TMP_PREFIX + "*"))


def test_a_fork_bomb_in_a_generated_test_is_stopped_and_reported(tmp_path):
    code = """
        import os, time
        children = 0
        for _ in range(60):
            try:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
            except OSError:
                break
        print("forked", children, flush=True)
        time.sleep(60)
    """
    started = time.monotonic()
    result = run_sandboxed([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, timeout_s=2,
                           limits=Limits(max_processes=30))
    assert time.monotonic() - started < 8
    assert result.timed_out and not result.ok
    forked = int(result.stdout.split()[1])
    if os.geteuid() == 0:
        assert forked == 60    # RLIMIT_NPROC is not enforced for root: only the timeout holds
    else:
        assert forked < 30


def test_a_hanging_generated_test_is_reported_as_a_timeout(tmp_path):
    workspace = tmp_path / "workspace"
    app = make_app(workspace, "import time\n\n\ndef test_hangs():\n    time.sleep(600)\n")
    ctx = RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="verify_build_task", workspace=workspace)
    started = time.monotonic()
    checks = verify_workspace(ctx, app, timeout_s=3)
    assert time.monotonic() - started < 30
    assert any("timed out" in failure for failure in checks.failures)
    assert not checks.ok


@pytest.mark.skipif(os.geteuid() != 0, reason="documents what root can do; a normal user is limited by permissions")
def test_as_root_absolute_paths_outside_the_workspace_are_not_contained(tmp_path):
    """Recorded so the limitation is known and the docs stay true: if this starts failing, the
    sandbox gained filesystem isolation — update docs/security.md."""
    outside = tmp_path / "outside.txt"
    outside.write_text("private", encoding="utf-8")
    os.chmod(outside, 0o600)
    work = tmp_path / "work"
    work.mkdir()
    code = f"print(open({str(outside)!r}).read()); open({str(tmp_path / 'written')!r}, 'w').write('x')"
    result = run_sandboxed([sys.executable, "-c", code], cwd=work, timeout_s=10)
    assert result.stdout.strip() == "private"
    assert (tmp_path / "written").exists()
