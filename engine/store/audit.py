"""The append-only, hash-chained audit trail of a process instance (``engine.store.hash_chain``).

Each event's hash covers the previous hash and a canonical JSON of the event, and the instance row
keeps the sequence number and hash of the newest event. Editing any event breaks its hash,
deleting one breaks the chain, and deleting the newest ones no longer matches the instance head.
The database also refuses UPDATE and DELETE on the table (triggers in the migration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.masking import mask_sensitive
from engine.runtime.workflow_state import plain_json
from engine.store.hash_chain import Link, chain_problems, link_hash
from engine.store.models import AuditEvent, ProcessInstance


def chain_hash(prev_hash: str, instance_id: str, seq: int, event: PendingEvent, created_at: datetime) -> str:
    body = {
        "instance_id": instance_id,
        "seq": seq,
        "type": event.event_type,
        "actor_id": event.actor_id,
        "task_id": event.task_id,
        "bpmn_id": event.bpmn_id,
        "payload": event.payload,
        "at": created_at.isoformat(),
    }
    return link_hash(prev_hash, body)


@dataclass
class PendingEvent:
    event_type: str
    actor_id: int | None = None
    task_id: str | None = None
    bpmn_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Journal:
    """Events of one unit of work, written with the state they describe."""

    actor_id: int | None
    events: list[PendingEvent] = field(default_factory=list)

    def record(
        self,
        event_type: str,
        *,
        task_id: str | None = None,
        bpmn_id: str | None = None,
        actor: bool = True,
        **payload: Any,
    ) -> None:
        self.events.append(
            PendingEvent(
                event_type, self.actor_id if actor else None, task_id, bpmn_id, mask_sensitive(plain_json(payload))
            )
        )

    def chain(self, instance: Any, now: datetime) -> list[dict[str, Any]]:
        """Chain the pending events onto the instance head; returns the rows to insert.

        The instance's ``audit_seq``/``audit_head`` move to the newest event, so they must be saved
        in the same transaction as the rows.
        """
        rows = []
        seq, head = instance.audit_seq, instance.audit_head
        for event in self.events:
            seq += 1
            digest = chain_hash(head, instance.id, seq, event, now)
            rows.append(
                {
                    "instance_id": instance.id,
                    "seq": seq,
                    "event_type": event.event_type,
                    "actor_id": event.actor_id,
                    "task_id": event.task_id,
                    "bpmn_id": event.bpmn_id,
                    "payload": event.payload,
                    "created_at": now,
                    "prev_hash": head,
                    "hash": digest,
                }
            )
            head = digest
        instance.audit_seq, instance.audit_head = seq, head
        self.events.clear()
        return rows


@dataclass(frozen=True)
class VerifyResult:
    instance_id: str
    ok: bool
    events: int
    problems: list[str]


def verify_chain(session: Session, instance: ProcessInstance) -> VerifyResult:
    """Recompute the chain from the first event and compare it with the instance head."""
    rows = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance.id).order_by(AuditEvent.seq))
    links = (
        Link(
            row.seq,
            row.prev_hash,
            row.hash,
            chain_hash(
                row.prev_hash,
                instance.id,
                row.seq,
                PendingEvent(row.event_type, row.actor_id, row.task_id, row.bpmn_id, row.payload),
                row.created_at,
            ),
            row.event_type,
        )
        for row in rows
    )
    count, problems = chain_problems(links, instance.audit_seq, instance.audit_head, "event", "the instance recorded")
    return VerifyResult(instance.id, not problems, count, problems)
