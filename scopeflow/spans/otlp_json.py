"""Stored spans ⇄ OTLP: the JSON encoding (downloads, imports) and protobuf (``/v1/traces`` bodies).

Everything is built through the ``opentelemetry-proto`` message classes, so the shape is the OTLP
one by construction, and ``google.protobuf.json_format`` writes the JSON (camelCase keys, 64-bit
integers as strings, enums as numbers). One difference from plain protobuf JSON is handled here:
OTLP/JSON writes trace and span ids as hex, where ``json_format`` would write base64.

On import, ``instance_id`` comes from each span's ``scopeflow.instance.id`` attribute and ``seq``
counts 1, 2, … per instance in document order (0 for spans without an instance). Resource and scope
attributes are not part of a :class:`SpanRecord`, so import drops them. OTLP's span kind
``UNSPECIFIED`` becomes ``INTERNAL``, the kind the OTLP spec says to assume.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from scopeflow.spans import semconv
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord

SCOPE_NAME = "scopeflow"
KIND_CODES = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()} | {0: "INTERNAL"}
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}
INT64 = (-(2**63), 2**63 - 1)
IMPORTED_PREFIX = "imported-"    # the id a foreign trace (spans without scopeflow.instance.id) is stored under


class OtlpError(ValueError):
    """Data that is not OTLP, or a span that cannot be expressed in it; one line."""


# --------------------------------------------------------------------------- SpanRecord → OTLP


def to_request(spans: list[SpanRecord], resource_attributes: dict[str, Any]) -> ExportTraceServiceRequest:
    """One resource, one ``scopeflow`` scope, the spans in the order given."""
    scope_spans = ScopeSpans(scope=InstrumentationScope(name=SCOPE_NAME), spans=[_span(s) for s in spans])
    resource = Resource(attributes=_key_values(resource_attributes, "resource"))
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope_spans])])


def to_otlp_json(spans: list[SpanRecord], resource_attributes: dict[str, Any]) -> dict[str, Any]:
    """The canonical OTLP/JSON object (``{"resourceSpans": [...]}``), ids in hex."""
    return request_to_json(to_request(spans, resource_attributes))


def request_to_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """Any export request (ours, or the SDK's encoding of live spans) as OTLP/JSON, ids in hex."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    _recode_ids(data, _base64_to_hex)
    return data


def to_protobuf(spans: list[SpanRecord], resource_attributes: dict[str, Any]) -> bytes:
    """A serialized ``ExportTraceServiceRequest``, as an OTLP/HTTP exporter POSTs it."""
    return to_request(spans, resource_attributes).SerializeToString()


def _span(record: SpanRecord) -> Span:
    where = f"span {record.span_id}"
    carried = record.attributes.get(semconv.INSTANCE_ID)
    # A foreign trace is stored under an id of its own that its spans do not carry (import gives it back).
    foreign = carried is None and record.instance_id.startswith(IMPORTED_PREFIX)
    if record.instance_id and carried != record.instance_id and not foreign:
        raise OtlpError(f"{where}: instance_id {record.instance_id!r} is not in attribute "
                        f"{semconv.INSTANCE_ID} (found {carried!r}); it would be lost in OTLP")
    if record.kind not in KIND_CODES:
        raise OtlpError(f"{where}: unknown span kind {record.kind!r}")
    if record.status not in STATUS_CODES:
        raise OtlpError(f"{where}: unknown status {record.status!r}")
    for label, ns in (("start_ns", record.start_ns), ("end_ns", record.end_ns)):
        if not isinstance(ns, int) or not 0 <= ns < 2**64:
            raise OtlpError(f"{where}: {label} {ns!r} is not a unix time in nanoseconds")
    return Span(
        trace_id=_id_bytes(record.trace_id, 16, where, "trace_id"),
        span_id=_id_bytes(record.span_id, 8, where, "span_id"),
        parent_span_id=_id_bytes(record.parent_span_id, 8, where, "parent_span_id") if record.parent_span_id else b"",
        name=record.name,
        kind=KIND_CODES[record.kind],
        start_time_unix_nano=record.start_ns,
        end_time_unix_nano=record.end_ns,
        attributes=_key_values(record.attributes, where),
        events=[Span.Event(time_unix_nano=e.time_ns, name=e.name, attributes=_key_values(e.attributes, where))
                for e in record.events],
        links=[Span.Link(trace_id=_id_bytes(link.trace_id, 16, where, "link trace_id"),
                         span_id=_id_bytes(link.span_id, 8, where, "link span_id"),
                         attributes=_key_values(link.attributes, where)) for link in record.links],
        status=Status(code=STATUS_CODES[record.status], message=record.status_message),
    )


def _id_bytes(hex_id: str, size: int, where: str, field: str) -> bytes:
    try:
        raw = bytes.fromhex(hex_id)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != size:
        raise OtlpError(f"{where}: {field} {hex_id!r} is not {size * 2} hex characters")
    return raw


def _key_values(attributes: dict[str, Any], where: str) -> list[KeyValue]:
    bad = [key for key in attributes if not isinstance(key, str)]
    if bad:
        raise OtlpError(f"{where}: attribute key {bad[0]!r} is not a string")
    return [KeyValue(key=key, value=_any_value(value, f"{where} attribute {key!r}")) for key, value in attributes.items()]


def _any_value(value: Any, where: str) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise OtlpError(f"{where}: integer {value} does not fit in 64 bits")
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[_any_value(v, where) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=_key_values(value, where)))
    raise OtlpError(f"{where}: values of type {type(value).__name__} have no OTLP form")


# --------------------------------------------------------------------------- OTLP → SpanRecord


def from_otlp_json(data: Any) -> list[SpanRecord]:
    """Spans from an OTLP/JSON object; anything else raises :class:`OtlpError`.

    Fields with unknown names are ignored, as the OTLP spec requires of JSON receivers.
    """
    try:
        return records_from_request(_request_from_json(data))
    except RecursionError:
        raise OtlpError(TOO_DEEP) from None


TOO_DEEP = "nested too deeply to be read (values inside values past Python's recursion limit); not trace data"


def from_otlp_json_text(text: str) -> list[SpanRecord]:
    """Spans from a file's text: one OTLP/JSON object, or JSON Lines (one object per line, what the
    OpenTelemetry Collector's file exporter writes), read as one request in line order. JSON nested
    past the recursion limit is an :class:`OtlpError` like any other unreadable input."""
    try:
        return _from_text(text)
    except RecursionError:
        raise OtlpError(TOO_DEEP) from None


def _from_text(text: str) -> list[SpanRecord]:
    try:
        return from_otlp_json(json.loads(text))
    except json.JSONDecodeError as whole:
        if whole.msg != "Extra data":   # JSON Lines: the first object parses, then more follows
            raise OtlpError(f"not JSON: {whole.msg} at line {whole.lineno} column {whole.colno}") from None
        lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    merged = ExportTraceServiceRequest()
    for number, line in lines:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OtlpError(f"line {number} is not JSON: {exc.msg} at column {exc.colno}") from None
        try:
            merged.resource_spans.extend(_request_from_json(data).resource_spans)
        except OtlpError as exc:
            raise OtlpError(f"line {number}: {exc}") from None
    return records_from_request(merged)


def _request_from_json(data: Any) -> ExportTraceServiceRequest:
    if not isinstance(data, dict) or not isinstance(data.get("resourceSpans", data.get("resource_spans")), list):
        raise OtlpError("not OTLP/JSON trace data: expected an object with a 'resourceSpans' list")
    data = copy.deepcopy(data)
    _recode_ids(data, _hex_to_base64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpError(f"not OTLP/JSON trace data: {str(exc).splitlines()[0]}") from None
    return request


def from_protobuf(body: bytes) -> list[SpanRecord]:
    """Spans from a serialized ``ExportTraceServiceRequest`` (an OTLP/HTTP protobuf body)."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(f"not an OTLP ExportTraceServiceRequest: {exc}") from None
    return records_from_request(request)


def records_from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """Every span of every resource and scope, in document order."""
    seqs: Counter[str] = Counter()
    records = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                record = _record(span)
                if record.instance_id:
                    seqs[record.instance_id] += 1
                    record.seq = seqs[record.instance_id]
                records.append(record)
    return records


def _record(span: Span) -> SpanRecord:
    span_id = _hex(span.span_id, 8, "span", "spanId")
    where = f"span {span_id}"
    if span.kind not in KIND_NAMES:
        raise OtlpError(f"{where}: unknown span kind {span.kind}")
    if span.status.code not in STATUS_NAMES:
        raise OtlpError(f"{where}: unknown status code {span.status.code}")
    attributes = _attributes(span.attributes)
    instance_id = attributes.get(semconv.INSTANCE_ID, "")
    if not isinstance(instance_id, str):
        raise OtlpError(f"{where}: attribute {semconv.INSTANCE_ID} is not a string")
    return SpanRecord(
        trace_id=_hex(span.trace_id, 16, where, "traceId"),
        span_id=span_id,
        parent_span_id=_hex(span.parent_span_id, 8, where, "parentSpanId") if span.parent_span_id else None,
        name=span.name,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status=STATUS_NAMES[span.status.code],
        status_message=span.status.message,
        kind=KIND_NAMES[span.kind],
        attributes=attributes,
        events=[SpanEvent(e.name, e.time_unix_nano, _attributes(e.attributes)) for e in span.events],
        links=[SpanLink(_hex(link.trace_id, 16, where, "link traceId"), _hex(link.span_id, 8, where, "link spanId"),
                        _attributes(link.attributes)) for link in span.links],
        instance_id=instance_id,
    )


def _hex(raw: bytes, size: int, where: str, field: str) -> str:
    if len(raw) != size:
        raise OtlpError(f"{where}: {field} has {len(raw)} bytes, expected {size}")
    return raw.hex()


def _attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: _python_value(kv.value) for kv in key_values}


def _python_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_python_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        raise OtlpError("bytes attribute values are not supported in stored spans")
    return getattr(value, which)


# --------------------------------------------------------------------------- hex ⇄ base64 ids


def _recode_ids(data: dict[str, Any], recode: Any) -> None:
    """Rewrite every span and link id in an OTLP/JSON dict in place with ``recode(text, where)``."""
    for resource_spans in _list(data, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for index, span in enumerate(_list(scope_spans, "spans")):
                where = f"span #{index + 1}"
                _recode_fields(span, ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"),
                               recode, where)
                for link in _list(span, "links"):
                    _recode_fields(link, ("traceId", "trace_id", "spanId", "span_id"), recode, f"{where} link")


def _list(container: Any, *keys: str) -> list[Any]:
    if not isinstance(container, dict):
        raise OtlpError(f"not OTLP/JSON trace data: expected an object, found {type(container).__name__}")
    for key in keys:
        if key in container:
            value = container[key]
            if not isinstance(value, list):
                raise OtlpError(f"not OTLP/JSON trace data: {key!r} must be a list")
            return value
    return []


def _recode_fields(obj: Any, keys: tuple[str, ...], recode: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise OtlpError(f"not OTLP/JSON trace data: {where} is not an object")
    for key in keys:
        if key in obj:
            obj[key] = recode(obj[key], f"{where} {key}")


def _base64_to_hex(text: str, where: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_base64(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise OtlpError(f"{where} must be a hex string")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise OtlpError(f"{where} {text!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")
