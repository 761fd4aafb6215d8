"""Every kind of BPMN timer fires through the job table at its due time, once: non-interrupting
boundary cycles, intermediate timers, event-based gateways, and timer start events.

Two clocks move together: the platform's (the pass's now, audit times) and the wall clock that
SpiffWorkflow reads (time_machine). SpiffWorkflow fires a timer only once the wall clock is strictly
past its due time; in production the engine reads it just after the pass read its now, and
``Clocks.run_pass`` does the same, a microsecond later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from sqlalchemy import select

from engine.container import CreditFlow
from engine.errors import InvalidInput
from engine.jobs.queue import enqueue
from engine.jobs.scheduler import run_pass
from engine.jobs.start_timers import START_TIMER
from engine.services.execution import TIMER, Execution
from engine.services.principal import Principal
from engine.store.models import AuditEvent, Job, ProcessDefinition, ProcessInstance
from tests.conftest import MODELS, Clocks, deploy

SYSTEM = Principal.system()
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # the platform clock's start (conftest)
HOUR, SECOND = timedelta(hours=1), timedelta(seconds=1)
DONE = {"recommendation": "reject", "comment": "不符合条件"}
CYCLE = "R3/2026-12-01T02:00:00Z/PT1H"


def jobs(platform: CreditFlow, kind: str, instance_id: str | None = None) -> list[Job]:
    with platform.db.transaction() as session:
        stmt = select(Job).where(Job.kind == kind).order_by(Job.due_at, Job.id)
        if instance_id is not None:
            stmt = stmt.where(Job.instance_id == instance_id)
        return list(session.scalars(stmt))


def open_tasks(platform: CreditFlow, instance_id: str) -> list[str]:
    return [t.bpmn_id for t in platform.instances.get(SYSTEM, instance_id).tasks]


def events(platform: CreditFlow, instance_id: str) -> list[AuditEvent]:
    return platform.instances.history(SYSTEM, instance_id)


def fired(platform: CreditFlow, instance_id: str) -> list[tuple[str | None, str]]:
    return [(e.bpmn_id, e.payload["due"]) for e in events(platform, instance_id) if e.event_type == "timer_fired"]


def started(platform: CreditFlow, key: str) -> list[ProcessInstance]:
    with platform.db.transaction() as session:
        return list(
            session.scalars(
                select(ProcessInstance)
                .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
                .where(ProcessDefinition.key == key)
                .order_by(ProcessInstance.created_at)
            )
        )


def deploy_variant(platform: CreditFlow, name: str, old: str, new: str) -> list[Any]:
    content = (MODELS / name).read_text(encoding="utf-8")
    assert old in content
    return platform.definitions.deploy(SYSTEM, [(name, content.replace(old, new).encode())]).definitions


# -- timers inside an instance ------------------------------------------------------------------


def test_a_non_interrupting_cycle_reminds_twice_and_leaves_the_review_open(
    platform: CreditFlow, clocks: Clocks
) -> None:
    deploy(platform, "timer_reminder.bpmn")  # review with a non-interrupting R2/PT1H boundary
    instance_id = platform.instances.start(SYSTEM, "timer_reminder", data={}).instance.id
    assert [j.due_at for j in jobs(platform, TIMER, instance_id)] == [START + HOUR]

    assert clocks.run_pass(platform, START + HOUR - SECOND) == 0
    assert clocks.run_pass(platform, START + HOUR) == 1
    assert open_tasks(platform, instance_id) == ["review", "chase"]
    assert [j.due_at for j in jobs(platform, TIMER, instance_id)] == [START + 2 * HOUR]  # the next occurrence

    assert clocks.run_pass(platform, START + 2 * HOUR - SECOND) == 0
    assert clocks.run_pass(platform, START + 2 * HOUR) == 1
    assert open_tasks(platform, instance_id) == ["review", "chase", "chase"]
    assert jobs(platform, TIMER, instance_id) == []  # both occurrences used
    assert platform.instances.get(SYSTEM, instance_id).instance.next_timer_at is None

    assert clocks.run_pass(platform, START + 10 * HOUR) == 0
    assert open_tasks(platform, instance_id) == ["review", "chase", "chase"]
    assert fired(platform, instance_id) == [
        ("remind", "2026-12-01T02:00:00+00:00"),
        ("remind", "2026-12-01T03:00:00+00:00"),
    ]
    assert "task_cancelled" not in [e.event_type for e in events(platform, instance_id)]


def test_a_cycle_inside_an_instance_catches_up_every_missed_occurrence(platform: CreditFlow, clocks: Clocks) -> None:
    """Unlike start timers (one catch-up instance), a running instance's cycle does what its model
    says for each occurrence: both reminders happen, each journalled."""
    deploy(platform, "timer_reminder.bpmn")
    instance_id = platform.instances.start(SYSTEM, "timer_reminder", data={}).instance.id

    assert clocks.run_pass(platform, START + 5 * HOUR) == 1  # back from an outage: one job
    assert open_tasks(platform, instance_id) == ["review", "chase", "chase"]
    assert [bpmn_id for bpmn_id, _ in fired(platform, instance_id)] == ["remind", "remind"]
    assert jobs(platform, TIMER, instance_id) == []


def test_an_intermediate_timer_waits_after_signing_then_continues(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_wait.bpmn")  # sign, then a PT2H intermediate timer, then disburse
    view = platform.instances.start(SYSTEM, "timer_wait", data={})
    assert view.instance.next_timer_at is None  # no timer before signing

    clocks.at(START + HOUR / 2)
    signed = platform.tasks.complete(SYSTEM, view.tasks[0].id, DONE)
    due = START + HOUR / 2 + 2 * HOUR
    assert signed.tasks == [] and signed.instance.next_timer_at == due

    assert clocks.run_pass(platform, due - SECOND) == 0
    assert clocks.run_pass(platform, due) == 1
    assert open_tasks(platform, view.instance.id) == ["disburse"]
    assert clocks.run_pass(platform, due + HOUR) == 0
    assert fired(platform, view.instance.id) == [("cooling_off", due.isoformat())]


def test_a_timer_is_looked_at_again_when_the_engine_finds_it_not_yet_due(platform: CreditFlow, clocks: Clocks) -> None:
    """The job is due at its due time; SpiffWorkflow fires only strictly after it. A pass whose
    engine sees exactly the due time fires nothing, and the timer must not be lost."""
    deploy(platform, "timer_wait.bpmn")
    view = platform.instances.start(SYSTEM, "timer_wait", data={})
    platform.tasks.complete(SYSTEM, view.tasks[0].id, DONE)
    due = START + 2 * HOUR

    clocks.at(due)
    assert run_pass(platform, due).done == 1  # the job ran ...
    assert fired(platform, view.instance.id) == [] and open_tasks(platform, view.instance.id) == []
    assert [j.due_at for j in jobs(platform, TIMER, view.instance.id)] == [due + 2 * SECOND]  # ... and came back

    assert clocks.run_pass(platform, due + 2 * SECOND) == 1
    assert open_tasks(platform, view.instance.id) == ["disburse"]
    assert fired(platform, view.instance.id) == [("cooling_off", due.isoformat())]


def test_an_event_based_gateway_takes_the_timer_when_no_message_comes(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_race.bpmn")  # documents_received message or P1D timer
    view = platform.instances.start(SYSTEM, "timer_race", data={})
    due = START + timedelta(days=1)
    assert view.instance.next_timer_at == due
    assert [j.due_at for j in jobs(platform, TIMER, view.instance.id)] == [due]

    assert clocks.run_pass(platform, due - SECOND) == 0
    assert clocks.run_pass(platform, due) == 1
    after = platform.instances.get(SYSTEM, view.instance.id)
    assert after.instance.status == "completed" and after.tasks == []
    trail = events(platform, view.instance.id)
    assert [e.event_type for e in trail][-3:] == ["timer_fired", "gateway_taken", "completed"]
    assert trail[-1].payload["end"] == "end_lapsed"
    assert fired(platform, view.instance.id) == [("wait_documents", due.isoformat())]
    assert clocks.run_pass(platform, due + HOUR) == 0


def test_a_message_first_cancels_the_gateway_timer(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_race.bpmn")
    view = platform.instances.start(SYSTEM, "timer_race", data={})
    assert len(jobs(platform, TIMER, view.instance.id)) == 1

    def deliver(execution: Execution) -> None:  # send_message's delivery, without its waiting check (below)
        event = BpmnEvent(MessageEventDefinition("documents_received"), payload={"pages": 3})
        execution.run(lambda: execution.workflow.send_event(event))

    clocks.at(START + 3 * HOUR)
    answered = platform.instances.change(SYSTEM, view.instance.id, deliver)
    assert [t.bpmn_id for t in answered.tasks] == ["review"]
    assert answered.instance.next_timer_at is None
    assert jobs(platform, TIMER, view.instance.id) == []  # the timer job disappeared with the timer

    assert clocks.run_pass(platform, START + timedelta(days=2)) == 0
    assert open_tasks(platform, view.instance.id) == ["review"]
    assert fired(platform, view.instance.id) == []


def test_send_message_reaches_an_event_based_gateway(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_race.bpmn")
    view = platform.instances.start(SYSTEM, "timer_race", data={})
    answered = platform.instances.send_message(SYSTEM, view.instance.id, "documents_received", {"pages": 3})
    assert [t.bpmn_id for t in answered.tasks] == ["review"]
    assert jobs(platform, TIMER, view.instance.id) == []


# -- timer start events ---------------------------------------------------------------------------


def test_a_cycle_start_timer_starts_one_instance_per_occurrence(platform: CreditFlow, clocks: Clocks) -> None:
    (definition,) = deploy(platform, "timer_start_cycle.bpmn")  # R3/2026-12-01T02:00:00Z/PT1H, deployed 01:00
    (job,) = jobs(platform, START_TIMER)
    assert job.due_at == START + HOUR and job.tenant_id == definition.tenant_id
    assert job.payload == {
        "definition_id": definition.id,
        "key": "timer_start_cycle",
        "event": "start",
        "expression": CYCLE,
        "repetitions": 3,
    }
    deploy(platform, "timer_start_cycle.bpmn")  # the same content again: nothing new to schedule
    assert len(jobs(platform, START_TIMER)) == 1

    assert clocks.run_pass(platform, START + HOUR - SECOND) == 0
    assert clocks.run_pass(platform, START + HOUR) == 1
    (first,) = started(platform, "timer_start_cycle")
    assert first.status == "running" and first.next_timer_at is None  # not waiting for its own start timer
    assert first.tenant_id == definition.tenant_id and first.started_by_id is None
    assert open_tasks(platform, first.id) == ["check"]
    assert jobs(platform, TIMER, first.id) == []
    assert [e.event_type for e in events(platform, first.id)] == ["started", "timer_fired", "task_created"]
    (timer_fired,) = [e for e in events(platform, first.id) if e.event_type == "timer_fired"]
    assert (timer_fired.bpmn_id, timer_fired.payload["due"], timer_fired.payload["missed"]) == (
        "start",
        "2026-12-01T02:00:00+00:00",
        0,
    )
    (job,) = jobs(platform, START_TIMER)
    assert (job.due_at, job.payload["repetitions"]) == (START + 2 * HOUR, 2)

    assert clocks.run_pass(platform, START + 2 * HOUR) == 1
    assert clocks.run_pass(platform, START + 3 * HOUR) == 1
    assert jobs(platform, START_TIMER) == []  # three occurrences, all used
    assert clocks.run_pass(platform, START + 10 * HOUR) == 0
    instances = started(platform, "timer_start_cycle")
    assert [i.created_at for i in instances] == [START + HOUR, START + 2 * HOUR, START + 3 * HOUR]
    assert all(open_tasks(platform, i.id) == ["check"] for i in instances)  # one token each, never more


def test_an_outage_starts_one_catch_up_instance_then_keeps_the_schedule(platform: CreditFlow, clocks: Clocks) -> None:
    """Coalesced misfires: 02:00 and 03:00 were missed; one instance at 03:30, the next at 04:00."""
    deploy(platform, "timer_start_cycle.bpmn")

    assert clocks.run_pass(platform, START + 2.5 * HOUR) == 1
    (catch_up,) = started(platform, "timer_start_cycle")
    (timer_fired,) = [e for e in events(platform, catch_up.id) if e.event_type == "timer_fired"]
    assert (timer_fired.payload["due"], timer_fired.payload["missed"]) == ("2026-12-01T02:00:00+00:00", 1)
    (job,) = jobs(platform, START_TIMER)
    assert (job.due_at, job.payload["repetitions"]) == (START + 3 * HOUR, 1)

    assert clocks.run_pass(platform, START + 3 * HOUR) == 1
    assert jobs(platform, START_TIMER) == []
    assert len(started(platform, "timer_start_cycle")) == 2


def test_an_outage_past_the_last_occurrence_starts_one_instance_and_ends(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_start_cycle.bpmn")

    assert clocks.run_pass(platform, START + 9 * HOUR) == 1
    (catch_up,) = started(platform, "timer_start_cycle")
    (timer_fired,) = [e for e in events(platform, catch_up.id) if e.event_type == "timer_fired"]
    assert timer_fired.payload["missed"] == 2  # 03:00 and 04:00: all the cycle had left
    assert jobs(platform, START_TIMER) == []


def test_an_unbounded_cycle_counts_from_the_deployment_and_never_ends(platform: CreditFlow, clocks: Clocks) -> None:
    clocks.at(START + HOUR / 4)
    deploy_variant(platform, "timer_start_cycle.bpmn", CYCLE, "R/PT1H")
    (job,) = jobs(platform, START_TIMER)
    assert (job.due_at, job.payload["repetitions"]) == (START + HOUR / 4 + HOUR, None)

    for n in range(1, 4):
        assert clocks.run_pass(platform, START + HOUR / 4 + n * HOUR) == 1
        (job,) = jobs(platform, START_TIMER)
        assert (job.due_at, job.payload["repetitions"]) == (START + HOUR / 4 + (n + 1) * HOUR, None)
    assert len(started(platform, "timer_start_cycle")) == 3


def test_date_and_duration_start_timers_each_start_one_instance(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_start_date.bpmn")  # 2026-12-01T03:00:00Z
    deploy(platform, "timer_start_duration.bpmn")  # PT30M after deployment (01:00)
    assert [(j.payload["key"], j.due_at) for j in jobs(platform, START_TIMER)] == [
        ("timer_start_duration", START + HOUR / 2),
        ("timer_start_date", START + 2 * HOUR),
    ]

    assert clocks.run_pass(platform, START + HOUR / 2 - SECOND) == 0
    assert clocks.run_pass(platform, START + HOUR / 2) == 1
    assert clocks.run_pass(platform, START + 2 * HOUR - SECOND) == 0
    assert clocks.run_pass(platform, START + 2 * HOUR) == 1
    assert jobs(platform, START_TIMER) == []
    assert clocks.run_pass(platform, START + 30 * HOUR) == 0
    for key in ("timer_start_duration", "timer_start_date"):
        (instance,) = started(platform, key)
        assert instance.next_timer_at is None and open_tasks(platform, instance.id) == ["check"]
        assert [bpmn_id for bpmn_id, _ in fired(platform, instance.id)] == ["start"]


def test_a_date_that_passed_before_the_deployment_starts_nothing(platform: CreditFlow, clocks: Clocks) -> None:
    """A new version deployed after its date must not start the instance the old one already did."""
    clocks.at(START + 3 * HOUR)
    deploy(platform, "timer_start_date.bpmn")
    assert jobs(platform, START_TIMER) == []


def test_a_new_version_takes_over_the_start_timer(platform: CreditFlow, clocks: Clocks) -> None:
    (v1,) = deploy(platform, "timer_start_cycle.bpmn")
    assert clocks.run_pass(platform, START + HOUR) == 1

    clocks.at(START + 1.5 * HOUR)
    (v2,) = deploy_variant(platform, "timer_start_cycle.bpmn", 'name="贷后检查"', 'name="贷后检查（新版）"')
    assert v2.version == 2
    (job,) = jobs(platform, START_TIMER)  # v1's pending job was cancelled
    assert (job.payload["definition_id"], job.due_at, job.payload["repetitions"]) == (v2.id, START + 2 * HOUR, 2)

    assert clocks.run_pass(platform, START + 2 * HOUR) == 1
    assert [i.definition_id for i in started(platform, "timer_start_cycle")] == [v1.id, v2.id]


def test_an_older_versions_job_that_escaped_the_cancel_starts_nothing(platform: CreditFlow, clocks: Clocks) -> None:
    """On PostgreSQL a node firing v1's job can commit v1's next occurrence just after the deploy of
    v2 looked for v1's jobs; that job must not start v1 instances alongside v2's."""
    (v1,) = deploy(platform, "timer_start_cycle.bpmn")
    (stale,) = jobs(platform, START_TIMER)
    clocks.at(START + HOUR / 2)
    (v2,) = deploy_variant(platform, "timer_start_cycle.bpmn", 'name="贷后检查"', 'name="贷后检查（新版）"')
    with platform.db.transaction(write=True) as session:
        enqueue(session, START_TIMER, START + HOUR, START + HOUR / 2, payload=stale.payload)
    assert stale.payload["definition_id"] == v1.id

    assert clocks.run_pass(platform, START + HOUR) == 2  # both jobs ran ...
    assert [i.definition_id for i in started(platform, "timer_start_cycle")] == [v2.id]  # ... only v2 started one
    assert [j.payload["definition_id"] for j in jobs(platform, START_TIMER)] == [v2.id]


def test_each_instance_follows_only_the_start_event_that_started_it(platform: CreditFlow, clocks: Clocks) -> None:
    deploy(platform, "timer_start_either.bpmn")  # a none start event and a timeDate start event
    by_hand = platform.instances.start(SYSTEM, "timer_start_either", data={})
    assert [t.bpmn_id for t in by_hand.tasks] == ["check"] and by_hand.instance.next_timer_at is None

    assert clocks.run_pass(platform, START + 2 * HOUR) == 1
    scheduled = next(i for i in started(platform, "timer_start_either") if i.id != by_hand.instance.id)
    assert open_tasks(platform, scheduled.id) == ["scheduled_check"]
    assert scheduled.next_timer_at is None


@pytest.mark.parametrize(
    ("name", "old", "new", "problem"),
    [
        # before an instance exists there is no data for an expression to read
        ("timer_start_date.bpmn", "2026-12-01T03:00:00Z", "start_at", "ISO 8601 literal"),
        ("timer_start_date.bpmn", "2026-12-01T03:00:00Z", "PT1H", "is not a date"),
        ("timer_start_cycle.bpmn", CYCLE, "R3/2026-12-01T02:00:00Z/PT0S", "more often than once a minute"),
        ("timer_start_cycle.bpmn", CYCLE, "R/PT0.001S", "more often than once a minute"),  # twenty a second
    ],
)
def test_a_start_timer_that_cannot_be_scheduled_is_refused_at_deploy(
    platform: CreditFlow, name: str, old: str, new: str, problem: str
) -> None:
    with pytest.raises(InvalidInput, match=problem):
        deploy_variant(platform, name, old, new)
    assert jobs(platform, START_TIMER) == []
    assert platform.definitions.list(SYSTEM, key=name.removesuffix(".bpmn"))[1] == 0


def test_a_process_that_starts_on_its_timer_cannot_be_started_by_hand(platform: CreditFlow) -> None:
    deploy(platform, "timer_start_date.bpmn")
    with pytest.raises(InvalidInput) as refused:
        platform.instances.start(SYSTEM, "timer_start_date", data={})
    assert refused.value.problems[0]["field"] == "definition_key"
