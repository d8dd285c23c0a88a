"""A submitted run arrives complete in a real OTLP backend: Arize Phoenix, over HTTP and gRPC.

Phoenix is installed from PyPI into its own virtual environment under a cache directory (once; it
is large and its dependencies must not mix with ours) and started on loopback for this module.
The run uses the LLM agents against the scripted loopback model server, so GenAI spans are part of
what must arrive. The exporter is configured only through OTEL_* variables.

Phoenix keeps span names, ids, parents, attributes and events, and files spans under the project
named by the resource attribute ``openinference.project.name``; it drops span kind, links and the
other resource attributes, so those (CLIENT kind, ``service.name``) are checked against the
in-process receivers in ``test_otlp_export.py`` and in the stored record.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from scopeflow.engine.service import Engine
from scopeflow.handlers.release import stop_all
from scopeflow.lifecycle import submit
from scopeflow.spans.tracing import Telemetry
from tests.conftest import MODELS, make_settings, require_service
from tests.fake_llm_server import FakeLlmServer, json_reply
from tests.test_llm_agents import PLANT_ANSWER, PROSE_SCOPE, builder_answer
from tests.test_otlp_export import OTEL_VARIABLES

pytestmark = pytest.mark.slow

PHOENIX_VERSION = "20.26.1"
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 180
POLL_S = 0.1          # how often start-up and ingestion are checked (a check is one cheap request)


def phoenix_venv() -> Path:
    """The virtual environment with Phoenix; built on first use (``SCOPEFLOW_PHOENIX_VENV`` to place it).

    Built in place under a lock, and marked complete only after the install succeeded, so an
    interrupted install is redone rather than used.
    """
    default = Path.home() / ".cache" / "scopeflow" / f"phoenix-{PHOENIX_VERSION}"
    venv = Path(os.environ.get("SCOPEFLOW_PHOENIX_VENV") or default)
    marker = venv / ".scopeflow-installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"arize-phoenix=={PHOENIX_VERSION}"],
                           check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            tail = (getattr(exc, "stderr", "") or "").strip().splitlines()[-1:] or [str(exc)]
            require_service("Arize Phoenix", False, f"could not install arize-phoenix=={PHOENIX_VERSION}: {tail[0]}")
        marker.write_text(PHOENIX_VERSION, encoding="utf-8")
    return venv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory):
    """``(http base URL, gRPC port)`` of a Phoenix server started for this module."""
    venv = phoenix_venv()
    work = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))},
           "PHOENIX_WORKING_DIR": str(work), "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(http_port),
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = (work / "phoenix.log").open("wb")
    process = subprocess.Popen([str(venv / "bin" / "phoenix"), "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).close()
            break
        except (urllib.error.URLError, OSError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = (work / "phoenix.log").read_text(errors="replace")[-500:]
                pytest.fail(f"Phoenix did not start (exit {process.poll()}): {tail}")
            time.sleep(POLL_S)
    yield base, grpc_port
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def phoenix_spans(base: str, project: str, expected: int, timeout_s: float = 60) -> list[dict]:
    """Every span Phoenix holds for ``project`` (paged), waiting until ``expected`` have been ingested."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans, cursor = [], ""
        try:
            while True:
                page = get_json(f"{base}/v1/projects/{project}/spans?limit=500" + (f"&cursor={cursor}" if cursor else ""))
                spans += page["data"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        except urllib.error.HTTPError as exc:
            if exc.code != 404:   # 404: the project does not exist until its first span arrives
                raise
        if len(spans) >= expected or time.monotonic() > deadline:
            return spans
        time.sleep(POLL_S)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_submitted_llm_run_arrives_complete_in_phoenix(phoenix, protocol, tmp_path, monkeypatch, llm_env):
    base, grpc_port = phoenix
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    project = f"scopeflow-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scopeflow-ci")
    if protocol == "grpc":   # no scheme: only OTEL_EXPORTER_OTLP_INSECURE makes this plaintext
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"127.0.0.1:{grpc_port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    home = tmp_path / "home"
    monkeypatch.setenv("SCOPEFLOW_HOME", str(home))
    monkeypatch.setenv("SCOPEFLOW_RELEASES", str(home / "releases"))
    settings = make_settings(home, models_dir=MODELS)
    telemetry = Telemetry()
    assert telemetry.exporting
    script = [json_reply(PLANT_ANSWER, usage=(420, 180)), builder_answer(usage=(900, 600)),
              json_reply({"rationale": "Plants and waterings are tracked; the reminder is LLM-written."})]
    try:
        with FakeLlmServer(script) as server:
            llm_env(server)
            engine = Engine(settings, telemetry_=telemetry)
            result = submit(engine, PROSE_SCOPE, yes=True)
        assert telemetry.provider.force_flush(30_000)
    finally:
        telemetry.shutdown()
        stop_all(settings.releases_dir)
    assert (result.status, result.outcome) == ("completed", "delivered"), result
    stored = engine.recorded_spans(result.instance_id)

    received = phoenix_spans(base, project, len(stored))
    by_id = {span["context"]["span_id"]: span for span in received}
    assert set(by_id) == {s.span_id for s in stored}, "Phoenix must hold exactly the run's spans"
    for span in stored:
        arrived = by_id[span.span_id]
        assert arrived["name"] == span.name
        assert arrived["parent_id"] == span.parent_span_id
        assert arrived["attributes"]["session.id"] == result.instance_id
    chats = [span for span in received if span["attributes"].get("gen_ai.operation.name") == "chat"]
    assert [c["attributes"]["scopeflow.llm.role"] for c in sorted(chats, key=lambda c: c["start_time"])] == \
        ["analyst", "builder", "reviewer"]
    for chat in chats:
        assert chat["attributes"]["server.port"] == server.port
        assert chat["attributes"]["gen_ai.output.type"] == "json"
    builder = next(c for c in chats if c["attributes"]["scopeflow.llm.role"] == "builder")
    assert by_id[builder["parent_id"]]["name"] == "scopeflow.build.llm"
    roots = [span for span in received if span["parent_id"] is None]
    assert all(root["name"].startswith(f"advance delivery {result.instance_id[:8]}: ") for root in roots)
    assert len({root["context"]["trace_id"] for root in roots}) == len(roots) > 1   # one trace per advance
    assert phoenix_sessions(base, project) == {result.instance_id: len(roots)}    # ...and one session for them


def phoenix_sessions(base: str, project: str) -> dict[str, int]:
    """Phoenix's sessions of ``project`` (grouped by the ``session.id`` attribute): id → number of traces."""
    query = ("{ projects { edges { node { name sessions(first: 100) { edges { node { sessionId numTraces } } } } } } }")
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        projects = json.load(response)["data"]["projects"]["edges"]
    [node] = [edge["node"] for edge in projects if edge["node"]["name"] == project]
    return {edge["node"]["sessionId"]: edge["node"]["numTraces"] for edge in node["sessions"]["edges"]}
