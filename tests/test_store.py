"""The store: migrations build exactly the schema the ORM models describe, on SQLite and on
PostgreSQL, and an upgrade keeps what an older schema stored."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from scopeflow.engine.db import MIGRATIONS_DIR, get_engine
from scopeflow.engine.models import Base, SpanRow
from tests.test_workers import fresh_postgres_database

SPAN = SpanRow.__table__


def _span(instance_id: str, seq: int, span_id: str) -> dict:
    return dict(instance_id=instance_id, seq=seq, trace_id="t" * 32, span_id=span_id, name="s", kind="INTERNAL",
                start_ns=1, end_ns=2, status="UNSET", status_message="", attributes={}, events=[], links=[],
                content_hash="c" * 64, prev_hash="p" * 64, link_hash="l" * 64)


def _upgrade(url: str, revision: str) -> None:
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    engine.dispose()


def test_migrations_match_the_models(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_migrations_match_the_models_on_postgresql():
    with fresh_postgres_database() as url:
        engine = get_engine(url)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_span_id_is_unique_within_its_instance_and_upgrading_keeps_stored_spans(tmp_path, store):
    """0005 replaced the table-wide unique span id with one per instance: the same id under two
    instances (two imports of one trace) is stored, twice under one instance it is refused."""
    def check(url: str) -> None:
        _upgrade(url, "0004")
        old = create_engine(url)
        with old.begin() as connection:
            connection.execute(insert(SPAN), [_span("a", 1, "0000000000000001"), _span("a", 2, "0000000000000002")])
            with pytest.raises(IntegrityError):   # before 0005: one id once in the whole table
                with connection.begin_nested():
                    connection.execute(insert(SPAN), _span("b", 1, "0000000000000001"))
        old.dispose()
        engine = get_engine(url)   # migrates to the newest revision
        with engine.begin() as connection:
            assert connection.execute(select(SPAN.c.instance_id, SPAN.c.seq, SPAN.c.span_id)
                                      .order_by(SPAN.c.id)).all() == [("a", 1, "0000000000000001"),
                                                                      ("a", 2, "0000000000000002")]
            connection.execute(insert(SPAN), _span("b", 1, "0000000000000001"))
        with pytest.raises(IntegrityError):
            with engine.begin() as connection:
                connection.execute(insert(SPAN), _span("a", 3, "0000000000000002"))

    if store == "sqlite":
        check(f"sqlite:///{tmp_path / 'old.db'}")
    else:
        with fresh_postgres_database() as url:
            check(url)


def test_instance_ids_are_time_ordered_version_7_uuids():
    """Instance ids sort in creation order (so new rows and their spans' index entries append to
    each B-tree) and stay unique and random below the millisecond."""
    import time
    import uuid

    from scopeflow.engine.models import new_instance_id

    before = time.time_ns() // 1_000_000
    ids = [new_instance_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert len(set(ids)) == 2000 and all(len(i) == 36 for i in ids)
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    assert all(before <= u.int >> 80 <= after for u in parsed)
    millis = [u.int >> 80 for u in parsed]
    assert millis == sorted(millis), "ids of later instances never sort before earlier ones' milliseconds"
    assert len({u.int & (1 << 62) - 1 for u in parsed}) == 2000, "the random part differs"
