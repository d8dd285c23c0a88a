"""The tracer provider: every span goes to the evidence buffer, and to OTLP when configured.

The evidence store is not an exporter: ``EvidenceBuffer`` keeps finished spans in memory, keyed by
instance, until the engine's checkpoint writes them in the same transaction as the workflow state.
State and evidence therefore commit together, and a crash loses both or neither.
Sampling is ``ALWAYS_ON`` on purpose: a ratio sampler would silently delete evidence.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from scopeflow import __version__
from scopeflow.spans import semconv

log = logging.getLogger(__name__)


class EvidenceBuffer(SpanProcessor):
    """Holds finished spans per instance until a checkpoint takes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[str, list[ReadableSpan]] = defaultdict(list)

    def on_end(self, span: ReadableSpan) -> None:
        instance_id = (span.attributes or {}).get(semconv.INSTANCE_ID)
        if not instance_id:
            return
        with self._lock:
            self._spans[str(instance_id)].append(span)

    def take(self, instance_id: str) -> list[ReadableSpan]:
        with self._lock:
            return self._spans.pop(instance_id, [])

    def peek(self, instance_id: str) -> list[ReadableSpan]:
        """The instance's buffered spans, left in place for the checkpoint."""
        with self._lock:
            return list(self._spans.get(instance_id, []))

    def discard(self, instance_id: str) -> None:
        self.take(instance_id)

    def shutdown(self) -> None:
        with self._lock:
            self._spans.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Telemetry:
    """One provider per process, with the evidence buffer and the optional OTLP mirror."""

    def __init__(self, otlp_endpoint: str = "", otlp_protocol: str = "") -> None:
        self.buffer = EvidenceBuffer()
        resource = Resource.create({"service.name": "scopeflow", "service.version": __version__})
        self.provider = TracerProvider(resource=resource, sampler=ALWAYS_ON)
        self.provider.add_span_processor(self.buffer)
        self.otlp_endpoint = otlp_endpoint
        if otlp_endpoint:
            self.provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(otlp_endpoint, otlp_protocol)))
        self.tracer = self.provider.get_tracer("scopeflow", __version__)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _otlp_exporter(endpoint: str, protocol: str):
    """HTTP/protobuf by default (the OTel default), gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    return HttpExporter(endpoint=url)


_telemetry: Telemetry | None = None
_telemetry_lock = threading.Lock()


def telemetry(otlp_endpoint: str = "", otlp_protocol: str = "") -> Telemetry:
    """The process's telemetry; created on first use (the endpoint of the first call wins)."""
    global _telemetry
    with _telemetry_lock:
        if _telemetry is None:
            _telemetry = Telemetry(otlp_endpoint, otlp_protocol)
        return _telemetry


def reset_telemetry() -> None:
    """Shut the provider down (flushing OTLP) so the next call builds a new one."""
    global _telemetry
    with _telemetry_lock:
        if _telemetry is not None:
            _telemetry.shutdown()
        _telemetry = None


def span_context_from_ids(trace_id: str, span_id: str) -> trace.SpanContext:
    return trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
