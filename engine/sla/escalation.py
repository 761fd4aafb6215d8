"""The escalation ladder: yellow (提醒), orange (超时) and red (严重超时) for every task's step clock
and every application's process clock, each happening exactly once.

A clock with thresholds has one ``escalate`` job, due at its next level. The job runs under the
instance lock and inside the job's completion fence; the ``escalation`` row (unique per clock and
level) is the record that the level happened, and the next level's job is written in the same
transaction. After an outage one pass works through every level that fell due, in order.

What each level does (the product config may move the thresholds, not the actions):
- task yellow: tell the assignee (or, unclaimed, the pool it is offered to);
- task orange: tell them and the supervisors of the task's role (支行行长 for a 客户经理, …; the next
  role up when nobody active holds it, the administrators when nobody up the chain does);
- task red: move the task to the supervisors' pool, raise its priority, tell everyone involved (with
  nobody up the chain it stays where it is);
- process yellow/orange/red: tell the officer who took the application, then the branch heads,
  then the head office's senior approvers, and raise the priority of the application's open tasks.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, delete, insert, select, update
from sqlalchemy.orm import Session

from engine.inbox.assignment import administrators, holders, offer_unit
from engine.jobs.queue import AcquiredJob, cancel, enqueue
from engine.notify.outbox import publish
from engine.org.roles import ROLES
from engine.services.principal import Principal
from engine.sla.deadlines import Level
from engine.store.models import Escalation, HumanTask, TaskCandidate

if TYPE_CHECKING:
    from engine.container import CreditFlow

ESCALATE = "escalate"
TASK, PROCESS = "task", "process"
ORDER = (Level.YELLOW, Level.ORANGE, Level.RED)
RED_PRIORITY_RAISE = 30
PROCESS_RED_PRIORITY_RAISE = 20
PROCESS_ROLES = {Level.ORANGE: "branch_head", Level.RED: "senior_approver"}

# Built once (Core, on the table): every escalation runs them.
_escalation = Escalation.__table__.c
_REACHED = select(_escalation.level).where(
    _escalation.scope == bindparam("scope"), _escalation.subject_id == bindparam("subject_id")
)
_RECORD = insert(Escalation.__table__)


THRESHOLDS = ("warn_at", "due_at", "escalate_at")  # a clock's stored yellow, orange and red times


def threshold(subject: Any, level: Level) -> datetime | None:
    return {Level.YELLOW: subject.warn_at, Level.ORANGE: subject.due_at, Level.RED: subject.escalate_at}[level]


def schedule(
    session: Session, scope: str, subject: Any, instance: Any, now: datetime, *, after: Level | None = None
) -> None:
    """Queue the job of the clock's first level after ``after`` (all of them when None)."""
    for level in ORDER[ORDER.index(after) + 1 :] if after is not None else ORDER:
        at = threshold(subject, level)
        if at is not None:
            enqueue(
                session,
                ESCALATE,
                at,
                now,
                tenant_id=instance.tenant_id,
                instance_id=instance.id,
                task_id=subject.id if scope == TASK else None,
                payload={"scope": scope, "level": str(level)},
            )
            return


def unschedule_tasks(session: Session, task_ids: list[str]) -> None:
    if task_ids:
        cancel(session, ESCALATE, task_ids=task_ids)


def unschedule_process(session: Session, instance_id: str) -> None:
    cancel(session, ESCALATE, instance_id=instance_id)


def reached(session: Session, scope: str, subject_id: str) -> Level | None:
    """The highest level this clock has already reached."""
    levels = set(session.scalars(_REACHED, {"scope": scope, "subject_id": subject_id}))
    done = [level for level in ORDER if str(level) in levels]
    return done[-1] if done else None


def escalate(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:
    """The ``escalate`` job handler."""
    scope, level = job.payload["scope"], Level(job.payload["level"])
    with platform.instances.annotation(Principal.system(), job.instance_id or "", skip_locked=True) as (
        session,
        journal,
        instance,
    ):
        platform.jobs.finish(session, job)
        if scope == TASK:
            subject = platform.db.rows.task(session, job.task_id or "")
            if subject is None or subject.status != "ready" or subject.paused_at is not None:
                return  # closed or paused: a resume schedules the clock again
        else:
            subject = instance
            if instance.status not in ("running", "error"):  # a failed application still ages
                return
        at = threshold(subject, level)
        if at is None:
            return
        if at > now:  # the clock moved (resumed after a pause): come back when it is really due
            enqueue(
                session,
                ESCALATE,
                at,
                now,
                tenant_id=job.tenant_id,
                instance_id=job.instance_id,
                task_id=job.task_id,
                payload=job.payload,
            )
            return
        if reached(session, scope, subject.id) not in (None, *ORDER[: ORDER.index(level)]):
            return  # this level (or a higher one) already happened
        act = _task_actions if scope == TASK else _process_actions
        actions = act(session, subject, instance, level)
        session.execute(
            _RECORD,
            {
                "scope": scope,
                "subject_id": subject.id,
                "instance_id": instance.id,
                "tenant_id": instance.tenant_id,
                "level": str(level),
                "due_at": at,
                "created_at": now,
                "actions": actions,
            },
        )
        journal.record(
            "escalated",
            task_id=subject.id if scope == TASK else None,
            bpmn_id=subject.bpmn_id if scope == TASK else None,
            actor=False,
            scope=scope,
            level=str(level),
            due=at.isoformat(),
            **actions,
        )
        publish(
            session,
            now,
            tenant_id=instance.tenant_id,
            topic=f"escalation.{scope}.{level}",
            recipients=actions["notified"],
            payload={
                "scope": scope,
                "level": str(level),
                "instance_id": instance.id,
                "business_key": instance.business_key,
                "applicant_name": instance.applicant_name,
                "task_id": subject.id if scope == TASK else None,
                "step": subject.bpmn_id if scope == TASK else None,
                "step_name": subject.name if scope == TASK else None,
                "reached_at": at.isoformat(),
                **{k: v for k, v in actions.items() if k != "notified"},
            },
        )
        schedule(session, scope, subject, instance, now, after=level)


def _task_actions(session: Session, task: Any, instance: Any, level: Level) -> dict[str, Any]:
    pool = holders(session, task.tenant_id, task.role, task.org_unit_id) if task.role else []
    # whoever holds the task, and the owner who delegated it (it leaves them both at red)
    involved = [user for user in (task.assignee_id, task.owner_id) if user is not None] or pool
    actions: dict[str, Any] = {"notified": sorted(set(involved))}
    if level == Level.YELLOW:
        return actions
    above, target_unit, supervisors = _supervisors(session, task, instance)
    if above is None:  # nobody up the chain can take it: it stays, and the administrators hear of it
        actions["notified"] = sorted({*involved, *administrators(session, task.tenant_id)})
        actions["unstaffed"] = ROLES[task.role].escalates_to if task.role in ROLES else None
        return actions
    actions["notified"] = sorted({*involved, *supervisors})
    if level == Level.RED:
        priority = min(100, task.priority + RED_PRIORITY_RAISE)
        session.execute(
            update(HumanTask)
            .where(HumanTask.id == task.id)
            .values(
                role=above, org_unit_id=target_unit, assignee_id=None, owner_id=None, delegation=None, priority=priority
            )
        )
        session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == task.id))
        actions["reassigned"] = {
            "from_role": task.role,
            "from_assignee_id": task.assignee_id,
            "to_role": above,
            "to_org_unit_id": target_unit,
            "priority": priority,
        }
    return actions


def _supervisors(session: Session, task: Any, instance: Any) -> tuple[str | None, int | None, list[int]]:
    """The first role up the task's escalation chain (支行行长, then 分管行长, …) with an active holder
    where its work goes, that unit, and those holders; (None, None, []) when the chain is unstaffed
    (a branch head on leave must not leave red work in a pool nobody sees)."""
    role = ROLES[task.role].escalates_to if task.role in ROLES else None
    unit = task.org_unit_id or instance.org_unit_id
    seen: set[str] = set()
    while role is not None and role not in seen:
        seen.add(role)
        target = offer_unit(session, role, unit) if unit is not None else None
        found = holders(session, task.tenant_id, role, target)
        if found:
            return role, target, found
        role = ROLES[role].escalates_to if role in ROLES else None
    return None, None, []


def _process_actions(session: Session, _subject: Any, instance: Any, level: Level) -> dict[str, Any]:
    notified = [instance.started_by_id] if instance.started_by_id is not None else []
    for step in ORDER[1 : ORDER.index(level) + 1]:
        role = PROCESS_ROLES[step]
        unit = offer_unit(session, role, instance.org_unit_id) if instance.org_unit_id is not None else None
        notified += holders(session, instance.tenant_id, role, unit)
    actions: dict[str, Any] = {"notified": sorted(set(notified))}
    if level == Level.RED:
        open_tasks = HumanTask.instance_id == instance.id, HumanTask.status == "ready"
        raised = session.execute(
            update(HumanTask)
            .where(*open_tasks)
            .values(priority=_capped(HumanTask.priority + PROCESS_RED_PRIORITY_RAISE))
            .returning(HumanTask.id)
        ).all()
        actions["priority_raised"] = sorted(r.id for r in raised)
    return actions


def _capped(expression: Any) -> Any:
    return case((expression > 100, 100), else_=expression)
