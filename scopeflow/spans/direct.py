"""Spans recorded straight into a :class:`SpanRecord`, for the engine's advance and task spans.

A span through the OpenTelemetry SDK costs more than running a trivial task: attribute validation
into ``BoundedAttributes``, processor fan-out, then conversion back to a record. When nothing
mirrors spans to a collector (no OTLP endpoint), the SDK's only consumer is the evidence buffer, so
the engine records its advance span and its per-task spans with :class:`DirectSpan` instead: the
same ``Span`` API (handlers' child spans still go through the SDK and parent to them), the same
stored record, a fraction of the cost. With an OTLP endpoint the engine uses the SDK so the
collector sees every span.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord

_SCALARS = (str, bool, int, float)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_INTERNAL = SpanKind.INTERNAL.name
_STATUS = {StatusCode.UNSET: "UNSET", StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}


def _clean(value: Any) -> Any:
    """What the SDK keeps of an attribute value: scalars and homogeneous sequences of them
    (as lists, like a stored record); anything else is dropped (None)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = list(value)
        kinds = {type(item) for item in items}
        if len(kinds) <= 1 and all(isinstance(item, _SCALARS) for item in items):
            return items
    return None


def _new_id(bits: int) -> int:
    """A non-zero random id (64 bits for a span, 128 for a trace), as the SDK's ``RandomIdGenerator``
    makes them."""
    while True:
        value = random.getrandbits(bits)
        if value:
            return value


def _clean_attributes(attributes: types.Attributes) -> dict[str, Any]:
    """What the SDK keeps of an event's or a link's attributes (see :func:`_clean`)."""
    return {str(k): c for k, v in (attributes or {}).items() if (c := _clean(v)) is not None}


class DirectSpan(trace.Span):
    """An INTERNAL span that becomes a :class:`SpanRecord` when it ends (handed to ``sink``); without
    a ``parent`` it is the root of a new trace (the engine's advance span), which may carry links.
    ``plain`` says the caller built ``attributes`` from str keys and scalar values (the engine's task
    attributes), so they are kept without checking each one."""

    def __init__(self, name: str, parent: SpanContext | None, attributes: Mapping[str, Any],
                 sink: Callable[[SpanRecord], None], start_ns: int | None = None, links: Sequence[Link] = (),
                 plain: bool = False):
        self._name = name
        self._parent = parent
        trace_id = parent.trace_id if parent is not None else _new_id(128)
        self._context = SpanContext(trace_id=trace_id, span_id=_new_id(64), is_remote=False, trace_flags=_SAMPLED)
        self._links = [SpanLink(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}",
                                _clean_attributes(link.attributes)) for link in links]
        self._ended = False
        if plain or all(type(key) is str and type(value) in _SCALARS for key, value in attributes.items()):
            self._attributes: dict[str, Any] = dict(attributes)   # the engine's own: kept as they are
        else:
            self._attributes = {}
            self.set_attributes(attributes)
        self._events: list[SpanEvent] = []
        self._status, self._status_message = "UNSET", ""
        self._start_ns = start_ns if start_ns is not None else time.time_ns()
        self._sink = sink

    def get_span_context(self) -> SpanContext:
        return self._context

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._ended:
            return
        if type(value) in _SCALARS and type(key) is str:   # the usual case, kept as it is
            self._attributes[key] = value
            return
        clean = _clean(value)
        if clean is not None:
            self._attributes[str(key)] = clean

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._ended:
            return
        self._events.append(SpanEvent(name, timestamp if timestamp is not None else time.time_ns(),
                                      _clean_attributes(attributes)))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        raise NotImplementedError("links are given when the span starts")

    def update_name(self, name: str) -> None:
        self._name = name

    def is_recording(self) -> bool:
        return not self._ended

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if self._ended or self._status == "OK":  # the SDK's rule: OK is final
            return
        self._status = _STATUS[code]
        self._status_message = (description or "") if code == StatusCode.ERROR else ""

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        self.add_event("exception", {"exception.type": type(exception).__name__,
                                     "exception.message": str(exception), **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._sink(SpanRecord(
            trace_id=f"{self._context.trace_id:032x}", span_id=f"{self._context.span_id:016x}",
            parent_span_id=f"{self._parent.span_id:016x}" if self._parent is not None else None,
            name=self._name, start_ns=self._start_ns,
            end_ns=end_time if end_time is not None else time.time_ns(), status=self._status,
            status_message=self._status_message, kind=_INTERNAL, attributes=self._attributes,
            events=self._events, links=self._links, instance_id=str(self._attributes.get(semconv.INSTANCE_ID, "")),
        ))
