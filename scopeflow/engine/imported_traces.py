"""Storing the spans of a trace read back from OTLP JSON (``scopeflow trace import``) for an id
with no stored record: chained under this installation's chain key like recorded spans, so
``evidence verify`` and ``trace`` treat them alike."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from scopeflow.engine.spanstore import append_records
from scopeflow.spans.record import SpanRecord


def store_spans(sessions: sessionmaker[Session], instance_id: str, records: Sequence[SpanRecord], key: bytes) -> str:
    """Append ``records`` to the stored chain of ``instance_id`` in one transaction; the new head."""
    with sessions.begin() as session:
        return append_records(session, instance_id, records, key)
