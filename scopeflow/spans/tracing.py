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
import time
from collections import defaultdict
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from scopeflow import __version__
from scopeflow.spans import semconv
from scopeflow.spans.convert import to_record
from scopeflow.spans.otlp_export import endpoint_from_env, exporter_from_env, exporter_to
from scopeflow.spans.record import SpanRecord

log = logging.getLogger(__name__)

SESSION_ID = "session.id"     # OpenTelemetry's session attribute; Scopeflow sets it to the instance id
DEFAULT_SERVICE_NAME = "scopeflow"
EXPORT_COOLDOWN_S = 30.0        # after a failed batch, later batches within this time are not sent
FLUSH_WAIT_S = 5.0              # how long `export_problem` waits for the queued spans to go out


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


class _LastExportMessage(logging.Handler):
    """Keeps the last warning the OTLP exporters logged: the SDK's exporters return only FAILURE,
    and say why (status, timeout, refused connection) in their log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.message = " ".join(record.getMessage().split())[:200]
        except Exception:  # a malformed log call must not break the export thread
            self.message = str(record.msg)[:200]


_EXPORT_LOG = _LastExportMessage()
for _name in ("opentelemetry.exporter.otlp", "scopeflow.spans.otlp_export"):
    logging.getLogger(_name).addHandler(_EXPORT_LOG)


class ExportWatch(SpanExporter):
    """The OTLP exporter, watched: counts batches that did not reach the collector, keeps the last
    reason, and after a failure drops batches for ``cooldown_s`` instead of sending them.

    Why drop: each failed send costs up to the exporter's timeout (with retries inside it), and the
    provider's shutdown at process exit waits for the queue; a dead or hanging collector must not
    add one timeout per batch to every run. Nothing is lost that the evidence needs: the spans are
    stored with the instance whatever the collector does, and ``scopeflow trace ID --format
    otlp-json`` writes them out again.
    """

    def __init__(self, inner: SpanExporter, endpoint: str, cooldown_s: float = EXPORT_COOLDOWN_S) -> None:
        self.inner = inner
        self.endpoint = endpoint
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self.batches_sent = 0
        self.batches_failed = 0
        self.spans_not_exported = 0
        self.last_problem = ""
        self._failed_at: float | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._cooling_down():
            self._count_failure(len(spans), "")
            return SpanExportResult.FAILURE
        _EXPORT_LOG.message = ""
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter that raises instead of returning FAILURE
            result, _EXPORT_LOG.message = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        if result is SpanExportResult.SUCCESS:
            with self._lock:
                self.batches_sent += 1
        else:
            self._count_failure(len(spans), _EXPORT_LOG.message or "the exporter reported a failure")
        return result

    def _cooling_down(self) -> bool:
        with self._lock:
            return self._failed_at is not None and time.monotonic() - self._failed_at < self.cooldown_s

    def _count_failure(self, spans: int, reason: str) -> None:
        with self._lock:
            self.batches_failed += 1
            self.spans_not_exported += spans
            if reason:
                self.last_problem = reason
                self._failed_at = time.monotonic()
        if reason:
            log.warning("OTLP export to %s failed (%s); not sending for %.0fs, spans stay stored locally",
                        self.endpoint, reason, self.cooldown_s)

    def problem(self) -> str:
        """One line saying what did not reach the collector and what to do, or "" when all did."""
        with self._lock:
            if not self.batches_failed:
                return ""
            return (f"OTLP export to {self.endpoint} failed: {self.spans_not_exported} spans in "
                    f"{self.batches_failed} batches not exported (last: {self.last_problem or 'not sent'}); "
                    "the run's spans are stored locally (scopeflow trace INSTANCE_ID --format otlp-json); "
                    "check the collector and OTEL_EXPORTER_OTLP_ENDPOINT")

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class ExportStatusProcessor(SpanProcessor):
    """Marks every span started after an export failure with the failures so far, so the stored
    evidence of a run says that its collector copy is incomplete."""

    def __init__(self, watch: ExportWatch) -> None:
        self.watch = watch

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.watch.batches_failed:
            span.set_attribute(semconv.OTLP_EXPORT_FAILURES, self.watch.batches_failed)
            span.set_attribute(semconv.OTLP_EXPORT_PROBLEM, self.watch.last_problem or "not sent")


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
        exporter = exporter_to(otlp_endpoint, otlp_protocol) if otlp_endpoint else exporter_from_env()
        self.exporter = exporter
        self.export_watch: ExportWatch | None = None
        self._batches: BatchSpanProcessor | None = None
        if exporter is not None:
            self.export_watch = ExportWatch(exporter, otlp_endpoint or endpoint_from_env())
            self.provider.add_span_processor(ExportStatusProcessor(self.export_watch))
        self.provider.add_span_processor(self.buffer)
        if self.export_watch is not None:
            self._batches = BatchSpanProcessor(self.export_watch)
            self.provider.add_span_processor(self._batches)
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

    def export_problem(self, wait_s: float = FLUSH_WAIT_S) -> str:
        """Send what is queued (waiting at most ``wait_s``), then one line on what did not reach the
        collector and what to do; "" when nothing is exported or everything was."""
        if self._batches is None or self.export_watch is None:
            return ""
        flusher = threading.Thread(target=self._batches.force_flush, name="scopeflow-otlp-flush", daemon=True)
        flusher.start()
        flusher.join(wait_s)
        problem = self.export_watch.problem()
        if flusher.is_alive():
            pending = (f"OTLP export to {self.export_watch.endpoint} did not finish within {wait_s:g}s; the run's "
                       "spans are stored locally (scopeflow trace INSTANCE_ID --format otlp-json); check the "
                       "collector and OTEL_EXPORTER_OTLP_ENDPOINT")
            return problem or pending
        return problem

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
