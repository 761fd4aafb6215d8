"""The notification outbox: a message is written in the transaction of what caused it, with one
delivery per channel (the log, and each of the tenant's webhooks that wants the topic) and a job
per delivery. Delivery happens later, by those jobs, so a slow or failing webhook never holds up
or rolls back the escalation (or anything else) that published the message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.jobs.queue import enqueue
from engine.store.models import Delivery, OutboxMessage, Tenant, Webhook

DELIVER = "deliver"


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
        insert(OutboxMessage)
        .values(tenant_id=tenant_id, topic=topic, recipients=sorted(set(recipients)), payload=payload, created_at=now)
        .returning(OutboxMessage.id)
    ).scalar_one()
    # the bank's own webhooks, and the province's, which oversees every bank
    owners = [tenant_id] if tenant_id is not None else []
    if tenant_id is not None:
        parent = session.scalar(select(Tenant.parent_id).where(Tenant.id == tenant_id))
        owners += [parent] if parent is not None else []
    hooks = session.scalars(select(Webhook).where(Webhook.active.is_(True), Webhook.tenant_id.in_(owners))).all()
    channels: list[tuple[str, int | None]] = [("log", None)]
    channels += [("webhook", hook.id) for hook in hooks if wants(list(hook.topics or []), topic)]
    for channel, webhook_id in channels:
        delivery_id = session.execute(
            insert(Delivery)
            .values(message_id=message_id, channel=channel, webhook_id=webhook_id, status="pending", attempts=0)
            .returning(Delivery.id)
        ).scalar_one()
        enqueue(session, DELIVER, now, now, tenant_id=tenant_id, payload={"delivery_id": delivery_id})
    return message_id
