"""The span table: the evidence of record, appended inside each checkpoint transaction.

Each row carries the hash of its content and the link hash chaining it to the previous row of the
same instance (``spans/integrity.py``), so ``scopeflow evidence verify`` can name the first altered,
inserted or deleted span.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from opentelemetry.sdk.trace import ReadableSpan
from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from scopeflow.engine.db import JsonText, json_column_text
from scopeflow.engine.models import SpanRow
from scopeflow.spans import semconv
from scopeflow.spans.integrity import ChainRow, attributes_json_of, content_hash, genesis, link_hash
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord
from scopeflow.spans.tracing import records_of


def store_spans(session: Session | Connection, instance_id: str, spans: Sequence[ReadableSpan], key: bytes) -> int:
    """Append ``spans`` (ordered by start time) to the instance's chain; returns how many."""
    append_spans(session, instance_id, spans, chain_tail(session, instance_id), key)
    return len(spans)


def append_spans(conn: Session | Connection, instance_id: str, spans: Sequence[ReadableSpan | SpanRecord],
                 head: tuple[int, str], key: bytes) -> tuple[int, str]:
    """Append buffered ``spans`` (SDK spans or records, chained in start-time order) after
    ``head`` = (seq, link hash) of the stored chain, which the caller read when it leased the
    instance (no SELECT per checkpoint). Should another writer have appended meanwhile, the unique
    (instance, seq) key refuses the insert and the checkpoint's transaction rolls back. Returns
    the new head."""
    if not spans:
        return head
    return _insert_chained(conn, instance_id, records_of(list(spans)), head, key)


def chain_tail(session: Session | Connection, instance_id: str) -> tuple[int, str]:
    """(seq, link hash) of the instance's last stored span; (0, genesis) when it has none."""
    last = session.execute(
        select(SpanRow.seq, SpanRow.link_hash).where(SpanRow.instance_id == instance_id)
        .order_by(SpanRow.seq.desc()).limit(1)
    ).first()
    return (last[0], last[1]) if last else (0, genesis(instance_id))


def append_records(session: Session, instance_id: str, records: Sequence[SpanRecord], key: bytes) -> str:
    """Number ``records`` after the stored ones, chain them under the chain ``key``, insert them;
    returns the new head."""
    return _insert_chained(session, instance_id, records, chain_tail(session, instance_id), key)[1]


def _insert_chained(conn: Session | Connection, instance_id: str, records: Sequence[SpanRecord],
                    head: tuple[int, str], key: bytes) -> tuple[int, str]:
    seq, prev = head
    rows = []
    for record in records:
        seq += 1
        record.seq = seq
        attributes = attributes_json_of(record)   # encoded once: hashed, and stored as the column's text
        content = content_hash(record, attributes)
        link = link_hash(prev, content, key)
        rows.append(_row(record, attributes, content, prev, link))
        prev = link
    if rows:
        _insert_rows(conn, rows)
    return seq, prev


SPAN_TABLE = SpanRow.__table__
# Every column of a row but the id, in the order _row gives them.
_ROW_COLUMNS = ("instance_id", "seq", "trace_id", "span_id", "parent_span_id", "name", "kind", "bpmn_element_id",
                "start_ns", "end_ns", "status", "status_message", "attributes", "events", "links", "content_hash",
                "prev_hash", "link_hash")


def _insert_rows(conn: Session | Connection, rows: list[tuple]) -> None:
    """One executemany. On SQLite the rows go to the driver as the tuples they were built as:
    SQLAlchemy's per-row parameter processing cost more than SQLite's own insert, and JSON
    columns are plain text there. Elsewhere a Core insert, whose JSON encoder takes the
    already-encoded attributes as they are (``JsonText``)."""
    connection = conn.connection() if isinstance(conn, Session) else conn
    if connection.dialect.name != "sqlite":
        connection.execute(insert(SPAN_TABLE), [dict(zip(_ROW_COLUMNS, row, strict=True)) for row in rows])
        return
    connection.exec_driver_sql(_sqlite_insert(), rows)


@cache
def _sqlite_insert() -> str:
    """The span INSERT as the SQLite driver takes it: ``?`` placeholders in ``_ROW_COLUMNS`` order."""
    compiled = insert(SPAN_TABLE).compile(dialect=sqlite.dialect(), column_keys=list(_ROW_COLUMNS))
    if tuple(compiled.positiontup) != _ROW_COLUMNS:
        raise RuntimeError(f"span INSERT binds {compiled.positiontup}, expected {_ROW_COLUMNS}")
    return compiled.string


_EMPTY = JsonText("[]")


def _json_text(value: object) -> JsonText:
    return JsonText(json_column_text(value))


def _row(record: SpanRecord, attributes: str, content: str, prev: str, link: str) -> tuple:
    """The stored row, in ``_ROW_COLUMNS`` order; JSON columns as the text the JSON type would
    write (the attributes as already encoded for the hash)."""
    events = _EMPTY if not record.events else _json_text(
        [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in record.events])
    links = _EMPTY if not record.links else _json_text(
        [{"trace_id": lk.trace_id, "span_id": lk.span_id, "attributes": lk.attributes} for lk in record.links])
    return (record.instance_id, record.seq, record.trace_id, record.span_id, record.parent_span_id, record.name,
            record.kind, record.attributes.get(semconv.BPMN_ELEMENT_ID), record.start_ns, record.end_ns,
            record.status, record.status_message, JsonText(attributes), events, links, content, prev, link)


def record_of(row: SpanRow) -> SpanRecord:
    return SpanRecord(
        trace_id=row.trace_id, span_id=row.span_id, parent_span_id=row.parent_span_id, name=row.name,
        start_ns=row.start_ns, end_ns=row.end_ns, status=row.status, status_message=row.status_message,
        kind=row.kind, attributes=dict(row.attributes or {}),
        events=[SpanEvent(e["name"], e["time_ns"], e.get("attributes") or {}) for e in row.events or []],
        links=[SpanLink(lk["trace_id"], lk["span_id"], lk.get("attributes") or {}) for lk in row.links or []],
        instance_id=row.instance_id, seq=row.seq,
    )


def load_spans(session: Session, instance_id: str) -> list[SpanRecord]:
    rows = session.scalars(select(SpanRow).where(SpanRow.instance_id == instance_id).order_by(SpanRow.seq)).all()
    return [record_of(row) for row in rows]


def load_chain(session: Session, instance_id: str) -> list[ChainRow]:
    rows = session.scalars(select(SpanRow).where(SpanRow.instance_id == instance_id).order_by(SpanRow.seq)).all()
    return [ChainRow(row.seq, record_of(row), row.content_hash, row.prev_hash, row.link_hash) for row in rows]
