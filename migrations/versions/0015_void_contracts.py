"""void contracts: a contract of an application that ended without the money moving is marked void;
documents are found by their SHA-256 (a copy handed in is checked against the stored one)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 11:30:00.000000

Contracts sealed before this revision stay as they are: voiding one writes its ``contract_voided``
event on the instance's hash-chained audit trail, which only the platform does, when the instance ends.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import engine.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voided_at", engine.store.types.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("void_reason", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_document_sha256", ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_index("ix_document_sha256")
        batch_op.drop_column("void_reason")
        batch_op.drop_column("voided_at")
