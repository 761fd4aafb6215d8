"""publication requests pin what their approval would publish: process version, rule decisions, forms

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # null on requests submitted before: their approval checks the pinned draft only, as it did then
    op.add_column("publication_request", sa.Column("publishes", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("publication_request", "publishes")
