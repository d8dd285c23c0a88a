"""Generated code under the verifier: what its sandbox contains, checked by hostile generated tests.

Each test plants a hostile test file in a small generated app and runs it the way the verifier
does. What holds on every machine: the child sees none of our environment (``SCOPEFLOW_*``,
credentials), ``~`` and ``tempfile`` resolve inside the workspace, and a fork bomb ends at the
timeout with its whole process group killed. Under namespace isolation (probed; available on this
project's machines) the filesystem is contained too: a generated test cannot read the Scopeflow
home (database, ``secret.key``, other workspaces) or a home directory, and cannot write outside
its workspace. Without it, reads and writes by absolute path are limited only by the permissions
of the user running Scopeflow, and the result says ``isolation == "none"`` (README, Security).
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scopeflow.handlers import sandbox
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.sandbox import NAMESPACE, PRIVATE_TMP_PREFIX, Limits, isolation_support, run_untrusted
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
    result = run_untrusted([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, timeout_s=2,
                           limits=Limits(max_processes=30))
    assert time.monotonic() - started < 8
    assert result.timed_out and not result.ok
    forked = int(result.stdout.split()[1])
    if os.geteuid() == 0 and result.run_uid is None:
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


needs_namespace = pytest.mark.skipif(isolation_support().mode != NAMESPACE,
                                     reason=f"no namespace isolation here: {isolation_support().reason}")


def fake_home(tmp_path: Path) -> tuple[Path, Path]:
    """A Scopeflow home laid out as the engine does, with a database, a key, another instance's
    workspace and a planted ``.ssh`` key; returns (home, this instance's workspace)."""
    home = tmp_path / "home"
    (home / "workspaces" / "other" / "app").mkdir(parents=True)
    (home / "workspaces" / "other" / "app" / "notes.txt").write_text("other instance", encoding="utf-8")
    (home / "scopeflow.db").write_text("SQLite format 3 rows", encoding="utf-8")
    (home / "secret.key").write_text("fernet-key-material", encoding="utf-8")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY", encoding="utf-8")
    return home, home / "workspaces" / "mine"


@needs_namespace
def test_a_generated_test_cannot_read_the_scopeflow_home_or_write_outside_its_workspace(tmp_path):
    home, workspace = fake_home(tmp_path)
    app = make_app(workspace, f"""
        from pathlib import Path

        import pytest

        HOME = Path({str(home)!r})


        @pytest.mark.parametrize("secret", ["scopeflow.db", "secret.key", ".ssh/id_ed25519",
                                            "workspaces/other/app/notes.txt"])
        def test_steal(secret):
            print((HOME / secret).read_text())


        def test_root_home():
            print(sorted(p.name for p in Path("/root").iterdir()))
            assert not Path("/root/.ssh").exists()


        @pytest.mark.parametrize("target", ["/etc/scopeflow-planted", "/usr/scopeflow-planted",
                                            "/var/tmp/scopeflow-planted"])
        def test_plant(target):
            Path(target).write_text("x")


        def test_own_workspace_is_writable():
            Path("written-by-tests.txt").write_text("mine")
    """)
    ctx = RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="verify_build_task", workspace=workspace)
    checks = verify_workspace(ctx, app, timeout_s=60)
    # The two honest tests pass; every theft and every plant fails, and the verifier names them.
    assert (checks.tests_passed, checks.tests_failed) == (3, 7), checks.failures
    for secret in ("scopeflow.db", "secret.key", ".ssh/id_ed25519", "workspaces/other/app/notes.txt"):
        assert any(f"test_steal[{secret}]" in failure and "No such file" in failure for failure in checks.failures)
    assert sum("test_plant" in f and "Read-only file system" in f for f in checks.failures) == 3
    assert not any(Path(p).exists() for p in ("/etc/scopeflow-planted", "/var/tmp/scopeflow-planted"))
    assert (app / "written-by-tests.txt").read_text(encoding="utf-8") == "mine"
    for text in ("fernet-key-material", "SQLite format 3", "PRIVATE KEY", "other instance"):
        assert text not in checks.outputs["tests"]
    spans = [s for s in ctx.child_spans if s.name.startswith("check ")]
    assert {s.attributes["scopeflow.sandbox.isolation"] for s in spans} == {"namespace"}


@needs_namespace
def test_under_namespace_isolation_absolute_paths_outside_the_workspace_are_contained(tmp_path):
    """The reversal of the old limitation: an absolute-path read of a hidden directory finds
    nothing, an absolute-path write outside the working directory is refused (or, under /tmp,
    lands in the child's private /tmp and vanishes with it), and the child holds no capability
    with which to unmount what hides the files."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "outside.txt").write_text("private", encoding="utf-8")
    work = hidden / "work"
    work.mkdir()
    code = textwrap.dedent(f"""
        import subprocess
        from pathlib import Path
        print("visible:", Path({str(hidden / 'outside.txt')!r}).exists())
        try:
            Path("/var/tmp/scopeflow-planted").write_text("x")
        except OSError as exc:
            print("write:", exc.strerror)
        try:
            Path({str(tmp_path / 'written')!r}).write_text("private /tmp")
        except OSError as exc:   # under a dedicated uid: the private /tmp's directories are not its own
            pass
        print("umount:", subprocess.run(["umount", {str(hidden)!r}], capture_output=True).returncode)
        print("caps:", open("/proc/self/status").read().split("CapEff:")[1].split()[0])
        try:
            print("our environ:", len(open("/proc/{os.getpid()}/environ").read()))
        except OSError as exc:
            print("our environ:", exc.strerror)
        Path("ok.txt").write_text("in the workspace")
    """)
    result = run_untrusted([sys.executable, "-c", code], cwd=work, timeout_s=10, hide=[hidden])
    assert result.ok, result.stderr
    assert result.isolation == "namespace"
    lines = result.stdout.splitlines()
    assert lines[:2] == ["visible: False", "write: Read-only file system"]
    assert lines[2] != "umount: 0" and lines[3] == "caps: 0000000000000000"
    # Its own PID namespace: our process is not even visible (issue #19 item 5: /proc/<pid>/environ).
    assert lines[4] in ("our environ: No such file or directory", "our environ: Permission denied")
    assert not (tmp_path / "written").exists() and not Path("/var/tmp/scopeflow-planted").exists()
    assert (work / "ok.txt").read_text(encoding="utf-8") == "in the workspace"
    assert (hidden / "outside.txt").read_text(encoding="utf-8") == "private"   # hidden, not harmed


@pytest.mark.skipif(os.geteuid() != 0, reason="documents what root can do; a normal user is limited by permissions")
def test_without_isolation_absolute_paths_are_not_contained_and_the_result_says_so(tmp_path, monkeypatch):
    """The fallback, pinned so the README stays true: where namespaces are not allowed the child
    reads and writes by absolute path as the user running Scopeflow, and says so loudly."""
    monkeypatch.setattr(sandbox, "isolation_support",
                        lambda: sandbox.Isolation(sandbox.NO_ISOLATION, "namespaces not allowed (test)"))
    warnings = []   # recorded at the logger: Celery's set-up in tests/test_workers.py reroutes handlers
    monkeypatch.setattr(sandbox.log, "warning", lambda message, *args: warnings.append(message % args))
    outside = tmp_path / "outside.txt"
    outside.write_text("private", encoding="utf-8")
    os.chmod(outside, 0o600)
    work = tmp_path / "work"
    work.mkdir()
    code = f"print(open({str(outside)!r}).read()); open({str(tmp_path / 'written')!r}, 'w').write('x')"
    result = run_untrusted([sys.executable, "-c", code], cwd=work, timeout_s=10, hide=[tmp_path])
    assert result.stdout.strip() == "private"
    assert (tmp_path / "written").exists()
    assert (result.isolation, result.isolation_reason) == ("none", "namespaces not allowed (test)")
    assert warnings == [f"sandbox runs {sys.executable} WITHOUT filesystem or process isolation: "
                        "namespaces not allowed (test)"]
