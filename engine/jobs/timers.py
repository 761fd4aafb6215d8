"""Firing due BPMN timers: one pass over the instances whose earliest timer is due.

SpiffWorkflow only notices that time passed when asked (``refresh_timers``), so each instance
stores the due time of its earliest waiting timer (``next_timer_at``, indexed) and a pass picks the
due ones. Each instance is handled under its lock in its own transaction; a second node that picked
the same instance finds nothing due once the first committed, so a timer fires exactly once. On
PostgreSQL an instance another node holds is skipped (``SKIP LOCKED``) instead of waited for.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from engine.errors import Conflict, NotFound
from engine.services.execution import RUNNING, Execution
from engine.services.principal import Principal
from engine.store.models import ProcessInstance

if TYPE_CHECKING:
    from engine.container import CreditFlow

BATCH = 200


def fire_due_timers(platform: CreditFlow, now: datetime | None = None, limit: int = BATCH) -> int:
    """Fire every timer due by ``now``; returns how many instances moved on."""
    now = now or platform.clock.now()
    with platform.db.transaction() as session:
        due = list(
            session.scalars(
                select(ProcessInstance.id)
                .where(ProcessInstance.status == RUNNING, ProcessInstance.next_timer_at <= now)
                .order_by(ProcessInstance.next_timer_at)
                .limit(limit)
            )
        )
    fired = 0
    for instance_id in due:
        names: list[str] = []
        try:
            platform.instances.change(
                Principal.system(), instance_id, lambda e, names=names: _fire(e, now, names), skip_locked=True
            )
        except (Conflict, NotFound):
            continue  # held by another node, changed or gone: the next pass sees its new state
        fired += bool(names)
    return fired


def _fire(execution: Execution, now: datetime, fired: list[str]) -> None:
    """Fire what is due; leave the instance untouched when another node already did."""
    instance = execution.instance
    if instance.status != RUNNING or instance.next_timer_at is None or instance.next_timer_at > now:
        return
    names = [e.name for e in execution.workflow.waiting_events() if e.event_type.endswith("TimerEventDefinition")]
    fired.extend(names)
    execution.journal.record("timer_fired", actor=False, timers=names, due=instance.next_timer_at.isoformat())

    def refresh() -> None:
        # a fired boundary timer is READY beside the task it interrupts; the engine steps of
        # ``run`` then cancel that task and take the timer's path (two passes, as SpiffWorkflow needs)
        execution.workflow.refresh_timers()
        execution.workflow.do_engine_steps()

    execution.run(refresh)
