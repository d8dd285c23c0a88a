"""SDK ``ReadableSpan`` → ``SpanRecord`` (what the span table stores)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _attributes(attrs: Any) -> dict[str, Any]:
    return {str(k): _plain(v) for k, v in (attrs or {}).items()}


def to_record(span: ReadableSpan) -> SpanRecord:
    ctx = span.context
    status = span.status
    status_name = {StatusCode.UNSET: "UNSET", StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}[status.status_code]
    attributes = _attributes(span.attributes)
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent else None,
        name=span.name,
        start_ns=int(span.start_time or 0),
        end_ns=int(span.end_time or span.start_time or 0),
        status=status_name,
        status_message=status.description or "",
        kind=span.kind.name,
        attributes=attributes,
        events=[SpanEvent(e.name, int(e.timestamp), _attributes(e.attributes)) for e in span.events],
        links=[
            SpanLink(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}", _attributes(link.attributes))
            for link in span.links
        ],
        instance_id=str(attributes.get(semconv.INSTANCE_ID, "")),
    )
