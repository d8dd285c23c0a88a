"""Spans mirrored over OTLP (HTTP and gRPC) arrive in a real receiver, decoded with opentelemetry-proto."""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from scopeflow.engine.service import Engine
from scopeflow.engine.spanstore import load_spans
from scopeflow.spans.tracing import Telemetry


def _received_instance_spans(requests: list, instance_id: str) -> list[tuple[str, str]]:
    found = []
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
                    if attrs.get("scopeflow.instance.id") == instance_id:
                        found.append((span.span_id.hex(), span.name))
    return found


@pytest.fixture
def http_receiver():
    requests: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            message = trace_service_pb2.ExportTraceServiceRequest()
            message.ParseFromString(body)
            requests.append((self.path, self.headers.get("Content-Type"), message))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


@pytest.fixture
def grpc_receiver():
    requests: list = []

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 - gRPC's naming
            requests.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", requests
    server.stop(grace=None)


def _run_and_flush(settings, telemetry: Telemetry) -> tuple[str, list]:
    engine = Engine(settings, telemetry_=telemetry)
    instance_id = engine.start("hello", {})
    assert telemetry.provider.force_flush(10_000)
    with engine.sessions() as session:
        return instance_id, load_spans(session, instance_id)


def test_spans_reach_an_otlp_http_receiver(settings, http_receiver):
    endpoint, requests = http_receiver
    telemetry = Telemetry(otlp_endpoint=endpoint)
    try:
        instance_id, stored = _run_and_flush(settings, telemetry)
    finally:
        telemetry.shutdown()
    assert {path for path, _, _ in requests} == {"/v1/traces"}
    assert {ctype for _, ctype, _ in requests} == {"application/x-protobuf"}
    received = _received_instance_spans([m for _, _, m in requests], instance_id)
    assert sorted(received) == sorted((s.span_id, s.name) for s in stored)


def test_spans_reach_an_otlp_grpc_receiver(settings, grpc_receiver):
    endpoint, requests = grpc_receiver
    telemetry = Telemetry(otlp_endpoint=endpoint, otlp_protocol="grpc")
    try:
        instance_id, stored = _run_and_flush(settings, telemetry)
    finally:
        telemetry.shutdown()
    received = _received_instance_spans(requests, instance_id)
    assert sorted(received) == sorted((s.span_id, s.name) for s in stored)
