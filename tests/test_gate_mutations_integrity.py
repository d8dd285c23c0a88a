"""Each way of tampering with an instance's stored spans, caught by the engine's chain check.

A real ``hello`` instance on a tmp SQLite store (keyed chain), then one edit of the ``span`` table
per test, the way someone with write access to the database would make it, and
``Engine.verify_chain`` (what ``scopeflow evidence verify`` runs) must name the kind and the row.
``tests/test_integrity.py`` checks the same verdicts on rows built in memory; here the rows are the
engine's own, read back through its store.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from scopeflow.engine.models import SpanRow
from scopeflow.engine.spanstore import load_chain
from scopeflow.spans.integrity import content_hash, link_hash


def _rows(engine, instance_id: str) -> list[SpanRow]:
    with engine.sessions() as session:
        return list(session.scalars(select(SpanRow).where(SpanRow.instance_id == instance_id)
                                    .order_by(SpanRow.seq)))


def _started(engine) -> tuple[str, list[SpanRow]]:
    instance_id = engine.start("hello", {"name": "Ada", "numbers": [4, 5, 6]})
    rows = _rows(engine, instance_id)
    assert len(rows) >= 5 and engine.verify_chain(instance_id).ok
    return instance_id, rows


def test_an_untouched_run_verifies_against_its_own_head(engine):
    instance_id, rows = _started(engine)
    report = engine.verify_chain(instance_id, expected_head=rows[-1].link_hash)
    assert (report.ok, report.count, report.head) == (True, len(rows), rows[-1].link_hash)


def test_a_deleted_row_is_named_by_the_gap(engine):
    instance_id, rows = _started(engine)
    with engine.sessions.begin() as session:
        session.execute(delete(SpanRow).where(SpanRow.id == rows[2].id))
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.seq) == (False, "deleted", rows[3].seq)
    assert f"seq {rows[2].seq} were deleted" in report.problem


def test_delete_and_renumber_is_unlinked(engine):
    instance_id, rows = _started(engine)
    with engine.sessions.begin() as session:
        session.execute(delete(SpanRow).where(SpanRow.id == rows[2].id))
        for row in rows[3:]:
            session.execute(update(SpanRow).where(SpanRow.id == row.id).values(seq=row.seq - 1))
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.seq) == (False, "unlinked", rows[2].seq)
    assert report.span_id == rows[3].span_id


def test_swapped_rows_are_reordered(engine):
    instance_id, rows = _started(engine)
    a, b = rows[1], rows[2]
    with engine.sessions.begin() as session:
        session.execute(update(SpanRow).where(SpanRow.id == a.id).values(seq=-1))
        session.execute(update(SpanRow).where(SpanRow.id == b.id).values(seq=a.seq))
        session.execute(update(SpanRow).where(SpanRow.id == a.id).values(seq=b.seq))
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.span_id) == (False, "reordered", b.span_id)


def test_an_inserted_row_with_valid_looking_hashes_is_named(engine):
    """A copy of a row slipped in after it, its links recomputed the only way a writer without the
    key can (unkeyed): the copy's link does not verify under the key."""
    instance_id, rows = _started(engine)
    with engine.sessions.begin() as session:
        for row in reversed(rows[2:]):
            session.execute(update(SpanRow).where(SpanRow.id == row.id).values(seq=row.seq + 1))
    with engine.sessions() as session:
        chain = load_chain(session, instance_id)
    source = chain[1].span
    forged = SpanRow(instance_id=instance_id, seq=rows[2].seq, trace_id=source.trace_id, span_id="f" * 16,
                     parent_span_id=source.parent_span_id, name=source.name, kind=source.kind,
                     start_ns=source.start_ns, end_ns=source.end_ns, status=source.status,
                     status_message=source.status_message, attributes=source.attributes, events=[], links=[])
    source.span_id = "f" * 16
    content = content_hash(source)
    forged.content_hash, forged.prev_hash = content, rows[1].link_hash
    forged.link_hash = link_hash(rows[1].link_hash, content)
    with engine.sessions.begin() as session:
        session.add(forged)
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.span_id) == (False, "altered", "f" * 16)
    assert "recomputed without the chain key" in report.problem


def test_a_renumbered_tail_with_an_intact_chain_is_altered(engine):
    instance_id, rows = _started(engine)
    last = rows[-1]
    with engine.sessions.begin() as session:
        session.execute(update(SpanRow).where(SpanRow.id == last.id).values(seq=last.seq + 5))
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.seq) == (False, "altered", last.seq + 5)
    assert "with the chain intact" in report.problem


def test_a_row_moved_in_from_another_instance_is_caught(engine):
    instance_id, rows = _started(engine)
    other, _other_rows = _started(engine)
    with engine.sessions.begin() as session:
        session.execute(update(SpanRow).where(SpanRow.id == rows[-1].id).values(instance_id=other,
                                                                                    seq=len(_other_rows) + 1))
    report = engine.verify_chain(other)
    # the store reads a row's instance from its column, and the instance id is hashed content
    assert (report.ok, report.kind, report.seq) == (False, "altered", len(_other_rows) + 1)


def test_a_cut_tail_verifies_alone_but_not_against_the_recorded_head(engine):
    instance_id, rows = _started(engine)
    with engine.sessions.begin() as session:
        session.execute(delete(SpanRow).where(SpanRow.id == rows[-1].id))
    assert engine.verify_chain(instance_id).ok            # what a chain alone cannot show
    report = engine.verify_chain(instance_id, expected_head=rows[-1].link_hash)
    assert (report.ok, report.kind, report.count) == (False, "head_mismatch", len(rows) - 1)
    assert "removed from or added to the end" in report.problem


def test_an_edited_attribute_is_altered(engine):
    instance_id, rows = _started(engine)
    victim = rows[len(rows) // 2]
    with engine.sessions.begin() as session:
        session.execute(update(SpanRow).where(SpanRow.id == victim.id)
                        .values(attributes={**victim.attributes, "scopeflow.forged": True}))
    report = engine.verify_chain(instance_id)
    assert (report.ok, report.kind, report.span_id) == (False, "altered", victim.span_id)
    assert "content no longer matches" in report.problem
