"""LPR announcements entered by the province's administrators

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 15:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.types import UtcDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lpr_quote",
        sa.Column("effective", sa.Date(), nullable=False),
        sa.Column("lpr_1y_bp", sa.Integer(), nullable=False),
        sa.Column("lpr_5y_bp", sa.Integer(), nullable=False),
        sa.Column("entered_by_id", sa.Integer(), nullable=True),
        sa.Column("entered_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["entered_by_id"], ["app_user.id"], name=op.f("fk_lpr_quote_entered_by_id_app_user")),
        sa.PrimaryKeyConstraint("effective", name=op.f("pk_lpr_quote")),
    )


def downgrade() -> None:
    op.drop_table("lpr_quote")
