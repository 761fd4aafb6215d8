"""publication requests (双人复核): one product manager submits a draft, another approves it

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from engine.store.types import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

SUBMITTED = "status = 'submitted'"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "publication_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("draft", JSON, nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=True),
        sa.Column("compared_to_version", sa.Integer(), nullable=True),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("submitted_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["base_version_id"],
            ["product_version.id"],
            name=op.f("fk_publication_request_base_version_id_product_version"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["app_user.id"], name=op.f("fk_publication_request_decided_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(["product_id"], ["product.id"], name=op.f("fk_publication_request_product_id_product")),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"], ["app_user.id"], name=op.f("fk_publication_request_submitted_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_publication_request_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publication_request")),
    )
    with op.batch_alter_table("publication_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_publication_request_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_publication_request_product_id_id", ["product_id", "id"], unique=False)
        batch_op.create_index(
            "uq_publication_request_open",
            ["product_id"],
            unique=True,
            postgresql_where=sa.text(SUBMITTED),
            sqlite_where=sa.text(SUBMITTED),
        )


def downgrade() -> None:
    with op.batch_alter_table("publication_request", schema=None) as batch_op:
        batch_op.drop_index("uq_publication_request_open")
        batch_op.drop_index("ix_publication_request_product_id_id")
        batch_op.drop_index(batch_op.f("ix_publication_request_tenant_id"))
    op.drop_table("publication_request")
