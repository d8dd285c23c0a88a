"""Scale-out: Celery workers (Redis or RabbitMQ broker) advancing instances of a shared store.

The unit of work is a whole instance: the task ``scopeflow.advance(instance_id, claim)`` runs the
same :meth:`Engine.advance` as the embedded worker. Who may advance is decided by the row lease in
the database, not by the broker, so a duplicated, late or redelivered message is harmless:

1. A :class:`Dispatcher` (a thread in every ``scopeflow worker`` process) claims due instances with
   :meth:`Engine.claim_due` under its own owner name (``SELECT … FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so dispatchers never share a row) and publishes one message per claimed instance.
2. The task takes the lease over from that claim with a conditional UPDATE (``lock_owner = claim``)
   and advances. If the claim is gone (it expired and another dispatcher re-claimed the row, or the
   instance was already advanced) the message is skipped.
3. A worker killed mid-advance leaves its lease to expire; the instance is then due again
   (``Engine.due_instances``) and a dispatcher claims it afresh. Messages are acknowledged before
   they run (Celery's default): recovery comes from the lease, not from redelivery.

Trace context crosses the broker through ``opentelemetry-instrumentation-celery``: the publish span
of the dispatcher is the parent of the worker's ``run`` span. Those spans carry no
``scopeflow.instance.id`` attribute, so they go to OTLP only, never into the evidence store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import timedelta

from celery import Celery
from celery.signals import worker_ready
from sqlalchemy import func, select, update

from scopeflow.config import Settings
from scopeflow.engine.models import Instance, utcnow
from scopeflow.engine.service import Engine
from scopeflow.engine.workers import advance_safely, prepare_secret_key, worker_id

log = logging.getLogger(__name__)

ADVANCE_TASK = "scopeflow.advance"
SKIPPED = "skipped"


def queue_name(settings: Settings) -> str:
    """The broker queue of one store: workers of different databases never take each other's work."""
    digest = hashlib.sha256(settings.effective_database_url.encode("utf-8")).hexdigest()[:12]
    return f"scopeflow.{digest}"


def make_app(settings: Settings) -> Celery:
    """A Celery app on ``settings.broker_url`` with the ``advance`` task bound to ``settings``' store."""
    if not settings.broker_url:
        raise ValueError("SCOPEFLOW_BROKER_URL is not set: Celery workers need a broker "
                         "(e.g. redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672//)")
    app = Celery("scopeflow", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue_name(settings),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    engines = _ThreadEngines(settings)

    @app.task(name=ADVANCE_TASK, shared=False)  # not shared: each app (one per store) has its own
    def advance(instance_id: str, claim: str | None = None) -> str:
        return advance_claimed(engines.get(), instance_id, claim)

    return app


class _ThreadEngines:
    """One Engine per worker thread: each has its own lease owner name (see ``engine/workers.py``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._local = threading.local()

    def get(self) -> Engine:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = self._local.engine = Engine(self.settings, worker_id=worker_id("celery"))
        return engine


def advance_claimed(engine: Engine, instance_id: str, claim: str | None) -> str:
    """Take the lease over from ``claim`` and advance; returns the status, ``skipped`` or ``busy``.

    Without a claim (a message published by hand, e.g. right after a submit) it just advances:
    the lease still keeps a second worker out.
    """
    if claim is not None and not take_over(engine, instance_id, claim):
        log.info("instance %s: claim %s is gone (expired or done); message skipped", instance_id, claim)
        return SKIPPED
    return advance_safely(engine, instance_id, reason="celery")


def take_over(engine: Engine, instance_id: str, claim: str) -> bool:
    """Move the lease from the dispatcher's ``claim`` to ``engine`` (conditional UPDATE, atomic)."""
    expires = utcnow() + timedelta(seconds=engine.settings.lock_lease_s)
    with engine.sessions.begin() as session:
        moved = session.execute(
            update(Instance).where(Instance.id == instance_id, Instance.lock_owner == claim)
            .values(lock_owner=engine.worker_id, lock_expires_at=expires)
        ).rowcount
    return moved == 1


class Dispatcher:
    """Claims due instances and publishes one ``advance`` message per claim.

    It keeps at most ``backlog`` of its claims waiting in the broker (claims not yet taken over by
    a worker), so a long queue never outlives the claims' lease and causes re-dispatch.
    """

    def __init__(self, settings: Settings, app: Celery, *, backlog: int = 8, poll_s: float = 0.5):
        if backlog < 1:
            raise ValueError(f"dispatcher backlog must be at least 1, got {backlog}")
        self.engine = Engine(settings, worker_id=worker_id("dispatch"))
        prepare_secret_key(self.engine)
        self.app = app
        self.backlog = backlog
        self.poll_s = poll_s

    @property
    def claim(self) -> str:
        return self.engine.worker_id

    def waiting(self) -> int:
        """How many of this dispatcher's claims no worker has taken over yet (and still hold)."""
        with self.engine.sessions() as session:
            return session.scalar(select(func.count()).select_from(Instance).where(
                Instance.lock_owner == self.claim, Instance.lock_expires_at > utcnow()))

    def dispatch_once(self) -> list[str]:
        """Claim up to the free backlog and publish; returns the ids published."""
        free = self.backlog - self.waiting()
        claimed = self.engine.claim_due(free) if free > 0 else []
        published = []
        for instance_id in claimed:
            try:
                self.app.send_task(ADVANCE_TASK, args=[instance_id, self.claim])
            except Exception as exc:
                log.error("dispatcher: cannot publish instance %s (%s); releasing its claim", instance_id, exc)
                self._release(instance_id)
                continue
            published.append(instance_id)
        return published

    def _release(self, instance_id: str) -> None:
        with self.engine.sessions.begin() as session:
            session.execute(update(Instance).where(Instance.id == instance_id, Instance.lock_owner == self.claim)
                            .values(lock_owner=None, lock_expires_at=None))

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set; polls again at once while there is work to hand out."""
        while not stop.is_set():
            try:
                published = self.dispatch_once()
            except Exception:
                log.exception("dispatcher: cannot claim due instances (store unreachable?)")
                published = []
            if not published:
                stop.wait(self.poll_s)


def instrument(engine: Engine) -> None:
    """Propagate trace context through the broker (publish span → run span), once per process."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=engine.telemetry.provider)


def run_celery_worker(settings: Settings, concurrency: int, *, poll_s: float = 0.5) -> None:
    """A Celery worker (``concurrency`` threads) plus a dispatcher thread; returns at shutdown."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    app = make_app(settings)
    dispatcher = Dispatcher(settings, app, backlog=2 * concurrency, poll_s=poll_s)
    instrument(dispatcher.engine)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), name="scopeflow-dispatcher", daemon=True)

    def ready(**_kwargs) -> None:
        thread.start()
        print(f"scopeflow worker ready: celery, {concurrency} thread(s), queue {queue_name(settings)}",
              flush=True)

    worker_ready.connect(ready, weak=False)
    try:
        app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}", "--loglevel=INFO",
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "-Q", queue_name(settings), "-n", f"scopeflow-{os.getpid()}@%h"])
    finally:
        stop.set()
        worker_ready.disconnect(ready)
