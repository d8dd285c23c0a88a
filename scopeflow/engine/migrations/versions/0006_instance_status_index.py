"""instance: drop the index on status alone; the (status, wake_at) index serves every query on status

Each index costs a B-tree page written at every insert and two at every status change; this one
duplicated the leading column of ix_instance_status_wake.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_instance_status", table_name="instance")


def downgrade() -> None:
    op.create_index("ix_instance_status", "instance", ["status"], unique=False)
