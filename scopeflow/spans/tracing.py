"""The tracer provider: every span goes to the evidence buffer, and to OTLP when configured.

The evidence store is not an exporter: ``EvidenceBuffer`` keeps finished spans in memory, keyed by
instance, until the engine's checkpoint writes them in the same transaction as the workflow state.
State and evidence therefore commit together, and a crash loses both or neither.
Sampling is ``ALWAYS_ON`` on purpose: a ratio sampler would silently delete evidence.

The OTLP mirror is configured by the standard ``OTEL_*`` variables, read by the SDK itself (see
:mod:`scopeflow.spans.otlp_export`); the resource honours ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` and falls back to ``service.name=scopeflow``. Every span of an
instance also carries ``session.id`` = the instance id, so a backend that keeps no span links
(each advance is its own trace) still groups one run's traces together.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from scopeflow import __version__
from scopeflow.spans import semconv
from scopeflow.spans.convert import to_record
from scopeflow.spans.otlp_export import exporter_from_env, exporter_to
from scopeflow.spans.record import SpanRecord

log = logging.getLogger(__name__)

SESSION_ID = "session.id"     # OpenTelemetry's session attribute; Scopeflow sets it to the instance id
DEFAULT_SERVICE_NAME = "scopeflow"


class EvidenceBuffer(SpanProcessor):
    """Holds finished spans per instance until a checkpoint takes them: SDK spans (``on_end``) and
    records of spans made without the SDK (``add_record``, see ``spans/direct.py``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[str, list[ReadableSpan]] = defaultdict(list)

    def on_end(self, span: ReadableSpan) -> None:
        instance_id = (span.attributes or {}).get(semconv.INSTANCE_ID)
        if not instance_id:
            return
        with self._lock:
            self._spans[str(instance_id)].append(span)

    def add_record(self, record: SpanRecord) -> None:
        with self._lock:
            self._spans[record.instance_id].append(record)

    def take(self, instance_id: str) -> list[ReadableSpan | SpanRecord]:
        with self._lock:
            return self._spans.pop(instance_id, [])

    def peek(self, instance_id: str) -> list[ReadableSpan | SpanRecord]:
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


class SessionIdProcessor(SpanProcessor):
    """Sets ``session.id`` to the span's ``scopeflow.instance.id`` when the span starts.

    At start, so the attribute is on the span for every later processor and exporter alike.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        instance_id = (span.attributes or {}).get(semconv.INSTANCE_ID)
        if instance_id and SESSION_ID not in (span.attributes or {}):
            span.set_attribute(SESSION_ID, str(instance_id))


def service_resource() -> Resource:
    """The SDK's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, detectors), with
    ``service.name=scopeflow`` and ``service.version`` wherever the environment names neither."""
    detected = Resource.create()
    from_env = OTELResourceDetector().detect().attributes
    ours = {key: value for key, value in {"service.name": DEFAULT_SERVICE_NAME, "service.version": __version__}.items()
            if key not in from_env}
    return detected.merge(Resource(ours))


def records_of(spans: list[ReadableSpan | SpanRecord]) -> list[SpanRecord]:
    """Buffered spans as records, ordered by start then end time (the order they are chained in)."""
    records = [span if isinstance(span, SpanRecord) else to_record(span) for span in spans]
    return sorted(records, key=lambda r: (r.start_ns, r.end_ns))


class Telemetry:
    """One provider per process, with the evidence buffer and the optional OTLP mirror.

    Without arguments the mirror follows the ``OTEL_*`` environment; ``otlp_endpoint`` (a base
    URL, like ``OTEL_EXPORTER_OTLP_ENDPOINT``) and ``otlp_protocol`` override it (tests do).
    """

    def __init__(self, otlp_endpoint: str = "", otlp_protocol: str = "") -> None:
        self.buffer = EvidenceBuffer()
        self.resource = service_resource()
        self.provider = TracerProvider(resource=self.resource, sampler=ALWAYS_ON)
        self.provider.add_span_processor(SessionIdProcessor())
        self.provider.add_span_processor(self.buffer)
        exporter = exporter_to(otlp_endpoint, otlp_protocol) if otlp_endpoint else exporter_from_env()
        self.exporter = exporter
        if exporter is not None:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("scopeflow", __version__)

    @property
    def exporting(self) -> bool:
        return self.exporter is not None

    @property
    def direct_task_spans(self) -> bool:
        """Whether task spans may skip the SDK: nothing but the evidence buffer (and the session id,
        see :meth:`record_direct`) consumes them."""
        return not self.exporting

    def record_direct(self, record: SpanRecord) -> None:
        """Buffer a span recorded without the SDK (``spans/direct.py``), with what this provider's
        processors would have added to it (``session.id``)."""
        instance_id = record.attributes.get(semconv.INSTANCE_ID)
        if instance_id and SESSION_ID not in record.attributes:
            record.attributes[SESSION_ID] = str(instance_id)
        self.buffer.add_record(record)

    def shutdown(self) -> None:
        self.provider.shutdown()


_telemetry: Telemetry | None = None
_telemetry_lock = threading.Lock()


def telemetry(otlp_endpoint: str = "", otlp_protocol: str = "") -> Telemetry:
    """The process's telemetry; created on first use (the settings of the first call win)."""
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
