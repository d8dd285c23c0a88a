"""Runs whose OTLP collector misbehaves: refused, 404, 413, 503, a hang.

Whatever the collector does, the run completes with its spans stored locally; the export failure is
said in one line (endpoint, what is kept where, what to check), spans started after it carry
``scopeflow.otlp.export_failures``, and no failure costs more than one exporter timeout.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scopeflow.engine import reads
from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.spans import semconv
from scopeflow.spans.tracing import Telemetry
from tests.conftest import MODELS
from tests.test_otlp_export import otel_env  # noqa: F401 (the fixture)

PROTOCOLS = ["http/protobuf", "http/json"]


class Collector:
    """An OTLP/HTTP collector on loopback that answers each POST from ``statuses`` (the last repeats);
    ``"hang"`` reads the request and never answers, ``"reset"`` drops the connection without an answer."""

    def __init__(self, *statuses: int | str, retry_after: str = "") -> None:
        self.statuses = list(statuses)
        self.retry_after = retry_after
        self.posts = 0
        self.released = threading.Event()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                collector.posts += 1
                status = collector.statuses[min(collector.posts, len(collector.statuses)) - 1]
                if status == "hang":
                    collector.released.wait(10)
                    return
                if status == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                self.send_response(status)
                if collector.retry_after:
                    self.send_header("Retry-After", collector.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Collector:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def short_timeout(otel_env):  # noqa: F811
    otel_env(OTEL_EXPORTER_OTLP_TIMEOUT="0.5")


def run_hello(settings, telemetry: Telemetry) -> tuple[str, str, list]:
    """One real run; its status and stored spans."""
    engine = Engine(settings, telemetry_=telemetry)
    instance_id = engine.start("hello", {})
    with engine.sessions() as session:
        spans = load_spans(session, instance_id)
    return instance_id, reads.instance(engine.sessions, instance_id)["status"], spans


def check_failed_export(settings, endpoint: str, protocol: str, reason: str) -> Telemetry:
    telemetry = Telemetry(endpoint, protocol)
    try:
        instance_id, status, spans = run_hello(settings, telemetry)
        started = time.monotonic()
        problem = telemetry.export_problem(wait_s=10.0)
        elapsed = time.monotonic() - started
    finally:
        telemetry.shutdown()
    assert status == "completed" and spans, "the run and its local evidence do not depend on the collector"
    assert elapsed < 5, f"waiting for a failed export took {elapsed:.1f}s (it may wait 10 s for a pending one)"
    assert "\n" not in problem
    assert problem.startswith(f"OTLP export to {endpoint} failed: {len(spans)} spans in 1 batches not exported")
    assert reason in problem, problem
    assert "stored locally (scopeflow trace INSTANCE_ID --format otlp-json)" in problem
    assert problem.endswith("check the collector and OTEL_EXPORTER_OTLP_ENDPOINT")
    return telemetry


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_connection_is_one_line_and_the_run_completes(settings, short_timeout, protocol):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    check_failed_export(settings, endpoint, protocol, "(last: ")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("status", "reason"), [(404, "404"), (413, "413")])
def test_a_collector_refusing_the_batch_is_reported_with_its_status(settings, short_timeout, protocol, status,
                                                                     reason):
    with Collector(status) as collector:
        check_failed_export(settings, collector.url, protocol, reason)
        assert collector.posts == 1           # 404 and 413 are not retried


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("first", "retry_after"), [(503, "0.1"), ("reset", "")], ids=["503-retry-after", "reset"])
def test_a_503_or_a_dropped_connection_is_tried_again_and_then_nothing_is_reported(
        settings, otel_env, protocol, first, retry_after):  # noqa: F811
    otel_env(OTEL_EXPORTER_OTLP_TIMEOUT="2")
    with Collector(first, 200, retry_after=retry_after) as collector:
        telemetry = Telemetry(collector.url, protocol)
        try:
            _, status, _ = run_hello(settings, telemetry)
            problem = telemetry.export_problem(wait_s=2.0)
        finally:
            telemetry.shutdown()
        assert collector.posts == 2
    assert status == "completed" and problem == ""
    assert telemetry.export_watch.batches_sent == 1 and telemetry.export_watch.batches_failed == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_hanging_collector_costs_one_timeout_and_then_later_batches_are_not_sent(settings, short_timeout,
                                                                                   protocol):
    with Collector("hang") as collector:
        telemetry = Telemetry(collector.url, protocol)
        try:
            run_hello(settings, telemetry)
            started = time.monotonic()
            first = telemetry.export_problem(wait_s=2.0)
            second_id, status, second_spans = run_hello(settings, telemetry)
            second = telemetry.export_problem(wait_s=2.0)
            elapsed = time.monotonic() - started
        finally:
            telemetry.shutdown()
        posts = collector.posts
    assert posts == 1, "the second batch must not wait on a collector that just hung"
    assert elapsed < 6
    assert "1 batches not exported" in first and "2 batches not exported" in second
    assert status == "completed"
    marked = [s for s in second_spans if s.attributes.get(semconv.OTLP_EXPORT_FAILURES) == 1]
    assert marked and len(marked) == len(second_spans), "spans after a failure say the collector copy is incomplete"
    assert all(s.attributes[semconv.OTLP_EXPORT_PROBLEM] for s in marked)


def test_a_collector_that_recovers_gets_batches_again_after_the_cooldown(settings, short_timeout):
    with Collector(404, 200) as collector:
        telemetry = Telemetry(collector.url, "http/json")
        telemetry.export_watch.cooldown_s = 0.0
        try:
            run_hello(settings, telemetry)
            telemetry.export_problem(wait_s=2.0)
            run_hello(settings, telemetry)
            problem = telemetry.export_problem(wait_s=2.0)
        finally:
            telemetry.shutdown()
        assert collector.posts == 2
    watch = telemetry.export_watch
    assert (watch.batches_failed, watch.batches_sent) == (1, 1)
    assert "1 batches not exported" in problem     # the earlier loss stays reported


def test_a_healthy_collector_reports_nothing_and_marks_no_span(settings, short_timeout):
    with Collector(200) as collector:
        telemetry = Telemetry(collector.url, "http/protobuf")
        try:
            run_hello(settings, telemetry)
            assert telemetry.export_problem(wait_s=2.0) == ""
            _, _, spans = run_hello(settings, telemetry)
        finally:
            telemetry.shutdown()
    assert not any(semconv.OTLP_EXPORT_FAILURES in s.attributes for s in spans)


@pytest.mark.slow
def test_submit_says_on_stderr_that_the_collector_missed_the_run_and_exits(tmp_path):
    """The CLI end to end (a process: several seconds): a scope the offline agents block at once,
    mirrored to a collector that never answers."""
    scope = tmp_path / "scope.md"
    scope.write_text("I want something to keep track of my plants and when I watered them.\n", encoding="utf-8")
    with Collector("hang") as collector:
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
               "SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(MODELS),
               "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"}
        started = time.monotonic()
        ran = subprocess.run([sys.executable, "-m", "scopeflow", "submit", str(scope), "--yes"], env=env,
                             capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    found = re.search(r"^instance (\S+): blocked \(blocked\)$", ran.stdout, re.MULTILINE)
    assert found, ran.stdout
    instance_id = found.group(1)
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("warning: OTLP export")]
    assert len(warnings) == 1, ran.stderr
    assert warnings[0].startswith(f"warning: OTLP export to {collector.url} failed: ")
    assert "1 batches not exported (last: " in warnings[0]
    assert f"stored locally (scopeflow trace {instance_id} --format otlp-json)" in warnings[0]
    assert elapsed < 20, f"a bad collector held the command for {elapsed:.1f}s"
