"""A hash chain over an instance's stored spans, so tampering with the evidence is detectable.

Per stored span row (ordered by ``seq`` = 1, 2, …) the store keeps three hashes:

* ``content_hash`` = sha256 of the canonical JSON of every :class:`SpanRecord` field except ``seq``
  (sorted keys, no whitespace, UTF-8, floats as Python ``repr``),
* ``prev_hash``    = the ``link_hash`` of the row before it (row 1: :func:`genesis` of the instance),
* ``link_hash``    = HMAC-SHA256(chain key, ``prev_hash`` + ``content_hash``).

The chain key lives outside the database (``<home>/chain.key`` or ``SCOPEFLOW_CHAIN_KEY``): someone
who can write the database but not read the key cannot edit a span and recompute the links so that
they verify. (Without a key, ``key=None``, links are plain SHA-256: fine for tests of the chain's
shape, proof of nothing against such a writer.)

:func:`verify_chain` recomputes all of it and names the first broken row. What a chain alone cannot
show: rows removed from (or validly appended to) the *end*. Keep the head (last ``link_hash``) and
count somewhere else too (the instance row) and pass them as ``expected_head`` to catch that.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from scopeflow.spans.record import SpanRecord

ALTERED = "altered"          # a row's content or its stored hashes were changed
INSERTED = "inserted"        # a row was added between others
DELETED = "deleted"          # rows are missing (a gap in seq)
REORDERED = "reordered"      # rows were moved (seq values swapped)
UNLINKED = "unlinked"        # a row links to nothing stored: deleted-and-renumbered, or forged
DUPLICATE = "duplicate"      # two rows share a seq
FOREIGN = "foreign"          # a row belongs to another instance
HEAD_MISMATCH = "head_mismatch"  # the chain is intact but does not end where it should


@dataclass
class ChainRow:
    """One stored span row as the chain sees it (the engine's ``span`` table columns)."""

    seq: int
    span: SpanRecord
    content_hash: str
    prev_hash: str
    link_hash: str


@dataclass
class ChainReport:
    ok: bool
    count: int
    head: str                       # link_hash of the last row (genesis when there are none)
    problem: str = ""               # one line naming the first broken row, "" when ok
    kind: str = ""                  # one of the constants above, "" when ok
    seq: int | None = None          # seq of the first broken row
    span_id: str | None = None


def genesis(instance_id: str) -> str:
    """The ``prev_hash`` of an instance's first row."""
    return hashlib.sha256(f"scopeflow:{instance_id}".encode()).hexdigest()


_HASHED_FIELDS = tuple(f.name for f in dataclasses.fields(SpanRecord) if f.name != "seq")
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_string = json.encoder.encode_basestring   # what that encoder writes for a str (ensure_ascii=False)


def canonical_json(span: SpanRecord, attributes_json: str | None = None) -> str:
    """The exact text that :func:`content_hash` hashes (every field but ``seq``).

    ``attributes_json`` is :func:`attributes_json` of the span when the caller has it already (the
    span store writes that same text to the ``attributes`` column), so it is encoded once.
    """
    if type(span.start_ns) is not int or type(span.end_ns) is not int or not all(
            type(value) is str for value in (span.trace_id, span.span_id, span.name, span.status,
                                             span.status_message, span.kind, span.instance_id)) \
            or not (span.parent_span_id is None or type(span.parent_span_id) is str):
        return _canonical_json_whole(span)
    # The same text as json.dumps(<all fields>, sort_keys=True, ...) gives (the fields are spelled in
    # sorted order here), built from the parts: only the attributes, events and links need the encoder.
    events = "[]" if not span.events else _encode_strict(
        [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in span.events])
    links = "[]" if not span.links else _encode_strict(
        [{"trace_id": lk.trace_id, "span_id": lk.span_id, "attributes": lk.attributes} for lk in span.links])
    parent = "null" if span.parent_span_id is None else _string(span.parent_span_id)
    return "".join((
        '{"attributes":', attributes_json if attributes_json is not None else attributes_json_of(span),
        ',"end_ns":', str(span.end_ns), ',"events":', events, ',"instance_id":', _string(span.instance_id),
        ',"kind":', _string(span.kind), ',"links":', links, ',"name":', _string(span.name),
        ',"parent_span_id":', parent, ',"span_id":', _string(span.span_id), ',"start_ns":', str(span.start_ns),
        ',"status":', _string(span.status), ',"status_message":', _string(span.status_message),
        ',"trace_id":', _string(span.trace_id), "}",
    ))


def attributes_json_of(span: SpanRecord) -> str:
    """The span's attributes as canonical JSON (sorted keys, no whitespace): the part of
    :func:`canonical_json` that the span store also keeps as the ``attributes`` column's text."""
    return _encode_strict(span.attributes)


def _encode_strict(value: Any) -> str:
    try:
        return _encode(value)
    except TypeError:
        json.dumps(value, default=_reject)   # raises the one-line error naming the value
        raise


def _canonical_json_whole(span: SpanRecord) -> str:
    """The definition of the canonical text: one ``json.dumps`` of every field but ``seq``."""
    data = {name: getattr(span, name) for name in _HASHED_FIELDS}
    # Same shape as dataclasses.asdict, without its deep copy.
    data["events"] = [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in span.events]
    data["links"] = [{"trace_id": lk.trace_id, "span_id": lk.span_id, "attributes": lk.attributes}
                     for lk in span.links]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_reject)


def _reject(value: Any) -> Any:
    raise TypeError(f"span field value of type {type(value).__name__} cannot be hashed: {value!r}")


def content_hash(span: SpanRecord, attributes_json: str | None = None) -> str:
    return hashlib.sha256(canonical_json(span, attributes_json).encode("utf-8")).hexdigest()


def link_hash(prev_link_hash: str, content: str, key: bytes | None = None) -> str:
    message = (prev_link_hash + content).encode("ascii")
    if key:
        mac = _keyed(key).copy()   # the key's HMAC state, set up once per key
        mac.update(message)
        return mac.hexdigest()
    return hashlib.sha256(message).hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    return hmac.new(key, digestmod=hashlib.sha256)


def chain(spans: list[SpanRecord], instance_id: str | None = None, key: bytes | None = None) -> list[tuple[str, str]]:
    """``(content_hash, link_hash)`` for spans already in ``seq`` order, all of one instance.

    ``instance_id`` defaults to the spans' own; a span of another instance is a ValueError.
    """
    if not spans:
        return []
    instance_id = spans[0].instance_id if instance_id is None else instance_id
    prev, out = genesis(instance_id), []
    for span in spans:
        if span.instance_id != instance_id:
            raise ValueError(f"span {span.span_id} belongs to instance {span.instance_id!r}, not {instance_id!r}")
        content = content_hash(span)
        prev = link_hash(prev, content, key)
        out.append((content, prev))
    return out


def build_rows(spans: list[SpanRecord], instance_id: str | None = None, key: bytes | None = None) -> list[ChainRow]:
    """The rows a store would write for these spans (in ``seq`` order), with their hashes."""
    if not spans:
        return []
    prev = genesis(spans[0].instance_id if instance_id is None else instance_id)
    rows = []
    for span, (content, link) in zip(spans, chain(spans, instance_id, key), strict=True):
        rows.append(ChainRow(span.seq, span, content, prev, link))
        prev = link
    return rows


@dataclass
class _Break:
    kind: str
    problem: str
    row: ChainRow                   # the row to blame (the first inserted one, for insertions)


def verify_chain(rows: list[ChainRow], instance_id: str | None = None, *,
                 expected_head: str | None = None, key: bytes | None = None) -> ChainReport:
    """Recompute the chain over ``rows`` (any order; sorted by seq here) and name the first break.

    ``instance_id`` defaults to the first row's span's. ``expected_head``, when given, is the head
    recorded elsewhere; a different head means rows were cut from or added to the end. ``key`` is
    the chain key the rows were written with: links recomputed without it do not verify.
    """
    ordered = sorted(rows, key=lambda r: r.seq)
    if instance_id is None:
        instance_id = ordered[0].span.instance_id if ordered else ""
    index_of_link = {row.link_hash: i for i, row in enumerate(ordered)}
    prev, prev_seq = genesis(instance_id), 0
    for index, row in enumerate(ordered):
        broken = _check_row(row, index, ordered, index_of_link, prev, prev_seq, instance_id, key)
        if broken is not None:
            blamed = broken.row
            return ChainReport(False, len(ordered), prev, f"seq {blamed.seq}: {broken.problem}", broken.kind,
                               blamed.seq, blamed.span.span_id)
        prev, prev_seq = row.link_hash, row.seq
    if expected_head is not None and expected_head != prev:
        return ChainReport(False, len(ordered), prev,
                           f"chain of {len(ordered)} span(s) ends at {prev[:12]}…, expected {expected_head[:12]}…: "
                           "spans were removed from or added to the end", HEAD_MISMATCH)
    return ChainReport(True, len(ordered), prev)


def _check_row(row: ChainRow, index: int, ordered: list[ChainRow], index_of_link: dict[str, int],
               prev: str, prev_seq: int, instance_id: str, key: bytes | None) -> _Break | None:
    """What is wrong with ``row`` given that every row before it checked out, else None."""
    span_id = row.span.span_id
    if row.span.instance_id != instance_id:
        return _Break(FOREIGN, f"span {span_id} belongs to instance {row.span.instance_id!r}", row)
    if row.seq == prev_seq:
        return _Break(DUPLICATE, f"two rows have seq {row.seq}", row)
    if content_hash(row.span) != row.content_hash:
        return _Break(ALTERED, f"span {span_id} was altered (its content no longer matches its stored hash)", row)
    if link_hash(row.prev_hash, row.content_hash, key) != row.link_hash:
        return _Break(ALTERED, f"the stored link hash of span {span_id} does not match: it was altered or "
                               "recomputed without the chain key", row)
    gap = row.seq != prev_seq + 1
    if row.prev_hash == prev:
        if gap:
            return _Break(ALTERED, f"seq jumps from {prev_seq} to {row.seq} with the chain intact: "
                                   "seq values were altered", row)
        return None
    target = index_of_link.get(row.prev_hash)
    if target is not None and target > index:
        return _Break(REORDERED, f"span {span_id} links to seq {ordered[target].seq}, which comes after it: "
                                 "rows were reordered", row)
    if target is not None:
        first = ordered[target + 1]
        return _Break(INSERTED, f"span {first.span.span_id} was inserted (seq {first.seq} to {prev_seq} are not "
                                f"in the chain; seq {row.seq} links to seq {ordered[target].seq})", first)
    if gap:
        missing = f"seq {prev_seq + 1}" if row.seq == prev_seq + 2 else f"seq {prev_seq + 1}..{row.seq - 1}"
        return _Break(DELETED, f"span(s) {missing} were deleted before span {span_id}", row)
    return _Break(UNLINKED, f"span {span_id} links neither to seq {prev_seq} nor to any stored span: the span "
                            "before it was rewritten with recomputed hashes, a span was deleted and later ones "
                            "renumbered, or this span was forged", row)
