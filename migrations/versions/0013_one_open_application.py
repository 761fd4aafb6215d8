"""one open application per borrower and product in a bank; the application list's index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OPEN = "status IN ('running', 'error')"


def upgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("application_key", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "uq_process_instance_open_application",
            ["tenant_id", "application_key"],
            unique=True,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
        )
        batch_op.create_index("ix_process_instance_tenant_created", ["tenant_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_index("ix_process_instance_tenant_created")
        batch_op.drop_index("uq_process_instance_open_application")
        batch_op.drop_column("application_key")
