"""a return's sender, step and reason on the reopened task; the requested amount on the application

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 11:00:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from engine.inbox.applicant import amount_fen

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("returned_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("returned_from", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("return_reason", sa.String(length=2000), nullable=True))
        batch_op.create_foreign_key("fk_human_task_returned_by_id_app_user", "app_user", ["returned_by_id"], ["id"])
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_fen", sa.BigInteger(), nullable=True))
    _backfill_amounts()


def _backfill_amounts() -> None:
    """Open applications get their amount from the data they were started with (the ``started`` audit
    event), so the inbox shows it for work under way; closed ones show none (their loan files have it)."""
    bind = op.get_bind()
    started = sa.text(
        "SELECT e.instance_id, e.payload FROM audit_event e JOIN process_instance i ON i.id = e.instance_id "
        "WHERE e.event_type = 'started' AND i.application_key IS NOT NULL AND i.status IN ('running', 'error')"
    )
    amounts = []
    for instance_id, payload in bind.execute(started):
        document = json.loads(payload) if isinstance(payload, str) else payload
        fen = amount_fen(((document or {}).get("data") or {}).get("amount"))
        if fen is not None:
            amounts.append({"fen": fen, "id": instance_id})
    if amounts:
        bind.execute(sa.text("UPDATE process_instance SET amount_fen = :fen WHERE id = :id"), amounts)


def downgrade() -> None:
    with op.batch_alter_table("process_instance", schema=None) as batch_op:
        batch_op.drop_column("amount_fen")
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.drop_constraint("fk_human_task_returned_by_id_app_user", type_="foreignkey")
        batch_op.drop_column("return_reason")
        batch_op.drop_column("returned_from")
        batch_op.drop_column("returned_by_id")
