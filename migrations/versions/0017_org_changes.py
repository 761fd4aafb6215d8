"""org changes: the append-only, hash-chained trail of organisation and configuration changes (权限与配置变更留痕)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from engine.store.audit_guards import create_audit_guards, drop_audit_guards
from engine.store.types import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_change_head",
        sa.Column("chain", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_org_change_head")),
    )
    op.create_table(
        "org_change",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["app_user.id"], name=op.f("fk_org_change_actor_id_app_user")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_org_change_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_change")),
    )
    with op.batch_alter_table("org_change", schema=None) as batch_op:
        batch_op.create_index("ix_org_change_at", ["at", "id"], unique=False)
        batch_op.create_index("ix_org_change_chain", ["tenant_id", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_org_change_subject"), ["subject"], unique=False)
    create_audit_guards("org_change")


def downgrade() -> None:
    drop_audit_guards("org_change")
    with op.batch_alter_table("org_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_change_subject"))
        batch_op.drop_index("ix_org_change_chain")
        batch_op.drop_index("ix_org_change_at")
    op.drop_table("org_change")
    op.drop_table("org_change_head")
