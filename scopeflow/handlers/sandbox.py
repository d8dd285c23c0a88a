"""Run a command on generated code without letting it reach the rest of the machine.

Generated apps, their tests and the tools that check them are untrusted code. ``run_sandboxed``
runs one command with:

- a **scrubbed environment**: only ``PATH``, ``LANG``/``LC_ALL``, ``HOME`` (= the working
  directory), ``TMPDIR`` and a few Python switches, plus what the caller passes in ``env_extra``.
  ``run_sandboxed`` points ``TMPDIR``/``TMP``/``TEMP`` at a fresh private directory inside the
  working directory and deletes it afterwards, so ``~`` and ``tempfile`` stay in the workspace.
  Nothing else from ``os.environ`` is inherited, so ``SCOPEFLOW_*`` settings and credentials never
  reach the child; ``env_extra`` may not name ``SCOPEFLOW_*`` variables either;
- **resource limits** set in the child before it ``exec``s the command (CPU seconds, address
  space, file size, number of processes, no core files), by a small launcher run with our own
  interpreter;
- its own **session and process group**, killed as a whole with ``SIGKILL`` on timeout, and swept
  once more after the command exits, so background grandchildren do not outlive it;
- **bounded output**: at most ``Limits.output_bytes`` of stdout and of stderr are kept (the rest
  is counted and dropped), so a chatty child cannot exhaust our memory.

What is *not* contained: network access, reads of any file the user running Scopeflow can read
(as root: every file, by absolute path, including ``/root/.ssh``), and writes by absolute path
wherever that user may write — HOME and TMPDIR only redirect well-behaved code. ``RLIMIT_NPROC``
is not enforced by the kernel for a process with ``CAP_SYS_RESOURCE``/``CAP_SYS_ADMIN`` (root in
most containers): there the limit is set but a fork bomb is contained only by the timeout and the
process-group kill. For a non-root user the limit counts *all* processes of that user, not only
the sandboxed ones. ``tests/test_sandbox.py`` checks which case applies on the machine it runs on.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_GRACE_S = 2.0          # how long to drain pipes after a kill before giving up on them
_READ_CHUNK = 65536
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed run; ``None`` leaves a limit as inherited."""

    cpu_seconds: int | None = 120
    memory_mb: int | None = 2048         # address space (RLIMIT_AS)
    file_size_mb: int | None = 64        # largest file the child may write (RLIMIT_FSIZE)
    max_processes: int | None = 256      # RLIMIT_NPROC; see the module docstring for root
    output_bytes: int = 200_000          # kept per stream (stdout, stderr)


@dataclass
class RunResult:
    """What happened when the command ran."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    killed_by_signal: int | None = None   # signal number when the child died of a signal
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def scrubbed_env(cwd: Path, env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment a sandboxed child sees (an allow-list, never a copy of ours)."""
    env = {
        "PATH": os.environ.get("PATH", _SAFE_PATH),
        "HOME": str(cwd),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),  # nosec B108 - the child's temp dir, as ours
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    for key, value in (env_extra or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"sandbox env_extra must map text to text, got {key!r}: {type(value).__name__}")
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"sandbox env_extra has an invalid variable name or value: {key!r}")
        if key.upper().startswith("SCOPEFLOW_"):
            raise ValueError(f"sandbox env_extra may not pass Scopeflow settings to a child: {key}")
        env[key] = value
    return env


PRIVATE_TMP_PREFIX = ".sandbox-tmp-"   # the child's TMPDIR, made inside its working directory


# Limits are applied by a tiny Python launcher that then ``exec``s the command, rather than by a
# ``preexec_fn``: the engine runs handlers on worker threads, and ``preexec_fn`` is documented as
# unsafe when other threads exist (the child may deadlock between fork and exec).
_LAUNCHER = """
import json, os, resource, sys
for name, soft, hard in json.loads(sys.argv[1]):
    resource.setrlimit(getattr(resource, name), (soft, hard))
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"cannot run {sys.argv[2]!r}: {exc.strerror}\\n")
    os._exit(127)
"""


def _rlimits(limits: Limits) -> list[tuple[str, int, int]]:
    """``(RLIMIT name, soft, hard)`` for every limit that is set; core files are always off."""
    mb = 1024 * 1024
    wanted = [
        # The soft CPU limit sends SIGXCPU; the hard one, a second later, SIGKILL.
        ("RLIMIT_CPU", limits.cpu_seconds, 1),
        ("RLIMIT_AS", None if limits.memory_mb is None else limits.memory_mb * mb, 0),
        ("RLIMIT_FSIZE", None if limits.file_size_mb is None else limits.file_size_mb * mb, 0),
        ("RLIMIT_NPROC", limits.max_processes, 0),
    ]
    return [(name, value, value + extra) for name, value, extra in wanted if value is not None] + [
        ("RLIMIT_CORE", 0, 0)]


def launcher_argv(argv: list[str], limits: Limits) -> list[str]:
    """What actually runs: our interpreter (isolated mode) setting the limits, then ``exec argv``."""
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(_rlimits(limits)), *argv]


class _BoundedBuffer:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        self.kept += data[:max(room, 0)]
        self.dropped += max(len(data) - max(room, 0), 0)

    def text(self) -> str:
        out = self.kept.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[output truncated: {self.dropped} more bytes not kept]"
        return out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _check_request(argv: list[str], cwd: Path, timeout_s: float) -> Path:
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("sandbox argv must be a non-empty list of strings")
    if not timeout_s or timeout_s <= 0:
        raise ValueError(f"sandbox timeout must be a positive number of seconds, got {timeout_s!r}")
    cwd = Path(cwd).resolve()
    if not cwd.is_dir():
        raise ValueError(f"sandbox working directory does not exist: {cwd}")
    return cwd


def run_sandboxed(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    env_extra: dict[str, str] | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> RunResult:
    """Run ``argv`` in ``cwd`` under the sandbox described in the module docstring.

    Never raises for what the child does (a missing program is reported as return code 127 with
    the reason on stderr); raises ``ValueError`` for a bad request (empty argv, missing cwd,
    non-positive timeout, forbidden ``env_extra``).
    """
    cwd = _check_request(argv, cwd, timeout_s)
    env = scrubbed_env(cwd, env_extra)
    private_tmp = Path(tempfile.mkdtemp(prefix=PRIVATE_TMP_PREFIX, dir=cwd))
    env["TMPDIR"] = env["TMP"] = env["TEMP"] = str(private_tmp)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(  # nosec B603 - argv list, no shell; this is the sandbox itself
            launcher_argv(argv, limits), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        out, err = _BoundedBuffer(limits.output_bytes), _BoundedBuffer(limits.output_bytes)
        timed_out = _pump(proc, {proc.stdout: out, proc.stderr: err}, start + timeout_s)
        returncode = proc.wait()
        _kill_group(proc.pid)   # sweep background grandchildren that outlived the command
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)
    return RunResult(
        argv=list(argv),
        returncode=returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration_s=round(time.monotonic() - start, 4),
        timed_out=timed_out,
        killed_by_signal=-returncode if returncode < 0 else None,
        stdout_truncated=bool(out.dropped),
        stderr_truncated=bool(err.dropped),
    )


def _pump(proc: subprocess.Popen, buffers: dict, deadline: float) -> bool:
    """Read both pipes until EOF and the child exits, or kill the group at ``deadline``.

    Returns whether the deadline was hit.
    """
    selector = selectors.DefaultSelector()
    for stream, buffer in buffers.items():
        selector.register(stream, selectors.EVENT_READ, buffer)
    timed_out = False
    try:
        while True:
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                _kill_group(proc.pid)
                deadline = now + _GRACE_S    # drain what is left, then give up on the pipes
            elif timed_out and now >= deadline:
                break
            if not selector.get_map():
                try:
                    proc.wait(timeout=max(deadline - now, 0.001))
                    break
                except subprocess.TimeoutExpired:
                    continue
            for key, _ in selector.select(timeout=min(max(deadline - now, 0.001), 0.2)):
                data = os.read(key.fd, _READ_CHUNK)
                if data:
                    key.data.add(data)
                else:
                    selector.unregister(key.fileobj)
    finally:
        selector.close()
        for stream in buffers:
            stream.close()
    return timed_out
