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
  is counted and dropped), so a chatty child cannot exhaust our memory;
- **filesystem containment** (``isolation == "namespace"``), when the platform allows it: the
  child starts in a new mount namespace (``unshare --mount``, or ``unshare --user --map-root-user
  --mount`` when we are not root) where, before the command runs,

  * every mount is remounted read-only one by one (``bind,remount,ro``: the filesystems
    themselves are never touched), so writes outside the working directory fail;
  * ``/root``, the parent's ``$HOME`` and every directory in ``hide`` (the verifier passes the
    Scopeflow home: database, ``secret.key``, other instances' workspaces) are covered by an
    empty read-only tmpfs (those under ``/tmp`` by the private ``/tmp`` below);
  * the working directory is bound back, writable, at its own path; the interpreter's prefixes
    (``sys.prefix``, ``sys.base_prefix``) are bound back read-only if a hidden directory held them;
  * ``/tmp`` and ``/dev/shm`` are fresh private tmpfs mounts; ``/dev`` holds only ``null``,
    ``zero``, ``full``, ``random``, ``urandom`` and the ``fd``/``std*`` links, so no disk device;
  * the command is finally ``exec``'d by ``setpriv`` with no capabilities (bounding, inheritable
    and ambient sets cleared) and ``no_new_privs``, so it cannot undo any of these mounts.

  Whether this works is probed once per process (:func:`isolation_support`). When it does not,
  the command runs without it and the result says so: ``RunResult.isolation == "none"`` with
  ``isolation_reason``, and a warning is logged.

What is *not* contained, even under namespace isolation: network access; reading what the mounts
leave visible (``/etc``, system libraries, ``/proc`` — other processes' command lines, though not
the environment of processes that hold capabilities the child lacks); the child still runs as the
same user id. Without namespace isolation, reads and writes by absolute path are limited only by
the permissions of the user running Scopeflow (as root: none) — HOME and TMPDIR only redirect
well-behaved code. ``RLIMIT_NPROC`` is not enforced by the kernel for real uid 0 (nor for a
process with ``CAP_SYS_RESOURCE``/``CAP_SYS_ADMIN``): there the limit is set but a fork bomb is
contained only by the timeout and the process-group kill. For a non-root user the limit counts *all* processes of that user, not only
the sandboxed ones. ``tests/test_sandbox.py`` checks which case applies on the machine it runs on.

This file is also the launcher: the child runs it as a script (``python -I -S sandbox.py``), so
it imports nothing but the standard library at module level.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
    isolation: str = "none"               # "namespace" (filesystem contained) or "none"
    isolation_reason: str = ""            # why, in one line (always set by run_sandboxed)

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
LAUNCH_FAILED = 125       # exit status when the launcher could not set up the sandbox itself
_DEVICES = ("null", "zero", "full", "random", "urandom")
_SCRATCH = Path("/tmp")  # nosec B108 - a private tmpfs inside the child's namespace (as /dev/shm)


@dataclass(frozen=True)
class Isolation:
    """Whether this machine lets ``run_sandboxed`` contain the filesystem, and why (one line)."""

    mode: str      # NAMESPACE or NO_ISOLATION
    reason: str


def _namespace_prefix() -> list[str]:
    """``unshare`` for a private mount namespace; a user namespace too when we are not root."""
    unshare = shutil.which("unshare", path=_SAFE_PATH) or "unshare"
    if os.geteuid() == 0:
        return [unshare, "--mount", "--propagation", "private", "--"]
    return [unshare, "--user", "--map-root-user", "--mount", "--propagation", "private", "--"]


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
        argv = [*_namespace_prefix(), *launcher_argv(["true"], Limits(), _mount_plan(Path(tmp), ()))]
        try:
            probe = subprocess.run(argv, cwd=tmp, env={"PATH": _SAFE_PATH}, capture_output=True,  # nosec B603
                                   timeout=30, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Isolation(NO_ISOLATION, f"namespace probe could not run: {exc}")
    if probe.returncode != 0:
        last = (probe.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return Isolation(NO_ISOLATION, f"namespace probe failed (exit {probe.returncode}): {last}")
    who = "as root" if os.geteuid() == 0 else "in a user namespace"
    return Isolation(NAMESPACE, f"private mount namespace {who}: read-only root, hidden home directories")


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
    keep = [p for p in sorted(prefixes) if any(p.is_relative_to(h) for h in [*hidden, _SCRATCH])]
    covered = [h for h in hidden if not h.is_relative_to(_SCRATCH)]   # the private /tmp hides the rest
    return {"work": str(cwd), "hide": [str(h) for h in covered], "keep": [str(k) for k in keep]}


def launcher_argv(argv: list[str], limits: Limits, mounts: dict | None = None) -> list[str]:
    """What actually runs: this file as a script under our interpreter (isolated mode).

    It sets up ``mounts`` (when given: we are then inside a fresh mount namespace), sets the
    limits, then ``exec``s ``argv`` — through ``setpriv`` dropping all capabilities when mounts
    were set up, so the child cannot undo them.
    """
    plan = {"rlimits": _rlimits(limits), "mounts": mounts}
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), json.dumps(plan), *argv]


# --- What the launcher does inside the child, before exec (standard library only). ---------------

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC = 32, 4096, 16384
_KEPT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": 1024,
               "nodiratime": 2048, "relatime": 1 << 21}   # locked in a user namespace: keep them


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) itself (no ``mount`` binary: it would re-resolve the ``/proc/self/fd`` sources)."""
    libc = ctypes.CDLL(None, use_errno=True)
    args = [None if text is None else os.fsencode(text) for text in (source, target, fstype)]
    if libc.mount(*args, ctypes.c_ulong(flags), None if data is None else os.fsencode(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mount_table() -> list[tuple[str, int]]:
    """``(mount point, flags to keep)`` for every mount we see, in /proc/self/mountinfo order."""
    table = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            table.append((point, sum(_KEPT_FLAGS.get(opt, 0) for opt in fields[5].split(","))))
    return table


def _remount(point: str, readonly: bool) -> None:
    """Change only this mount's read-only flag (``bind,remount``), keeping its other flags."""
    kept = next((flags for p, flags in reversed(_mount_table()) if p == point), 0)
    _mount(None, point, None, _MS_REMOUNT | _MS_BIND | kept | (_MS_RDONLY if readonly else 0))


def _tmpfs(target: str, mode: str = "0755") -> None:
    _mount("scopeflow-sandbox", target, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode={mode},size=64m")


def _minimal_dev(devices: dict[str, int]) -> None:
    """Replace /dev by a tmpfs holding the harmless devices (bound from ``devices``' fds)."""
    _mount("scopeflow-sandbox", "/dev", "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=0755,size=1m")
    for name, fd in devices.items():
        open(f"/dev/{name}", "w").close()
        _mount(f"/proc/self/fd/{fd}", f"/dev/{name}", None, _MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "fd/0"), ("stdout", "fd/1"), ("stderr", "fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")  # nosec B108 - a fresh private tmpfs in the child's own namespace
    _tmpfs("/dev/shm", mode="1777")  # nosec B108


def _contain(plan: dict) -> None:
    """Build the child's view of the filesystem (see the module docstring), in this order:
    pin what must stay visible, make every mount read-only, cover /tmp, /dev and the hidden
    directories with tmpfs, bind the pinned paths back, and make only the workspace (and the
    private /tmp and /dev/shm) writable.
    """
    pinned = {path: os.open(path, os.O_PATH) for path in [*plan["keep"], plan["work"]]}
    devices = {name: os.open(f"/dev/{name}", os.O_PATH) for name in _DEVICES}
    for point, _ in _mount_table():
        _remount(point, readonly=True)
    _tmpfs(str(_SCRATCH), mode="1777")
    _minimal_dev(devices)
    for directory in plan["hide"]:
        _tmpfs(directory)
    for path, fd in pinned.items():     # the prefixes first, the workspace last (on top)
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
        os.close(fd)
    _remount(plan["work"], readonly=False)
    for directory in [*plan["hide"], "/dev"]:
        _remount(directory, readonly=True)
    for fd in devices.values():
        os.close(fd)
    os.chdir(plan["work"])   # our old cwd is the covered directory, not the one bound back


def _launch(plan_json: str, argv: list[str]) -> None:
    """The launcher's main: mounts (if planned), limits, then ``exec`` of the command."""
    import resource

    plan = json.loads(plan_json)
    if plan["mounts"] is not None:
        try:
            _contain(plan["mounts"])
        except OSError as exc:
            sys.stderr.write(f"sandbox: cannot contain the filesystem, command not run: {exc}\n")
            os._exit(LAUNCH_FAILED)
        argv = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all",
                "--bounding-set=-all", "--", *argv]
    for name, soft, hard in plan["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    try:
        os.execvp(argv[0], argv)  # nosec B606 - argv list, no shell: the command the caller asked for
    except OSError as exc:
        sys.stderr.write(f"cannot run {argv[0]!r}: {exc.strerror}\n")
        os._exit(127)


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
    hide: Sequence[Path] = (),
) -> RunResult:
    """Run ``argv`` in ``cwd`` under the sandbox described in the module docstring.

    ``hide`` names directories the child must not see (besides ``/root`` and our ``$HOME``);
    ``cwd`` may lie inside one of them and stays visible and writable. Whether they were really
    hidden is ``RunResult.isolation``. Never raises for what the child does (a missing program is
    reported as return code 127 with the reason on stderr; a sandbox that could not be set up, as
    ``LAUNCH_FAILED``, command not run); raises ``ValueError`` for a bad request (empty argv,
    missing cwd, non-positive timeout, forbidden ``env_extra``, relative path or ``/`` in ``hide``).
    """
    cwd = _check_request(argv, cwd, timeout_s)
    env = scrubbed_env(cwd, env_extra)
    mounts = _mount_plan(cwd, hide)
    isolation = isolation_support()
    command = launcher_argv(argv, limits, mounts if isolation.mode == NAMESPACE else None)
    if isolation.mode == NAMESPACE:
        command = _namespace_prefix() + command
    else:
        log.warning("sandbox runs %s WITHOUT filesystem isolation: %s", argv[0], isolation.reason)
    private_tmp = Path(tempfile.mkdtemp(prefix=PRIVATE_TMP_PREFIX, dir=cwd))
    env["TMPDIR"] = env["TMP"] = env["TEMP"] = str(private_tmp)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(  # nosec B603 - argv list, no shell; this is the sandbox itself
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
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
        isolation=isolation.mode,
        isolation_reason=isolation.reason,
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


if __name__ == "__main__":
    _launch(sys.argv[1], sys.argv[2:])
