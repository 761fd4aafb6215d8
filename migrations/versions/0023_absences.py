"""Out-of-office substitutes (休假代理): a person's leave and who covers their work meanwhile

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_absence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("substitute_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=True),
        sa.Column("set_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["set_by_id"], ["app_user.id"], name=op.f("fk_user_absence_set_by_id_app_user")),
        sa.ForeignKeyConstraint(
            ["substitute_id"], ["app_user.id"], name=op.f("fk_user_absence_substitute_id_app_user")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_user_absence_tenant_id_tenant")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_user_absence_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_absence")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_absence_user_id")),
    )
    with op.batch_alter_table("user_absence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_absence_substitute_id"), ["substitute_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_absence_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("user_absence")
