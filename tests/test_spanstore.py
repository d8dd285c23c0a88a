"""The span table writer: what it stores reads back as the spans it was given, on either insert path.

On SQLite the rows go to the driver as tuples (``spanstore._insert_rows``); on other databases
through a Core insert. Both must store the same text, and the stored chain must verify.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from scopeflow.engine import spanstore
from scopeflow.engine.db import get_engine
from scopeflow.engine.models import SpanRow
from scopeflow.spans.integrity import attributes_json_of, content_hash, genesis, link_hash, verify_chain
from scopeflow.spans.record import SpanEvent, SpanLink, SpanRecord
from tests.conftest import make_settings

INSTANCE = "0b6e1c9a-1111-4000-8000-00000000abcd"
KEY = b"k" * 32


def _spans(n: int) -> list[SpanRecord]:
    return [SpanRecord(trace_id="ab" * 16, span_id=f"{i + 1:016x}", parent_span_id=None if i == 0 else f"{1:016x}",
                       name=f"task {i} – ü", start_ns=1_700_000_000_000_000_000 + i, end_ns=1_700_000_000_000_000_900 + i,
                       status="ERROR" if i == 2 else "UNSET", status_message="boom ☃" if i == 2 else "",
                       attributes={"scopeflow.instance.id": INSTANCE, "scopeflow.bpmn.element.id": f"t{i}", "n": i,
                                   "tags": ["a", "é"], "z": 0.5},
                       events=[SpanEvent("exception", 5, {"exception.message": "x"})] if i == 2 else [],
                       links=[SpanLink("cd" * 16, "ef" * 8, {"why": "resume"})] if i == 0 else [],
                       instance_id=INSTANCE)
            for i in range(n)]


@pytest.fixture()
def store(tmp_path):
    return get_engine(make_settings(tmp_path, migrated_copy=True).effective_database_url)


def _stored(store) -> list[tuple]:
    """The rows as the database holds them (JSON columns as their text)."""
    with store.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM span ORDER BY seq").all()]


def test_sqlite_driver_path_stores_the_spans_and_a_chain_that_verifies(store):
    spans = _spans(5)
    with store.begin() as conn:
        seq, head = spanstore.append_spans(conn, INSTANCE, spans, (0, genesis(INSTANCE)), KEY)
    assert seq == 5
    with store.connect() as conn:
        with Session(bind=conn) as session:
            loaded = spanstore.load_spans(session, INSTANCE)
            rows = spanstore.load_chain(session, INSTANCE)
    assert [(s.span_id, s.name, s.attributes, s.events, s.links, s.status_message) for s in loaded] == \
        [(s.span_id, s.name, s.attributes, s.events, s.links, s.status_message) for s in spans]
    assert [s.attributes.get("scopeflow.bpmn.element.id") for s in spans] == \
        [r[0] for r in _bpmn_ids(store)]
    report = verify_chain(rows, INSTANCE, expected_head=head, key=KEY)
    assert report.ok and report.count == 5


def _bpmn_ids(store) -> list[tuple]:
    table = SpanRow.__table__
    with store.connect() as conn:
        return conn.execute(select(table.c.bpmn_element_id).order_by(table.c.seq)).all()


def test_driver_rows_and_core_insert_rows_are_the_same(store, tmp_path):
    """The Core path (every other database) writes the same column values as the driver path."""
    spans = _spans(4)
    with store.begin() as conn:
        spanstore.append_spans(conn, INSTANCE, spans, (0, genesis(INSTANCE)), KEY)
    driver_rows = _stored(store)

    other = get_engine(make_settings(tmp_path / "core", migrated_copy=True).effective_database_url)
    rows = []
    prev = genesis(INSTANCE)
    for seq, span in enumerate(_spans(4), start=1):
        span.seq = seq
        attributes = attributes_json_of(span)
        content = content_hash(span, attributes)
        link = link_hash(prev, content, KEY)
        rows.append(dict(zip(spanstore._ROW_COLUMNS, spanstore._row(span, attributes, content, prev, link),
                             strict=True)))
        prev = link
    with other.begin() as conn:
        conn.execute(insert(SpanRow.__table__), rows)
    assert _stored(other) == driver_rows
    attributes_text = driver_rows[0][list(SpanRow.__table__.columns.keys()).index("attributes")]
    assert json.loads(attributes_text) == spans[0].attributes


def test_row_columns_name_every_column_but_the_id():
    assert sorted(spanstore._ROW_COLUMNS) == sorted(c for c in SpanRow.__table__.columns.keys() if c != "id")
    span = _spans(1)[0]
    row = dict(zip(spanstore._ROW_COLUMNS, spanstore._row(span, "{}", "c", "p", "l"), strict=True))
    assert (row["span_id"], row["content_hash"], row["prev_hash"], row["link_hash"]) == (span.span_id, "c", "p", "l")
    assert (row["seq"], row["name"], row["start_ns"], row["attributes"]) == (span.seq, span.name, span.start_ns, "{}")
