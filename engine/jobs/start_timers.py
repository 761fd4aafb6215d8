"""Timer start events: processes that start themselves on a date, after a duration, or on a cycle.

SpiffWorkflow starts no instance by itself. In an instance it has started, a timer start event just
waits, and a cycle start event sends one more token through that same instance at every occurrence.
So deploy registers one ``start_timer`` job per timer start event of the new version, due at its
next occurrence, and drops the jobs of older versions: only the newest version starts instances.
The job starts an instance in the same transaction as its fence (exactly once), with that start
event already fired, and queues the cycle's next occurrence.

Missed occurrences are coalesced, like Quartz's "reschedule next with remaining count": after an
outage, one pass starts ONE catch-up instance, the missed occurrences count as used, and the next
job is due at the next future occurrence. A scheduled credit process (a portfolio check, a report)
gains nothing from a burst of identical instances, and an anchored cycle never runs past its last
occurrence.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.task import Task
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput
from engine.jobs.queue import AcquiredJob, enqueue
from engine.runtime.timer_events import timer_start_events
from engine.services.principal import Principal
from engine.services.spec_cache import LoadedDefinition
from engine.store.audit import Journal
from engine.store.models import Job, ProcessDefinition

if TYPE_CHECKING:
    from engine.container import CreditFlow

START_TIMER = "start_timer"
LONG_AGO = datetime.min.replace(tzinfo=UTC).isoformat()


def schedule_start_timers(session: Session, definition: ProcessDefinition, spec: Any, now: datetime) -> None:
    """Deploy of a new version: drop the older versions' start timers and register this one's.

    A node already firing a dropped job finds it gone at its fence and rolls back.
    """
    stale = [
        job_id
        for job_id, payload in session.execute(select(Job.id, Job.payload).where(Job.kind == START_TIMER))
        if payload.get("key") == definition.key
    ]
    if stale:
        session.execute(delete(Job).where(Job.id.in_(stale)))
    for event in timer_start_events(spec):
        expression = _literal(event)
        first = _first_occurrence(event.event_definition, expression, now)
        if first is None:  # a date that passed before this deployment
            continue
        due_at, repetitions = first
        enqueue(
            session,
            START_TIMER,
            due_at,
            now,
            tenant_id=definition.tenant_id,
            payload={
                "definition_id": definition.id,
                "key": definition.key,
                "event": event.bpmn_id,
                "expression": expression,
                "repetitions": repetitions,
            },
        )


def fire_start_timer(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:
    """Start one instance for the occurrence(s) due, then queue the cycle's next future occurrence."""
    payload = job.payload
    with platform.db.transaction(write=True) as session:
        platform.jobs.finish(session, job)
        if platform.db.rows.definition_id(session, payload["key"]) != payload["definition_id"]:
            # a newer version was deployed while another node fired this job and queued its next
            # occurrence past that deploy's cancel: the newer version's own job starts instances
            return
        definition = platform.specs.get(session, payload["definition_id"])
        event = next(s for s in timer_start_events(definition.spec) if s.bpmn_id == payload["event"])
        missed, following = _following(event.event_definition, payload["expression"], job.due_at, now)
        left = payload["repetitions"]
        if left is not None:
            missed = min(missed, left - 1)  # a bounded cycle cannot miss more occurrences than it has
            left -= 1 + missed
        _start(platform, session, definition, job, event, missed)
        if following is not None and (left is None or left > 0):
            enqueue(
                session, START_TIMER, following, now, tenant_id=job.tenant_id, payload={**payload, "repetitions": left}
            )


def _start(
    platform: CreditFlow,
    session: Session,
    definition: LoadedDefinition,
    job: AcquiredJob,
    event: StartEvent,
    missed: int,
) -> None:
    """Start an instance inside the job's transaction, with this start event already fired."""

    def fired(workflow: BpmnWorkflow, journal: Journal) -> None:
        for task in workflow.get_tasks(spec_class=StartEvent):
            if task.task_spec is event:
                _mark_fired(task)
            else:  # as in BPMN, only the start event that fired starts this instance
                task.cancel()
        journal.record(
            "timer_fired",
            bpmn_id=event.bpmn_id,
            actor=False,
            name=event.event_definition.name,
            due=job.due_at.isoformat(),
            missed=missed,
        )

    platform.instances.start_in(session, Principal.system(), definition, tenant_id=job.tenant_id, prepare=fired)


def _mark_fired(task: Task) -> None:
    """The job is this start event's firing: the new instance must not wait for it again.

    A date or duration start event honours the ``event_fired`` flag. A cycle ignores it (marked so,
    it completes without passing its token on), so it gets one last occurrence, due long ago: it
    fires at once, passes the token on, and has none left.
    """
    if isinstance(task.task_spec.event_definition, CycleTimerEventDefinition):
        task.internal_data["event_value"] = {"cycles": 1, "next": LONG_AGO, "duration": 0}
    else:
        task.internal_data["event_fired"] = True


def _literal(event: StartEvent) -> str:
    """The timer's ISO 8601 text: before any instance exists there is no data to evaluate against."""
    source = (event.event_definition.expression or "").strip()
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, str):
        raise InvalidInput(
            f"timer start event {event.bpmn_id!r} needs an ISO 8601 literal, not the expression {source!r}",
            [{"field": "files", "message": f"{event.bpmn_id}: a timer start event cannot use instance data"}],
        )
    return value


def _first_occurrence(
    definition: TimerEventDefinition, expression: str, now: datetime
) -> tuple[datetime, int | None] | None:
    """The first occurrence at or after ``now`` and how many there are from it on (None: no end)."""
    if isinstance(definition, CycleTimerEventDefinition):
        count, first, period = _cycle(expression, now)
        if first < now:  # an anchored cycle already running: join it at its next occurrence
            passed = -((first - now) // period)
            first += passed * period
            count = None if count is None else count - passed
        return (first, count) if count is None or count > 0 else None
    if isinstance(definition, DurationTimerEventDefinition):  # counted from the deployment
        return now + _duration(expression, now), 1
    at = TimerEventDefinition.parse_time_or_duration(expression)
    if not isinstance(at, datetime):
        raise InvalidInput(f"timer date {expression!r} is not a date", [{"field": "files", "message": expression}])
    return (at, 1) if at >= now else None


def _following(
    definition: TimerEventDefinition, expression: str, due: datetime, now: datetime
) -> tuple[int, datetime | None]:
    """How many later occurrences also passed by ``now`` (coalesced into this firing), and the
    next one after ``now`` (None: the timer fires once)."""
    if not isinstance(definition, CycleTimerEventDefinition):
        return 0, None
    period = _cycle(expression, due)[2]
    missed = (now - due) // period
    return missed, due + (missed + 1) * period


MIN_CYCLE = timedelta(minutes=1)  # a start timer of R/PT0.001S started twenty applications a second


def _cycle(expression: str, now: datetime) -> tuple[int | None, datetime, timedelta]:
    """(occurrences, None without end; first occurrence; period) of an ISO 8601 repeating interval.

    SpiffWorkflow starts an unanchored cycle (``R/PT1H``) one period after its wall clock's now; a
    start timer counts from the deployment, then from each occurrence.
    """
    parts = expression.upper().replace("--", "/").split("/")
    if len(parts) == 2:
        period = _duration(parts[1], now)
        count, first = int(parts[0][1:] or -1), now + period
    else:
        count, first, period = TimerEventDefinition.parse_iso_recurring_interval(expression)
    if period < MIN_CYCLE:
        raise InvalidInput(
            f"timer cycle {expression!r} repeats more often than once a minute",
            [{"field": "files", "message": f"{expression}: the period must be at least PT1M"}],
        )
    return (None if count < 0 else count), first, period


def _duration(expression: str, start: datetime) -> timedelta:
    return TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(expression), start)
