"""``SpanRecord``: one finished span as Scopeflow stores it (the evidence of record).

Independent of the OpenTelemetry SDK so evidence rules, the integrity chain and OTLP JSON
conversion work on stored rows without a live tracer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpanLink:
    trace_id: str                   # 32 lowercase hex chars
    span_id: str                    # 16 lowercase hex chars
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpanRecord:
    trace_id: str                   # 32 lowercase hex chars
    span_id: str                    # 16 lowercase hex chars
    parent_span_id: str | None
    name: str
    start_ns: int                   # unix epoch nanoseconds
    end_ns: int
    status: str = "UNSET"           # UNSET | OK | ERROR
    status_message: str = ""
    kind: str = "INTERNAL"          # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)
    instance_id: str = ""
    seq: int = 0                    # position in the instance's stored chain (1, 2, …)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns
