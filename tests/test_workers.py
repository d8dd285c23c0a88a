"""Workers: claiming due instances, the embedded thread pool, timers across workers, Celery.

Store-dependent tests run on SQLite and on PostgreSQL (a fresh database per test, dropped after);
PostgreSQL and Redis are found through SCOPEFLOW_TEST_POSTGRES_URL / SCOPEFLOW_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from scopeflow.config import Settings
from scopeflow.engine.models import Instance, SpanRow, utcnow
from scopeflow.engine.service import Engine
from scopeflow.engine.workers import EmbeddedWorker, run_worker
from scopeflow.processes.synth import linear_process
from tests import test_engine as core
from tests.conftest import make_settings, require_service

POSTGRES_URL = os.environ.get("SCOPEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SCOPEFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# ------------------------------------------------------------------------------ stores
@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database ``scopeflow_test_<random>`` on the test server; dropped afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        require_service("PostgreSQL", False, str(exc).splitlines()[0])
    name = f"scopeflow_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        from scopeflow.engine.db import dispose_all

        dispose_all()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def redis_reachable(url: str = REDIS_URL) -> tuple[bool, str]:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2):
            return True, ""
    except OSError as exc:
        return False, f"{url}: {exc}"


def write_models(directory: Path, models: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, xml in models.items():
        (directory / f"{name}.bpmn").write_text(xml, encoding="utf-8")
    return directory


def timer_then_mark(process_id: str, duration: str = "PT1S") -> str:
    """start → intermediate timer (``duration``) → ``after`` (a mark task) → end."""
    xml = linear_process(process_id, [("wait", "noop", {}), ("after", "mark", {"name": "'after'"})])
    timer = ('<bpmn:intermediateCatchEvent id="wait" name="wait"><bpmn:incoming>f0</bpmn:incoming>'
             '<bpmn:outgoing>f1</bpmn:outgoing><bpmn:timerEventDefinition id="wait_timer">'
             f'<bpmn:timeDuration>"{duration}"</bpmn:timeDuration></bpmn:timerEventDefinition>'
             "</bpmn:intermediateCatchEvent>")
    return re.sub(r'<bpmn:serviceTask id="wait".*?</bpmn:serviceTask>', timer, xml, count=1, flags=re.S)


MODELS = {
    "two_steps": linear_process("two_steps", [("a", "noop", {}), ("b", "mark", {"name": "'b'"})]),
    "timed": timer_then_mark("timed"),
}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path) -> Iterator[Settings]:
    """Settings over our small models, on SQLite or on a fresh PostgreSQL database."""
    models = write_models(tmp_path / "models", MODELS)
    settings = make_settings(tmp_path / "home", models)
    if request.param == "sqlite":
        yield settings
        return
    with fresh_postgres_database() as url:
        yield replace(settings, database_url=url)


@pytest.fixture
def pg_repo_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine over the repository's models on a fresh PostgreSQL database."""
    with fresh_postgres_database() as url:
        yield Engine(replace(make_settings(tmp_path / "home"), database_url=url))


def marks(settings: Settings, instance_id: str) -> list[str]:
    folder = settings.workspaces_dir / instance_id / "marks"
    return sorted(p.name.split("-")[0] for p in folder.iterdir()) if folder.is_dir() else []


def rows(engine: Engine, ids: list[str]) -> dict[str, Instance]:
    with engine.sessions() as session:
        return {row.id: row for row in session.scalars(select(Instance).where(Instance.id.in_(ids)))}


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------ claim_due
def test_concurrent_claimers_share_no_instance_and_miss_none(store: Settings):
    submitter = Engine(store)
    ids = {submitter.start("two_steps", advance=False) for _ in range(12)}
    claimers = [Engine(store, worker_id=f"claimer-{i}") for i in range(3)]
    claimed: dict[str, list[str]] = {c.worker_id: [] for c in claimers}
    barrier = threading.Barrier(len(claimers))

    def claim_all(engine: Engine) -> None:
        barrier.wait()
        while batch := engine.claim_due(2):
            claimed[engine.worker_id].extend(batch)

    threads = [threading.Thread(target=claim_all, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [i for batch in claimed.values() for i in batch]
    assert sorted(every) == sorted(ids), "each due instance is claimed exactly once"
    owners = {row.id: row.lock_owner for row in rows(submitter, list(ids)).values()}
    assert all(owners[i] == owner for owner, batch in claimed.items() for i in batch)
    assert submitter.due_instances() == [] and submitter.claim_due(5) == [], "leased rows are not due"
    some = claimers[0]
    for instance_id in claimed[some.worker_id]:
        assert some.advance(instance_id) == "completed", "the claimer advances what it claimed"


def test_a_running_instance_whose_worker_died_is_due_again_once_its_lease_expires(store: Settings):
    engine = Engine(store)
    instance_id = engine.start("two_steps", advance=False)
    with engine.sessions.begin() as session:  # what a SIGKILL after a mid-run checkpoint leaves behind
        session.execute(update(Instance).where(Instance.id == instance_id).values(
            needs_advance=False, lock_owner="dead-worker", lock_expires_at=utcnow() + timedelta(seconds=30)))
    assert engine.due_instances() == [], "a live lease keeps it off the due list"
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == instance_id)
                        .values(lock_expires_at=utcnow() - timedelta(seconds=1)))
    assert engine.due_instances() == [instance_id]
    assert engine.run_due() == [(instance_id, "completed")]


def test_skip_locked_claims_around_a_row_another_transaction_holds(tmp_path: Path):
    with fresh_postgres_database() as url:
        settings = replace(make_settings(tmp_path / "home", write_models(tmp_path / "models", MODELS)),
                           database_url=url)
        engine = Engine(settings)
        ids = [engine.start("two_steps", advance=False) for _ in range(4)]
        holder = create_engine(url)
        try:
            with holder.connect() as connection:
                connection.execute(text("SELECT id FROM instance WHERE id = :id FOR UPDATE"), {"id": ids[0]})
                result: list[str] = []
                claimer = threading.Thread(target=lambda: result.extend(engine.claim_due(10)))
                claimer.start()
                claimer.join(10)
                assert not claimer.is_alive(), "claim_due waited for a locked row instead of skipping it"
                assert sorted(result) == sorted(ids[1:])
                connection.rollback()
        finally:
            holder.dispose()
        assert engine.claim_due(10) == [ids[0]], "once the lock is gone the row is claimable"


# ------------------------------------------------------------------------------ timers
def test_a_due_timer_fires_exactly_once_across_workers(store: Settings):
    engine = Engine(store)
    ids = [engine.start("timed") for _ in range(8)]
    assert ids[-1] not in engine.due_instances(), "not before its timer is due"
    assert {row.status for row in rows(engine, ids).values()} == {"waiting"}
    wait_until(lambda: len(engine.due_instances()) == len(ids), 60, "every timer to fall due")
    pools = [EmbeddedWorker(store, concurrency=3) for _ in range(2)]
    threads = [threading.Thread(target=pool.drain) for pool in pools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(pool.tally.advanced for pool in pools) == len(ids), "one advance per instance across 6 threads"
    assert {row.status for row in rows(engine, ids).values()} == {"completed"}
    for instance_id in ids:
        assert marks(store, instance_id) == ["after"], "the task after the timer ran once"
        with engine.sessions() as session:
            fired = session.scalars(select(SpanRow.bpmn_element_id).where(
                SpanRow.instance_id == instance_id, SpanRow.bpmn_element_id == "wait")).all()
        assert fired == ["wait"], "the timer event has exactly one span"


def test_the_timer_loop_wakes_idle_threads_when_a_timer_falls_due(tmp_path: Path):
    settings = make_settings(tmp_path / "home", write_models(tmp_path / "models", MODELS))
    engine = Engine(settings)
    instance_id = engine.start("timed")
    # Idle threads would poll only once an hour: within the test, only the timer loop can wake them.
    worker = EmbeddedWorker(settings, concurrency=2, poll_s=3600.0)
    worker.start()
    try:
        wait_until(lambda: rows(engine, [instance_id])[instance_id].status == "completed", 60,
                   "the timer loop to wake a thread for the due timer")
    finally:
        worker.stop(timeout=10)
    assert worker.tally.advanced == 1


# ------------------------------------------------------------------------------ the embedded worker
def test_the_embedded_worker_advances_instances_submitted_while_it_runs(store: Settings):
    worker = EmbeddedWorker(store, concurrency=3, poll_s=0.05)
    worker.start()
    engine = Engine(store)
    try:
        ids = [engine.start("two_steps", advance=False) for _ in range(10)]
        wait_until(lambda: {r.status for r in rows(engine, ids).values()} == {"completed"}, 60,
                   "every instance to complete")
    finally:
        worker.stop(timeout=10)
    assert not any(thread.is_alive() for thread in worker._threads)
    assert worker.tally.failed == 0, [r for r in worker.tally.results if r[1].startswith("failed")]
    assert worker.tally.advanced == 10
    assert all(marks(store, i) == ["b"] for i in ids)


def test_a_failing_instance_is_parked_and_does_not_stop_the_others(tmp_path: Path):
    settings = make_settings(tmp_path / "home", write_models(tmp_path / "models", MODELS))
    engine = Engine(settings)
    broken, *good = [engine.start("two_steps", advance=False) for _ in range(4)]
    with engine.sessions.begin() as session:
        session.execute(update(Instance).where(Instance.id == broken).values(state="{not json"))
    tally = run_worker(settings, concurrency=2, once=True)
    assert tally.failed == 1 and tally.advanced == 3
    assert [s for i, s in tally.results if i == broken][0].startswith("failed: instance")
    states = rows(engine, [broken, *good])
    assert all(states[i].status == "completed" for i in good)
    assert states[broken].status == "error", "an unreadable instance becomes an incident, not spun on"
    assert "corrupt state row" in states[broken].incident["message"]
    assert engine.due_instances() == []


def test_worker_settings_are_checked(tmp_path: Path):
    settings = make_settings(tmp_path / "home")
    with pytest.raises(ValueError, match="concurrency must be at least 1, got 0"):
        EmbeddedWorker(settings, concurrency=0)
    with pytest.raises(ValueError, match="poll interval must be positive"):
        EmbeddedWorker(settings, concurrency=1, poll_s=0)


# ------------------------------------------------------------------------------ the engine on PostgreSQL
CORE_SCENARIOS = {
    "hello": lambda e: core.test_straight_through_examples_complete_with_one_span_per_task(e, "hello"),
    "parallel": lambda e: core.test_straight_through_examples_complete_with_one_span_per_task(e, "parallel"),
    "call": lambda e: core.test_straight_through_examples_complete_with_one_span_per_task(e, "call"),
    "multi_instance": core.test_multi_instance_sums_the_squares,
    "failure_kinds": lambda e: [core.test_each_failure_kind_reaches_its_boundary_event(e, k) for k in core.KINDS],
    "transient_retry": core.test_transient_failures_are_retried_under_the_operator_policy,
    "start_form": core.test_start_data_is_validated_against_the_start_form,
    "user_task": core.test_user_task_form_is_validated_then_completes_the_instance,
    "sla_timer": core.test_sla_timer_escalates_an_unanswered_task,
    "message": core.test_message_is_delivered_only_to_the_matching_correlation_key,
    "cancel": core.test_cancel_closes_open_tasks,
    "corrupt_state": core.test_a_corrupt_state_row_is_reported_not_crashed,
    "hash_chain": core.test_spans_are_hash_chained_and_tampering_is_detected,
}


@pytest.mark.parametrize("scenario", sorted(CORE_SCENARIOS))
def test_engine_core_scenarios_hold_on_postgresql(pg_repo_engine: Engine, scenario: str):
    assert pg_repo_engine.sessions.kw["bind"].dialect.name == "postgresql"
    if scenario == "user_task":   # the approval task is in the Reviewer lane: rita is a reviewer account
        from tests.conftest import add_account

        add_account(pg_repo_engine, "rita", "reviewer")
    CORE_SCENARIOS[scenario](pg_repo_engine)


# ------------------------------------------------------------------------------ Celery
def test_a_message_whose_claim_is_gone_is_skipped_without_touching_the_instance(tmp_path: Path):
    from scopeflow.engine.celery_app import SKIPPED, advance_claimed

    settings = make_settings(tmp_path / "home", write_models(tmp_path / "models", MODELS))
    engine = Engine(settings)
    instance_id = engine.start("two_steps", advance=False)
    before = rows(engine, [instance_id])[instance_id].row_version
    assert advance_claimed(engine, instance_id, "dispatch:long-gone") == SKIPPED
    row = rows(engine, [instance_id])[instance_id]
    assert (row.row_version, row.status, row.lock_owner) == (before, "running", None)
    claimer = Engine(settings, worker_id="dispatch:current")
    assert claimer.claim_due(1) == [instance_id]
    assert advance_claimed(engine, instance_id, "dispatch:current") == "completed"


def test_celery_needs_a_broker(tmp_path: Path):
    from scopeflow.engine.celery_app import make_app

    with pytest.raises(ValueError, match="SCOPEFLOW_BROKER_URL is not set"):
        make_app(make_settings(tmp_path / "home"))


def test_celery_workers_advance_dispatched_instances_with_trace_context_across_the_broker(tmp_path: Path):
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from scopeflow.engine.celery_app import Dispatcher, instrument, make_app, queue_name

    require_service("Redis", *redis_reachable())
    with fresh_postgres_database() as url:
        settings = replace(make_settings(tmp_path / "home", write_models(tmp_path / "models", MODELS)),
                           database_url=url, broker_url=REDIS_URL)
        app = make_app(settings)
        dispatcher = Dispatcher(settings, app, backlog=4, poll_s=0.05)
        exporter = InMemorySpanExporter()
        dispatcher.engine.telemetry.provider.add_span_processor(SimpleSpanProcessor(exporter))
        CeleryInstrumentor().uninstrument()
        instrument(dispatcher.engine)
        ids = [dispatcher.engine.start("two_steps", advance=False) for _ in range(6)]
        try:
            with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
                wait_until(lambda: dispatcher.dispatch_once() is not None and
                           {r.status for r in rows(dispatcher.engine, ids).values()} == {"completed"},
                           60, "the Celery worker to complete every instance")
        finally:
            CeleryInstrumentor().uninstrument()
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue_name(settings))
        assert all(marks(settings, i) == ["b"] for i in ids), "each instance advanced once"
        spans = exporter.get_finished_spans()
        published = {s.context.span_id: s for s in spans if s.name == "apply_async/scopeflow.advance"}
        ran = [s for s in spans if s.name == "run/scopeflow.advance"]
        assert len(published) >= len(ids) and len(ran) == len(published)
        for run in ran:
            parent = published.get(run.parent.span_id) if run.parent else None
            assert parent is not None, "the run span's parent is the dispatcher's publish span"
            assert run.context.trace_id == parent.context.trace_id
