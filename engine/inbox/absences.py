"""Who covers an absent person's work (休假代理), as the inbox and the assignment read it.

While a person's absence is in force (``starts_at <= now < ends_at`` on the injectable clock), the
tasks assigned to them stay theirs but their substitute sees and works them (the ``covering``
view), and new personal work that would go to them (sticky work, a return, a supervisor's assign)
goes to the substitute instead. Nothing is moved when an absence is set or ends: the absent
person's tasks are back in their own inbox the moment it ends, and what was given to the substitute
stays with the substitute. Segregation of duties is not lifted: a task the substitute is barred
from (``task_exclusion``) is not covered and waits for the pool and the supervisor as before.
A committee member's own ballot is never covered: a vote is the member's own.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from engine.store.models import User, UserAbsence


def in_force(now: datetime) -> ColumnElement[bool]:
    return and_(UserAbsence.starts_at <= now, UserAbsence.ends_at > now)


def covered_by(session: Session, user_id: int | None, now: datetime) -> dict[int, str]:
    """The people ``user_id`` covers for now: id -> username (to mark their tasks in an inbox). Read
    once per request: almost always nobody, and then the inbox query has no covering clause at all."""
    if user_id is None:
        return {}
    rows = session.execute(
        select(User.id, User.username)
        .join(UserAbsence, UserAbsence.user_id == User.id)
        .where(UserAbsence.substitute_id == user_id, in_force(now))
    )
    return {user_id: username for user_id, username in rows}


def stand_in(session: Session, user_id: int, now: datetime, barred: Collection[int] = ()) -> int:
    """Who gets personal work meant for ``user_id`` now: their substitute while they are away (and
    active, and not barred from the work), else themselves."""
    substitute = session.scalar(
        select(UserAbsence.substitute_id)
        .join(User, User.id == UserAbsence.substitute_id)
        .where(UserAbsence.user_id == user_id, in_force(now), User.is_active.is_(True))
    )
    return substitute if substitute is not None and substitute not in barred else user_id
