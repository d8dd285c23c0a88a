"""The sandboxed runner: timeouts kill whole process groups, limits hold, the environment is clean."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from scopeflow.handlers.sandbox import (
    LAUNCH_FAILED,
    NAMESPACE,
    Limits,
    _namespace_prefix,
    hidden_directories,
    isolation_support,
    launcher_argv,
    run_untrusted,
    scrubbed_env,
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _alive(pid: int) -> bool:
    """A process counts as alive unless it is gone or a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _running(marker: str) -> list[int]:
    """Host pids of live processes whose command line holds ``marker`` (pids seen inside a PID
    namespace mean nothing out here, so processes are found by what they run)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes() and _alive(int(entry)):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _wait_dead(pids: list[int], within_s: float = 3.0) -> list[int]:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        survivors = [pid for pid in pids if _alive(pid)]
        if not survivors:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def test_a_command_runs_in_its_directory_and_reports_its_output(tmp_path):
    result = run_untrusted(_python("import os; print(os.getcwd()); raise SystemExit(3)"),
                           cwd=tmp_path, timeout_s=10)
    assert result.returncode == 3
    assert result.stdout.strip() == str(tmp_path.resolve())
    assert not result.timed_out and result.killed_by_signal is None
    assert not result.ok


def test_timeout_kills_the_child_and_its_grandchild(tmp_path):
    pids = tmp_path / "pids"
    marker = f"marker-timeout-{os.getpid()}"
    code = f"""
        import os, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # {marker}"])
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{grandchild.pid}}")
        time.sleep(60)
    """
    started = time.monotonic()
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=1.5)
    assert time.monotonic() - started < 6
    assert result.timed_out
    assert result.killed_by_signal == 9
    assert len(pids.read_text().split()) == 2            # both had started
    assert _wait_dead(_running(marker)) == []


@pytest.mark.parametrize("escape", ["background", "setsid", "double_fork"])
def test_background_grandchildren_do_not_outlive_a_command_that_exits(tmp_path, escape):
    """Issue #19 item 5: a daemon that leaves the process group (``setsid``, a double fork) was still
    running, and writing the app, after the run. Under namespace isolation it dies with the run."""
    started = tmp_path / "started"
    marker = f"marker-daemon-{escape}-{os.getpid()}"
    daemon = f"import time; open({str(started)!r}, 'w').write('up'); time.sleep(60)  # {marker}"
    launch = {
        "background": f"subprocess.Popen([sys.executable, '-c', {daemon!r}])",
        "setsid": f"subprocess.Popen([sys.executable, '-c', {daemon!r}], start_new_session=True)",
        "double_fork": f"subprocess.Popen([sys.executable, '-c', 'import os, subprocess, sys; os.setsid(); '"
                       f" + 'subprocess.Popen([sys.executable, \"-c\", ' + repr({daemon!r}) + '])'])",
    }[escape]
    code = f"""
        import os, subprocess, sys, time
        from pathlib import Path
        {launch}
        deadline = time.monotonic() + 5
        while not Path({str(started)!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    """
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10)
    assert result.returncode == 0 and not result.timed_out
    assert started.read_text() == "up"
    left = _wait_dead(_running(marker))
    if result.isolation == NAMESPACE:
        assert left == [] and result.survivors == 0
    else:   # documented: without namespaces only the process group is swept
        assert escape == "background" or left, "the fallback's limitation is documented; update the README"
        for pid in left:
            os.kill(pid, 9)


def test_the_child_sees_no_scopeflow_settings_or_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_SECRET_KEY", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10, env_extra={"APP_MODE": "test"})
    import json

    env = json.loads(result.stdout)
    assert "SCOPEFLOW_SECRET_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HOME"] == str(tmp_path.resolve())
    assert env["PYTHONHASHSEED"] == "0"
    assert env["APP_MODE"] == "test"


def test_env_extra_may_not_smuggle_scopeflow_settings(tmp_path):
    with pytest.raises(ValueError, match="SCOPEFLOW_DATABASE_URL"):
        scrubbed_env(tmp_path, {"SCOPEFLOW_DATABASE_URL": "sqlite://"})


def test_file_size_limit_stops_a_large_write(tmp_path):
    code = """
        with open("big.bin", "wb") as f:
            f.write(b"x" * (3 * 1024 * 1024))
    """
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10, limits=Limits(file_size_mb=1))
    assert result.returncode != 0
    assert "File too large" in result.stderr
    assert (tmp_path / "big.bin").stat().st_size <= 1024 * 1024


def test_cpu_limit_stops_a_busy_loop_before_the_timeout(tmp_path):
    result = run_untrusted(_python("while True: pass"), cwd=tmp_path, timeout_s=20,
                           limits=Limits(cpu_seconds=1))
    assert not result.timed_out
    assert result.killed_by_signal in (24, 9)   # SIGXCPU at the soft limit, SIGKILL at the hard one


def test_output_is_bounded_and_truncation_is_noted(tmp_path):
    code = "import sys; sys.stdout.write('a' * 1_000_000)"
    result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10, limits=Limits(output_bytes=1000))
    assert result.stdout_truncated
    assert result.stdout.startswith("a" * 1000)
    assert "999000 more bytes not kept" in result.stdout


_FORK_BOMB = """
    import os, sys, time
    spawned, refused = 0, 0
    print("nproc-limit", __import__("resource").getrlimit(__import__("resource").RLIMIT_NPROC)[0], flush=True)
    for _ in range(150):           # bounded on purpose: a shared 2-core machine
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            spawned += 1
        except OSError:
            refused += 1
    print("spawned", spawned, "refused", refused, flush=True)
    time.sleep(60)
"""


def test_a_fork_bomb_is_contained(tmp_path):
    """As non-root, RLIMIT_NPROC refuses forks; as root (this project's containers) the kernel does
    not enforce it, so the timeout and the process-group kill must contain the bomb."""
    started = time.monotonic()
    result = run_untrusted(_python(_FORK_BOMB), cwd=tmp_path, timeout_s=3,
                           limits=Limits(max_processes=40))
    assert time.monotonic() - started < 10
    assert result.timed_out
    assert "nproc-limit 40" in result.stdout       # the limit is set either way
    spawned, refused = (int(w) for w in result.stdout.split("spawned", 1)[1].split()[::2][:2])
    if os.geteuid() == 0 and result.run_uid is None:
        assert spawned == 150 and refused == 0     # not enforced for root: documented in sandbox.py
    else:   # a normal user, or root's run under its own dedicated uid
        assert refused > 0 and spawned < 40
    leftovers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _in_session_of(int(p), result)]
    assert _wait_dead(leftovers) == []


def _in_session_of(pid: int, result) -> bool:
    """Whether ``pid`` runs the fork-bomb script (so we never look at unrelated processes)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, PermissionError):
        return False
    return b"spawned, refused" in cmdline


def test_bad_requests_are_refused_with_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="non-empty list"):
        run_untrusted([], cwd=tmp_path, timeout_s=1)
    with pytest.raises(ValueError, match="does not exist"):
        run_untrusted(["true"], cwd=tmp_path / "missing", timeout_s=1)
    with pytest.raises(ValueError, match="positive"):
        run_untrusted(["true"], cwd=tmp_path, timeout_s=0)


def test_a_missing_program_is_a_result_not_a_crash(tmp_path):
    result = run_untrusted(["no-such-program-xyz"], cwd=tmp_path, timeout_s=5)
    assert result.returncode == 127
    assert "no-such-program-xyz" in result.stderr


needs_namespace = pytest.mark.skipif(isolation_support().mode != NAMESPACE,
                                     reason=f"no namespace isolation here: {isolation_support().reason}")


def test_the_isolation_probe_gives_a_mode_and_a_one_line_reason():
    support = isolation_support()
    assert support.mode in (NAMESPACE, "none")
    assert support.reason and "\n" not in support.reason
    assert isolation_support() is support          # probed once, then cached


def test_hide_must_name_absolute_directories_other_than_root(tmp_path):
    with pytest.raises(ValueError, match="absolute directories other than /, got 'relative'"):
        run_untrusted(["true"], cwd=tmp_path, timeout_s=5, hide=[Path("relative")])
    with pytest.raises(ValueError, match="other than /, got '/'"):
        run_untrusted(["true"], cwd=tmp_path, timeout_s=5, hide=[Path("/")])


def test_hidden_directories_always_include_root_and_drop_nested_or_missing_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user" / "inner").mkdir(parents=True)
    hidden = hidden_directories([tmp_path / "user" / "inner", tmp_path / "missing"])
    assert hidden == sorted([Path("/root"), (tmp_path / "user").resolve()])


@needs_namespace
def test_the_child_gets_a_private_tmp_and_dev_and_our_interpreter_still_works(tmp_path):
    marker = Path(tempfile.gettempdir()) / f"scopeflow-sandbox-marker-{os.getpid()}"
    marker.write_text("ours")
    try:
        code = f"""
            import os, sys
            from pathlib import Path
            print(Path({str(marker)!r}).exists(), sorted(os.listdir("/dev")))
            Path("/tmp/child-scratch").write_text("x")
            Path("/dev/shm/child-shm").write_text("x")
            print(sys.prefix)
        """
        result = run_untrusted(_python(code), cwd=tmp_path, timeout_s=10, hide=[Path(sys.prefix).parent])
    finally:
        marker.unlink()
    assert result.ok, result.stderr
    first, prefix = result.stdout.splitlines()
    assert first == "False ['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']"
    assert prefix == sys.prefix           # the venv was bound back inside the hidden directory
    assert not Path("/tmp/child-scratch").exists() and not Path("/dev/shm/child-shm").exists()


@needs_namespace
def test_a_sandbox_that_cannot_be_set_up_runs_nothing_and_says_why(tmp_path):
    plan = {"work": str(tmp_path / "vanished"), "hide": [], "keep": []}
    argv = [*_namespace_prefix(), *launcher_argv(["touch", str(tmp_path / "ran")], Limits(), plan)]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == LAUNCH_FAILED
    assert "sandbox: cannot contain the filesystem, command not run" in result.stderr
    assert not (tmp_path / "ran").exists()
