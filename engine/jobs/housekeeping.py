"""Housekeeping (数据清理): the nightly job that deletes what has served its purpose, so the tables a
request reads do not grow with every day of 68,000 users' work.

What goes, and after how long (settings): idempotency keys (``idempotency_days``: a network retry
comes within minutes, not months); notifications, read or not, and delivered or dropped deliveries
with the messages nothing refers to any more (``notification_days``); sign-outs of tokens that have expired
anyway. Nothing an auditor or a loan file needs is touched: instances, tasks, audit trails, documents,
archives, escalations and both change trails stay. The job runs at 02:30 Beijing time and, before it
sweeps, queues its next night (unless another node's already did: two nodes starting at once queue
one each, and the nights after hold one); each node's scheduler makes sure one is queued when it
starts. A night whose sweep fails its last retry stays as an incident for someone to look at; the
nights after it run all the same.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.jobs.queue import AcquiredJob, enqueue
from engine.store.models import Delivery, IdempotencyKey, Job, Notification, OutboxMessage, RevokedToken

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)
HOUSEKEEPING = "housekeeping"
RUN_AT = time(2, 30)  # Beijing: after the day's work, before the branches open
ZONE = ZoneInfo("Asia/Shanghai")
FINISHED_DELIVERIES = ("delivered", "dropped")  # failed ones stay: an incident may still retry them


@dataclass(frozen=True)
class Swept:
    idempotency_keys: int
    notifications: int
    deliveries: int
    messages: int
    revoked_tokens: int


def next_run(now: datetime) -> datetime:
    """The next 02:30 in Beijing after ``now``, in UTC."""
    local = now.astimezone(ZONE)
    at = datetime.combine(local.date(), RUN_AT, tzinfo=ZONE)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), RUN_AT, tzinfo=ZONE)
    return at.astimezone(now.tzinfo)


def ensure_scheduled(platform: CreditFlow) -> None:
    """Queue tonight's run unless one is queued (a second one, from two nodes starting at once, only
    finds nothing left to delete)."""
    now = platform.clock.now()
    with platform.db.transaction(write=True) as session:
        _queue_a_night(session, now)


def _queue_a_night(session: Session, now: datetime, running: int | None = None) -> None:
    """Queue the next 02:30 unless a run other than ``running`` is waiting; a night that failed its
    last retry (an incident) waits for nobody and does not count."""
    waiting = select(Job.id).where(Job.kind == HOUSEKEEPING, Job.retries_left > 0, Job.id != (running or 0))
    if session.scalar(waiting.limit(1)) is None:
        enqueue(session, HOUSEKEEPING, next_run(now), now)


def sweep(session: Session, settings: Settings, now: datetime) -> Swept:
    """Delete what has served its purpose as of ``now``, in the caller's transaction."""
    keys_before = now - timedelta(days=settings.idempotency_days)
    kept_after = now - timedelta(days=settings.notification_days)
    keys = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < keys_before))
    # read or not: an integration account never opens its list, nor does everybody
    notifications = session.execute(delete(Notification).where(Notification.created_at < kept_after))
    deliveries = session.execute(
        delete(Delivery).where(
            Delivery.status.in_(FINISHED_DELIVERIES),
            Delivery.message_id.in_(select(OutboxMessage.id).where(OutboxMessage.created_at < kept_after)),
        )
    )
    messages = session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.created_at < kept_after,
            ~exists().where(Delivery.message_id == OutboxMessage.id),
            ~exists().where(Notification.message_id == OutboxMessage.id),
        )
    )
    tokens = session.execute(delete(RevokedToken).where(RevokedToken.expires_at < now))
    return Swept(*(int(r.rowcount or 0) for r in (keys, notifications, deliveries, messages, tokens)))


def housekeep(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:
    """The ``housekeeping`` job: tomorrow night's job, committed first so that a failing sweep cannot
    stop the nights after it, then tonight's sweep."""
    with platform.db.transaction(write=True) as session:
        _queue_a_night(session, now, running=job.id)
    with platform.db.transaction(write=True) as session:
        platform.jobs.finish(session, job)
        swept = sweep(session, platform.settings, now)
    log.info("housekeeping: %s", ", ".join(f"{count} {what}" for what, count in asdict(swept).items()))
