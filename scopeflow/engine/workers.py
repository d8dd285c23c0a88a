"""Workers: the processes and threads that advance due instances.

Two ways to run them, one code path (:meth:`Engine.advance`):

* **Embedded** (default): :class:`EmbeddedWorker` — ``concurrency`` threads, each with its own
  :class:`Engine` (its own worker id, so the row lease keeps two threads of one process off the same
  instance), each claiming one due instance at a time with :meth:`Engine.claim_due`; plus a timer
  loop that wakes idle threads when the earliest due timer falls due instead of at the next poll.
* **Celery** (when ``SCOPEFLOW_BROKER_URL`` is set): see ``engine/celery_app.py``.

:func:`run_worker` picks one of them; ``scopeflow worker`` and ``python -m scopeflow.engine.workers``
call it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from scopeflow.config import Settings, load_settings
from scopeflow.engine.models import WAITING, Instance, utcnow
from scopeflow.engine.service import Busy, Engine, EngineError

log = logging.getLogger(__name__)

Report = Callable[[str, str], None]   # (instance id, status) after each advance


@dataclass
class WorkerTally:
    """What a worker did, for its log line and for tests."""

    advanced: int = 0
    busy: int = 0
    failed: int = 0
    results: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, instance_id: str, status: str) -> None:
        with self._lock:
            self.results.append((instance_id, status))
            if status == "busy":
                self.busy += 1
            elif status.startswith("failed"):
                self.failed += 1
            else:
                self.advanced += 1


def prepare_secret_key(engine: Engine) -> None:
    """Open the secret store once before threads start, so the key file is created by one thread.

    (``secrets.load_key`` creates ``<home>/secret.key`` on first use; engines opening it at the same
    moment could read it half-written.) An unusable key fails here, with its one-line message.
    """
    engine.secrets.has("_")


def worker_id(role: str) -> str:
    """A lease owner name that says where it runs: ``host:pid:role:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}:{uuid.uuid4().hex[:6]}"


class EmbeddedWorker:
    """A pool of threads advancing due instances of one store, and a timer loop.

    ``start()`` runs until ``stop()``; ``drain()`` advances what is due and returns when nothing is.
    Exceptions from one instance are logged and counted, never fatal to the thread.
    """

    def __init__(self, settings: Settings, concurrency: int = 4, *, poll_s: float = 1.0,
                 report: Report | None = None):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if poll_s <= 0:
            raise ValueError(f"poll interval must be positive, got {poll_s}")
        self.settings = settings
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.report = report
        self.tally = WorkerTally()
        self.engines = [Engine(settings, worker_id=worker_id(f"t{i}")) for i in range(concurrency)]
        prepare_secret_key(self.engines[0])
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the advancing threads and the timer loop (daemon threads)."""
        self._stop.clear()
        self._threads = [threading.Thread(target=self._serve, args=(engine,), name=f"scopeflow-worker-{i}",
                                          daemon=True) for i, engine in enumerate(self.engines)]
        self._threads.append(threading.Thread(target=self._timer_loop, name="scopeflow-timers", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask every thread to finish its current advance and exit; wait up to ``timeout`` each."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler or another thread)."""
        while not self._stop.wait(0.5):
            pass

    def drain(self) -> WorkerTally:
        """Advance everything due now with ``concurrency`` threads; return once none is due.

        Instances that become due while it runs are advanced too; a timer due later is not waited for.
        """
        threads = [threading.Thread(target=self._drain_with, args=(engine,), daemon=True)
                   for engine in self.engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.tally

    # -- the threads -------------------------------------------------------------------------
    def _serve(self, engine: Engine) -> None:
        while not self._stop.is_set():
            if not self._advance_one(engine):
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def _drain_with(self, engine: Engine) -> None:
        while self._advance_one(engine):
            pass

    def _advance_one(self, engine: Engine) -> bool:
        """Claim one due instance and advance it; False when nothing was due."""
        try:
            claimed = engine.claim_due(1)
        except Exception:
            log.exception("worker %s: cannot claim due instances (store unreachable?)", engine.worker_id)
            self._stop.wait(self.poll_s)
            return False
        for instance_id in claimed:
            self._record(instance_id, advance_safely(engine, instance_id))
        return bool(claimed)

    def _record(self, instance_id: str, status: str) -> None:
        self.tally.add(instance_id, status)
        if self.report is not None:
            self.report(instance_id, status)

    def _timer_loop(self) -> None:
        """Sleep until the earliest timer of a waiting instance is due, then wake the idle threads."""
        engine = self.engines[0]
        while not self._stop.is_set():
            try:
                due = next_wake_at(engine)
            except Exception:
                log.exception("timer loop: cannot read due timers")
                due = None
            delay = self.poll_s * 10 if due is None else (due - utcnow()).total_seconds()
            if delay <= 0:
                self._wake.set()
                delay = self.poll_s   # a claimer takes it; look again after a poll
            self._stop.wait(min(delay, self.poll_s * 10))


def advance_safely(engine: Engine, instance_id: str, reason: str = "worker") -> str:
    """Advance a claimed instance; any failure becomes a status string, logged with its cause
    (shared by the embedded pool and the Celery task)."""
    try:
        return engine.advance(instance_id, reason=reason)
    except Busy:
        return "busy"
    except EngineError as exc:
        log.error("instance %s: advance refused: %s", instance_id, exc)
        park(engine, instance_id)
        return f"failed: {exc}"
    except Exception as exc:  # the engine turns handler errors into incidents; this is the store or a bug
        log.exception("instance %s: advance crashed", instance_id)
        park(engine, instance_id)
        return f"failed: {type(exc).__name__}: {exc}"


PARK_S = 60.0


def park(engine: Engine, instance_id: str, seconds: float = PARK_S) -> bool:
    """Keep every worker off an instance whose advance failed, for ``seconds``.

    Without it a failing instance (e.g. a corrupt state row) is due again at once and a worker
    would spin on it. It takes a lease named ``parked-by:<worker>`` that simply expires; the
    instance is then due again and retried (and logged again). Returns False if it could not park.
    """
    now = utcnow()
    try:
        with engine.sessions.begin() as session:
            parked = session.execute(
                update(Instance)
                .where(Instance.id == instance_id,
                       or_(Instance.lock_owner.is_(None), Instance.lock_owner == engine.worker_id))
                .values(lock_owner=f"parked-by:{engine.worker_id}"[:100],
                        lock_expires_at=now + timedelta(seconds=seconds))
            ).rowcount
    except Exception as exc:
        log.error("instance %s: cannot park it after a failed advance: %s", instance_id, exc)
        return False
    if parked:
        log.warning("instance %s: parked for %.0f s after a failed advance", instance_id, seconds)
    return bool(parked)


def next_wake_at(engine: Engine) -> datetime | None:
    """The earliest ``wake_at`` among waiting instances (None when no timer is pending)."""
    with engine.sessions() as session:
        return session.scalar(select(func.min(Instance.wake_at)).where(Instance.status == WAITING))


# -------------------------------------------------------------------------------- entry points
def run_worker(settings: Settings, concurrency: int = 4, once: bool = False, *, poll_s: float = 1.0,
               report: Report | None = None) -> WorkerTally | None:
    """What ``scopeflow worker`` runs.

    * ``once``: advance what is due now with ``concurrency`` embedded threads and return the tally
      (also when a broker is configured: "once" means this process does the work).
    * ``settings.broker_url`` set: a Celery worker with ``concurrency`` threads plus a dispatcher
      thread that claims due instances and enqueues them; runs until SIGTERM/SIGINT (returns None).
    * otherwise: the embedded worker until SIGTERM/SIGINT; returns its tally.
    """
    if once:
        return EmbeddedWorker(settings, concurrency, poll_s=poll_s, report=report).drain()
    if settings.broker_url:
        from scopeflow.engine.celery_app import run_celery_worker

        run_celery_worker(settings, concurrency, poll_s=poll_s)
        return None
    worker = EmbeddedWorker(settings, concurrency, poll_s=poll_s, report=report)
    _stop_on_signals(worker.stop)
    worker.start()
    print(f"scopeflow worker ready: embedded, {concurrency} thread(s), store "
          f"{_safe_url(settings.effective_database_url)}", flush=True)
    try:
        worker.wait()
    except KeyboardInterrupt:
        pass
    worker.stop(timeout=30)
    return worker.tally


def _stop_on_signals(stop: Callable[[], None]) -> None:
    if threading.current_thread() is not threading.main_thread():
        return   # signal handlers can only be installed from the main thread
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop())


def _safe_url(url: str) -> str:
    """The store URL without its password (for log lines)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _quiet_spiff(record: logging.LogRecord) -> bool:
    """Drop SpiffWorkflow's per-task INFO lines (one per state change) from the worker log."""
    return record.levelno >= logging.WARNING or not record.name.startswith("spiff")


def main(argv: list[str] | None = None) -> int:
    """``python -m scopeflow.engine.workers [--concurrency N] [--once] [--poll S]`` (settings from env)."""
    parser = argparse.ArgumentParser(prog="python -m scopeflow.engine.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--once", action="store_true", help="advance what is due now, then exit")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls when idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.root.handlers:
        handler.addFilter(_quiet_spiff)
    try:
        tally = run_worker(load_settings(), args.concurrency, args.once, poll_s=args.poll,
                           report=lambda i, s: print(f"{i}: {s}", flush=True) if args.once else None)
    except (ValueError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if tally is not None and tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
