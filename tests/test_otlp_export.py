"""Spans mirrored over OTLP arrive in real receivers (HTTP protobuf, HTTP JSON, gRPC), configured
only by the standard OTEL_* variables, decoded with opentelemetry-proto."""

from __future__ import annotations

import gzip
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.spans.otlp_export import OtlpConfigError, exporter_from_env
from scopeflow.spans.otlp_json import from_otlp_json
from scopeflow.spans.tracing import SESSION_ID, Telemetry

OTEL_VARIABLES = (
    "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
)


@pytest.fixture
def otel_env(monkeypatch):
    """A clean OTEL_* environment; ``otel_env(NAME=value, ...)`` sets variables for this test."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def configure(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return configure


class Received:
    """What a receiver got: per request, the path, headers and the decoded ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], trace_service_pb2.ExportTraceServiceRequest]] = []

    def spans(self, instance_id: str) -> list:
        return [span for _, _, message in self.requests for rs in message.resource_spans
                for ss in rs.scope_spans for span in ss.spans
                if _attrs(span).get("scopeflow.instance.id") == instance_id]

    def resources(self) -> list[dict]:
        return [_attrs(rs.resource) for _, _, message in self.requests for rs in message.resource_spans]


def _attrs(item) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in item.attributes}


@pytest.fixture
def http_receiver():
    """A real OTLP/HTTP receiver on loopback that decodes protobuf and JSON bodies as the spec says."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            message = trace_service_pb2.ExportTraceServiceRequest()
            if self.headers.get("Content-Type") == "application/json":
                received.json_bodies.append(json.loads(body))   # read with from_otlp_json by the test
            else:
                message.ParseFromString(body)
            received.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, message))
            self.send_response(200)
            self.send_header("Content-Type", self.headers.get("Content-Type"))
            self.end_headers()
            self.wfile.write(b"{}" if self.headers.get("Content-Type") == "application/json"
                             else trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, *args):
            pass

    received.json_bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


@pytest.fixture
def grpc_receiver():
    received = Received()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - gRPC's naming
            metadata = dict(context.invocation_metadata())
            received.requests.append(("Export", metadata, request))
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, received
    server.stop(grace=None)


def run_hello(settings, telemetry: Telemetry) -> tuple[str, list]:
    """A small real run; the spans it stored, after the OTLP mirror has flushed."""
    try:
        engine = Engine(settings, telemetry_=telemetry)
        instance_id = engine.start("hello", {})
        assert telemetry.provider.force_flush(10_000)
    finally:
        telemetry.shutdown()
    with engine.sessions() as session:
        return instance_id, load_spans(session, instance_id)


def test_http_protobuf_export_follows_the_otel_variables(settings, http_receiver, otel_env):
    endpoint, received = http_receiver
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SERVICE_NAME="delivery-bot",
             OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=platform",
             OTEL_EXPORTER_OTLP_HEADERS="x-api-key=abc123")
    instance_id, stored = run_hello(settings, Telemetry())

    assert {path for path, _, _ in received.requests} == {"/v1/traces"}
    assert {h["content-type"] for _, h, _ in received.requests} == {"application/x-protobuf"}
    assert {h["x-api-key"] for _, h, _ in received.requests} == {"abc123"}
    [resource] = {json.dumps(r, sort_keys=True) for r in received.resources()}
    resource = json.loads(resource)
    assert resource["service.name"] == "delivery-bot"
    assert (resource["deployment.environment"], resource["team"]) == ("ci", "platform")
    assert resource["service.version"]
    spans = received.spans(instance_id)
    assert sorted((s.span_id.hex(), s.name) for s in spans) == sorted((s.span_id, s.name) for s in stored)
    assert {_attrs(s)[SESSION_ID] for s in spans} == {instance_id}


def test_without_otel_service_name_the_service_is_scopeflow(settings, http_receiver, otel_env):
    endpoint, received = http_receiver
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    run_hello(settings, Telemetry())
    assert {r["service.name"] for r in received.resources()} == {"scopeflow"}


def test_the_traces_endpoint_is_used_as_given_and_wins_over_the_general_one(settings, http_receiver, otel_env):
    endpoint, received = http_receiver
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint + "/otlp/spans")
    instance_id, stored = run_hello(settings, Telemetry())
    assert {path for path, _, _ in received.requests} == {"/otlp/spans"}
    assert len(received.spans(instance_id)) == len(stored)


def test_http_json_export_sends_otlp_json_with_hex_ids(settings, http_receiver, otel_env):
    endpoint, received = http_receiver
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
             OTEL_EXPORTER_OTLP_COMPRESSION="gzip", OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20t0ken")
    instance_id, stored = run_hello(settings, Telemetry())

    assert {h["content-type"] for _, h, _ in received.requests} == {"application/json"}
    assert {h["content-encoding"] for _, h, _ in received.requests} == {"gzip"}
    assert {h["authorization"] for _, h, _ in received.requests} == {"Bearer t0ken"}
    records = [r for body in received.json_bodies for r in from_otlp_json(body) if r.instance_id == instance_id]
    assert sorted((r.span_id, r.name, r.parent_span_id) for r in records) == \
        sorted((s.span_id, s.name, s.parent_span_id) for s in stored)


def test_grpc_to_an_endpoint_without_a_scheme_honours_insecure(settings, grpc_receiver, otel_env):
    port, received = grpc_receiver
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=f"127.0.0.1:{port}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
             OTEL_EXPORTER_OTLP_INSECURE="true", OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme")
    instance_id, stored = run_hello(settings, Telemetry())
    spans = received.spans(instance_id)
    assert sorted((s.span_id.hex(), s.name) for s in spans) == sorted((s.span_id, s.name) for s in stored)
    assert {meta["x-tenant"] for _, meta, _ in received.requests} == {"acme"}


def test_an_explicit_grpc_endpoint_reaches_the_receiver(settings, grpc_receiver, otel_env):
    port, received = grpc_receiver
    instance_id, stored = run_hello(settings, Telemetry(otlp_endpoint=f"http://127.0.0.1:{port}", otlp_protocol="grpc"))
    assert len(received.spans(instance_id)) == len(stored) > 0


def test_no_endpoint_or_exporter_none_means_no_export(otel_env):
    assert exporter_from_env() is None
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_TRACES_EXPORTER="none")
    assert exporter_from_env() is None
    assert Telemetry().exporting is False


def test_an_unknown_protocol_is_a_one_line_error(otel_env):
    otel_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_EXPORTER_OTLP_PROTOCOL="http/xml")
    with pytest.raises(OtlpConfigError, match="must be one of http/protobuf, grpc, http/json, got 'http/xml'"):
        Telemetry()


def test_every_stored_span_of_an_instance_carries_its_session_id(settings, otel_env):
    instance_id, stored = run_hello(settings, Telemetry())
    assert stored and all(s.attributes[SESSION_ID] == instance_id for s in stored)


def test_advance_roots_name_the_instance_why_and_which_steps(settings, otel_env):
    instance_id, stored = run_hello(settings, Telemetry())
    [root] = [s for s in stored if s.parent_span_id is None]
    assert root.name.startswith(f"advance hello {instance_id[:8]}: start (")
