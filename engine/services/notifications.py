"""The notification centre (消息中心): what the platform told a user (an escalation of their work, a
step returned or handed to them, how their application ended), newest first, read or not.

Every user reads their own notifications and nobody else's; the messages themselves are written by
``engine.notify.outbox.publish`` in the transaction of what caused them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from engine.errors import InvalidInput, NotFound
from engine.notify.summaries import summary
from engine.services.principal import Principal
from engine.store import keyset
from engine.store.models import Notification, OutboxMessage

if TYPE_CHECKING:
    from engine.container import CreditFlow

NEWEST_FIRST = [(Notification.id, True, False)]
CURSOR = "notifications"


@dataclass(frozen=True)
class NotificationView:
    id: int
    topic: str
    summary: str
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


@dataclass(frozen=True)
class NotificationPage:
    items: list[NotificationView]
    unread: int  # the user's unread notifications, whatever the filters
    next_cursor: str | None


class NotificationService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(
        self,
        principal: Principal,
        *,
        unread: bool = False,
        topic: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> NotificationPage:
        """The user's notifications, newest first; ``topic`` is a prefix ("escalation." for every level)."""
        me = _user(principal)
        with self.platform.db.transaction() as session:
            stmt = (
                select(Notification, OutboxMessage)
                .join(OutboxMessage, OutboxMessage.id == Notification.message_id)
                .where(Notification.user_id == me)
            )
            if unread:
                stmt = stmt.where(Notification.read_at.is_(None))
            if topic:
                stmt = stmt.where(OutboxMessage.topic.startswith(topic.rstrip("."), autoescape=True))
            if cursor is not None:
                stmt = stmt.where(keyset.after(NEWEST_FIRST, keyset.parse_cursor(CURSOR, NEWEST_FIRST, cursor)))
            rows = session.execute(stmt.order_by(*keyset.order_by(NEWEST_FIRST)).limit(limit + 1)).all()
            more, rows = len(rows) > limit, rows[:limit]
            count = select(func.count()).where(Notification.user_id == me, Notification.read_at.is_(None))
            items = [
                NotificationView(
                    n.id, m.topic, summary(m.topic, m.payload or {}), m.payload or {}, n.created_at, n.read_at
                )
                for n, m in rows
            ]
            after = keyset.cursor_of(CURSOR, NEWEST_FIRST, rows[-1][0]) if more else None
            return NotificationPage(items, session.scalar(count) or 0, after)

    def mark_read(self, principal: Principal, notification_id: int) -> None:
        """Read once: the first reading's time stays."""
        me = _user(principal)
        with self.platform.db.transaction(write=True) as session:
            row = session.get(Notification, notification_id)
            if row is None or row.user_id != me:
                raise NotFound(f"notification {notification_id} does not exist")
            if row.read_at is None:
                row.read_at = self.platform.clock.now()

    def mark_all_read(self, principal: Principal) -> int:
        """Every unread notification of the user read now; how many there were."""
        me = _user(principal)
        with self.platform.db.transaction(write=True) as session:
            done = session.execute(
                update(Notification)
                .where(Notification.user_id == me, Notification.read_at.is_(None))
                .values(read_at=self.platform.clock.now())
            )
            return int(done.rowcount or 0)


def _user(principal: Principal) -> int:
    """Notifications are a person's (or an integration account's): the system has none."""
    if principal.user_id is None:
        raise InvalidInput("only a user has notifications", [{"field": "user", "message": "not a user"}])
    return principal.user_id
