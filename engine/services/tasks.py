"""Human tasks: the inbox, reading a task with its form, completing it, and the inbox actions.

Who may act: the assignee, or while they are away their substitute (``engine.inbox.absences``); a
candidate (completing an unclaimed task claims it); a supervisor for
assign and unclaim; ``tasks.override`` holders within their own tenant. Segregation of duties bars
a user from a task whatever else they hold. The province reads its banks' tasks but acts on none.
Every action is journaled on the application's audit trail with its actor.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer, load_only

from engine.errors import Conflict, CreditFlowError, Forbidden, InvalidInput, NotFound
from engine.forms.definition import FormDefinition, form_name
from engine.forms.validation import bound_problems, match_problems, unknown_fields, validate_form_data
from engine.inbox.absences import covered_by, stand_in
from engine.inbox.assignment import Assignment, holders, personal_username
from engine.inbox.queries import (
    VIEWS,
    InboxQuery,
    after,
    count,
    covering,
    cursor_of,
    eligible_clause,
    filtered,
    order_by,
    parse_cursor,
    supervised_units,
)
from engine.masking import mask_text
from engine.notify.outbox import publish
from engine.org.roles import TASKS_OVERRIDE, TASKS_WORK
from engine.runtime.workflow_state import load_state, plain_json
from engine.services.auth import load_principal
from engine.services.execution import RUNNING, Execution, report_missing_year
from engine.services.instance_access import reads
from engine.services.instances import InstanceView
from engine.services.principal import Principal
from engine.sla.calendar import UnknownCalendarYear
from engine.sla.deadlines import stored_level
from engine.sla.escalation import TASK, THRESHOLDS, reached, schedule, unschedule_tasks
from engine.store.models import (
    Attachment,
    Comment,
    HumanTask,
    ProcessInstance,
    SavedFilter,
    TaskExclusion,
    User,
)

if TYPE_CHECKING:
    from engine.container import CreditFlow

MAX_BULK = 100
# what an inbox row shows of its application (``api.rows.inbox_row``)
_ROW_COLUMNS = (
    *(ProcessInstance.business_key, ProcessInstance.applicant_name, ProcessInstance.applicant_id_masked),
    *(ProcessInstance.org_unit_id, ProcessInstance.product_version_id, ProcessInstance.amount_fen),
)
# inbox actions that hand a task to someone, and the notification they get
HANDED = {"task_assigned": "task.assigned", "task_delegated": "task.delegated"}
# a returned-to task's internal data: its form's values from the round it was returned from
ENTERED = "creditflow.entered"


@dataclass(frozen=True)
class TaskView:
    task: Any
    instance: Any
    level: str  # SLA colour now: none | yellow | orange | red
    data: dict[str, Any] | None = None
    form: FormDefinition | None = None
    remaining_minutes: int | None = None  # working time left until due (negative once overdue)
    return_steps: list[Any] = field(default_factory=list)  # completed earlier steps it may be returned to
    opinions: list[Any] = field(default_factory=list)  # the application's opinion record so far (task detail)
    covering_for: str | None = None  # the absent colleague whose task the caller covers (休假代理)


@dataclass(frozen=True)
class InboxPage:
    items: list[TaskView]
    total: int
    next_cursor: str | None


class TaskService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    # -- reading -------------------------------------------------------------------------------

    def list(self, principal: Principal, query: InboxQuery) -> InboxPage:
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            if query.view not in VIEWS:
                raise InvalidInput(f"unknown view {query.view!r}", [{"field": "view", "message": "unknown view"}])
            away = covered_by(session, principal.user_id, now)
            stmt = filtered(principal, query, now, away.keys())
            total = session.scalar(count(stmt)) or 0
            if query.cursor:
                stmt = stmt.where(after(query.sort, parse_cursor(query.sort, query.cursor)))
            tasks = list(session.scalars(stmt.order_by(*order_by(query.sort)).limit(query.limit + 1)))
            more = len(tasks) > query.limit
            tasks = tasks[: query.limit]
            instances = {
                i.id: i
                for i in session.scalars(
                    select(ProcessInstance)
                    .options(load_only(*_ROW_COLUMNS))  # not the state: an application's is tens of KB
                    .where(ProcessInstance.id.in_({t.instance_id for t in tasks}))
                )
            }
            items = [
                TaskView(t, instances[t.instance_id], stored_level(t, now), covering_for=away.get(t.assignee_id or 0))
                for t in tasks
            ]
            return InboxPage(items, total, cursor_of(query.sort, tasks[-1]) if more else None)

    def counts(self, principal: Principal, query: InboxQuery) -> dict[str, int]:
        """Open tasks per view with the query's filters (the views the caller may use)."""
        now = self.platform.clock.now()
        found: dict[str, int] = {}
        with self.platform.db.transaction() as session:
            away = covered_by(session, principal.user_id, now).keys()
            for view in VIEWS:
                if view == "covering" and not away:
                    found[view] = 0  # nobody to cover for: no query
                    continue
                try:
                    stmt = filtered(principal, replace(query, view=view), now, away)
                except Forbidden:  # a view this caller may not use
                    continue
                found[view] = session.scalar(count(stmt)) or 0
        return found

    def get(self, principal: Principal, task_id: str) -> TaskView:
        """The task with its form, the data the form opens with and the application's opinions so far."""
        with self.platform.db.transaction() as session:
            row = self._row(session, principal, task_id)
            instance = session.get(ProcessInstance, row.instance_id)
            data, steps = None, []
            if row.status == "ready":
                definition = self.platform.specs.get(session, instance.definition_id)
                workflow = load_state(
                    instance.state, definition.spec, definition.subprocess_specs, self.platform.script_engine
                )
                task = workflow.get_task_from_id(uuid.UUID(row.id))
                if task is not None:  # a returned-to step opens with what was entered in its last round
                    data = plain_json({**task.data, **task.internal_data.get(ENTERED, {})})
                latest: dict[str, HumanTask] = {}
                for done in self._done_rows(session, row.instance_id):
                    latest.setdefault(done.bpmn_id, done)
                steps = [
                    r for r in latest.values() if r.bpmn_id != row.bpmn_id and _returnable(workflow, r) is not None
                ]
            form = self.form_for(row.form, instance, session)
            now = self.platform.clock.now()
            remaining = None
            if row.due_at is not None and row.status == "ready":
                since = row.paused_at or now
                remaining = self.platform.calendars.remaining_minutes(session, instance, since, row.due_at)
            # whoever works the step reads what the earlier handlers decided; a channel's account does not
            opinions = [] if principal.is_service else self.platform.opinions.record(session, instance)
            return TaskView(row, instance, stored_level(row, now), data, form, remaining, steps, opinions)

    # -- completing ----------------------------------------------------------------------------

    def complete(self, principal: Principal, task_id: str, data: dict[str, Any]) -> InstanceView:
        """Validate against the task's form, complete it, and run the instance on to its next wait."""

        def complete(execution: Execution) -> None:
            row = self._open_row(execution, task_id)
            self._check_may_work(execution.session, principal, row)
            form = self.form_for(row.form, execution.instance, execution.session)
            if form is not None and (problems := validate_form_data(form, data) + unknown_fields(form, data)):
                raise InvalidInput(f"the submitted data does not match form {form.name}", problems)
            task = execution.workflow.get_task_from_id(uuid.UUID(task_id))
            if task is None or task.state != TaskState.READY:
                raise Conflict(f"task {task_id} is no longer waiting for input")
            properties = (getattr(task.task_spec, "extensions", None) or {}).get("properties") or {}
            owner = personal_username(properties, task.data)
            if owner is not None and not principal.is_system and owner != principal.username:
                raise Forbidden(f"this task is {owner}'s own (a committee member's ballot); nobody else completes it")
            if form is not None and (problems := match_problems(form.schema, data, task.data)):
                raise InvalidInput("the submitted data does not match this application", problems)
            version_id = execution.instance.product_version_id
            if form is not None and version_id is not None:
                parameters = self.platform.products.binding(execution.session, version_id).contract["parameters"]
                if problems := bound_problems(form, data, parameters, task.data):
                    raise InvalidInput("the amount is outside what the product and the application allow", problems)
            changes = {k: {"old": task.data.get(k), "new": v} for k, v in data.items() if task.data.get(k) != v}
            if row.assignee_id is None:  # completing an unclaimed task offered to you claims it
                row.assignee_id = principal.user_id
            execution.close_task(task_id, "completed", principal.user_id)
            # what was submitted, changed or not: the opinion record reads each round's decision from it (an
            # officer who confirms their conclusion after 退回补充 changes nothing in the data, yet decides)
            validated = {"form_sha256": form.sha256} if form is not None else {}  # which form it met
            execution.journal.record(
                "task_completed",
                task_id=task_id,
                bpmn_id=row.bpmn_id,
                name=row.name,
                changes=changes,
                submitted=data,
                **validated,
            )

            def run_task() -> None:
                task.internal_data.pop(ENTERED, None)
                task.data.update(data)
                task.run()

            execution.run(run_task)

        return self.platform.instances.change(principal, self._locate(principal, task_id), complete)

    def return_to(self, principal: Principal, task_id: str, step: str, reason: str) -> InstanceView:
        """Send the application back to an earlier step (退回). It goes back to whoever did that step,
        opens with what they entered then, and shows who returned it and why; the reason is also a
        comment on the application. Once the step is done again, the application comes back to whoever
        returned it (the return counts as their duty: ``Execution.close_task``)."""
        reason = _said(reason, "reason")

        def send_back(execution: Execution) -> None:
            row = self._open_row(execution, task_id)
            self._check_may_work(execution.session, principal, row)
            done = {r.id: r for r in self._done_rows(execution.session, row.instance_id)}
            target = next((r for r in done.values() if r.bpmn_id == step), None)
            earlier = _returnable(execution.workflow, target)
            if earlier is None:
                raise InvalidInput(
                    f"the application cannot be returned to {step!r}",
                    [{"field": "step", "message": "not a completed earlier step of this application"}],
                )
            execution.close_task(task_id, "returned", principal.user_id)
            # SpiffWorkflow reopens the tasks it resets under their old ids, the step returned to and, in a
            # parallel split, a sibling completed after it: each goes back to whoever did it
            execution.reopen.update({done_id: r.completed_by_id for done_id, r in done.items()})
            execution.returned = {"returned_by_id": principal.user_id, "returned_from": row.bpmn_id}
            execution.returned["return_reason"] = reason
            execution.journal.record(
                "task_returned", task_id=task_id, bpmn_id=row.bpmn_id, to_task_id=target.id, to=step, reason=reason
            )
            note = Comment(
                instance_id=row.instance_id,
                task_id=row.id,
                author_id=principal.user_id,
                body=f"退回至「{target.name or step}」：{reason}",
                created_at=execution.now,
            )
            execution.session.add(note)
            points = _reset_points(earlier, execution.workflow.get_task_from_id(uuid.UUID(task_id)))
            entered: dict[str, dict[str, Any]] = {}
            for point in points:
                point_id = str(point.id)
                form = (
                    self.form_for(done[point_id].form, execution.instance, execution.session)
                    if point_id in done
                    else None
                )
                entered[point_id] = _entered(point.data, form)

            def reset() -> None:
                for point in points:
                    execution.workflow.reset_from_task_id(point.id)
                    if entered[str(point.id)]:
                        point.internal_data[ENTERED] = entered[str(point.id)]

            back = [done[str(p.id)].completed_by_id for p in points if str(p.id) in done]  # before they reopen
            execution.run(reset)
            execution.void_superseded_contracts(f"superseded: 退回至「{target.name or step}」")
            told = mask_text(reason)
            self._tell(execution.session, execution.instance, target, "task.returned", back, reason=told)

        return self.platform.instances.change(principal, self._locate(principal, task_id), send_back)

    @staticmethod
    def _done_rows(session: Session, instance_id: str) -> list[HumanTask]:
        """The application's completed steps, latest first: what it may be returned to."""
        return list(
            session.scalars(
                select(HumanTask)
                .where(HumanTask.instance_id == instance_id, HumanTask.status == "completed")
                .order_by(HumanTask.ended_at.desc(), HumanTask.id)
            )
        )

    # -- inbox actions -------------------------------------------------------------------------

    def claim(self, principal: Principal, task_id: str) -> TaskView:
        def claim(session: Session, row: HumanTask) -> dict[str, Any] | None:
            if row.assignee_id == principal.user_id:
                return None
            if row.assignee_id is not None:
                raise Conflict("the task is already claimed by someone else")
            self._check_may_work(session, principal, row)
            return {"assignee_id": principal.user_id}

        return self._act(principal, task_id, "task_claimed", claim)

    def unclaim(self, principal: Principal, task_id: str) -> TaskView:
        def unclaim(session: Session, row: HumanTask) -> dict[str, Any] | None:
            if row.assignee_id is None:
                return None
            if row.delegation == "pending":
                raise Conflict("the task is delegated; the delegate resolves it back first")
            if row.assignee_id != principal.user_id and not self._supervises(session, principal, row):
                raise Forbidden("only the assignee or a supervisor can release this task")
            return {"assignee_id": None, "owner_id": None, "delegation": None}

        return self._act(principal, task_id, "task_unclaimed", unclaim)

    def assign(self, principal: Principal, task_id: str, user_id: int) -> TaskView:
        """A supervisor hands the task to someone it is offered to."""

        def assign(session: Session, row: HumanTask) -> dict[str, Any] | None:
            if not self._supervises(session, principal, row):
                raise Forbidden("only a supervisor of the task's unit can assign it")
            if row.delegation == "pending":
                raise Conflict("the task is delegated; the delegate resolves it back first")
            target = self._colleague(session, row, user_id)
            barred = set(session.scalars(select(TaskExclusion.user_id).where(TaskExclusion.task_id == row.id)))
            # someone on leave: their substitute gets it, as new personal work does (休假代理)
            assignee = stand_in(session, target.id, self.platform.clock.now(), barred)
            return {"assignee_id": assignee, "owner_id": None, "delegation": None}

        return self._act(principal, task_id, "task_assigned", assign, target=user_id)

    def delegate(self, principal: Principal, task_id: str, user_id: int) -> TaskView:
        """The assignee asks a colleague to work on the task and keeps ownership (resolve gives it back)."""

        def delegate(session: Session, row: HumanTask) -> dict[str, Any] | None:
            if row.assignee_id != principal.user_id or row.delegation == "pending":
                raise Forbidden("only the assignee of a task that is not already delegated can delegate it")
            target = self._colleague(session, row, user_id, across_units=True)
            if target.id == principal.user_id:
                raise InvalidInput("a task cannot be delegated to oneself", [{"field": "user_id", "message": "you"}])
            return {"assignee_id": target.id, "owner_id": principal.user_id, "delegation": "pending"}

        return self._act(principal, task_id, "task_delegated", delegate, target=user_id)

    def resolve(self, principal: Principal, task_id: str, comment: str | None = None) -> TaskView:
        """The delegate hands the task back to its owner."""

        def resolve(session: Session, row: HumanTask) -> dict[str, Any] | None:
            if row.delegation != "pending" or row.assignee_id != principal.user_id:
                raise Forbidden("only the delegate of a delegated task can resolve it")
            # the delegate did the step's work: segregation of duties bars them from conflicting steps
            self._performed(session, row, principal.user_id)
            if comment and comment.strip():  # what the delegate found, for the owner and the steps after
                session.add(
                    Comment(
                        instance_id=row.instance_id,
                        task_id=row.id,
                        author_id=principal.user_id,
                        body=comment.strip(),
                        created_at=self.platform.clock.now(),
                    )
                )
            return {"assignee_id": row.owner_id, "delegation": "resolved"}

        return self._act(principal, task_id, "task_resolved", resolve, comment=comment)

    def pause(self, principal: Principal, task_id: str, reason: str) -> TaskView:
        """Stop the step clock while the task waits for the customer or an outside party."""
        reason = _said(reason, "reason")  # what the task waits for is on record, never blank

        def pause(session: Session, row: HumanTask) -> dict[str, Any] | None:
            self._check_owns_clock(session, principal, row)
            if row.paused_at is not None:
                raise Conflict("the task's clock is already paused")
            unschedule_tasks(session, [row.id])
            return {"paused_at": self.platform.clock.now(), "pause_reason": reason}

        return self._act(principal, task_id, "clock_paused", pause, reason=reason)

    def resume(self, principal: Principal, task_id: str) -> TaskView:
        """Restart the step clock: the times it had not reached move by the paused working time."""
        with self._locked_row(principal, task_id) as (session, journal, row):
            self._check_owns_clock(session, principal, row)
            if row.paused_at is None:
                raise Conflict("the task's clock is not paused")
            now = self.platform.clock.now()
            pauses = [*(row.pauses or []), [row.paused_at.isoformat(), now.isoformat()]]
            values: dict[str, Any] = {"paused_at": None, "pause_reason": None, "pauses": pauses}
            instance = session.get(ProcessInstance, row.instance_id)
            stored = {name: getattr(row, name) for name in THRESHOLDS}
            if instance.product_version_id is not None and any(stored.values()):
                binding = self.platform.products.binding(session, instance.product_version_id)
                calendar = self.platform.calendars.for_tenant(session, row.tenant_id)
                try:
                    values |= binding.after_pause(row.bpmn_id, stored, row.paused_at, now, calendar)
                except UnknownCalendarYear as exc:  # resumed all the same, with no clock until the year is entered
                    values |= dict.fromkeys(THRESHOLDS)
                    report_missing_year(session, journal, instance, now, row.bpmn_id, exc)
            clock = SimpleNamespace(id=row.id, **{k: values.get(k, getattr(row, k)) for k in THRESHOLDS})
            schedule(session, TASK, clock, instance, now, after=reached(session, TASK, row.id))
            return self._apply(session, journal, row, "clock_resumed", values)

    def bulk(self, principal: Principal, action: str, task_ids: list[str], **kwargs: Any) -> list[dict[str, Any]]:
        """Run one action on many tasks; each succeeds or fails on its own, and says which."""
        if len(task_ids) > MAX_BULK:
            raise InvalidInput(f"at most {MAX_BULK} tasks at once", [{"field": "task_ids", "message": "too many"}])
        handler: Callable[..., TaskView] = {"claim": self.claim, "assign": self.assign}[action]
        results = []
        for task_id in dict.fromkeys(task_ids):
            try:
                handler(principal, task_id, **kwargs)
                results.append({"task_id": task_id, "status": 200})
            except CreditFlowError as exc:
                results.append({"task_id": task_id, "status": exc.status, "detail": exc.detail})
        return results

    # -- comments and attachments ---------------------------------------------------------------

    def comment(self, principal: Principal, task_id: str, body: str) -> Comment:
        body = _said(body, "body")
        with self._locked_row(principal, task_id, open_only=False) as (session, journal, row):
            found = Comment(
                instance_id=row.instance_id,
                task_id=row.id,
                author_id=principal.user_id,
                body=body,
                created_at=self.platform.clock.now(),
            )
            session.add(found)
            session.flush()
            journal.record("comment_added", task_id=row.id, bpmn_id=row.bpmn_id, comment_id=found.id, body=body)
            return found

    def comments(self, principal: Principal, task_id: str) -> list[Comment]:
        """The comments on the whole application, so that each step sees what the others wrote."""
        with self.platform.db.transaction() as session:
            row = self._row(session, principal, task_id)
            stmt = select(Comment).where(Comment.instance_id == row.instance_id).order_by(Comment.id)
            return list(session.scalars(stmt))

    def attach(
        self, principal: Principal, task_id: str, filename: str, content_type: str, content: bytes
    ) -> Attachment:
        limit = self.platform.settings.max_upload_bytes
        if not content:
            raise InvalidInput("the file is empty", [{"field": "file", "message": "empty"}])
        if len(content) > limit:
            raise InvalidInput(f"attachments are limited to {limit} bytes", [{"field": "file", "message": "too large"}])
        name = PurePosixPath(filename.replace("\\", "/")).name.strip()[:255]
        if not name or name in (".", ".."):
            raise InvalidInput("the file needs a name", [{"field": "file", "message": "no file name"}])
        with self._locked_row(principal, task_id, open_only=False) as (session, journal, row):
            found = Attachment(
                id=str(uuid.uuid4()),
                instance_id=row.instance_id,
                task_id=row.id,
                filename=name,
                content_type=content_type[:127] or "application/octet-stream",
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                content=content,
                uploaded_by_id=principal.user_id,
                created_at=self.platform.clock.now(),
            )
            session.add(found)
            session.flush()
            journal.record(
                "attachment_added",
                task_id=row.id,
                bpmn_id=row.bpmn_id,
                attachment_id=found.id,
                filename=name,
                size=found.size,
                sha256=found.sha256,
            )
            return found

    def attachments(self, principal: Principal, task_id: str) -> list[Attachment]:
        with self.platform.db.transaction() as session:
            row = self._row(session, principal, task_id)
            stmt = (
                select(Attachment)
                .options(defer(Attachment.content))
                .where(Attachment.instance_id == row.instance_id)
                .order_by(Attachment.created_at, Attachment.id)
            )
            return list(session.scalars(stmt))

    def attachment(self, principal: Principal, attachment_id: str) -> Attachment:
        with self.platform.db.transaction() as session:
            found = session.get(Attachment, attachment_id)
            instance = session.get(ProcessInstance, found.instance_id) if found is not None else None
            if not reads(session, principal, instance):
                raise NotFound(f"attachment {attachment_id} does not exist")
            return found

    # -- saved filters -------------------------------------------------------------------------

    def saved_filters(self, principal: Principal) -> list[SavedFilter]:
        with self.platform.db.transaction() as session:
            stmt = select(SavedFilter).where(SavedFilter.user_id == principal.user_id).order_by(SavedFilter.name)
            return list(session.scalars(stmt))

    def save_filter(self, principal: Principal, name: str, query: dict[str, Any]) -> SavedFilter:
        """Create or replace the caller's filter ``name``."""
        if principal.user_id is None:
            raise Forbidden("saved filters belong to a user")
        with self.platform.db.transaction(write=True) as session:
            found = session.scalars(
                select(SavedFilter).where(SavedFilter.user_id == principal.user_id, SavedFilter.name == name)
            ).first()
            if found is None:
                found = SavedFilter(user_id=principal.user_id, name=name, created_at=self.platform.clock.now())
                session.add(found)
            found.query = query
            session.flush()
            return found

    def saved_filter(self, principal: Principal, filter_id: int) -> SavedFilter:
        with self.platform.db.transaction() as session:
            found = session.get(SavedFilter, filter_id)
            if found is None or found.user_id != principal.user_id:
                raise NotFound(f"saved filter {filter_id} does not exist")
            return found

    def delete_filter(self, principal: Principal, filter_id: int) -> None:
        with self.platform.db.transaction(write=True) as session:
            found = session.get(SavedFilter, filter_id)
            if found is None or found.user_id != principal.user_id:
                raise NotFound(f"saved filter {filter_id} does not exist")
            session.delete(found)

    # -- helpers -------------------------------------------------------------------------------

    def _act(
        self,
        principal: Principal,
        task_id: str,
        event: str,
        change: Callable[[Session, HumanTask], dict[str, Any] | None],
        **payload: Any,
    ) -> TaskView:
        """Run an inbox action under the instance lock; journal it if it changed anything."""
        with self._locked_row(principal, task_id) as (session, journal, row):
            return self._apply(session, journal, row, event, change(session, row), **payload)

    def _apply(
        self, session: Session, journal: Any, row: HumanTask, event: str, values: dict[str, Any] | None, **payload: Any
    ) -> TaskView:
        instance = session.get(ProcessInstance, row.instance_id)
        if values is not None:
            session.execute(update(HumanTask).where(HumanTask.id == row.id).values(**values))
            journal.record(event, task_id=row.id, bpmn_id=row.bpmn_id, **payload, **_ids(values))
            session.refresh(row)
            if event in HANDED:  # the person it now waits for hears of it
                self._tell(session, instance, row, HANDED[event], [row.assignee_id])
        return TaskView(row, instance, stored_level(row, self.platform.clock.now()))

    def _tell(
        self, session: Session, instance: Any, row: Any, topic: str, recipients: list[int | None], **details: Any
    ) -> None:
        """A notification about a step, in its recipients' notification centres (and to webhooks)."""
        publish(
            session,
            self.platform.clock.now(),
            tenant_id=instance.tenant_id,
            topic=topic,
            recipients=[r for r in recipients if r is not None],
            payload={
                "instance_id": instance.id,
                "business_key": instance.business_key,
                "applicant_name": instance.applicant_name,
                "task_id": row.id,
                "step": row.bpmn_id,
                "step_name": row.name,
                **details,
            },
        )

    @contextmanager
    def _locked_row(
        self, principal: Principal, task_id: str, *, open_only: bool = True
    ) -> Iterator[tuple[Session, Any, HumanTask]]:
        """The task row under its instance's lock, for a change by a caller of the task's own bank."""
        with self.platform.db.transaction() as session:
            instance_id = self._row(session, principal, task_id).instance_id
        with self.platform.instances.annotation(principal, instance_id) as (session, journal, _instance):
            row = session.get(HumanTask, task_id)
            if not principal.acts_in(row.tenant_id):
                raise Forbidden("the province reads its banks' tasks but does not act on them")
            if open_only and row.status != "ready":
                raise Conflict(f"task {task_id} is {row.status}")
            yield session, journal, row

    def _locate(self, principal: Principal, task_id: str) -> Callable[[Session], str]:
        def locate(session: Session) -> str:
            row = self.platform.db.rows.task(session, task_id)
            if row is None or not principal.sees(row.tenant_id):
                raise NotFound(f"task {task_id} does not exist")
            if not principal.acts_in(row.tenant_id):
                raise Forbidden("the province reads its banks' tasks but does not act on them")
            return row.instance_id

        return locate

    @staticmethod
    def _open_row(execution: Execution, task_id: str) -> Any:
        row = execution.open_tasks.get(task_id)  # read under the instance lock
        if row is None:
            raise Conflict(f"task {task_id} is no longer open")
        if execution.instance.status != RUNNING:
            raise Conflict(f"instance is {execution.instance.status}; its tasks cannot be completed now")
        return row

    def _check_may_work(self, session: Session, principal: Principal, row: Any) -> None:
        """The caller may work on the task: theirs, or unclaimed and offered to them."""
        if principal.is_system:
            return
        if self._barred(session, principal.user_id, row.id):
            raise Forbidden("segregation of duties (审贷分离): you did a conflicting step of this application")
        if row.delegation == "pending" and row.assignee_id != principal.user_id:
            raise Conflict("the task is delegated; the delegate resolves it back first")
        if row.assignee_id == principal.user_id or principal.can(TASKS_OVERRIDE):
            if row.delegation == "pending":
                raise Conflict("a delegated task is resolved back to its owner, who completes it")
            return
        if self._covers(session, principal, row):  # a colleague on leave's work, and not barred
            return
        if row.assignee_id is not None:
            raise Conflict("the task is claimed by someone else")
        if not self._offered(session, principal, row):
            raise Forbidden("this task is not offered to you")

    def _check_owns_clock(self, session: Session, principal: Principal, row: Any) -> None:
        """The assignee (or a supervisor) says the task waits for someone outside the bank."""
        if row.assignee_id != principal.user_id and not self._supervises(session, principal, row):
            raise Forbidden("only the task's assignee or a supervisor can pause or resume its clock")

    @staticmethod
    def _offered(session: Session, principal: Principal, row: Any) -> bool:
        """The inbox's own offer rule, evaluated for one task (one definition for both)."""
        stmt = select(HumanTask.id).where(HumanTask.id == row.id, eligible_clause(principal))
        return session.scalar(stmt) is not None

    def _covers(self, session: Session, principal: Principal, row: Any) -> bool:
        """The task is an absent colleague's whom the caller substitutes for (the covering view's rule)."""
        away = covered_by(session, principal.user_id, self.platform.clock.now()).keys()
        stmt = select(HumanTask.id).where(HumanTask.id == row.id, covering(principal, away))
        return session.scalar(stmt) is not None

    @staticmethod
    def _barred(session: Session, user_id: int | None, task_id: str) -> bool:
        stmt = select(TaskExclusion.user_id).where(TaskExclusion.task_id == task_id, TaskExclusion.user_id == user_id)
        return session.scalar(stmt) is not None

    @staticmethod
    def _supervises(session: Session, principal: Principal, row: Any) -> bool:
        if principal.is_system or principal.can(TASKS_OVERRIDE):
            return True
        units = supervised_units(principal)
        if units is None:
            return False
        return session.scalar(select(HumanTask.id).where(HumanTask.id == row.id, units)) is not None

    def _colleague(self, session: Session, row: Any, user_id: int, *, across_units: bool = False) -> User:
        """An active person of the task's bank who works tasks and is not barred from this one (a
        task handed to a product manager or an integration account could never come back), and whom
        it is offered to; ``across_units`` (a delegation): or who holds its role in another unit."""
        user = session.get(User, user_id)
        if user is None or user.tenant_id != row.tenant_id or not user.is_active:
            raise InvalidInput(f"no active user {user_id} in this bank", [{"field": "user_id", "message": "unknown"}])
        if user.is_service or not load_principal(session, user).can(TASKS_WORK):
            raise InvalidInput(
                f"{user.username} works no tasks", [{"field": "user_id", "message": "holds no role that works tasks"}]
            )
        if self._barred(session, user.id, row.id):
            raise InvalidInput(
                f"segregation of duties bars {user.username} from this task",
                [{"field": "user_id", "message": "did a conflicting step of this application"}],
            )
        if row.role is None and row.duty is not None:  # a committee member's own ballot
            raise InvalidInput(
                "this task is one person's own (a committee member's ballot); nobody else takes it",
                [{"field": "user_id", "message": "a personal task"}],
            )
        # assigned or delegated, the work stays with those it is offered to: a reviewer or a village
        # helper given an investigation would then review the application they investigated
        holds_role = (
            across_units and row.role is not None and user.id in holders(session, row.tenant_id, row.role, None)
        )
        if not holds_role and not self._offered(session, load_principal(session, user), row):
            raise InvalidInput(
                f"{user.username} does not hold the role this task is offered to, or may not do it",
                [{"field": "user_id", "message": "not a candidate for this task"}],
            )
        return user

    def _performed(self, session: Session, row: HumanTask, user_id: int | None) -> None:
        """Record that ``user_id`` did ``row``'s duty on its application, barring them from conflicting open steps."""
        instance = session.get(ProcessInstance, row.instance_id)
        rows = self.platform.db.rows
        assignment = Assignment(session, rows, instance)
        assignment.performed(
            row.duty, row.id, user_id, rows.open_tasks(session, row.instance_id), self.platform.clock.now()
        )
        assignment.flush()

    def _row(self, session: Session, principal: Principal, task_id: str) -> HumanTask:
        """A task the caller may see: one of an application they read (need to know), or theirs or
        offered to them; any other answers 404, like a task of another bank."""
        row = session.get(HumanTask, task_id)
        if row is None or not principal.sees(row.tenant_id):
            raise NotFound(f"task {task_id} does not exist")
        mine = principal.user_id is not None and principal.user_id in (row.assignee_id, row.owner_id)
        instance = session.get(ProcessInstance, row.instance_id)
        visible = mine or reads(session, principal, instance) or self._offered(session, principal, row)
        if not (visible or self._covers(session, principal, row)):
            raise NotFound(f"task {task_id} does not exist")
        return row

    def form_for(self, reference: str | None, instance: Any, session: Session) -> FormDefinition | None:
        """The task's form as the instance's product version (its overrides applied) or, without a
        product, its process definition froze it: the form the instance started with, whatever the
        form files hold now."""
        if not reference:
            return None
        if instance.product_version_id is not None:
            forms = self.platform.products.binding(session, instance.product_version_id).forms
        else:
            forms = self.platform.specs.get(session, instance.definition_id).forms
        return forms.get(form_name(reference))


def _returnable(workflow: Any, row: HumanTask | None) -> Any:
    """The workflow task of a completed step an application may go back to, or None: a step of this
    workflow (not of a subprocess) that is still completed in it, and not one instance of a
    multi-instance step."""
    earlier = workflow.tasks.get(uuid.UUID(row.id)) if row is not None else None  # this workflow's own
    if earlier is None or earlier.state != TaskState.COMPLETED:
        return None
    if earlier.parent is not None and isinstance(earlier.parent.task_spec, LoopTask):
        return None  # one ballot of a committee vote: reopened alone it lost its member and broke the count
    return earlier


def _entered(data: dict[str, Any], form: FormDefinition | None) -> dict[str, Any]:
    """What a step's form held when it was completed: its fields' values in the task's data."""
    if form is None:
        return {}
    fields_ = (form.schema.get("properties") or {}).keys()
    return plain_json({name: data[name] for name in fields_ if name in data})


def _reset_points(earlier: Any, current: Any) -> list[Any]:
    """The tasks to reset so that an application goes back to ``earlier`` from ``current``.

    Usually ``earlier`` alone: ``current`` descends from it. But after a parallel join SpiffWorkflow
    keeps the continuation under the branch that arrived last; when that is a sibling of ``earlier``,
    resetting ``earlier`` alone would leave ``current`` running. Then that sibling branch is reset too,
    and both parallel steps are done again (each by whoever did it).
    """
    if _within(current, earlier):
        return [earlier]
    ancestor = earlier.parent
    while ancestor is not None and not _within(current, ancestor):
        ancestor = ancestor.parent
    if ancestor is None:
        return [earlier]
    branch = next(child for child in ancestor.children if _within(current, child))
    return [branch, earlier]


def _within(task: Any, ancestor: Any) -> bool:
    node = task
    while node is not None:
        if node.id == ancestor.id:
            return True
        node = node.parent
    return False


def _said(text: str, field: str) -> str:
    """Free text a person must write: blank or whitespace only says nothing."""
    if not text.strip():
        raise InvalidInput(f"{field} must say something", [{"field": field, "message": "blank"}])
    return text.strip()


def _ids(values: dict[str, Any]) -> dict[str, Any]:
    """The user ids an action set, for the audit payload."""
    return {k: v for k, v in values.items() if k in ("assignee_id", "owner_id")}
