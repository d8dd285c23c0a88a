"""Load through the public API: 1,000 scopes submitted concurrently over HTTP while workers run,
on PostgreSQL. None is lost, none is stuck; the request and advance latencies are reported."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from scopeflow.engine.accounts import create_user, issue_api_token
from scopeflow.engine.models import HumanTask, Instance, SpanRow
from scopeflow.engine.service import Engine
from scopeflow.engine.workers import EmbeddedWorker
from scopeflow.ui.serve import make_server
from tests.conftest import make_settings
from tests.test_workers import fresh_postgres_database

SUBMISSIONS = 1_000
SCOPE = "# Shelf {n}\n\n## Entities\n- Book: title (text, required), pages (integer, min 1)\n"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


@pytest.mark.slow
@pytest.mark.services
def test_a_thousand_scopes_submitted_through_the_api_all_reach_their_first_human_task(tmp_path: Path):
    with fresh_postgres_database() as url:
        settings = replace(make_settings(tmp_path / "home"), database_url=url)
        engine = Engine(settings)
        create_user(engine.sessions, "loader", ["submitter"], "correct horse battery")
        token = issue_api_token(engine.sessions, "loader")
        server, _app, _engine = make_server(settings, "127.0.0.1", 0, engine=engine, threads=8)
        serving = threading.Thread(target=server.run, daemon=True)
        serving.start()
        workers = EmbeddedWorker(settings, concurrency=2, poll_s=0.1)
        workers.start()
        base = f"http://127.0.0.1:{server.effective_port}"
        latencies: list[float] = []
        try:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
                def submit(n: int) -> tuple[int, str]:
                    started = time.perf_counter()
                    response = client.post("/api/v1/instances", json={"scope": SCOPE.format(n=n)})
                    latencies.append(time.perf_counter() - started)
                    return response.status_code, response.json().get("id", response.text)

                with ThreadPoolExecutor(max_workers=16) as pool:
                    answers = list(pool.map(submit, range(SUBMISSIONS)))
            assert Counter(code for code, _ in answers) == Counter({201: SUBMISSIONS})
            ids = {instance_id for _, instance_id in answers}
            assert len(ids) == SUBMISSIONS, "every submission is its own instance"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with engine.sessions() as session:
                    waiting = session.scalar(select(func.count()).select_from(HumanTask).where(
                        HumanTask.bpmn_id == "confirm_scope", HumanTask.status == "open"))
                if waiting == SUBMISSIONS:
                    break
                time.sleep(0.2)
        finally:
            workers.stop(timeout=30)
            server.close()
        with engine.sessions() as session:
            statuses = Counter(session.scalars(select(Instance.status).where(Instance.id.in_(ids))))
            advances = [(end - start) / 1e6 for start, end in session.execute(
                select(SpanRow.start_ns, SpanRow.end_ns).where(SpanRow.name.like("advance delivery %")))]
            held = session.scalar(select(func.count()).select_from(Instance).where(Instance.lock_owner.is_not(None)))
        assert statuses == Counter({"waiting": SUBMISSIONS}), "none lost, none stuck or failed"
        assert waiting == SUBMISSIONS and held == 0
        print(f"\nAPI load: {SUBMISSIONS} submissions over HTTP, 16 clients; request p50 "
              f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95(latencies) * 1000:.0f} ms; "
              f"advance p95 {p95(advances):.0f} ms over {len(advances)} advances")
