"""The span hash chain: stable hashes, and tampering named precisely."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from scopeflow.spans import integrity
from scopeflow.spans.integrity import ChainRow, build_rows, chain, content_hash, genesis, verify_chain
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord

INSTANCE = "6f1c2a9e-0000-4000-8000-000000000001"


def make_span(seq: int, **changes: object) -> SpanRecord:
    span = SpanRecord(
        trace_id="0af7651916cd43dd8448eb211c80319c", span_id=f"{seq:016x}", parent_span_id=None,
        name=f"task {seq} – é", start_ns=1_700_000_000_000_000_000 + seq, end_ns=1_700_000_000_000_000_500 + seq,
        attributes={"scopeflow.instance.id": INSTANCE, "ratio": 0.1, "n": seq, "tags": ["a", "b"]},
        events=[SpanEvent("started", 1_700_000_000_000_000_001, {"x": 1})],
        links=[SpanLink("1" * 32, "2" * 16, {"scopeflow.link.reason": "resume"})],
        instance_id=INSTANCE, seq=seq,
    )
    return dataclasses.replace(span, **changes)


def rows_for(n: int) -> list[ChainRow]:
    return build_rows([make_span(seq) for seq in range(1, n + 1)])


def test_content_hash_ignores_seq_but_nothing_else():
    span = make_span(1)
    assert content_hash(span) == content_hash(dataclasses.replace(span, seq=99))
    assert content_hash(span) != content_hash(dataclasses.replace(span, attributes={**span.attributes, "ratio": 0.10000001}))
    assert content_hash(span) != content_hash(dataclasses.replace(span, status="ERROR"))


@pytest.mark.parametrize("changes", [
    {},
    {"parent_span_id": "3" * 16, "events": [], "links": []},
    {"name": 'quote " back\\slash \n line\u2028sep ☃ \x00', "status": "ERROR", "status_message": "boom – ü"},
    {"attributes": {"z": None, "a": {"nested": [1, 2.5, True]}, "é": "naïve", "0": -1, "big": 10**30}},
    {"attributes": {}, "kind": "CLIENT", "instance_id": ""},
    {"start_ns": True, "end_ns": 2.0},              # odd types take the one-dumps definition
    {"span_id": None, "parent_span_id": 7},
])
def test_canonical_json_built_from_parts_equals_the_one_dumps_definition(changes):
    """The hashed text is built field by field (the store encodes the attributes once, for the hash
    and the row); it must stay byte for byte what one json.dumps of every field gives, or chains
    written before would stop verifying."""
    span = make_span(4, **changes)
    definition = json.dumps({**{f.name: getattr(span, f.name) for f in dataclasses.fields(span) if f.name != "seq"},
                             "events": [dataclasses.asdict(e) for e in span.events],
                             "links": [dataclasses.asdict(lk) for lk in span.links]},
                            sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert integrity.canonical_json(span) == definition
    assert integrity.canonical_json(span, integrity.attributes_json_of(span)) == definition


def test_a_span_value_json_cannot_hold_is_refused_by_name():
    with pytest.raises(TypeError, match="of type set cannot be hashed"):
        content_hash(make_span(1, attributes={"bad": {1, 2}}))


def test_content_hash_is_sha256_of_a_documented_canonical_json():
    span = make_span(1)
    text = integrity.canonical_json(span)
    assert '"seq"' not in text and ", " not in text and text.index('"attributes"') < text.index('"end_ns"')
    assert '"ratio":0.1' in text and "é" in text
    assert content_hash(span) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_unhashable_values_are_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="of type set cannot be hashed"):
        content_hash(make_span(1, attributes={"x": {1, 2}}))


def test_chain_starts_at_the_instance_genesis_and_links_each_row():
    spans = [make_span(1), make_span(2)]
    (c1, l1), (c2, l2) = chain(spans)
    assert genesis(INSTANCE) == hashlib.sha256(f"scopeflow:{INSTANCE}".encode()).hexdigest()
    assert l1 == integrity.link_hash(genesis(INSTANCE), c1)
    assert l2 == integrity.link_hash(l1, c2)


def test_a_keyed_link_is_the_documented_hmac_sha256_of_prev_and_content():
    """The stored links are HMAC-SHA256(chain key, prev + content): an auditor recomputes them with
    any HMAC library, and two keys never give the same link (the key's state is cached per key)."""
    import hmac

    spans = [make_span(1), make_span(2)]
    for key in (b"k" * 32, b"another key"):
        (c1, l1), (c2, l2) = chain(spans, key=key)
        first = hmac.new(key, (genesis(INSTANCE) + c1).encode(), hashlib.sha256).hexdigest()
        assert l1 == first and l2 == hmac.new(key, (first + c2).encode(), hashlib.sha256).hexdigest()
    assert chain(spans, key=b"k" * 32) != chain(spans, key=b"another key") != chain(spans)


def test_chain_refuses_spans_of_another_instance():
    with pytest.raises(ValueError, match="belongs to instance 'other'"):
        chain([make_span(1), make_span(2, instance_id="other")])


def test_an_untouched_chain_verifies_and_reports_its_head():
    rows = rows_for(4)
    report = verify_chain(list(reversed(rows)))
    assert report.ok and report.count == 4 and report.head == rows[-1].link_hash and report.problem == ""
    assert verify_chain([]).ok


def test_altered_content_names_the_span():
    rows = rows_for(4)
    rows[2].span.attributes["scopeflow.tests.failed"] = 0
    report = verify_chain(rows)
    assert (report.ok, report.kind, report.seq, report.span_id) == (False, integrity.ALTERED, 3, rows[2].span.span_id)
    assert "was altered" in report.problem


def test_altered_link_hash_is_caught():
    rows = rows_for(3)
    rows[1].link_hash = "0" * 64
    report = verify_chain(rows)
    assert (report.kind, report.seq) == (integrity.ALTERED, 2)


def test_deleted_span_is_named_by_the_seq_gap():
    rows = rows_for(5)
    del rows[2]
    report = verify_chain(rows)
    assert (report.kind, report.seq) == (integrity.DELETED, 4)
    assert "span(s) seq 3 were deleted" in report.problem


def test_deleting_the_first_span_is_caught():
    report = verify_chain(rows_for(3)[1:])
    assert (report.kind, report.seq) == (integrity.DELETED, 2)


def test_inserted_span_with_forged_hashes_is_named():
    rows = rows_for(4)
    forged = make_span(3, name="forged", span_id="f" * 16)
    content = content_hash(forged)
    inserted = ChainRow(3, forged, content, rows[1].link_hash, integrity.link_hash(rows[1].link_hash, content))
    for row in rows[2:]:
        row.seq += 1
        row.span.seq += 1
    report = verify_chain(rows[:2] + [inserted] + rows[2:])
    assert (report.kind, report.seq, report.span_id) == (integrity.INSERTED, 3, "f" * 16)


def test_swapped_rows_are_reported_as_reordered():
    rows = rows_for(4)
    rows[1].seq, rows[2].seq = 3, 2
    report = verify_chain(rows)
    assert (report.kind, report.seq) == (integrity.REORDERED, 2)


def test_delete_and_renumber_is_unlinked():
    rows = rows_for(4)
    del rows[1]
    for row in rows[1:]:
        row.seq -= 1
    report = verify_chain(rows)
    assert (report.kind, report.seq) == (integrity.UNLINKED, 2)


def test_a_row_rewritten_with_recomputed_hashes_breaks_the_next_link():
    rows = rows_for(4)
    rows[1].span.attributes["scopeflow.tests.failed"] = 0
    rows[1].content_hash = content_hash(rows[1].span)
    rows[1].link_hash = integrity.link_hash(rows[1].prev_hash, rows[1].content_hash)
    report = verify_chain(rows)
    assert (report.kind, report.seq) == (integrity.UNLINKED, 3)
    assert "the span before it was rewritten with recomputed hashes" in report.problem


def test_duplicate_seq_and_foreign_rows_are_named():
    rows = rows_for(3)
    assert verify_chain(rows + [dataclasses.replace(rows[2])]).kind == integrity.DUPLICATE
    foreign = build_rows([make_span(1, instance_id="other")])[0]
    foreign.seq = 4
    assert verify_chain(rows + [foreign]).kind == integrity.FOREIGN


def test_truncation_needs_the_expected_head():
    rows = rows_for(4)
    head = rows[-1].link_hash
    assert verify_chain(rows[:3]).ok
    report = verify_chain(rows[:3], expected_head=head)
    assert not report.ok and report.kind == integrity.HEAD_MISMATCH
    assert verify_chain(rows, expected_head=head).ok
