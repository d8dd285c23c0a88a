"""Stored spans ⇄ OTLP/JSON and OTLP protobuf: canonical shape, exact round trips, clear refusals."""

from __future__ import annotations

import copy
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from scopeflow.spans.otlp_json import OtlpError, from_otlp_json, from_protobuf, to_otlp_json, to_protobuf
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord

INSTANCE = "inst-ü-1"
TRACE = "0af7651916cd43dd8448eb211c80319c"
RESOURCE = {"service.name": "scopeflow", "service.version": "0.1.0"}


def spans() -> list[SpanRecord]:
    root = SpanRecord(
        TRACE, "b7ad6b7169203331", None, "advance", 1_700_000_000_000_000_000, 1_700_000_000_900_000_000,
        status="OK", kind="INTERNAL",
        attributes={"scopeflow.instance.id": INSTANCE, "scopeflow.advance.steps": 3},
        links=[SpanLink("ff" * 16, "ee" * 8, {"scopeflow.link.reason": "resume"})],
        instance_id=INSTANCE, seq=1,
    )
    child = SpanRecord(
        TRACE, "00f067aa0ba902b7", root.span_id, "chat gpt-4o-mini ✓", 1_700_000_000_100_000_000,
        1_700_000_000_200_000_000, status="ERROR", status_message="rate limited — retry", kind="CLIENT",
        attributes={
            "scopeflow.instance.id": INSTANCE, "gen_ai.usage.input_tokens": 2**40, "ratio": 0.1,
            "ok": False, "finish": ["stop", "length"], "nested": {"a": [1, 2.5, "x", True], "b": {"c": None}},
            "empty": [],
        },
        events=[SpanEvent("exception", 1_700_000_000_150_000_000, {"exception.message": "429 Too Many Requests"})],
        instance_id=INSTANCE, seq=2,
    )
    return [root, child]


def test_json_has_the_canonical_otlp_shape():
    data = to_otlp_json(spans(), RESOURCE)
    resource_spans = data["resourceSpans"][0]
    assert resource_spans["resource"]["attributes"][0] == {"key": "service.name", "value": {"stringValue": "scopeflow"}}
    scope = resource_spans["scopeSpans"][0]
    assert scope["scope"] == {"name": "scopeflow"}
    root, child = scope["spans"]
    assert root["traceId"] == TRACE and root["spanId"] == "b7ad6b7169203331" and "parentSpanId" not in root
    assert child["parentSpanId"] == "b7ad6b7169203331"
    assert root["startTimeUnixNano"] == "1700000000000000000"
    assert (root["kind"], child["kind"]) == (1, 3)
    assert child["status"] == {"code": 2, "message": "rate limited — retry"}
    assert root["links"][0]["spanId"] == "ee" * 8
    attrs = {kv["key"]: kv["value"] for kv in child["attributes"]}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": str(2**40)}
    assert attrs["ok"] == {"boolValue": False}
    assert attrs["finish"] == {"arrayValue": {"values": [{"stringValue": "stop"}, {"stringValue": "length"}]}}
    assert attrs["nested"]["kvlistValue"]["values"][1] == {"key": "b", "value": {"kvlistValue": {"values": [
        {"key": "c", "value": {}}]}}}
    assert child["events"][0]["timeUnixNano"] == "1700000000150000000"


def test_json_round_trip_is_exact_through_text():
    original = spans()
    text = json.dumps(to_otlp_json(original, RESOURCE), ensure_ascii=False)
    assert from_otlp_json(json.loads(text)) == original


def test_protobuf_round_trip_is_exact_and_decodes_as_an_export_request():
    body = to_protobuf(spans(), RESOURCE)
    request = ExportTraceServiceRequest.FromString(body)
    assert request.resource_spans[0].scope_spans[0].spans[1].name == "chat gpt-4o-mini ✓"
    assert from_protobuf(body) == spans()


def test_import_numbers_seq_per_instance_in_document_order():
    first, second = spans()
    other = copy.deepcopy(second)
    other.attributes["scopeflow.instance.id"] = other.instance_id = "other"
    loose = copy.deepcopy(first)
    del loose.attributes["scopeflow.instance.id"]
    loose.instance_id = ""
    records = from_otlp_json(to_otlp_json([first, other, second, loose], {}))
    assert [(r.instance_id, r.seq) for r in records] == [(INSTANCE, 1), ("other", 1), (INSTANCE, 2), ("", 0)]


def test_unspecified_kind_is_read_as_internal():
    data = to_otlp_json(spans()[:1], {})
    del data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"]
    assert from_otlp_json(data)[0].kind == "INTERNAL"


def test_export_refuses_an_instance_id_missing_from_the_attributes():
    span = spans()[0]
    del span.attributes["scopeflow.instance.id"]
    with pytest.raises(OtlpError, match="instance_id 'inst-ü-1' is not in attribute scopeflow.instance.id"):
        to_otlp_json([span], {})


@pytest.mark.parametrize("change, message", [
    ({"trace_id": "xyz"}, "trace_id 'xyz' is not 32 hex characters"),
    ({"parent_span_id": "abc"}, "parent_span_id 'abc' is not 16 hex characters"),
    ({"kind": "SIDEWAYS"}, "unknown span kind 'SIDEWAYS'"),
    ({"status": "FINE"}, "unknown status 'FINE'"),
    ({"start_ns": -1}, "start_ns -1 is not a unix time"),
    ({"attributes": {"scopeflow.instance.id": INSTANCE, "s": {1, 2}}}, "values of type set have no OTLP form"),
    ({"attributes": {"scopeflow.instance.id": INSTANCE, "big": 2**70}}, "does not fit in 64 bits"),
])
def test_export_refuses_spans_otlp_cannot_express(change, message):
    span = spans()[0]
    for key, value in change.items():
        setattr(span, key, value)
    with pytest.raises(OtlpError, match=message):
        to_otlp_json([span], {})


def one_span(**fields: object) -> dict:
    span = {"traceId": TRACE, "spanId": "b7ad6b7169203331", "name": "x"}
    span.update(fields)
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize("data, message", [
    ([], "expected an object with a 'resourceSpans' list"),
    ({"spans": []}, "expected an object with a 'resourceSpans' list"),
    ({"resourceSpans": {}}, "expected an object with a 'resourceSpans' list"),
    ({"resourceSpans": [{"scopeSpans": "no"}]}, "'scopeSpans' must be a list"),
    ({"resourceSpans": [{"resource": 5}]}, "not OTLP/JSON trace data: "),
    (one_span(traceId="zz"), "span #1 traceId 'zz' is not hex"),
    (one_span(traceId="abcd"), "traceId has 2 bytes, expected 16"),
    (one_span(spanId=None), "span #1 spanId must be a hex string"),
    (one_span(startTimeUnixNano="soon"), "not OTLP/JSON trace data: "),
    (one_span(kind=42), "unknown span kind 42"),
    (one_span(attributes=[{"key": "scopeflow.instance.id", "value": {"intValue": "3"}}]), "is not a string"),
])
def test_import_refuses_what_is_not_otlp_in_one_line(data, message):
    with pytest.raises(OtlpError) as info:
        from_otlp_json(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_import_of_no_spans_is_an_empty_list():
    assert from_otlp_json({"resourceSpans": []}) == []


def test_import_ignores_fields_with_unknown_names_as_the_otlp_spec_requires():
    data = to_otlp_json(spans(), RESOURCE)
    data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureField"] = {"x": 1}
    data["resourceSpans"][0]["schemaUrl"] = "https://opentelemetry.io/schemas/1.30.0"
    assert from_otlp_json(data) == spans()


def test_garbage_protobuf_is_refused():
    with pytest.raises(OtlpError, match="not an OTLP ExportTraceServiceRequest"):
        from_protobuf(b"\xff\xff\xff")


def test_agrees_with_the_opentelemetry_sdk_encoder():
    """Spans the SDK recorded, encoded by OpenTelemetry's own OTLP encoder, decode to exactly what
    the span store keeps for them, and our encoding of those records decodes the same way."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    from scopeflow.spans.convert import to_record

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    base = {"scopeflow.instance.id": INSTANCE}
    with tracer.start_as_current_span("advance", attributes={**base, "tags": ["a", "b"], "ratio": 0.5}) as root:
        with tracer.start_as_current_span("chat m", kind=SpanKind.CLIENT, attributes=base,
                                          links=[Link(root.get_span_context(), {"why": "test"})]) as child:
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "429"))
    finished = exporter.get_finished_spans()
    stored = [to_record(span) for span in finished]
    for seq, record in enumerate(stored, start=1):
        record.seq = seq
    assert from_protobuf(encode_spans(finished).SerializeToString()) == stored
    assert from_otlp_json(to_otlp_json(stored, RESOURCE)) == stored
