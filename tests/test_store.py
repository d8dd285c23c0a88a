"""The store: migrations build exactly the schema the ORM models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scopeflow.engine.db import get_engine
from scopeflow.engine.models import Base


def test_migrations_match_the_models(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
