"""archive timestamp renewals: when the evidence expires, how often it was renewed; a renewal check per archive

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:40:00.000000

Archives made before this revision get an ``archive_renew`` job due at once: it reads the bag, records
when its timestamp's TSA certificate expires, and schedules the renewal ahead of that.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import engine.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_JOB = sa.table(
    "job",
    sa.column("kind", sa.String),
    sa.column("tenant_id", sa.Integer),
    sa.column("instance_id", sa.String),
    sa.column("payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")),
    sa.column("due_at", engine.store.types.UtcDateTime()),
    sa.column("retries_left", sa.Integer),
    sa.column("attempts", sa.Integer),
    sa.column("version", sa.Integer),
    sa.column("created_at", engine.store.types.UtcDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("archive_package", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("evidence_expires_at", engine.store.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("renewals", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("renewed_at", engine.store.types.UtcDateTime(timezone=True), nullable=True))
    connection = op.get_bind()
    archives = connection.execute(sa.text("SELECT instance_id, tenant_id FROM archive_package")).all()
    now = datetime.now(UTC)
    if archives:
        op.bulk_insert(
            _JOB,
            [
                {
                    "kind": "archive_renew",
                    "tenant_id": tenant_id,
                    "instance_id": instance_id,
                    "payload": {},
                    "due_at": now,
                    "retries_left": 5,  # engine.jobs.queue.RETRIES
                    "attempts": 0,
                    "version": 0,
                    "created_at": now,
                }
                for instance_id, tenant_id in archives
            ],
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM job WHERE kind = 'archive_renew'"))
    with op.batch_alter_table("archive_package", schema=None) as batch_op:
        batch_op.drop_column("renewed_at")
        batch_op.drop_column("renewals")
        batch_op.drop_column("evidence_expires_at")
