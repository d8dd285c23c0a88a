"""The one boundary untrusted code crosses: generated apps, their tests, the tools that check them.

``run_untrusted`` runs one command to completion (the verifier's checks, the LLM builder's
self-checks); ``start_untrusted`` starts a long-running one (a deployed release). Both apply:

- a **scrubbed environment**: only ``PATH``, ``LANG``/``LC_ALL``, ``HOME`` (= the working
  directory), ``TMPDIR`` and a few Python switches, plus what the caller passes in ``env_extra``
  (a release's declared credentials). A finite run points ``TMPDIR``/``TMP``/``TEMP`` at a fresh
  private directory inside the working directory and deletes it afterwards. Nothing else from
  ``os.environ`` is inherited, so ``SCOPEFLOW_*`` settings and credentials never reach the child;
  ``env_extra`` may not name ``SCOPEFLOW_*`` variables either;
- **resource limits** set in the child before it ``exec``s the command (CPU seconds, address
  space, file size, number of processes, no core files), by a small launcher run with our own
  interpreter;
- its own **session and process group**, killed as a whole with ``SIGKILL`` on timeout;
- **bounded output** (finite runs): at most ``Limits.output_bytes`` of stdout and of stderr are kept;
- **namespace isolation** (``isolation == "namespace"``), when the platform allows it: the child
  starts in new **PID and mount namespaces** (``unshare --pid --fork --kill-child --mount-proc``;
  with ``--user --map-root-user`` too when we are not root), so

  * it sees only its own processes (a fresh ``/proc``): not the engine, not another run, not their
    ``/proc/<pid>/environ`` or ``/proc/<pid>/root``;
  * **every process of the run dies with it**: the command is the namespace's first process, and
    when it exits (or is killed, or ``unshare`` is) the kernel kills everything left in the
    namespace, ``setsid`` daemons and double forks included. Under root, a finite run then looks
    for leftover processes of its user id anyway, kills them and reports how many
    (``RunResult.survivors``; any survivor makes the result say ``isolation == "none"``);
  * when Scopeflow runs as **root**, the command runs as a **dedicated unprivileged user id**
    (``RunResult.run_uid``, drawn at random from :data:`SANDBOX_UID_BASE` + 2^24 so concurrent runs
    differ), so ``RLIMIT_NPROC`` holds and it cannot signal, trace or read what another run owns.
    The working directory is handed to that user for the run (directory: ours, group-writable by
    the run, sticky; its contents: the run's) and taken back afterwards (``start_untrusted``: at
    :func:`reclaim`); files listed in ``keep_ours`` stay ours and, thanks to the sticky bit, cannot
    be replaced. When we are not root, the user namespace maps the run to our own uid;
  * every mount is remounted read-only one by one (``bind,remount,ro``), so writes outside the
    working directory fail; ``/root``, the parent's ``$HOME`` and every directory in ``hide`` (the
    Scopeflow home: database, ``secret.key``, other instances' workspaces and releases) are
    covered by an empty read-only tmpfs; the working directory is bound back, writable, at its own
    path, and the interpreter's prefixes read-only if a hidden directory held them; ``/tmp`` and
    ``/dev/shm`` are fresh private tmpfs mounts; ``/dev`` holds only ``null``, ``zero``, ``full``,
    ``random``, ``urandom`` and the ``fd``/``std*`` links;
  * the command is finally ``exec``'d by ``setpriv`` with no capabilities and ``no_new_privs``.

  Whether this works is probed once per process (:func:`isolation_support`). When it does not,
  the command runs without it and the result says so: ``RunResult.isolation == "none"`` with
  ``isolation_reason``, and a warning is logged. The reason always says which of the above held.

What is *not* contained, even under namespace isolation: network access (a release must listen on
loopback); reading what the mounts leave visible (``/etc``, system libraries). Without namespace
isolation, reads and writes by absolute path are limited only by the permissions of the user
running Scopeflow (as root: none), background processes that leave the process group (``setsid``)
outlive the run, and ``RLIMIT_NPROC`` is not enforced for root. ``tests/test_sandbox.py`` checks
which case applies on the machine it runs on.

What runs inside the child before the command (mounts, limits, the namespace's init) lives in
:mod:`scopeflow.handlers.sandbox_launcher`, a script run with ``python -I -S``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scopeflow.handlers import sandbox_launcher
from scopeflow.handlers.sandbox_launcher import LAUNCH_FAILED, SCRATCH  # noqa: F401 - LAUNCH_FAILED: part of this API

log = logging.getLogger(__name__)

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
    isolation: str = "none"               # "namespace" (PID + mount namespaces) or "none"
    isolation_reason: str = ""            # what held, in one line (always set by run_untrusted)
    run_uid: int | None = None            # the dedicated user id the command ran as (root only)
    survivors: int = 0                    # processes of the run found alive after it ended (killed)

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


# Limits (and mounts) are applied by a small Python launcher — this file run as a script — that
# then ``exec``s the command, rather than by a ``preexec_fn``: the engine runs handlers on worker
# threads, and ``preexec_fn`` is documented as unsafe when other threads exist (the child may
# deadlock between fork and exec).


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


NAMESPACE = "namespace"
NO_ISOLATION = "none"


@dataclass(frozen=True)
class Isolation:
    """Whether this machine lets ``run_untrusted`` isolate a command, and why (one line)."""

    mode: str      # NAMESPACE or NO_ISOLATION
    reason: str


SANDBOX_UID_BASE = 0x6A000000   # dedicated user ids: SANDBOX_UID_BASE .. + 2**24 (unused by real accounts)
_UID_SPAN = 1 << 24


def _namespace_prefix() -> list[str]:
    """``unshare`` for private PID and mount namespaces; a user namespace too when we are not root.

    ``--kill-child``: if ``unshare`` itself is killed, the namespace's first process gets SIGKILL,
    and with it every process of the namespace.
    """
    unshare = shutil.which("unshare", path=_SAFE_PATH) or "unshare"
    common = ["--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--propagation", "private", "--"]
    if os.geteuid() == 0:
        return [unshare, *common]
    return [unshare, "--user", "--map-root-user", *common]


def _run_uid() -> int | None:
    """A dedicated user id for one run when we are root (else None: the user namespace maps us)."""
    if os.geteuid() != 0:
        return None
    return SANDBOX_UID_BASE + random.SystemRandom().randrange(_UID_SPAN)


@functools.cache
def isolation_support() -> Isolation:
    """Probe once (cached for the process) whether namespace isolation works here.

    The probe runs the real launcher with the real mount plan on an empty directory, so a
    machine where any step fails (no ``unshare``/``setpriv``, namespaces forbidden, a mount that
    cannot be made read-only) reports ``none`` with the reason instead of failing every run.
    """
    if not sys.platform.startswith("linux"):
        return Isolation(NO_ISOLATION, f"mount namespaces need Linux; this is {sys.platform}")
    missing = [tool for tool in ("unshare", "setpriv") if shutil.which(tool, path=_SAFE_PATH) is None]
    if missing:
        return Isolation(NO_ISOLATION, f"{' and '.join(missing)} (util-linux) not found in {_SAFE_PATH}")
    with tempfile.TemporaryDirectory(prefix="scopeflow-sandbox-probe-") as tmp:
        argv = [*_namespace_prefix(), *launcher_argv(["true"], Limits(), _mount_plan(Path(tmp), ()), _run_uid())]
        try:
            probe = subprocess.run(argv, cwd=tmp, env={"PATH": _SAFE_PATH}, capture_output=True,  # nosec B603
                                   timeout=30, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Isolation(NO_ISOLATION, f"namespace probe could not run: {exc}")
    if probe.returncode != 0:
        last = (probe.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return Isolation(NO_ISOLATION, f"namespace probe failed (exit {probe.returncode}): {last}")
    who = "as a dedicated unprivileged uid" if os.geteuid() == 0 else "in a user namespace (our uid)"
    return Isolation(NAMESPACE, f"private PID and mount namespaces, {who}: every process dies with the run, "
                                "read-only root, hidden home directories")


def _outermost(paths: list[Path]) -> list[Path]:
    """Drop every path that lies inside another one (a tmpfs over the outer hides it already)."""
    ordered = sorted(set(paths))
    return [p for p in ordered if not any(p != q and p.is_relative_to(q) for q in ordered)]


def hidden_directories(hide: Sequence[Path]) -> list[Path]:
    """What the child will not see: ``/root``, our ``$HOME`` and ``hide`` (existing dirs only).

    Raises ``ValueError`` for a relative path or ``/`` in ``hide``.
    """
    for path in hide:
        if not Path(path).is_absolute() or Path(path).resolve() == Path("/"):
            raise ValueError(f"sandbox hide must list absolute directories other than /, got {str(path)!r}")
    wanted = [Path("/root"), Path(os.environ.get("HOME") or "/"), *hide]
    resolved = [Path(p).resolve() for p in wanted]
    return _outermost([p for p in resolved if p != Path("/") and p.is_dir()])


def _mount_plan(cwd: Path, hide: Sequence[Path]) -> dict:
    """What the launcher mounts: hidden dirs, the paths to bring back inside them, the workspace."""
    hidden = hidden_directories(hide)
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    keep = [p for p in sorted(prefixes) if any(p.is_relative_to(h) for h in [*hidden, SCRATCH])]
    covered = [h for h in hidden if not h.is_relative_to(SCRATCH)]   # the private /tmp hides the rest
    return {"work": str(cwd), "hide": [str(h) for h in covered], "keep": [str(k) for k in keep]}


def launcher_argv(argv: list[str], limits: Limits, mounts: dict | None = None, uid: int | None = None,
                  init: bool = False, status_fd: int | None = None) -> list[str]:
    """What actually runs: this file as a script under our interpreter (isolated mode).

    It sets up ``mounts`` (when given: we are then inside fresh PID and mount namespaces), sets the
    limits, then ``exec``s ``argv`` — through ``setpriv`` dropping all capabilities (and switching
    to ``uid`` when given) when mounts were set up, so the child cannot undo them. With ``init``
    the launcher stays as the namespace's first process: it forwards SIGTERM/SIGINT/SIGHUP to the
    command, reaps orphans, writes the command's wait status to ``status_fd`` (``unshare`` cannot
    pass on a death by signal) and exits with the command, taking the namespace with it.
    """
    plan = {"rlimits": _rlimits(limits), "mounts": mounts, "uid": uid, "init": init, "status_fd": status_fd}
    return [sys.executable, "-I", "-S", str(Path(sandbox_launcher.__file__).resolve()), json.dumps(plan), *argv]


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


def _hand_over(cwd: Path, uid: int, keep_ours: Sequence[str] = ()) -> None:
    """Let ``uid`` work in ``cwd``: the directory stays ours but group ``uid`` may write in it, with
    the sticky bit (so the run cannot rename or delete what it does not own); everything inside
    becomes the run's, except the top-level names in ``keep_ours``. Links are never followed."""
    os.chown(cwd, os.geteuid(), uid)
    os.chmod(cwd, (cwd.stat().st_mode & 0o777) | stat.S_ISVTX | stat.S_IRWXG)
    for entry in cwd.iterdir():
        if entry.name not in keep_ours:
            _chown_tree(entry, uid, uid)


def reclaim(cwd: Path) -> None:
    """Take ``cwd`` back from a run (every file ours again, no group write, no sticky bit).

    Called once no process of the run is left; links are never followed. Harmless on a directory
    that was never handed over.
    """
    cwd = Path(cwd)
    if not cwd.is_dir():
        return
    _chown_tree(cwd, os.geteuid(), os.getegid())
    os.chmod(cwd, cwd.stat().st_mode & 0o755)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    if top.is_symlink() or not top.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _sweep(uid: int | None) -> int:
    """Kill every process still running as the run's dedicated ``uid``; returns how many there were."""
    if uid is None:
        return 0
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        line = next((row for row in status.splitlines() if row.startswith("Uid:")), "")
        if str(uid) in line.split()[1:2]:
            found += 1
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


@dataclass(frozen=True)
class _Prepared:
    command: list[str]
    env: dict[str, str]
    isolation: Isolation
    uid: int | None


def _prepare(argv: list[str], cwd: Path, env_extra: dict[str, str] | None, limits: Limits,
             hide: Sequence[Path], keep_ours: Sequence[str], status_fd: int | None = None) -> _Prepared:
    env = scrubbed_env(cwd, env_extra)
    mounts = _mount_plan(cwd, hide)
    isolation = isolation_support()
    if isolation.mode != NAMESPACE:
        log.warning("sandbox runs %s WITHOUT filesystem or process isolation: %s", argv[0], isolation.reason)
        return _Prepared(launcher_argv(argv, limits), env, isolation, None)
    uid = _run_uid()
    if uid is not None:
        _hand_over(cwd, uid, keep_ours)
    command = [*_namespace_prefix(), *launcher_argv(argv, limits, mounts, uid, True, status_fd)]
    return _Prepared(command, env, isolation, uid)


def run_untrusted(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    env_extra: dict[str, str] | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen dataclass, safe as a default
    hide: Sequence[Path] = (),
) -> RunResult:
    """Run ``argv`` in ``cwd`` to completion under the sandbox described in the module docstring.

    ``hide`` names directories the child must not see (besides ``/root`` and our ``$HOME``);
    ``cwd`` may lie inside one of them and stays visible and writable. What held is
    ``RunResult.isolation``/``isolation_reason``. Never raises for what the child does (a missing
    program is reported as return code 127 with the reason on stderr; a sandbox that could not be
    set up, as ``LAUNCH_FAILED``, command not run); raises ``ValueError`` for a bad request (empty
    argv, missing cwd, non-positive timeout, forbidden ``env_extra``, relative path or ``/`` in ``hide``).
    """
    cwd = _check_request(argv, cwd, timeout_s)
    private_tmp = Path(tempfile.mkdtemp(prefix=PRIVATE_TMP_PREFIX, dir=cwd))
    status_r, status_w = os.pipe()
    start = time.monotonic()
    prepared = None
    try:
        prepared = _prepare(argv, cwd, env_extra, limits, hide, (), status_w)
        env = {**prepared.env, "TMPDIR": str(private_tmp), "TMP": str(private_tmp), "TEMP": str(private_tmp)}
        proc = subprocess.Popen(  # nosec B603 - argv list, no shell; this is the sandbox itself
            prepared.command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, pass_fds=(status_w,),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
        os.close(status_w)
        status_w = -1
        out, err = _BoundedBuffer(limits.output_bytes), _BoundedBuffer(limits.output_bytes)
        timed_out = _pump(proc, {proc.stdout: out, proc.stderr: err}, start + timeout_s)
        returncode = _command_status(proc.wait(), status_r, prepared, timed_out)
        _kill_group(proc.pid)   # without namespaces: background grandchildren still in the group
        survivors = _sweep(prepared.uid)
    finally:
        for fd in (status_r, status_w):
            if fd >= 0:
                os.close(fd)
        if prepared is not None and prepared.uid is not None:
            reclaim(cwd)
        shutil.rmtree(private_tmp, ignore_errors=True)
    mode, reason = prepared.isolation.mode, prepared.isolation.reason
    if survivors:   # the namespace did not hold: never report it as isolation
        mode, reason = NO_ISOLATION, f"{survivors} process(es) of the run outlived it (killed afterwards); {reason}"
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
        isolation=mode,
        isolation_reason=reason,
        run_uid=prepared.uid,
        survivors=survivors,
    )


def _command_status(wrapper_status: int, status_r: int, prepared: _Prepared, timed_out: bool) -> int:
    """The command's own exit status: the wrapper's without isolation, else what our init reported
    (``unshare`` turns a death by signal into exit 1); -SIGKILL when the init itself was killed."""
    if prepared.isolation.mode != NAMESPACE:
        return wrapper_status
    os.set_blocking(status_r, False)
    try:
        reported = os.read(status_r, 32)
    except BlockingIOError:
        reported = b""
    if reported.strip().lstrip(b"-").isdigit():
        return int(reported)
    return -signal.SIGKILL if timed_out or wrapper_status < 0 else wrapper_status


@dataclass
class Started:
    """A long-running untrusted command (see :func:`start_untrusted`)."""

    proc: subprocess.Popen     # ``unshare`` under isolation (its pid is the process-group id)
    isolation: str
    isolation_reason: str
    run_uid: int | None


def start_untrusted(
    argv: list[str],
    *,
    cwd: Path,
    log_file: Any,
    env_extra: dict[str, str] | None = None,
    limits: Limits = Limits(cpu_seconds=None),  # noqa: B008 - frozen dataclass; a server runs for long
    hide: Sequence[Path] = (),
    keep_ours: Sequence[str] = (),
) -> Started:
    """Start ``argv`` in ``cwd`` behind the same boundary as :func:`run_untrusted`, detached.

    For servers (a deployed release): stdout and stderr go to ``log_file``; ``keep_ours`` names
    files in ``cwd`` the command must not change (the release's own records). Stopping it: signal
    its process group (``SIGTERM`` reaches the command through the namespace's init; ``SIGKILL``
    ends the whole namespace), then :func:`reclaim` the directory.
    """
    cwd = _check_request(argv, cwd, 1.0)
    prepared = _prepare(argv, cwd, env_extra, limits, hide, keep_ours)
    proc = subprocess.Popen(  # nosec B603 - argv list, no shell; this is the sandbox itself
        prepared.command, cwd=cwd, env=prepared.env, stdin=subprocess.DEVNULL,
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    return Started(proc, prepared.isolation.mode, prepared.isolation.reason, prepared.uid)


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
