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
_ROW_COLUMNS = ["instance_id", "seq", "trace_id", "span_id", "parent_span_id", "name", "kind", "bpmn_element_id",
                "start_ns", "end_ns", "status", "status_message", "attributes", "events", "links", "content_hash",
                "prev_hash", "link_hash"]   # every column of a row (_row) but the id
_JSON_COLUMNS = ("attributes", "events", "links")


def _insert_rows(conn: Session | Connection, rows: list[dict]) -> None:
    """One executemany. On SQLite the rows go to the driver as tuples: SQLAlchemy's per-row
    parameter processing cost more than SQLite's own insert, and its JSON columns are plain text
    there. Elsewhere a Core insert, whose JSON encoder takes the already-encoded attributes as
    they are (``JsonText``)."""
    connection = conn.connection() if isinstance(conn, Session) else conn
    if connection.dialect.name != "sqlite":
        connection.execute(insert(SPAN_TABLE), rows)
        return
    sql, order = _sqlite_insert()
    json_columns = [index for index, name in enumerate(order) if name in _JSON_COLUMNS]
    values = []
    for row in rows:
        value = [row[name] for name in order]
        for index in json_columns:
            value[index] = json_column_text(value[index])   # what the JSON type would write (JsonText as it is)
        values.append(tuple(value))
    connection.exec_driver_sql(sql, values)


@cache
def _sqlite_insert() -> tuple[str, tuple[str, ...]]:
    """The span INSERT as the SQLite driver takes it (``?`` placeholders) and its column order."""
    compiled = insert(SPAN_TABLE).compile(dialect=sqlite.dialect(), column_keys=_ROW_COLUMNS)
    return compiled.string, tuple(compiled.positiontup)


def _row(record: SpanRecord, attributes: str, content: str, prev: str, link: str) -> dict:
    return dict(
        instance_id=record.instance_id, seq=record.seq, trace_id=record.trace_id, span_id=record.span_id,
        parent_span_id=record.parent_span_id, name=record.name, kind=record.kind,
        bpmn_element_id=record.attributes.get(semconv.BPMN_ELEMENT_ID),
        start_ns=record.start_ns, end_ns=record.end_ns, status=record.status,
        status_message=record.status_message, attributes=JsonText(attributes),
        events=[{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in record.events],
        links=[{"trace_id": lk.trace_id, "span_id": lk.span_id, "attributes": lk.attributes} for lk in record.links],
        content_hash=content, prev_hash=prev, link_hash=link,
    )


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
