"""span: drop three indexes no query uses (every span query is by instance, served by the unique
(instance_id, seq) index); each one cost a B-tree insert per stored span

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_span_instance_id", table_name="span")      # the (instance_id, seq) index leads with it
    op.drop_index("ix_span_bpmn_element_id", table_name="span")  # always filtered by instance too
    op.drop_index("ix_span_trace", table_name="span")            # nothing looks spans up by trace


def downgrade() -> None:
    op.create_index("ix_span_trace", "span", ["trace_id"], unique=False)
    op.create_index("ix_span_bpmn_element_id", "span", ["bpmn_element_id"], unique=False)
    op.create_index("ix_span_instance_id", "span", ["instance_id"], unique=False)
