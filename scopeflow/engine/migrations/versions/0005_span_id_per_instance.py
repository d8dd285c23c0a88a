"""span: a span id is unique within its instance, not across the whole table

The table-wide unique index on span_id put each stored span on a random page of that index (about
twenty random pages written per checkpoint of a 20-task start, most of the WAL it wrote), and it
refused an imported trace whose span ids an earlier import already holds under another instance.
Unique (instance_id, span_id) keeps what the evidence needs (parent links resolve within an
instance) with an instance's entries side by side.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# SQLite keeps 0001's constraints unnamed: the batch copy names them by this convention to drop one.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("span", naming_convention=_NAMING, recreate="always") as batch:
            batch.drop_constraint("uq_span_span_id", type_="unique")
            batch.create_unique_constraint("uq_span_instance_span", ["instance_id", "span_id"])
        return
    op.drop_constraint(_unique_on(["span_id"]), "span", type_="unique")
    op.create_unique_constraint("uq_span_instance_span", "span", ["instance_id", "span_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("span", naming_convention=_NAMING, recreate="always") as batch:
            batch.drop_constraint("uq_span_instance_span", type_="unique")
            batch.create_unique_constraint("uq_span_span_id", ["span_id"])
        return
    op.drop_constraint("uq_span_instance_span", "span", type_="unique")
    op.create_unique_constraint("uq_span_span_id", "span", ["span_id"])


def _unique_on(columns: list[str]) -> str:
    """The database's name for 0001's unnamed unique constraint on ``columns`` (PostgreSQL: span_span_id_key)."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("span"):
        if constraint["column_names"] == columns and constraint["name"]:
            return constraint["name"]
    raise RuntimeError(f"span has no unique constraint on {columns}")
