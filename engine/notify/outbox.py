"""The notification outbox: a message is written in the transaction of what caused it, in each
recipient's notification centre, with one delivery per channel (the log, and each of the tenant's
webhooks that wants the topic) and a job per delivery. Delivery happens later, by those jobs, so a
slow or failing webhook never holds up or rolls back the escalation (or anything else) that
published the message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, or_, select
from sqlalchemy.orm import Session

from engine.jobs.queue import enqueue
from engine.store.models import Delivery, Notification, OutboxMessage, Tenant, Webhook

DELIVER = "deliver"

# Built once (Core, on the tables): publishing is on the escalation's hot path.
_MESSAGE = insert(OutboxMessage.__table__).returning(OutboxMessage.__table__.c.id)
_DELIVERY = insert(Delivery.__table__).returning(Delivery.__table__.c.id)
_NOTIFICATION = insert(Notification.__table__)
_webhook, _tenant = Webhook.__table__.c, Tenant.__table__.c
# the bank's own webhooks, and the province's, which oversees every bank: one round trip
_HOOKS = select(_webhook.id, _webhook.topics).where(
    _webhook.active.is_(True),
    or_(
        _webhook.tenant_id == bindparam("tenant_id"),
        _webhook.tenant_id == select(_tenant.parent_id).where(_tenant.id == bindparam("tenant_id")).scalar_subquery(),
    ),
)


def wants(topics: list[str], topic: str) -> bool:
    """A webhook's topics are prefixes ("escalation." takes every level); none means everything."""
    return not topics or any(topic == t or topic.startswith(t.rstrip(".") + ".") for t in topics)


def publish(
    session: Session,
    now: datetime,
    *,
    tenant_id: int | None,
    topic: str,
    recipients: list[int],
    payload: dict[str, Any],
) -> int:
    """Write a message and queue its deliveries; returns the message id."""
    message_id = session.execute(
        _MESSAGE,
        {
            "tenant_id": tenant_id,
            "topic": topic,
            "recipients": sorted(set(recipients)),
            "payload": payload,
            "created_at": now,
        },
    ).scalar_one()
    if recipients:  # each recipient's notification centre lists it
        listed = [{"user_id": user, "message_id": message_id, "created_at": now} for user in sorted(set(recipients))]
        session.execute(_NOTIFICATION, listed)
    hooks = session.execute(_HOOKS, {"tenant_id": tenant_id}).all() if tenant_id is not None else []
    channels: list[tuple[str, int | None]] = [("log", None)]
    channels += [("webhook", hook.id) for hook in hooks if wants(list(hook.topics or []), topic)]
    for channel, webhook_id in channels:
        delivery_id = session.execute(
            _DELIVERY,
            {
                "message_id": message_id,
                "channel": channel,
                "webhook_id": webhook_id,
                "status": "pending",
                "attempts": 0,
            },
        ).scalar_one()
        enqueue(session, DELIVER, now, now, tenant_id=tenant_id, payload={"delivery_id": delivery_id})
    return message_id
