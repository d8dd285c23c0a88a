"""``serve``'s pieces: waitress serving the app on a loopback port, and the worker thread that
advances due instances every interval and stops cleanly."""

from __future__ import annotations

import threading
import time

import httpx

from scopeflow.engine.models import Instance
from scopeflow.ui.serve import Worker, make_server
from tests.test_ui_support import make_ui


def test_waitress_serves_the_login_page_with_security_headers(tmp_path):
    _app, engine = make_ui(tmp_path)
    server, _app2, _engine = make_server(engine.settings, "127.0.0.1", 0, engine=engine)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.effective_port}/login", timeout=10)
        assert response.status_code == 200 and "Sign in" in response.text
        assert response.headers["x-frame-options"] == "DENY"
    finally:
        server.close()
        thread.join(5)


def test_worker_advances_instances_marked_ready_and_stops(tmp_path):
    _app, engine = make_ui(tmp_path)
    instance_id = engine.start("hello", {"name": "Ada", "numbers": [1, 2]}, advance=False)
    worker = Worker(engine, interval=0.05)
    worker.start()
    deadline = time.time() + 20
    status = "running"
    while time.time() < deadline and status == "running":
        time.sleep(0.05)
        with engine.sessions() as session:
            status = session.get(Instance, instance_id).status
    worker.stop()
    assert status == "completed" and not worker.is_alive() and worker.rounds >= 1


def test_a_failing_round_does_not_end_the_worker():
    class Flaky:
        calls = 0

        def run_due(self):
            Flaky.calls += 1
            raise RuntimeError("store unreachable")

    worker = Worker(Flaky(), interval=0.01)
    worker.start()
    time.sleep(0.2)
    worker.stop()
    assert Flaky.calls >= 3 and not worker.is_alive()
