"""BPMN timers as jobs: each running instance with a waiting timer has one ``timer`` job, due when
its earliest timer is (kept by ``Execution.save`` whenever that time changes).

SpiffWorkflow only notices that time passed when asked (``refresh_timers``); the job asks it under
the instance lock, in the same transaction as the job's completion fence, so a timer fires exactly
once however many nodes run the pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

from engine.jobs.queue import AcquiredJob, enqueue
from engine.services.execution import RUNNING, TIMER, Execution
from engine.services.principal import Principal

if TYPE_CHECKING:
    from engine.container import CreditFlow

RECHECK = timedelta(seconds=2)  # a timer the engine's wall clock has not passed yet: look again shortly


def fire_timer(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:

    def fire(execution: Execution) -> None:
        platform.jobs.finish(execution.session, job)
        instance = execution.instance
        if instance.status != RUNNING or instance.next_timer_at is None:
            return
        due = instance.next_timer_at
        if due > now:  # moved on since this job was written: wait for the new time
            _enqueue(execution, due, now)
            return
        execution.run(lambda: _fire_due(execution))
        if instance.status == RUNNING and instance.next_timer_at == due:
            # The earliest timer still waits (SpiffWorkflow fires only once its wall clock is
            # strictly past the due time); ``save`` writes a job only when that time changes, and
            # the fence took ours: without a new one the timer would never be looked at again.
            _enqueue(execution, now + RECHECK, now)

    platform.instances.change(Principal.system(), job.instance_id or "", fire, skip_locked=True)


def _fire_due(execution: Execution) -> None:
    """Fire every due timer, one occurrence at a time, and journal each firing.

    One ``refresh_timers`` fires at most one occurrence of a cycle, so it is repeated until nothing
    changes: after an outage a timer cycle catches up every occurrence it missed, as its model
    says. The engine steps of ``Execution.run`` then take the fired timers' paths (an interrupting
    boundary timer cancels its task there).
    """
    workflow = execution.workflow
    before = waiting_timers(workflow)
    while True:
        workflow.refresh_timers()
        after = waiting_timers(workflow)
        fired = [task_id for task_id in before if after.get(task_id) != before[task_id]]
        if not fired:
            return
        for task_id in fired:
            task = workflow.get_task_from_id(task_id)
            name, due = before[task_id]
            execution.journal.record(
                "timer_fired", task_id=str(task_id), bpmn_id=task.task_spec.bpmn_id, actor=False, name=name, due=due
            )
        before = after


def waiting_timers(workflow: BpmnWorkflow) -> dict[UUID, tuple[str | None, str]]:
    """Each waiting timer's name and next due time (ISO 8601), by task: a firing removes the entry
    (the task is no longer waiting, or a cycle has no occurrence left) or moves its time on."""
    timers: dict[UUID, tuple[str | None, str]] = {}
    for task in workflow.event_manager.tasks.values():
        definition = task.task_spec.event_definition
        if isinstance(task.task_spec, EventBasedGateway):
            # the gateway waits for all its branches' events at once; spiff keeps the timer's due
            # time on the gateway task and reports no value for it
            name = next((d.name for d in definition.event_definitions if isinstance(d, TimerEventDefinition)), None)
            due = task.internal_data.get("event_value")
        elif isinstance(definition, TimerEventDefinition):
            name, due = definition.name, definition.details(task).value
        else:
            continue
        if isinstance(due, str):  # a cycle with no occurrence left reports its spent state instead
            timers[task.id] = (name, due)
    return timers


def _enqueue(execution: Execution, due_at: datetime, now: datetime) -> None:
    instance = execution.instance
    enqueue(execution.session, TIMER, due_at, now, tenant_id=instance.tenant_id, instance_id=instance.id)
