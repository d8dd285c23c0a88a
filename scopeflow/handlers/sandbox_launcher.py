"""The sandbox launcher: what runs inside the child, before the untrusted command, as a script.

:func:`scopeflow.handlers.sandbox.launcher_argv` runs this file as ``python -I -S
sandbox_launcher.py PLAN ARGV...``. Inside fresh PID and mount namespaces it builds the child's view
of the filesystem (:func:`_contain`), sets the resource limits, and ``exec``s the command through
``setpriv`` (no capabilities, ``no_new_privs``, the run's uid). As the namespace's first process it
stays as a small init (:func:`_be_init`). It imports nothing but the standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
from pathlib import Path

LAUNCH_FAILED = 125       # exit status when the launcher could not set up the sandbox itself
SCRATCH = Path("/tmp")  # nosec B108 - a private tmpfs inside the child's namespace (as /dev/shm)
_DEVICES = ("null", "zero", "full", "random", "urandom")

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
    _tmpfs(str(SCRATCH), mode="1777")
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
    plan = json.loads(plan_json)
    if plan.get("init"):    # a stop request that arrives while we set up must not be lost
        for sig in _FORWARDED:
            signal.signal(sig, lambda number, _frame: _STOP_REQUESTS.append(number))
    if plan["mounts"] is not None:
        try:
            _contain(plan["mounts"])
        except OSError as exc:
            sys.stderr.write(f"sandbox: cannot contain the filesystem, command not run: {exc}\n")
            os._exit(LAUNCH_FAILED)
        uid = plan.get("uid")
        as_user = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"] if uid is not None else []
        argv = ["setpriv", "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all",
                "--bounding-set=-all", *as_user, "--", *argv]
    if plan.get("init"):
        _be_init(plan["rlimits"], argv, plan.get("status_fd"))
    _exec(plan["rlimits"], argv)


def _exec(rlimits: list, argv: list[str]) -> None:
    import resource

    for name, soft, hard in rlimits:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    try:
        os.execvp(argv[0], argv)  # nosec B606 - argv list, no shell: the command the caller asked for
    except OSError as exc:
        sys.stderr.write(f"cannot run {argv[0]!r}: {exc.strerror}\n")
        os._exit(127)


_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_STOP_REQUESTS: list[int] = []


def _be_init(rlimits: list, argv: list[str], status_fd: int | None) -> None:
    """Stay as the namespace's first process: run the command as our child, forward stop signals
    to it (the kernel drops signals to a namespace's init that has no handler), reap every orphan,
    and exit when the command does — the kernel then kills whatever else is left."""
    child = os.fork()
    if child == 0:
        for sig in _FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        if status_fd is not None:
            os.close(status_fd)     # the command cannot report a status of its own choosing
        _exec(rlimits, argv)

    def forward(number: int, _frame: object = None) -> None:
        try:
            os.kill(child, number)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    for number in _STOP_REQUESTS:   # asked to stop while we were setting up
        forward(number)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            if status_fd is not None:
                os.write(status_fd, str(code).encode())
            os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    _launch(sys.argv[1], sys.argv[2:])
