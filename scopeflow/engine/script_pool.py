"""Worker processes that run BPMN scripts with a budget the script cannot switch off.

A budget enforced inside the thread running a script can be defeated by that script: CPython stops
tracing a thread once its tracer raises, so a script that catches the timeout (or loops in
``finally:``) ran unbounded, one C call such as ``pow(a, b, m)`` holds the interpreter until it
returns, and ``raise SystemExit`` unwound the worker thread itself. So scripts run in separate
processes, a small pool per engine process:

- **time** is a wall-clock deadline kept by the caller: when it passes, the worker is killed with
  ``SIGKILL`` (whatever it is doing, in Python or in C) and replaced on next use;
- **memory and CPU** are ``RLIMIT_AS`` (:data:`MEMORY_MB`) and a lifetime ``RLIMIT_CPU`` set by the
  worker on itself before it reads its first job; a worker nearing its CPU allowance is retired;
- **anything a script raises**, ``SystemExit``/``KeyboardInterrupt``/``GeneratorExit`` included,
  comes back as an error message, never as an exception in the engine;
- **no privileges**: a worker started by root drops to the ``nobody`` user (no supplementary
  groups, ``no_new_privs``); it writes no files (``RLIMIT_FSIZE`` 0), sees a minimal environment
  and inherits no memory from the engine (it is started with ``exec``, not forked), so it holds no
  secrets to leak even if RestrictedPython were escaped.

Only plain JSON crosses the pipe (length-prefixed frames, both ways): a worker never sends objects
the engine would have to unpickle, and the engine reads at most :data:`MAX_REPLY_BYTES` of an answer.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POOL_SIZE = 4                       # worker processes per engine process (threads beyond wait their turn)
MEMORY_MB = 512                     # RLIMIT_AS of a worker
CPU_LIFETIME_S = 600                # RLIMIT_CPU of a worker; retired at half of it
MAX_REPLY_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct("!Q")
_GRACE_S = 0.25                     # the deadline is the budget plus this, for the pipe and JSON
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerFailed(Exception):
    """The worker died, broke the protocol or overran its deadline (it has been killed)."""

    def __init__(self, message: str, timed_out: bool = False, job_sent: bool = True):
        super().__init__(message)
        self.timed_out = timed_out
        self.job_sent = job_sent     # False: the worker was gone before it got the job (safe to retry)


@dataclass(frozen=True)
class Reply:
    """What a worker answered: a value, or an error (type name and message)."""

    ok: bool
    value: Any = None
    error_type: str = ""
    message: str = ""
    args: tuple[str, ...] = ()
    cpu_s: float = 0.0


# ------------------------------------------------------------------------------ framing

def _write_frame(fd: int, payload: bytes) -> None:
    data = _HEADER.pack(len(payload)) + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None, limit: int) -> bytes:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > limit:
        raise OverflowError(size)
    return _read_exact(fd, size, deadline)


# ------------------------------------------------------------------------------ the engine's side

class _Worker:
    """One worker process and its two pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # nosec B603 - our interpreter running our own module
            [sys.executable, "-I", "-c",
             f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
             "from scopeflow.engine.script_pool import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"},
            cwd="/", close_fds=True)
        self.cpu_s = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, request: dict[str, Any], budget_s: float) -> Reply:
        payload = json.dumps(request, separators=(",", ":")).encode()
        try:
            _write_frame(self.proc.stdin.fileno(), payload)
        except OSError:
            code = self.kill()
            raise WorkerFailed(f"script worker was gone ({_exit_reason(code)})", job_sent=False) from None
        try:
            deadline = time.monotonic() + budget_s + _GRACE_S
            answer = json.loads(_read_frame(self.proc.stdout.fileno(), deadline, MAX_REPLY_BYTES))
        except TimeoutError:
            self.kill()
            raise WorkerFailed(f"script exceeded its time budget of {budget_s:g}s", timed_out=True) from None
        except OverflowError as exc:
            self.kill()
            raise WorkerFailed(f"script result of {exc.args[0]:,} bytes is above the limit of "
                               f"{MAX_REPLY_BYTES:,}") from None
        except (EOFError, OSError, ValueError) as exc:
            code = self.kill()
            raise WorkerFailed(f"script worker died ({_exit_reason(code)}; {type(exc).__name__})") from None
        self.cpu_s = float(answer.get("cpu_s", 0.0))
        return Reply(ok=bool(answer.get("ok")), value=answer.get("value"), error_type=str(answer.get("type", "")),
                     message=str(answer.get("message", "")), cpu_s=self.cpu_s,
                     args=tuple(str(arg) for arg in answer.get("args") or ()))

    def kill(self) -> int | None:
        try:
            self.proc.kill()
        except OSError:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running after SIGKILL"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"killed by {name}, probably over its memory or CPU limit" if -code in (9, 24) else f"signal {name}"
    return f"exit code {code}"


class ScriptPool:
    """At most ``size`` worker processes; a caller takes an idle one (or starts one) per script."""

    def __init__(self, size: int = POOL_SIZE):
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()
        self._prewarmed = False

    def run(self, request: dict[str, Any], budget_s: float) -> Reply:
        """Send one job; raises :class:`WorkerFailed` (worker killed) on overrun, death or bad reply."""
        with self._slots:
            worker = self._take()
            try:
                try:
                    reply = worker.call(request, budget_s)
                except WorkerFailed as failure:
                    self._forget(worker)
                    if failure.job_sent:
                        raise
                    worker = self._take(fresh=True)   # an idle worker died (OOM killer, CPU allowance)
                    reply = worker.call(request, budget_s)
            except WorkerFailed:
                self._forget(worker)
                raise
            except BaseException:
                worker.kill()          # interrupted mid-call (a real KeyboardInterrupt): do not reuse
                self._forget(worker)
                raise
            self._give_back(worker)
            return reply

    def prewarm(self) -> None:
        """Start one worker now, once per pool, so the first script does not wait for its start-up
        (about 0.2 s of interpreter start and imports, which run while the engine does other work)."""
        with self._lock:
            if self._prewarmed or self._all:
                return
            self._prewarmed = True
        worker = _Worker()
        with self._lock:
            self._all.add(worker)
            self._idle.append(worker)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        with self._lock:
            return sorted(w.pid for w in self._all)

    def close(self) -> None:
        with self._lock:
            workers, self._idle, self._all = list(self._all), [], set()
        for worker in workers:
            worker.kill()

    def _take(self, fresh: bool = False) -> _Worker:
        with self._lock:
            if self._idle and not fresh:
                return self._idle.pop()
        worker = _Worker()
        with self._lock:
            self._all.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        if worker.cpu_s > CPU_LIFETIME_S / 2:
            worker.kill()
            self._forget(worker)
            return
        with self._lock:
            self._idle.append(worker)

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)


_POOL: ScriptPool | None = None
_POOL_LOCK = threading.Lock()


def default_pool() -> ScriptPool:
    """The process-wide pool, started lazily (a forked child, e.g. a Celery worker, gets its own)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ScriptPool()
        return _POOL


def _forget_inherited_pool() -> None:
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()   # the parent's workers answer the parent only


os.register_at_fork(after_in_child=_forget_inherited_pool)
atexit.register(lambda: _POOL is not None and _POOL.close())


# ------------------------------------------------------------------------------ the worker's side

def _confine() -> None:
    """Limits and privileges, set before the first job is read (our code only runs until then).

    Everything the worker will import is imported before the uid changes: the interpreter's files
    may not be readable by ``nobody`` (a pyenv under ``/root``, for instance).
    """
    import ctypes
    import resource

    libc = ctypes.CDLL(None, use_errno=True)
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_MB * mb, MEMORY_MB * mb))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIFETIME_S, CPU_LIFETIME_S))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() == 0:
        nobody = _nobody()
        os.setgroups([])
        os.setresgid(nobody, nobody, nobody)
        os.setresuid(nobody, nobody, nobody)
    libc.prctl(38, 1, 0, 0, 0)   # PR_SET_NO_NEW_PRIVS


def _nobody() -> int:
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def serve() -> None:
    """The worker's main loop: one JSON job in, one JSON reply out, until stdin closes."""
    import resource

    from scopeflow.engine.script_runner import run_job  # imports RestrictedPython before confinement

    _confine()
    stdin, stdout = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)   # a stray write to fd 1 cannot corrupt the protocol
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    while True:
        try:
            request = json.loads(_read_frame(stdin, None, MAX_REPLY_BYTES))
        except (EOFError, OSError, ValueError, OverflowError):
            return   # the engine is gone, or sent what it never sends: stop
        reply = run_job(request)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
        try:
            payload = json.dumps(reply, separators=(",", ":"), allow_nan=True).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            payload = json.dumps({"ok": False, "type": "ScriptError",
                                  "message": f"script result could not be encoded: {exc}"}).encode()
        _write_frame(stdout, payload)
