"""Scale-out on real PostgreSQL (and Redis): worker processes killed mid-run, and a load of 1,000.

Both tests start real worker processes (``python -m scopeflow.engine.workers``) against a fresh
PostgreSQL database, so they exercise the lease, ``claim_due`` with SKIP LOCKED, the Celery
hand-over and crash recovery exactly as a deployment would.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scopeflow.config import Settings
from scopeflow.engine.models import Instance, SpanRow
from scopeflow.engine.service import Engine
from scopeflow.processes.synth import linear_process
from tests.conftest import REPO, make_settings, require_service
from tests.operators import WORKER_ENV
from tests.test_workers import REDIS_URL, fresh_postgres_database, redis_reachable, write_models

STEPS = [f"step{i}" for i in range(1, 5)]


# ------------------------------------------------------------------------------ worker processes
def worker_env(settings: Settings, broker: str = "") -> dict[str, str]:
    return {**os.environ, **WORKER_ENV, "PYTHONPATH": str(REPO), "SCOPEFLOW_HOME": str(settings.home),
            "SCOPEFLOW_MODELS": str(settings.models_dir), "SCOPEFLOW_WORKSPACES": str(settings.workspaces_dir),
            "SCOPEFLOW_DATABASE_URL": settings.effective_database_url, "SCOPEFLOW_BROKER_URL": broker,
            "SCOPEFLOW_LOCK_LEASE": str(settings.lock_lease_s), "SCOPEFLOW_SECRET_KEY": settings.secret_key}


def spawn_worker(settings: Settings, log: Path, *, concurrency: int, broker: str = "") -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "scopeflow.engine.workers", "--concurrency", str(concurrency), "--poll", "0.1"],
        env=worker_env(settings, broker), cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def postgres_settings(tmp_path: Path, models: dict[str, str], lease_s: float) -> Iterator[Settings]:
    from cryptography.fernet import Fernet

    with fresh_postgres_database() as url:
        yield replace(make_settings(tmp_path / "home", write_models(tmp_path / "models", models)),
                      database_url=url, lock_lease_s=lease_s, secret_key=Fernet.generate_key().decode())


def statuses(engine: Engine) -> Counter:
    with engine.sessions() as session:
        return Counter(dict(session.execute(select(Instance.status, func.count()).group_by(Instance.status)).all()))


def wait_for_all(engine: Engine, total: int, timeout: float, watch: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while statuses(engine)["completed"] < total:
        dead = [p.args for p in watch if p.poll() is not None]
        assert not dead, f"a worker exited on its own: {dead}"
        assert time.monotonic() < deadline, f"not all instances completed in {timeout} s: {dict(statuses(engine))}"
        time.sleep(0.2)


# ------------------------------------------------------------------------------ marks
def mark_files(settings: Settings, instance_ids: list[str]) -> dict[tuple[str, str], list[int]]:
    """(instance, step) → the time (ns) of each execution, from the ``mark`` operator's files."""
    out: dict[tuple[str, str], list[int]] = {}
    for instance_id in instance_ids:
        folder = settings.workspaces_dir / instance_id / "marks"
        for path in folder.iterdir() if folder.is_dir() else []:
            step, written_ns = path.name.split("-", 1)[0], int(path.name.rsplit("-", 1)[1])  # step-task-ns
            out.setdefault((instance_id, step), []).append(written_ns)
    return out


def stored_step_spans(engine: Engine) -> dict[tuple[str, str], list[int]]:
    """(instance, step) → end time (ns) of each stored span of that step."""
    with engine.sessions() as session:
        found = session.execute(select(SpanRow.instance_id, SpanRow.bpmn_element_id, SpanRow.end_ns)
                                .where(SpanRow.bpmn_element_id.in_(STEPS))).all()
    out: dict[tuple[str, str], list[int]] = {}
    for instance_id, step, end_ns in found:
        out.setdefault((instance_id, step), []).append(end_ns)
    return out


def advancing(engine: Engine, pid: int) -> int:
    """How many instances worker process ``pid`` is advancing now (leases its Celery threads hold)."""
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(Instance)
                              .where(Instance.lock_owner.like(f"%:{pid}:celery:%")))


# ------------------------------------------------------------------------------ crash safety
@pytest.mark.slow
@pytest.mark.services
def test_sigkilled_celery_workers_lose_nothing_and_redo_no_checkpointed_step(tmp_path: Path):
    require_service("Redis", *redis_reachable())
    model = linear_process("crashy", [(s, "mark", {"name": repr(s), "seconds": "0.05"}) for s in STEPS])
    with postgres_settings(tmp_path, {"crashy": model}, lease_s=3.0) as settings:
        engine = Engine(settings)
        ids = [engine.start("crashy", advance=False) for _ in range(200)]
        logs = tmp_path / "logs"
        logs.mkdir()
        steady = spawn_worker(settings, logs / "steady.log", concurrency=4, broker=REDIS_URL)
        victim = spawn_worker(settings, logs / "victim.log", concurrency=4, broker=REDIS_URL)
        snapshots = []
        try:
            for _kill in range(3):
                wait_until_holding(engine, victim, timeout=90)
                wait_until_mid_instance(engine, victim, timeout=30)  # a checkpointed step, more to run
                stored = set(stored_step_spans(engine))
                snapshots.append((stored, mark_files(settings, ids)))
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
                victim = spawn_worker(settings, logs / "victim.log", concurrency=4, broker=REDIS_URL)
            wait_for_all(engine, len(ids), timeout=75, watch=[steady, victim])
        finally:
            stop(steady)
            stop(victim)
            purge_queue(settings)

        spans = stored_step_spans(engine)
        runs = mark_files(settings, ids)
        assert statuses(engine) == Counter({"completed": len(ids)}), "every instance completes"
        assert set(spans) == {(i, s) for i in ids for s in STEPS}
        assert all(len(ends) == 1 for ends in spans.values()), "no step's span is stored twice"
        for key, (end_ns,) in spans.items():
            assert runs.get(key), f"{key} has a span but never ran"
            assert max(runs[key]) <= end_ns, f"{key} ran again after its checkpoint"
        for stored, marks_then in snapshots:
            for key in stored:
                assert runs[key] == marks_then[key], f"{key} was checkpointed before a kill and ran again"
        redone = sum(1 for times in runs.values() if len(times) > 1)
        resumed = resumed_instances(engine)
        print(f"\ncrash test: 3 SIGKILLs; {resumed} instance(s) resumed by another advance after a kill; "
              f"{redone} interrupted step(s) ran again because the kill came before their checkpoint")
        assert resumed > 0, "the kills interrupted no advance in flight"
        for instance_id in ids:
            assert engine.verify_chain(instance_id).ok


def resumed_instances(engine: Engine) -> int:
    """Instances whose step spans come from more than one advance (trace): work resumed after a kill."""
    with engine.sessions() as session:
        per_instance = session.execute(
            select(SpanRow.instance_id).where(SpanRow.bpmn_element_id.in_(STEPS))
            .group_by(SpanRow.instance_id).having(func.count(SpanRow.trace_id.distinct()) > 1)).all()
    return len(per_instance)


def wait_until_holding(engine: Engine, worker: subprocess.Popen, timeout: float) -> None:
    """Until ``worker`` is advancing instances (mid-run), so the kill interrupts real work."""
    deadline = time.monotonic() + timeout
    while advancing(engine, worker.pid) == 0:
        assert worker.poll() is None, "the worker exited before it took any work"
        assert time.monotonic() < deadline, "the worker never took an instance"
        time.sleep(0.05)


def wait_until_mid_instance(engine: Engine, worker: subprocess.Popen, timeout: float) -> None:
    """Until ``worker`` holds an instance with some steps checkpointed and some still to run, so
    the kill is certain to leave work that another worker must resume."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.sessions() as session:
            held = select(Instance.id).where(Instance.lock_owner.like(f"%:{worker.pid}:celery:%"))
            stored = session.execute(
                select(SpanRow.instance_id, func.count()).where(SpanRow.instance_id.in_(held),
                                                                SpanRow.bpmn_element_id.in_(STEPS))
                .group_by(SpanRow.instance_id)).all()
        if any(1 <= count < len(STEPS) for _, count in stored):
            return
        assert worker.poll() is None, "the worker exited"
        assert time.monotonic() < deadline, "the worker was never caught mid-instance"
        time.sleep(0.005)


def purge_queue(settings: Settings) -> None:
    from scopeflow.engine.celery_app import make_app, queue_name

    app = make_app(replace(settings, broker_url=REDIS_URL))
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue_name(settings))


# ------------------------------------------------------------------------------ load
@pytest.mark.slow
@pytest.mark.services
def test_a_thousand_concurrent_submissions_all_complete_with_bounded_latency(tmp_path: Path):
    model = linear_process("light", [("a", "noop", {}), ("b", "mark", {"name": "'b'", "seconds": "0.01"})])
    with postgres_settings(tmp_path, {"light": model}, lease_s=30.0) as settings:
        engine = Engine(settings)
        engine.deploy(["light"])
        logs = tmp_path / "logs"
        logs.mkdir()
        workers = [spawn_worker(settings, logs / f"w{i}.log", concurrency=4) for i in range(2)]
        submitted: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def submit(count: int) -> None:
            own = Engine(settings)
            try:
                for _ in range(count):
                    instance_id = own.start("light", advance=False)
                    with lock:
                        submitted.append(instance_id)
            except BaseException as exc:  # reported below: a submission must never fail
                errors.append(exc)

        started = time.monotonic()
        try:
            threads = [threading.Thread(target=submit, args=(125,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            submit_s = time.monotonic() - started
            assert not errors, f"submissions failed: {errors[:3]}"
            wait_for_all(engine, 1000, timeout=120, watch=workers)
        finally:
            for worker in workers:
                stop(worker)
        total_s = time.monotonic() - started

        with engine.sessions() as session:
            found = session.execute(select(Instance.id, Instance.status, Instance.created_at,
                                           Instance.ended_at)).all()
            advances = session.execute(select(SpanRow.start_ns, SpanRow.end_ns)
                                       .where(SpanRow.name.like("advance light %"))).all()
        assert len(submitted) == 1000 and {row.id for row in found} == set(submitted), "none lost"
        assert {row.status for row in found} == {"completed"}, "none stuck"
        assert len(advances) == 1000, "each instance advanced exactly once"
        to_done = [(row.ended_at - row.created_at).total_seconds() for row in found]
        advance_s = [(end - start) / 1e9 for start, end in advances]
        p95 = statistics.quantiles(advance_s, n=20)[-1]
        print(f"\nload: 1000 instances submitted by 8 threads in {submit_s:.1f} s, all completed in "
              f"{total_s:.1f} s by 2 worker processes x 4 threads; advance latency p50 "
              f"{statistics.median(advance_s) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; submit-to-completed "
              f"p95 {statistics.quantiles(to_done, n=20)[-1]:.2f} s")
        assert p95 < 2.0, f"p95 advance latency {p95:.2f} s"
