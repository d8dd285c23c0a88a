"""Scale-out throughput: 1 vs 2 vs 4 worker processes on PostgreSQL, and SQLite with one process.

Each run gets a fresh store, starts its worker processes (``python -m scopeflow.engine.workers
--concurrency 1``: one advancing thread each, so processes are what scales), waits until they are
ready, then releases ``--instances`` instances (submitted beforehand and held by a gate lease, so
process start-up and submission speed are not measured) of a model with four I/O-bound service
tasks (``sleep`` 50 ms each). Throughput = instances / (last completion − release). Prints instances/s per run and the ratios to one PostgreSQL worker (target:
2 workers >= 1.8x). Ends with one line ``RESULT {json}``.

    python benchmarks/scale.py [--instances 40] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from scopeflow.config import Settings  # noqa: E402
from scopeflow.engine.db import dispose_all  # noqa: E402
from scopeflow.engine.models import Instance, utcnow  # noqa: E402
from scopeflow.engine.service import Engine  # noqa: E402
from scopeflow.processes.synth import linear_process  # noqa: E402

MODEL = "io_bound"
TASKS = 4
SLEEP_S = 0.05


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A fresh database ``scopeflow_bench_<random>`` on ``server_url``; dropped afterwards."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"scopeflow_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_all()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def start_workers(settings: Settings, count: int) -> list[subprocess.Popen]:
    """``count`` worker processes, returned once each has printed its ready line."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCOPEFLOW_HOME": str(settings.home),
           "SCOPEFLOW_MODELS": str(settings.models_dir), "SCOPEFLOW_WORKSPACES": str(settings.workspaces_dir),
           "SCOPEFLOW_DATABASE_URL": settings.effective_database_url, "SCOPEFLOW_BROKER_URL": ""}
    workers = [subprocess.Popen([sys.executable, "-m", "scopeflow.engine.workers", "--concurrency", "1",
                                 "--poll", "0.05"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True) for _ in range(count)]
    for worker in workers:
        line = worker.stdout.readline()
        if "ready" not in line:
            stop_workers(workers)
            raise RuntimeError(f"a worker did not start (said {line!r})")
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def run(label: str, database_url: str, workers: int, instances: int, root: Path) -> dict:
    """Throughput of ``workers`` processes over ``instances`` instances on ``database_url``."""
    home = root / label
    models = home / "models"
    (models / "examples").mkdir(parents=True)   # `sleep` demonstrates: lint admits it only under examples/
    steps = [(f"io{i}", "sleep", {"seconds": str(SLEEP_S)}) for i in range(TASKS)]
    (models / "examples" / f"{MODEL}.bpmn").write_text(linear_process(MODEL, steps), encoding="utf-8")
    settings = Settings(models_dir=models, database_url=database_url).with_home(home)
    engine = Engine(settings)
    engine.deploy([MODEL])
    for _ in range(instances):
        engine.start(MODEL, advance=False)
    hold(engine, True)     # submitted, but no worker may take them until every worker is ready
    processes = start_workers(settings, workers)
    try:
        began = utcnow()
        hold(engine, False)
        deadline = time.monotonic() + 60 + instances * TASKS * SLEEP_S * 4
        while completed(engine) < instances:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {completed(engine)}/{instances} completed in time")
            time.sleep(0.05)
    finally:
        stop_workers(processes)
    with engine.sessions() as session:
        last = session.scalar(select(func.max(Instance.ended_at)))
    seconds = (last - began).total_seconds()
    rate = instances / seconds
    print(f"{label:12s} {workers} worker process(es): {instances} instances in {seconds:6.2f} s = {rate:6.2f}/s",
          flush=True)
    return {"workers": workers, "instances": instances, "seconds": round(seconds, 3), "per_s": round(rate, 3)}


def hold(engine: Engine, held: bool) -> None:
    """Lease every instance to a gate (or release them all at once) in one UPDATE."""
    gate = {"lock_owner": "benchmark-gate", "lock_expires_at": utcnow() + timedelta(hours=1)} if held \
        else {"lock_owner": None, "lock_expires_at": None}
    with engine.sessions.begin() as session:
        session.execute(update(Instance).values(**gate))


def completed(engine: Engine) -> int:
    with engine.sessions() as session:
        return session.scalar(select(func.count()).select_from(Instance).where(Instance.status == "completed"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "SCOPEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if args.instances < 4:
        parser.error("--instances must be at least 4")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scopeflow-scale-") as tmp:
        root = Path(tmp)
        for workers in (1, 2, 4):
            with postgres_database(args.postgres_url) as url:
                results[f"postgres_{workers}"] = run(f"postgres_{workers}", url, workers, args.instances, root)
        sqlite_url = f"sqlite:///{root / 'sqlite' / 'scopeflow.db'}"
        results["sqlite_1"] = run("sqlite_1", sqlite_url, 1, args.instances, root)
    base = results["postgres_1"]["per_s"]
    ratios = {f"{name}_vs_postgres_1": round(r["per_s"] / base, 2) for name, r in results.items()
              if name != "postgres_1"}
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x")
    target_met = ratios["postgres_2_vs_postgres_1"] >= 1.8
    print(f"target 2 workers >= 1.8x one worker: {'met' if target_met else 'NOT met'}")
    print("RESULT " + json.dumps({"runs": results, "ratios": ratios, "target_2x_ge_1_8": target_met,
                                  "model": {"tasks": TASKS, "sleep_s": SLEEP_S}}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
