"""the notification centre: each outbox message in each recipient's list, read or not

Messages published before this revision are not listed: months of old escalations would arrive
unread at once.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 11:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("read_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox_message.id"], name=op.f("fk_notification_message_id_outbox_message")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_notification_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_message_id"), ["message_id"], unique=False)
        batch_op.create_index("ix_notification_user_id_id", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_user_id_id")
        batch_op.drop_index(batch_op.f("ix_notification_message_id"))
    op.drop_table("notification")
