"""One step of an instance: run the engine, project human tasks, journal what happened, save.

Every state change of an instance goes through ``Execution.run`` inside the caller's transaction,
so state, task rows and audit events commit together or not at all. A script or connector error
is a business outcome, not a crash: the instance is saved in ``error`` status with the details.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.end_event import EndEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import String, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict
from engine.inbox.assignment import Assignment, administrators, holders
from engine.jobs.queue import cancel, enqueue
from engine.notify.outbox import publish
from engine.runtime.decision_task import EVALUATION_KEY
from engine.runtime.workflow_state import dump_state, plain_json
from engine.services.channel_view import channel_error
from engine.sla.calendar import UnknownCalendarYear
from engine.sla.escalation import PROCESS, TASK, THRESHOLDS, schedule, unschedule_process, unschedule_tasks
from engine.store.audit import Journal
from engine.store.fast_rows import FastRows
from engine.store.models import CONTRACT_SEALED, AuditEvent, Document, Escalation, HumanTask, TaskCandidate

RUNNING, COMPLETED, CANCELLED, ERROR = "running", "completed", "cancelled", "error"
ENDED = (COMPLETED, CANCELLED)
TIMER = "timer"  # the job kind of an instance's earliest waiting timer (engine/jobs/timers.py)
ARCHIVE = "archive"  # the job kind that archives an ended instance's loan file (engine/services/archives.py)

_TASK = HumanTask.__table__
_ROUND_COLUMNS = [column for column in _TASK.c if column.name != "id"]

_RUNNING: ContextVar[Execution | None] = ContextVar("creditflow_execution", default=None)


# Connectors that move money, and the audit event (and ``application.<event>`` message) each success is
MONEY_MOVES = {"core_banking/disburse": "disbursed", "core_banking/renew": "renewed"}
MOVED, UNCONFIRMED = "moved", "unconfirmed"  # what became of its payouts (``payout_state``)
FAILED = "connector_failed"
_MOVED_EVENTS = frozenset(MONEY_MOVES.values())
_PAYOUT_EVENTS = [*sorted(_MOVED_EVENTS), FAILED]
GRANTED = "approved"  # the outcome of an application whose loan was granted (``products.end_outcomes``)


def current_execution() -> Execution:
    """The instance change the engine is running in this context: connectors that work on the
    instance itself (the contract steps) write their documents and journal entries through it."""
    execution = _RUNNING.get()
    if execution is None:
        raise RuntimeError("no instance change is running in this context")
    return execution


def payout_state(events: Iterable[tuple[str, dict[str, Any]]]) -> str | None:
    """``MOVED`` once core banking confirmed a payout (or renewal), ``UNCONFIRMED`` while the last
    call to move money failed without an answer, else None; ``events`` are (type, payload) in order.

    Read from the audit trail, not from the outcome: a policy loan paid out and cancelled during its
    subsidy filing ends ``cancelled``. A call core banking refused outright after an unanswered one
    settles it: the contract's number is core banking's duplicate check, so a payout that had landed
    would have been answered with, not refused.
    """
    state = None
    for event_type, payload in events:
        if event_type in _MOVED_EVENTS:
            return MOVED
        if event_type == FAILED and payload.get("connector") in MONEY_MOVES:
            state = UNCONFIRMED if payload.get("outcome_unknown") else None
    return state


@dataclass
class Execution:
    """The instance being changed in this unit of work, and the journal of what changed.

    ``instance`` and the task rows are plain records (``engine.store.fast_rows``); nothing is
    written until ``run``/``save`` flushes them together.
    """

    session: Session
    rows: FastRows
    instance: Any
    workflow: BpmnWorkflow
    journal: Journal
    now: datetime
    is_new: bool = False
    # tasks a return sends the application back to: SpiffWorkflow reopens them under their old id
    reopen: dict[str, int | None] = field(default_factory=dict)
    # the return that reopens them: returned_by_id, returned_from, return_reason (their rows show it)
    returned: dict[str, Any] = field(default_factory=dict)
    _open: dict[str, Any] | None = field(default=None, repr=False)
    _created: list[Any] = field(default_factory=list, repr=False)
    _reopened: list[Any] = field(default_factory=list, repr=False)
    _closed: list[Any] = field(default_factory=list, repr=False)
    _assignment: Assignment | None = field(default=None, repr=False)
    _timer_at: datetime | None = field(default=None, repr=False)  # the timer job's due time as loaded
    _ended: bool = field(default=False, repr=False)  # the instance had ended when it was loaded
    # documents made during this change (the contract steps), written after the instance row
    documents: dict[str, Any] = field(default_factory=dict)
    # how an application ended (approved, rejected, aborted, cancelled) or "error", once announced
    outcome: str | None = None
    _status: str = field(default="", repr=False)  # the status last saved

    def __post_init__(self) -> None:
        self._timer_at = self.instance.next_timer_at
        self._ended = self.instance.status in ENDED
        self._status = self.instance.status

    @property
    def assignment(self) -> Assignment:
        if self._assignment is None:
            binding = getattr(self.workflow, "product_binding", None)
            self._assignment = Assignment(
                self.session, self.rows, self.instance, binding, is_new=self.is_new, now=self.now
            )
        return self._assignment

    @property
    def open_tasks(self) -> dict[str, Any]:
        """The instance's READY human-task rows, read once under the instance lock and kept current."""
        if self._open is None:
            self._open = {} if self.is_new else {r.id: r for r in self.rows.open_tasks(self.session, self.instance.id)}
        return self._open

    def close_task(self, task_id: str, status: str, user_id: int | None = None) -> Any:
        row = self.open_tasks.pop(task_id)
        row.status, row.ended_at, row.completed_by_id = status, self.now, user_id
        if row.paused_at is not None:  # done while waiting: the pause ends with it, and is not charged
            self._end_pause(row)
        if any(r is row for r in (*self._created, *self._reopened)):  # opened and closed in one step
            return row
        self._closed.append(row)
        # returning is an act of the step's duty too: segregation of duties counts it, and the step
        # comes back to whoever returned it once the earlier step is done again (sticky work)
        if status in ("completed", "returned"):
            self.assignment.performed(row.duty, task_id, user_id, list(self.open_tasks.values()), self.now)
        return row

    def _end_pause(self, row: Any) -> None:
        paused, row.paused_at = row.paused_at, None
        row.pauses = [*(row.pauses or []), [paused.isoformat(), self.now.isoformat()]]
        binding = getattr(self.workflow, "product_binding", None)
        if binding is None:
            return
        stored = {name: getattr(row, name) for name in THRESHOLDS}
        try:
            moved = binding.after_pause(row.bpmn_id, stored, paused, self.now, self.workflow.calendar)
        except UnknownCalendarYear:
            return  # the times stay as they were; the task is done
        for name, at in moved.items():
            setattr(row, name, at)

    def run(self, action: Callable[[], Any] | None = None) -> None:
        """Apply ``action`` (e.g. completing a user task), then run the engine until it waits."""
        error: dict[str, Any] | None = None
        running = _RUNNING.set(self)
        self.workflow.on_connector_failure = self._connector_failed
        try:
            if action is not None:
                action()
            self.workflow.do_engine_steps(did_complete_task=self._observe)
        except SpiffWorkflowException as exc:
            error = describe_error(exc)
        finally:
            _RUNNING.reset(running)
            self.workflow.on_connector_failure = None
        instance = self.instance
        if error is not None:
            instance.status, instance.error = ERROR, error
        elif self.workflow.completed:
            instance.status, instance.error, instance.ended_at = COMPLETED, None, self.now
        else:
            instance.status, instance.error = RUNNING, None
        self._project_tasks()
        if error is not None:
            self.journal.record(
                "error",
                task_id=error.get("task_id"),
                bpmn_id=error.get("bpmn_id"),
                actor=False,
                message=error["message"],
                line=error.get("line_number"),
            )
        elif instance.status == COMPLETED:
            self.journal.record("completed", actor=False, end=_end_event(self.workflow))
        self.save()

    def save(self) -> None:
        """Write state, task rows and journal; a concurrent writer makes the version check fail."""
        instance = self.instance
        instance.state = dump_state(self.workflow)
        instance.data = plain_json(current_data(self.workflow))
        instance.next_timer_at = _next_timer(self.workflow) if instance.status == RUNNING else None
        instance.updated_at = self.now
        binding = getattr(self.workflow, "product_binding", None)
        if binding is not None and instance.status in ENDED and not self._ended:
            self._void_unpaid_contracts(self._outcome(binding))
        audit = self.journal.chain(instance, self.now)
        if self.is_new:
            self.rows.insert_instance(self.session, instance)
        else:
            self.rows.update_instance(self.session, instance)
        if self.documents:
            self.session.add_all(self.documents.values())
            self.session.flush()
            self.documents = {}
        self.rows.close_tasks(self.session, self._closed)
        self.rows.insert_tasks(self.session, self._created)
        self._write_reopened()
        if self._assignment is not None:
            self._assignment.flush()
        self.rows.append_audit(self.session, audit)
        self._schedule_jobs()
        self._closed, self._created, self._reopened, self.is_new = [], [], [], False

    def _schedule_jobs(self) -> None:
        """Keep the instance's jobs in step with this change: its timer, and its clocks' escalations."""
        instance, session = self.instance, self.session
        if instance.next_timer_at != self._timer_at:
            if not self.is_new:
                cancel(session, TIMER, instance_id=instance.id)
            if instance.next_timer_at is not None:
                enqueue(
                    session,
                    TIMER,
                    instance.next_timer_at,
                    self.now,
                    tenant_id=instance.tenant_id,
                    instance_id=instance.id,
                )
            self._timer_at = instance.next_timer_at
        unschedule_tasks(session, [r.id for r in (*self._closed, *self._reopened) if r.warn_at or r.due_at])
        for row in (*self._created, *self._reopened):
            if row.status == "ready":
                schedule(session, TASK, row, instance, self.now)
        if self.is_new and instance.status == RUNNING:
            schedule(session, PROCESS, instance, instance, self.now)
        elif instance.status in ENDED and not self.is_new and (instance.warn_at or instance.due_at):
            unschedule_process(session, instance.id)
        self._announce()
        # the loan file is complete: archive it (a process of no bank and no product has no loan file)
        if instance.status in ENDED and not self._ended and (instance.tenant_id or instance.product_version_id):
            enqueue(session, ARCHIVE, self.now, self.now, tenant_id=instance.tenant_id, instance_id=instance.id)
            self._ended = True

    def _announce(self) -> None:
        """Tell whoever submitted an application how it ended, or that it failed (``application.<outcome>``
        to the outbox, hence to the bank's webhooks): a channel need not poll a review that takes hours."""
        instance, binding = self.instance, getattr(self.workflow, "product_binding", None)
        status, before = instance.status, self._status
        self._status = status
        if binding is None or status == before:
            return
        if status in ENDED:
            self.outcome = self._outcome(binding)
        elif status == ERROR:
            self.outcome = ERROR
        else:
            return
        data = instance.data or {}
        self._tell_submitter(
            binding,
            self.outcome,
            outcome=self.outcome,
            end_event=_end_event(self.workflow) if status == COMPLETED else None,
            approved_amount=data.get("approved_amount") if self.outcome == "approved" else None,
            error=(channel_error(instance.error) or {}).get("message") if status == ERROR else None,
        )

    def _outcome(self, binding: Any) -> str:
        """How an ended application ended: cancelled, or the outcome its end event stands for."""
        if self.instance.status == CANCELLED:
            return CANCELLED
        return binding.end_outcomes.get(_end_event(self.workflow) or "", COMPLETED)

    def _void_unpaid_contracts(self, outcome: str) -> None:
        """An application that ends holding a sealed contract, the money unmoved, voids that contract
        (its Word file and PDF too): the bank's seal on it still verifies, and nobody may present it as
        binding. Written with the end, in its transaction, on the audit trail (``contract_voided``).

        A granted outcome keeps the contract, should a payout ever go by a connector ``MONEY_MOVES``
        does not name: voiding a paid loan's contract is the costlier mistake. For the same reason a
        payout core banking never answered keeps it (``contract_kept``), and the disbursers hear of it
        to settle the payout with core banking. A contract generated but never sealed (its step
        aborted) carries no seal to misread and is left as it is.
        """
        payout = self._payout()
        if outcome == GRANTED or payout == MOVED:
            return
        documents = self._live_documents()
        if not any(d.kind == CONTRACT_SEALED for d in documents):
            return
        end = _end_task(self.workflow) if self.instance.status == COMPLETED else None
        reason = f"{outcome}: {end.task_spec.bpmn_name}" if end is not None and end.task_spec.bpmn_name else outcome
        if payout == UNCONFIRMED:
            self._keep_unconfirmed(documents, reason)
        else:
            self._void(documents, reason)

    def void_superseded_contracts(self, reason: str) -> None:
        """A return to a step before the contract was made: the contract steps run again and make a new
        one, and the earlier round's documents (a sealed contract with the old terms among them) are
        void, unless the money already moved on them.

        While a payout on the old contract is unconfirmed the return is refused: the new contract's
        number would slip past core banking's duplicate check, and the borrower could be paid twice.
        """
        done = {t.task_spec.bpmn_id for t in self.workflow.get_tasks(state=TaskState.COMPLETED)}
        superseded = [d for d in self._live_documents() if d.bpmn_id is not None and d.bpmn_id not in done]
        payout = self._payout()
        if payout == UNCONFIRMED and superseded:
            raise Conflict(
                "core banking never answered a payout on this application's contract, so the money may "
                "have moved: settle the payout first (retrying it is safe: core banking answers a repeated "
                "contract number with the first payout), then return"
            )
        if payout != MOVED:
            self._void(superseded, reason)

    def _payout(self) -> str | None:
        """What became of this application's payouts (``payout_state``), from the audit trail: the
        events stored and this change's pending ones (the call's own transaction records them)."""
        with self.session.no_autoflush:  # this change's rows are written in save's order, after this
            stored = self.session.execute(
                select(AuditEvent.event_type, AuditEvent.payload)
                .where(AuditEvent.instance_id == self.instance.id, AuditEvent.event_type.in_(_PAYOUT_EVENTS))
                .order_by(AuditEvent.seq)
            ).all()
        return payout_state([*stored, *((e.event_type, e.payload) for e in self.journal.events)])

    def _connector_failed(self, task: Task, failure: dict[str, Any]) -> None:
        self.journal.record(FAILED, task_id=str(task.id), bpmn_id=task.task_spec.bpmn_id, actor=False, **failure)

    def _keep_unconfirmed(self, documents: list[Any], reason: str) -> None:
        """The application ends with a payout unanswered: its contract stays binding until the
        disbursers settle with core banking whether the money moved."""
        kept = [d.id for d in documents]
        self.journal.record("contract_kept", actor=False, reason=reason, cause="payout_unconfirmed", documents=kept)
        instance = self.instance
        disbursers = holders(self.session, instance.tenant_id, "disburser", None)
        publish(
            self.session,
            self.now,
            tenant_id=instance.tenant_id,
            topic="application.payout_unconfirmed",
            recipients=[*disbursers, *([instance.started_by_id] if instance.started_by_id is not None else [])],
            payload={"instance_id": instance.id, "business_key": instance.business_key, "reason": reason},
        )

    def _live_documents(self) -> list[Any]:
        """The instance's documents not yet void, stored or made in this change, oldest first."""
        with self.session.no_autoflush:
            stored = self.session.scalars(
                select(Document).where(Document.instance_id == self.instance.id, Document.voided_at.is_(None))
            ).all()
        return sorted([*stored, *self.documents.values()], key=lambda d: (d.created_at, d.id))

    def _void(self, documents: list[Any], reason: str) -> None:
        for document in documents:
            document.voided_at, document.void_reason = self.now, reason[:255]
            self.journal.record(
                "contract_voided",
                actor=False,
                document_id=document.id,
                kind=document.kind,
                contract_no=document.contract_no,
                sha256=document.sha256,
                reason=document.void_reason,
            )

    def _tell_submitter(self, binding: Any, event: str, **details: Any) -> None:
        """``application.<event>`` to whoever submitted the application (and so to the bank's webhooks)."""
        instance = self.instance
        publish(
            self.session,
            self.now,
            tenant_id=instance.tenant_id,
            topic=f"application.{event}",
            recipients=[instance.started_by_id] if instance.started_by_id is not None else [],
            payload={
                "instance_id": instance.id,
                "business_key": instance.business_key,
                "product": binding.contract.get("code"),
                **details,
            },
        )

    def _money_moved(self, event: str, task: Task, result: Any) -> None:
        """Core banking paid out (or renewed) the loan: the audit trail says so, and whoever submitted
        the application hears ``application.disbursed`` at once, before any later wait (a policy loan's
        subsidy filing kept a paid loan "running" for the channel)."""
        contract = task.data.get("contract") or {}
        details = {
            "amount": task.data.get("approved_amount"),
            "contract_no": contract.get("contract_no") if isinstance(contract, dict) else None,
            "reference": result if isinstance(result, dict) else None,
        }
        self.journal.record(event, task_id=str(task.id), bpmn_id=task.task_spec.bpmn_id, actor=False, **details)
        binding = getattr(self.workflow, "product_binding", None)
        if binding is not None:
            self._tell_submitter(binding, event, **details)

    def _write_reopened(self) -> None:
        """A returned-to task keeps its id (SpiffWorkflow's) and opens again with a fresh offer and a
        fresh clock. The round it closed stays a completed task of its own, under a new id, with that
        round's escalations: the on-time rate counts both rounds, and the ladder climbs again."""
        for row in self._reopened:
            kept = str(uuid.uuid4())
            earlier = select(literal(kept, String(36)), *_ROUND_COLUMNS).where(_TASK.c.id == row.id)
            self.session.execute(insert(_TASK).from_select(["id", *(c.name for c in _ROUND_COLUMNS)], earlier))
            self.session.execute(
                update(Escalation)
                .where(Escalation.scope == TASK, Escalation.subject_id == row.id)
                .values(subject_id=kept)
            )
            fields = {
                c: getattr(row, c) for c in ("status", "ended_at", "completed_by_id", "assignee_id", "created_at")
            }
            fields |= {c: getattr(row, c) for c in ("role", "org_unit_id", "duty", "priority", "warn_at", "due_at")}
            fields |= {"escalate_at": row.escalate_at, "owner_id": None, "delegation": None}
            fields |= {"paused_at": None, "pause_reason": None, "pauses": None}
            fields |= {c: getattr(row, c) for c in ("returned_by_id", "returned_from", "return_reason")}
            self.session.execute(update(HumanTask).where(HumanTask.id == row.id).values(**fields))
            self.session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == row.id))

    def deadlines(self, binding: Any, step: str | None) -> Any:
        """A clock's thresholds from the product's limits; a year without a calendar leaves the clock
        unset and says so in the audit trail instead of guessing (or failing the step)."""
        try:
            return binding.deadlines(step, self.now, self.workflow.calendar)
        except UnknownCalendarYear as exc:
            report_missing_year(self.session, self.journal, self.instance, self.now, step, exc)
            return None

    def _observe(self, task: Task) -> None:
        spec = task.task_spec
        evaluation = task.internal_data.pop(EVALUATION_KEY, None)
        if evaluation is not None:  # kept once, in the audit trail, not in the instance state
            self.journal.record("rule_evaluated", task_id=str(task.id), bpmn_id=spec.bpmn_id, actor=False, **evaluation)
        moved = MONEY_MOVES.get(getattr(spec, "operation_name", ""))
        if moved is not None and spec.result_variable in task.data:
            self._money_moved(moved, task, task.data[spec.result_variable])
        if isinstance(spec, ExclusiveGateway | InclusiveGateway):
            taken = [c.task_spec.bpmn_id or c.task_spec.name for c in task.children]
            self.journal.record(
                "gateway_taken",
                task_id=str(task.id),
                bpmn_id=spec.bpmn_id,
                actor=False,
                name=spec.bpmn_name,
                taken=taken,
            )

    def _project_tasks(self) -> None:
        """Make the human_task rows match the READY manual tasks of the workflow."""
        ready = {str(t.id): t for t in self.workflow.get_tasks(state=TaskState.READY, manual=True)}
        for task_id in [t for t in self.open_tasks if t not in ready]:
            row = self.close_task(task_id, "cancelled")
            self.journal.record("task_cancelled", task_id=task_id, bpmn_id=row.bpmn_id, actor=False)
        for task_id, task in ready.items():
            if task_id in self.open_tasks:
                continue
            spec = task.task_spec
            properties = (getattr(spec, "extensions", None) or {}).get("properties") or {}
            form = properties.get("formJsonSchemaFilename")
            binding = getattr(self.workflow, "product_binding", None)
            deadlines = None
            if binding is not None:  # the product maps the archetype's forms to its own
                form = binding.task_forms.get(spec.bpmn_id, form)
                deadlines = self.deadlines(binding, spec.bpmn_id)
            row = self.rows.tasks.record(
                id=task_id,
                instance_id=self.instance.id,
                tenant_id=self.instance.tenant_id,
                bpmn_id=spec.bpmn_id,
                name=spec.bpmn_name,
                lane=spec.lane,
                form=form,
                status="ready",
                created_at=self.now,
                warn_at=deadlines.warn_at if deadlines else None,
                due_at=deadlines.overdue_at if deadlines else None,
                escalate_at=deadlines.escalate_at if deadlines else None,
                assignee_id=self.reopen.get(task_id),
                **(self.returned if task_id in self.reopen else {}),
            )
            self.assignment.open(row, self.assignment.offer(spec.lane, properties, task.data))
            (self._reopened if task_id in self.reopen else self._created).append(row)
            self.open_tasks[task_id] = row
            self.journal.record(
                "task_created",
                task_id=task_id,
                bpmn_id=spec.bpmn_id,
                actor=False,
                name=spec.bpmn_name,
                lane=spec.lane,
                role=row.role,
                org_unit_id=row.org_unit_id,
                assignee_id=row.assignee_id,
            )


def report_missing_year(
    session: Session, journal: Journal, instance: Any, now: datetime, step: str | None, exc: UnknownCalendarYear
) -> None:
    """A clock left unset because nobody entered its year's calendar: in the audit trail, and to the
    bank's administrators, who enter the year (which sets the clocks it left unset)."""
    journal.record("calendar_missing", actor=False, step=step, year=exc.year, message=exc.detail)
    publish(
        session,
        now,
        tenant_id=instance.tenant_id,
        topic="calendar.missing",
        recipients=administrators(session, instance.tenant_id),
        payload={"year": exc.year, "instance_id": instance.id, "step": step, "message": exc.detail},
    )


def describe_error(exc: SpiffWorkflowException) -> dict[str, Any]:
    """What an operator needs to fix a failed step: where, which line, and the original cause."""
    task = getattr(exc, "task", None)
    cause = exc.__cause__
    message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    error_type = getattr(exc, "error_type", None)
    if not error_type or error_type == "unknown":
        error_type = type(cause or exc).__name__
    detail: dict[str, Any] = {"message": message, "type": error_type}
    if cause is not None and str(cause) and str(cause) not in message:
        detail["cause"] = str(cause)
    if task is not None:
        detail.update(task_id=str(task.id), bpmn_id=task.task_spec.bpmn_id, task_name=task.task_spec.bpmn_name)
    if getattr(exc, "line_number", None):
        detail.update(line_number=exc.line_number, error_line=getattr(exc, "error_line", None))
    return detail


def current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The instance's business data as a user would see it now."""
    if workflow.completed:
        return dict(workflow.data)
    merged: dict[str, Any] = {}
    waiting = workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.ERROR)
    for task in waiting or [workflow.last_task or workflow.task_tree]:
        merged.update(task.data)
    return merged


def _end_event(workflow: BpmnWorkflow) -> str | None:
    """The end event the top-level process finished at (subprocess ends are not the outcome)."""
    end = _end_task(workflow)
    return end.task_spec.bpmn_id if end is not None else None


def _end_task(workflow: BpmnWorkflow) -> Task | None:
    """The top-level end event's task: its id says the outcome, its name what happened."""
    ends = workflow.get_tasks(state=TaskState.COMPLETED, spec_class=EndEvent, skip_subprocesses=True)
    return max(ends, key=lambda t: t.last_state_change) if ends else None


def _next_timer(workflow: BpmnWorkflow) -> datetime | None:
    """The earliest due time of a waiting timer, read as SpiffWorkflow reads it (a zone-less
    ``timeDate`` is the server's local time)."""
    due = [
        TimerEventDefinition.get_datetime(event.value)
        for event in workflow.waiting_events()
        if event.event_type.endswith("TimerEventDefinition") and isinstance(event.value, str)
    ]
    # An event-based gateway waits as one MultipleEventDefinition whose details carry no value: its
    # timer's due time is kept on the gateway task (SpiffWorkflow 3.2.0).
    due += [
        TimerEventDefinition.get_datetime(task.internal_data["event_value"])
        for task in workflow.get_tasks(state=TaskState.WAITING, spec_class=EventBasedGateway)
        if isinstance(task.internal_data.get("event_value"), str)
    ]
    return min(due) if due else None
