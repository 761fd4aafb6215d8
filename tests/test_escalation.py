"""The escalation ladder through the job table: each (clock, level) exactly once, on time, after an
outage, with pauses; the job table's retries and incidents; several scheduler processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select, update

from engine.container import CreditFlow
from engine.errors import InvalidInput
from engine.inbox.queries import InboxQuery
from engine.jobs.queue import enqueue
from engine.jobs.scheduler import run_pass
from engine.services.principal import Principal
from engine.store.models import AuditEvent, Escalation, HumanTask, Incident, Job, OutboxMessage, ProcessInstance, User
from tests.conftest import bank_card, deploy, resident_id
from tests.test_product_runs import drive
from tests.test_products import applicant, catalog, local_application, principal_of  # noqa: F401 - fixture

SYSTEM = Principal.system()
LIMITS = {"time_limits": {"process": "P5D", "steps": {"main_investigation": "PT4H"}}}


def investigation(view: Any) -> Any:
    return next(t for t in view.tasks if t.bpmn_id == "main_investigation")


def escalations(platform: CreditFlow, subject_id: str) -> list[tuple[str, dict[str, Any]]]:
    with platform.db.transaction() as session:
        rows = session.scalars(select(Escalation).where(Escalation.subject_id == subject_id).order_by(Escalation.id))
        return [(r.level, r.actions) for r in rows]


def task_row(platform: CreditFlow, task_id: str) -> HumanTask:
    with platform.db.transaction() as session:
        return session.get(HumanTask, task_id)


def user_id(platform: CreditFlow, username: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def messages(platform: CreditFlow, topic_prefix: str) -> list[OutboxMessage]:
    with platform.db.transaction() as session:
        stmt = select(OutboxMessage).where(OutboxMessage.topic.startswith(topic_prefix)).order_by(OutboxMessage.id)
        return list(session.scalars(stmt))


def test_yellow_orange_red_each_once_with_their_actions(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    view = local_application(catalog, LIMITS)
    task = investigation(view)
    # 4 working hours from Tue 09:00 Beijing: 80 % is 3 h 12 min, across the lunch break: 13:42
    assert task.warn_at == datetime(2026, 12, 1, 5, 42, tzinfo=UTC)
    officer, head = user_id(catalog, "ly_officer"), user_id(catalog, "ly_branch_head")
    # the process clock: five working days of 7.5 hours, all still ahead
    assert catalog.instances.get(SYSTEM, view.instance.id).remaining_minutes == 5 * 450

    assert run_pass(catalog, task.warn_at - timedelta(minutes=1)).done == 0
    assert run_pass(catalog, task.warn_at).done >= 1
    assert escalations(catalog, task.id) == [("yellow", {"notified": [officer]})]
    assert run_pass(catalog, task.warn_at + timedelta(minutes=5)).acquired == 0  # each level once
    assert len(escalations(catalog, task.id)) == 1

    run_pass(catalog, task.due_at)
    orange = escalations(catalog, task.id)[1]
    assert orange == ("orange", {"notified": sorted([officer, head])})  # the assignee and the 支行行长

    run_pass(catalog, task.escalate_at)
    level, actions = escalations(catalog, task.id)[2]
    assert level == "red" and actions["reassigned"]["to_role"] == "branch_head"
    moved = task_row(catalog, task.id)
    assert (moved.role, moved.assignee_id, moved.priority) == ("branch_head", None, 80)
    pool = catalog.tasks.list(principal_of(catalog, "ly_branch_head"), InboxQuery(view="candidate")).items
    assert task.id in [v.task.id for v in pool]

    assert run_pass(catalog, task.escalate_at + timedelta(days=3)).done >= 0
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow", "orange", "red"]
    topics = [m.topic for m in messages(catalog, "escalation.task") if m.payload.get("task_id") == task.id]
    assert topics == ["escalation.task.yellow", "escalation.task.orange", "escalation.task.red"]
    audit = [e for e in catalog.instances.history(SYSTEM, view.instance.id) if e.event_type == "escalated"]
    assert [e.payload["level"] for e in audit if e.task_id == task.id] == ["yellow", "orange", "red"]
    assert catalog.instances.verify_audit(SYSTEM, view.instance.id).ok


def test_after_an_outage_one_pass_handles_every_missed_level_once(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    view = local_application(catalog, LIMITS)
    task = investigation(view)
    much_later = task.escalate_at + timedelta(hours=30)
    run_pass(catalog, much_later)
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow", "orange", "red"]
    # the process clock (5 working days) has not run out yet: its yellow comes days later
    assert escalations(catalog, view.instance.id) == []
    assert run_pass(catalog, much_later).acquired == 0
    run_pass(catalog, view.instance.escalate_at + timedelta(days=1))
    assert [level for level, _ in escalations(catalog, view.instance.id)] == ["yellow", "orange", "red"]
    assert [m.topic for m in messages(catalog, "escalation.process")][-1] == "escalation.process.red"


def test_completing_a_task_cancels_its_escalations(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    view = local_application(catalog, LIMITS)
    task = investigation(view)
    with catalog.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.task_id == task.id)) == 1
    catalog.instances.cancel(SYSTEM, view.instance.id, "客户撤回")
    with catalog.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.kind == "escalate")) == 0
    run_pass(catalog, task.escalate_at + timedelta(days=10))
    assert escalations(catalog, task.id) == [] and escalations(catalog, view.instance.id) == []


def test_a_paused_clock_neither_escalates_nor_ages_and_resumes_shifted(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    view = local_application(catalog, LIMITS)
    task = investigation(view)
    officer = principal_of(catalog, "ly_officer")
    catalog.clock.advance(timedelta(hours=1))  # 10:00 Beijing
    with pytest.raises(InvalidInput) as blank:  # what it waits for is on record
        catalog.tasks.pause(officer, task.id, "   ")
    assert blank.value.problems == [{"field": "reason", "message": "blank"}]
    paused = catalog.tasks.pause(officer, task.id, "等待客户补充流水")
    assert paused.task.paused_at == catalog.clock.now()
    run_pass(catalog, task.escalate_at + timedelta(hours=1))
    assert escalations(catalog, task.id) == []  # no yellow, orange or red while it waits
    catalog.clock.advance(timedelta(hours=2))  # 12:00 Beijing: two working hours paused
    waiting = catalog.tasks.get(officer, task.id)
    assert waiting.level == "none"
    assert waiting.remaining_minutes == 180  # frozen at the pause: 10:00–12:00 and 13:30–14:30
    resumed = catalog.tasks.resume(officer, task.id)
    assert resumed.task.paused_at is None and resumed.task.pauses
    # the whole clock moved by the two paused working hours (10:00–12:00)
    assert resumed.task.warn_at == datetime(2026, 12, 1, 7, 42, tzinfo=UTC)
    assert resumed.task.due_at == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    run_pass(catalog, resumed.task.warn_at)
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow"]
    kinds = [e.event_type for e in catalog.instances.history(SYSTEM, view.instance.id)]
    assert "clock_paused" in kinds and "clock_resumed" in kinds


def test_a_product_sets_its_own_ladder_and_natural_time(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    limits = {"steps": {"main_investigation": "PT10H"}, "calendar": "natural"}
    limits["ladder"] = {"yellow": 0.5, "orange": 1.0, "red": 1.2}  # earlier than the template's (0.8, 1.0, 1.5)
    view = local_application(catalog, {"time_limits": limits})
    task = investigation(view)
    start = catalog.clock.now()
    assert (task.warn_at, task.due_at, task.escalate_at) == (
        start + timedelta(hours=5),
        start + timedelta(hours=10),
        start + timedelta(hours=12),
    )
    # the countdown is in natural time as well: ten hours, over the evening (it read 8.5 working hours)
    assert catalog.tasks.get(SYSTEM, task.id).remaining_minutes == 600
    process = catalog.instances.get(SYSTEM, view.instance.id)
    assert process.remaining_minutes == int((process.instance.due_at - start).total_seconds() // 60)


def test_a_failing_job_is_retried_with_backoff_then_raises_an_incident(platform: CreditFlow) -> None:
    now = platform.clock.now()
    with platform.db.transaction(write=True) as session:
        enqueue(session, "no_such_kind", now, now, payload={"x": 1}, retries=3)
    assert run_pass(platform, now).done == 0
    with platform.db.transaction() as session:
        job = session.scalars(select(Job)).one()
        assert (job.retries_left, job.lock_owner, job.due_at) == (2, None, now + timedelta(seconds=30))
        assert "no handler" in job.last_error
    assert run_pass(platform, now + timedelta(seconds=29)).acquired == 0  # backing off
    assert run_pass(platform, now + timedelta(seconds=30)).acquired == 1
    assert run_pass(platform, now + timedelta(minutes=3)).acquired == 1  # the third and last try
    with platform.db.transaction() as session:
        (incident,) = session.scalars(select(Incident)).all()
        assert incident.kind == "no_such_kind" and "no handler" in incident.message
    assert run_pass(platform, now + timedelta(days=1)).acquired == 0  # dead until someone retries it


def test_a_lost_lease_never_commits_twice(platform: CreditFlow) -> None:
    """A node whose lease expired and was taken over finds the job gone at its fence."""
    deploy(platform, "timer_bare.bpmn")
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        view = platform.instances.start(SYSTEM, "timer_bare", data={})
        traveller.shift(timedelta(hours=5))
        now = start + timedelta(hours=5)
        (slow,) = platform.jobs.acquire("node-a", now, 10)
        (fast,) = platform.jobs.acquire("node-b", now + timedelta(minutes=6), 10)  # a's lease expired
        assert platform.jobs.run(fast, now) == "done"
        assert platform.jobs.run(slow, now) == "lost"  # its fence finds the job gone: rolled back
    events = [e.event_type for e in platform.instances.history(SYSTEM, view.instance.id)]
    assert events.count("timer_fired") == 1


def test_a_job_taken_over_after_its_lease_ran_out_is_not_run_again(platform: CreditFlow) -> None:
    """A batch outlived its five-minute lease: another node took its last jobs, and then the first node
    ran them too (webhooks POSTed twice, a second seal); only the database commit was fenced."""
    effects: list[tuple[int, str]] = []

    def effect(p: CreditFlow, job: Any, _now: datetime) -> None:
        effects.append((job.payload["n"], job.owner))  # a POST, a seal: outside the database
        with p.db.transaction(write=True) as session:
            p.jobs.finish(session, job)

    platform.jobs.register("outside_effect", effect)
    now = platform.clock.now()
    with platform.db.transaction(write=True) as session:
        for n in (1, 2):
            enqueue(session, "outside_effect", now, now, payload={"n": n})
    first, second = platform.jobs.acquire("node-a", now, 10)
    platform.clock.advance(timedelta(minutes=3))  # past half its lease, still ours: renewed, then run
    assert platform.jobs.run(first, platform.clock.now()) == "done"
    platform.clock.advance(timedelta(minutes=6))  # the lease of the rest ran out: node b takes it over
    (taken,) = platform.jobs.acquire("node-b", platform.clock.now(), 10)
    assert platform.jobs.run(taken, platform.clock.now()) == "done"
    assert platform.jobs.run(second, platform.clock.now()) == "lost"  # not run at all
    assert effects == [(1, "node-a"), (2, "node-b")]


def test_several_scheduler_processes_handle_every_due_job_exactly_once(
    catalog: CreditFlow,  # noqa: F811
    seeded: CreditFlow,
    settings: Any,
) -> None:
    """Real processes on the test database (PostgreSQL in CI: SKIP LOCKED; SQLite: BEGIN IMMEDIATE)."""
    deploy(catalog, "timer_bare.bpmn")
    with time_machine.travel(datetime.now(UTC) - timedelta(days=1), tick=False):  # due long ago
        timers = [catalog.instances.start(SYSTEM, "timer_bare", data={}).instance.id for _ in range(12)]
    catalog.clock.advance(timedelta(days=-7))  # applications of a week ago: every threshold has passed
    applications = [local_application(catalog, LIMITS)]
    applications += [
        catalog.products.apply(
            principal_of(catalog, "ly_officer"),
            "LY-DAINONG",
            applicant={**applicant(), "name": f"客户{n}", "id_number": resident_id(f"3701021980020112{n}")},
            data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
        )
        for n in range(8)
    ]
    assert all(investigation(a).escalate_at < datetime.now(UTC) for a in applications)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "CREDITFLOW_DATA_DIR": str(settings.data_dir)}
    env["CREDITFLOW_SECRET_KEY"] = settings.secret_key
    command = [sys.executable, "-m", "engine.cli", "scheduler", "--once"]
    nodes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0, 0], outputs
    with catalog.db.transaction() as session:
        fired = session.execute(
            select(AuditEvent.instance_id, func.count())
            .where(AuditEvent.event_type == "timer_fired")
            .group_by(AuditEvent.instance_id)
        ).all()
        assert sorted(fired) == sorted((i, 1) for i in timers)
        levels = session.execute(
            select(Escalation.subject_id, func.count())
            .where(Escalation.scope == "task")
            .group_by(Escalation.subject_id)
        ).all()
        # every open step has a clock (the co-investigation its archetype's default): each reaches red once
        opened = [t.id for a in applications for t in a.tasks]
        assert sorted(levels) == sorted((task_id, 3) for task_id in opened)
        assert session.scalar(select(func.count()).select_from(Incident)) == 0
        due = select(func.count()).select_from(Job).where(Job.due_at <= datetime.now(UTC), Job.retries_left > 0)
        assert session.scalar(due) == 0


def investigation_rows(platform: CreditFlow, instance_id: str) -> list[HumanTask]:
    with platform.db.transaction() as session:
        stmt = select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.bpmn_id == "main_investigation")
        return list(session.scalars(stmt.order_by(HumanTask.created_at)))


@pytest.fixture
def investigating(catalog: CreditFlow, seeded: CreditFlow) -> tuple[Any, Any]:  # noqa: F811
    """An application on 陵源's FND-DAINONG with a four-hour investigation, and that task."""
    view = local_application(catalog, LIMITS)
    return view, investigation(view)


def to_review(platform: CreditFlow, instance_id: str) -> Any:
    return drive(platform, platform.instances.get(SYSTEM, instance_id), until=lambda t: t.bpmn_id == "review")[0]


def investigation_rate(platform: CreditFlow) -> tuple[int, int]:
    """December's completed investigations that had a due time, and how many were on time."""
    rates = platform.monitor.on_time(principal_of(platform, "ly_risk"), date(2026, 12, 1), date(2026, 12, 31))
    (step,) = [rate for rate in rates.items if rate.step == "main_investigation"]
    return step.completed, step.on_time


def test_a_step_returned_to_runs_a_fresh_clock_and_keeps_its_first_round(
    catalog: CreditFlow,  # noqa: F811
    investigating: tuple[Any, Any],
) -> None:
    view, task = investigating
    officer = principal_of(catalog, "ly_officer")
    catalog.tasks.pause(officer, task.id, "等待客户补充流水")
    catalog.tasks.resume(officer, task.id)
    catalog.clock.advance(timedelta(days=1))  # Wed 09:00 Beijing: the first round went red
    run_pass(catalog, catalog.clock.now())
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow", "orange", "red"]
    review = to_review(catalog, view.instance.id).tasks[0]
    catalog.clock.advance(timedelta(hours=1))
    view = catalog.tasks.return_to(SYSTEM, review.id, "main_investigation", "补充经营流水")

    first, again = investigation_rows(catalog, view.instance.id)
    assert again.id == task.id and again.status == "ready" and first.id != task.id
    assert (first.status, first.created_at, first.due_at) == ("completed", task.created_at, task.due_at)
    assert first.ended_at > first.due_at  # late, and the on-time rate still sees it
    assert [level for level, _ in escalations(catalog, first.id)] == ["yellow", "orange", "red"]
    # the reopened step: a clock from the return, no pause left over, and the whole ladder again
    assert again.created_at == catalog.clock.now() and again.due_at > catalog.clock.now()
    assert (again.paused_at, again.pauses, again.role) == (None, None, "loan_officer")
    run_pass(catalog, again.escalate_at)
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow", "orange", "red"]
    assert investigation_rate(catalog) == (1, 0)  # the second round is still open


def test_a_task_done_while_paused_ends_its_pause_and_is_judged_by_its_stopped_clock(
    catalog: CreditFlow,  # noqa: F811
    investigating: tuple[Any, Any],
) -> None:
    view, task = investigating
    catalog.clock.advance(timedelta(hours=1))  # 10:00 Beijing, three working hours left
    catalog.tasks.pause(principal_of(catalog, "ly_officer"), task.id, "等待客户补充流水")
    catalog.clock.advance(timedelta(days=2))  # the customer took two days
    to_review(catalog, view.instance.id)
    (done,) = investigation_rows(catalog, view.instance.id)
    assert done.status == "completed" and done.paused_at is None and len(done.pauses) == 1
    assert done.due_at == catalog.clock.now() + timedelta(hours=4, minutes=30)  # 3 working hours, lunch between
    assert investigation_rate(catalog) == (1, 1)


def test_a_resume_into_a_year_nobody_entered_resumes_without_a_clock_until_it_is_entered(
    catalog: CreditFlow,  # noqa: F811
    investigating: tuple[Any, Any],
) -> None:
    view, task = investigating
    officer = principal_of(catalog, "ly_officer")
    catalog.clock.advance(timedelta(hours=1))
    catalog.tasks.pause(officer, task.id, "等待担保公司")
    catalog.clock.advance(timedelta(days=30, hours=7))  # Thu 2026-12-31 17:00 Beijing: three hours reach 2027
    resumed = catalog.tasks.resume(officer, task.id)
    assert resumed.task.paused_at is None
    assert (resumed.task.warn_at, resumed.task.due_at, resumed.task.escalate_at) == (None, None, None)
    missing = [e for e in catalog.instances.history(SYSTEM, view.instance.id) if e.event_type == "calendar_missing"]
    assert [(e.payload["year"], e.payload["step"]) for e in missing][-1] == (2027, "main_investigation")

    province_admin = principal_of(catalog, "admin")
    with pytest.raises(InvalidInput) as refused:  # not before its holidays are entered: 元旦 would be worked
        catalog.calendars.cover_year(province_admin, 2027)
    assert refused.value.problems[0]["field"] == "year"
    catalog.calendars.set_day(province_admin, date(2027, 1, 1), workday=False, note="元旦")
    catalog.calendars.cover_year(province_admin, 2027)
    clocked = task_row(catalog, task.id)
    assert clocked.due_at is not None and clocked.due_at > catalog.clock.now()
    run_pass(catalog, clocked.escalate_at)
    assert [level for level, _ in escalations(catalog, task.id)] == ["yellow", "orange", "red"]


def test_overdue_work_goes_up_past_an_absent_supervisor_and_the_delegating_owner_hears_of_it(
    catalog: CreditFlow,  # noqa: F811
    investigating: tuple[Any, Any],
) -> None:
    _view, task = investigating
    officer, officer2, senior = (user_id(catalog, u) for u in ("ly_officer", "ly_officer2", "ly_senior_approver"))
    catalog.tasks.delegate(principal_of(catalog, "ly_officer"), task.id, officer2)
    catalog.organization.deactivate_user(SYSTEM, "ly_branch_head")  # the branch head is on leave
    run_pass(catalog, task.escalate_at)
    (_, yellow), (_, orange), (_, red) = escalations(catalog, task.id)
    assert yellow == {"notified": sorted([officer, officer2])}
    assert orange["notified"] == sorted([officer, officer2, senior])  # the next role up: 分管行长
    assert red["reassigned"]["to_role"] == "senior_approver"
    pool = catalog.tasks.list(principal_of(catalog, "ly_senior_approver"), InboxQuery(view="candidate")).items
    assert task.id in [v.task.id for v in pool]


def test_with_nobody_up_the_chain_overdue_work_stays_and_the_administrators_hear_of_it(
    catalog: CreditFlow,  # noqa: F811
    investigating: tuple[Any, Any],
) -> None:
    _view, task = investigating
    for username in ("ly_branch_head", "ly_senior_approver"):
        catalog.organization.deactivate_user(SYSTEM, username)
    run_pass(catalog, task.escalate_at)
    (_, red) = escalations(catalog, task.id)[-1]
    admins = {user_id(catalog, u) for u in ("ly_admin", "admin")}
    assert admins <= set(red["notified"]) and "reassigned" not in red
    assert task_row(catalog, task.id).assignee_id == user_id(catalog, "ly_officer")


def test_a_failed_application_still_ages(catalog: CreditFlow, investigating: tuple[Any, Any]) -> None:  # noqa: F811
    view, _task = investigating
    with catalog.db.transaction(write=True) as session:  # a script failed later in the process
        session.execute(update(ProcessInstance).where(ProcessInstance.id == view.instance.id).values(status="error"))
    run_pass(catalog, view.instance.escalate_at)
    assert [level for level, _ in escalations(catalog, view.instance.id)] == ["yellow", "orange", "red"]
