"""Starting, reading, cancelling and retrying process instances."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.forms.validation import match_problems, payload_problems
from engine.inbox.applicant import application_columns
from engine.inbox.queries import application_filters, instance_level_clause
from engine.org.roles import ROLES
from engine.runtime.timer_events import starts_on_timer_only
from engine.runtime.workflow_state import SERIALIZER_VERSION, load_state, new_workflow
from engine.services.execution import CANCELLED, COMPLETED, ENDED, ERROR, RUNNING, Execution, current_data
from engine.services.instance_access import readable, reads, whole_bank
from engine.services.principal import Principal
from engine.services.spec_cache import LoadedDefinition
from engine.store import keyset
from engine.store.audit import Journal, VerifyResult, verify_chain
from engine.store.fast_rows import StaleRow
from engine.store.hash_chain import GENESIS
from engine.store.models import AuditEvent, IdempotencyKey, OrgUnit, ProcessDefinition, ProcessInstance

if TYPE_CHECKING:
    from engine.container import CreditFlow
    from engine.services.products import Binding

STATUSES = (RUNNING, COMPLETED, CANCELLED, ERROR)
INTAKE_ROLE = "loan_officer"
NEWEST_FIRST = [(ProcessInstance.created_at, True, False), (ProcessInstance.id, True, False)]
Locator = Callable[[Session], str]
MESSAGE_EVENT = MessageEventDefinition.__name__


@dataclass(frozen=True)
class InstanceView:
    instance: Any  # a fast_rows record or a ProcessInstance: the same attributes
    definition: LoadedDefinition
    tasks: list[Any]
    remaining_minutes: int | None = None  # working time left on the process clock (read views only)
    replayed: bool = False  # what an earlier request with the same Idempotency-Key started
    outcome: str | None = None  # how it ended: approved, rejected, aborted, cancelled (or its status)


@dataclass(frozen=True)
class Idempotency:
    """A client's ``Idempotency-Key`` and the fingerprint of the request it came with (method, path,
    canonical body): a network retry of a submission must not start a second loan."""

    key: str
    fingerprint: str


def _remember(
    session: Session, principal: Principal, idempotency: Idempotency | None, instance_id: str, now: datetime
) -> None:
    """Keep a request's Idempotency-Key with the instance it changed, in the change's transaction."""
    if idempotency is not None and principal.user_id is not None:
        session.add(
            IdempotencyKey(
                user_id=principal.user_id,
                key=idempotency.key,
                request_sha256=idempotency.fingerprint,
                instance_id=instance_id,
                created_at=now,
            )
        )


def ordered(tasks: Iterable[Any]) -> list[Any]:
    return sorted(tasks, key=lambda t: (t.created_at, t.id))


def waiting_messages(workflow: Any) -> set[str]:
    """The messages an instance waits for: plain catch events, and the message branches of a waiting
    event-based gateway (which SpiffWorkflow reports as one unnamed combined event)."""
    names = {e.name for e in workflow.waiting_events() if e.event_type == MESSAGE_EVENT}
    for task in workflow.get_tasks(state=TaskState.WAITING):
        combined = getattr(getattr(task.task_spec, "event_definition", None), "event_definitions", None) or []
        names |= {d.name for d in combined if isinstance(d, MessageEventDefinition)}
    return names


def message_task_data(workflow: Any, name: str) -> dict[str, Any]:
    """The data of the task waiting for message ``name``: what the message is checked against."""
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        for candidate in getattr(definition, "event_definitions", None) or [definition]:
            if isinstance(candidate, MessageEventDefinition) and candidate.name == name:
                return task.data
    return {}


class Busy(Conflict):
    """The instance is locked by someone else and the caller chose not to wait."""


class InstanceService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    # -- changes -------------------------------------------------------------------------------

    def start(
        self,
        principal: Principal,
        definition_key: str | None = None,
        *,
        version: int | None = None,
        binding: Binding | None = None,
        business_key: str | None = None,
        data: dict[str, Any] | None = None,
        org_unit: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> InstanceView:
        """Start a bare process definition by key, or an application bound to a product version.

        The application belongs to ``org_unit`` (a unit code of the caller's bank), by default the
        caller's home unit; its tasks are offered within that unit's org scope. With ``idempotency``
        the key is stored with the instance, in its transaction: the same key again replays it.
        """
        replay = self.replayed(principal, idempotency)
        if replay is not None:
            return replay
        with self._committed() as keep, self.platform.db.transaction(write=True) as session:
            unit_id = self._unit(session, principal, org_unit)
            if binding is not None:
                found: int | None = binding.definition_id
            else:
                found = self.platform.db.rows.definition_id(session, definition_key or "", version)
            if found is None:
                field = "version" if version is not None else "definition_key"
                at = f" at version {version}" if version is not None else ""
                raise InvalidInput(
                    f"no deployed process {definition_key!r}{at}",
                    [{"field": field, "message": "no such deployed process definition"}],
                )
            if binding is None and not principal.is_system:
                refusal = self.platform.definitions.start_refusal(session, principal, found)
                if refusal is not None:
                    raise InvalidInput(f"process {definition_key!r} cannot be started: {refusal['message']}", [refusal])
            definition = self.platform.specs.get(session, found)
            if starts_on_timer_only(definition.spec):
                raise InvalidInput(
                    f"process {definition.key} starts itself on its timer",
                    [{"field": "definition_key", "message": "started by its timer start event, not by hand"}],
                )
            execution = self.start_in(
                session,
                principal,
                definition,
                binding=binding,
                business_key=business_key,
                data=data or {},
                org_unit_id=unit_id,
            )
            _remember(session, principal, idempotency, execution.instance.id, execution.now)
            keep.append(execution)
            return InstanceView(
                execution.instance, definition, ordered(execution.open_tasks.values()), outcome=execution.outcome
            )

    def replayed(self, principal: Principal, idempotency: Idempotency | None) -> InstanceView | None:
        """The instance an earlier request with this key started, if the request is the same (422 if
        the key came with another request); None for a new key. Two requests racing with one key:
        the second's insert fails on the unique key, a 409 whose retry replays."""
        if idempotency is None or principal.user_id is None:
            return None
        with self.platform.db.transaction() as session:
            found = session.scalars(
                select(IdempotencyKey).where(
                    IdempotencyKey.user_id == principal.user_id, IdempotencyKey.key == idempotency.key
                )
            ).first()
        if found is None:
            return None
        if found.request_sha256 != idempotency.fingerprint:
            raise InvalidInput(
                "this Idempotency-Key came with another request",
                [{"field": "Idempotency-Key", "message": "already used for a different request"}],
            )
        return replace(self.get(principal, found.instance_id), replayed=True)

    def start_in(
        self,
        session: Session,
        principal: Principal,
        definition: LoadedDefinition,
        *,
        tenant_id: int | None = None,
        binding: Binding | None = None,
        business_key: str | None = None,
        data: dict[str, Any] | None = None,
        org_unit_id: int | None = None,
        prepare: Callable[[BpmnWorkflow, Journal], None] | None = None,
    ) -> Execution:
        """Create and run an instance inside the caller's transaction (an API start, or a timer start
        event's job, whose fence must commit with it). ``prepare`` adjusts the new workflow and
        journals what started it before the engine runs."""
        tenant_id = principal.tenant_id if tenant_id is None else tenant_id
        workflow = new_workflow(definition.spec, definition.subprocess_specs, self.platform.script_engine)
        workflow.product_binding = binding
        workflow.acts_on_loans = binding is not None or definition.shared
        workflow.calendar = self.platform.calendars.for_tenant(session, tenant_id)
        now = self.platform.clock.now()
        instance = self.platform.db.rows.instances.record(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            definition_id=definition.id,
            product_version_id=binding.version_id if binding is not None else None,
            business_key=business_key,
            status=RUNNING,
            state="",
            serializer_version=SERIALIZER_VERSION,
            version=1,
            data={},
            started_by_id=principal.user_id,
            created_at=now,
            updated_at=now,
            audit_seq=0,
            audit_head=GENESIS,
            org_unit_id=org_unit_id,
            **application_columns(data or {}, binding.contract.get("code") if binding is not None else None),
        )
        journal = Journal(principal.user_id)
        journal.record(
            "started", definition=definition.key, version=definition.version, business_key=business_key, data=data or {}
        )
        if prepare is not None:
            prepare(workflow, journal)
        if data:
            workflow.get_next_task(state=TaskState.READY).data.update(data)
        execution = Execution(session, self.platform.db.rows, instance, workflow, journal, now, is_new=True)
        if INTAKE_ROLE in principal.roles and not principal.is_service:  # taking it is the officer's investigation
            execution.assignment.performed(ROLES[INTAKE_ROLE].duty, instance.id, principal.user_id, [], now)
        if binding is not None and (process := execution.deadlines(binding, None)) is not None:
            instance.warn_at, instance.due_at = process.warn_at, process.overdue_at
            instance.escalate_at = process.escalate_at
        execution.run()
        return execution

    def cancel(self, principal: Principal, instance_id: str, reason: str | None = None) -> InstanceView:
        def cancel(execution: Execution) -> None:
            status = execution.instance.status
            if status not in (RUNNING, ERROR):
                raise Conflict(f"instance is {status}; only running or failed instances can be cancelled")
            data = current_data(execution.workflow)
            execution.workflow.cancel()
            execution.workflow.data.update(data)  # a cancelled application keeps what it held, for its archive
            execution.journal.record("cancelled", reason=reason)
            for task_id in list(execution.open_tasks):
                execution.close_task(task_id, "cancelled")
            execution.instance.status, execution.instance.ended_at = CANCELLED, execution.now
            execution.save()

        return self.change(principal, instance_id, cancel)

    def retry(self, principal: Principal, instance_id: str, data: dict[str, Any] | None = None) -> InstanceView:
        """Resume a failed instance: apply the corrected data to the failed task(s) and run again."""

        def retry(execution: Execution) -> None:
            if execution.instance.status != ERROR:
                raise Conflict(f"instance is {execution.instance.status}; only failed instances can be retried")
            if data and execution.instance.product_version_id is not None:
                raise InvalidInput(
                    "an application's data changes through its steps, validated by their forms: a retry only "
                    "runs the failed step again (after an outside system is back, or the product is fixed)",
                    [{"field": "data", "message": "must be empty for an application"}],
                )
            failed = execution.workflow.get_tasks(state=TaskState.ERROR)
            if not failed:
                raise Conflict("the instance has no failed task to retry")

            def resume() -> None:
                for task in failed:
                    task.data.update(data or {})
                    task._set_state(TaskState.READY)  # SpiffWorkflow has no public retry; Arena does the same

            execution.journal.record(
                "retried", task_id=str(failed[0].id), bpmn_id=failed[0].task_spec.bpmn_id, data=data or {}
            )
            execution.run(resume)

        return self.change(principal, instance_id, retry)

    def send_message(
        self,
        principal: Principal,
        instance_id: str,
        name: str,
        payload: dict[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> InstanceView:
        """Deliver a message to this one instance (an outside party's answer); no cross-talk by design.
        With ``idempotency`` a sender's retry of a message already taken answers with the instance
        as it is, instead of a 409 that it is no longer waiting."""
        replay = self.replayed(principal, idempotency)
        if replay is not None:
            return replay

        def deliver(execution: Execution) -> None:
            if execution.instance.status != RUNNING:
                raise Conflict(f"instance is {execution.instance.status}; it is not waiting for messages")
            waiting = waiting_messages(execution.workflow)
            if name not in waiting:
                raise Conflict(
                    f"instance is not waiting for message {name!r}",
                    [{"field": "name", "message": f"waiting for: {', '.join(sorted(waiting)) or 'no message'}"}],
                )
            key = self.platform.specs.get(execution.session, execution.instance.definition_id).key
            schema = self.platform.products.message_schema(key, name)
            if schema is not None and (
                problems := payload_problems(schema, payload or {})
                or match_problems(schema, payload or {}, message_task_data(execution.workflow, name), "payload.")
            ):
                raise InvalidInput(f"the message {name!r} does not carry what the process needs", problems)
            execution.journal.record("message_received", message=name, payload=payload or {})
            event = BpmnEvent(MessageEventDefinition(name), payload=payload or {})
            execution.run(lambda: execution.workflow.send_event(event))
            _remember(execution.session, principal, idempotency, execution.instance.id, execution.now)

        return self.change(principal, instance_id, deliver)

    def change(
        self,
        principal: Principal,
        instance_id: str | Locator,
        step: Callable[[Execution], None],
        *,
        skip_locked: bool = False,
    ) -> InstanceView:
        """Run ``step`` on the instance under its lock, in one transaction.

        ``instance_id`` may be a function finding the id inside that transaction (e.g. from a task).
        With ``skip_locked`` (background work on PostgreSQL) an instance another node holds raises
        ``Busy`` at once instead of waiting for it.
        """
        with self.execution(principal, instance_id, skip_locked=skip_locked) as execution:
            step(execution)
            definition = self.platform.specs.get(execution.session, execution.instance.definition_id)
            return InstanceView(
                execution.instance, definition, ordered(execution.open_tasks.values()), outcome=execution.outcome
            )

    @contextmanager
    def annotation(
        self, principal: Principal, instance_id: str, *, skip_locked: bool = False
    ) -> Iterator[tuple[Session, Journal, Any]]:
        """Lock an instance to journal something about it (an inbox action, a comment, an
        escalation) without touching its workflow: only the audit trail and the caller's rows change."""
        with self.platform.db.transaction(write=True) as session:
            rows = self.platform.db.rows
            instance = rows.instance(session, instance_id, lock=True, skip_locked=skip_locked)
            if instance is None and skip_locked and rows.instance(session, instance_id):
                raise Busy(f"process instance {instance_id} is being changed by another node")
            if instance is None or not principal.sees(instance.tenant_id):
                raise NotFound(f"process instance {instance_id} does not exist")
            journal = Journal(principal.user_id)
            yield session, journal, instance
            audit = journal.chain(instance, self.platform.clock.now())
            if audit:
                rows.update_audit_head(session, instance)
                rows.append_audit(session, audit)

    @contextmanager
    def execution(
        self, principal: Principal, instance_id: str | Locator, *, skip_locked: bool = False
    ) -> Iterator[Execution]:
        """Lock the instance row, load its workflow, and hand out an Execution for one change."""
        try:
            with self._committed() as keep, self.platform.db.transaction(write=True) as session:
                if callable(instance_id):
                    instance_id = instance_id(session)
                instance = self.platform.db.rows.instance(session, instance_id, lock=True, skip_locked=skip_locked)
                if instance is None and skip_locked and self.platform.db.rows.instance(session, instance_id):
                    raise Busy(f"process instance {instance_id} is being changed by another node")
                if instance is None or not principal.sees(instance.tenant_id):
                    raise NotFound(f"process instance {instance_id} does not exist")
                if not principal.acts_in(instance.tenant_id):
                    raise Forbidden("the province reads its banks' applications but does not change them")
                workflow = self.platform.workflows.take(instance.id, instance.version)
                if workflow is None:
                    definition = self.platform.specs.get(session, instance.definition_id)
                    workflow = load_state(
                        instance.state, definition.spec, definition.subprocess_specs, self.platform.script_engine
                    )
                    workflow.acts_on_loans = instance.product_version_id is not None or definition.shared
                    if instance.product_version_id is not None:
                        workflow.product_binding = self.platform.products.binding(session, instance.product_version_id)
                if instance.product_version_id is not None:  # the calendar as of now, a kept workflow's too
                    workflow.calendar = self.platform.calendars.for_tenant(session, instance.tenant_id)
                execution = Execution(
                    session,
                    self.platform.db.rows,
                    instance,
                    workflow,
                    Journal(principal.user_id),
                    self.platform.clock.now(),
                )
                yield execution
                keep.append(execution)
        except StaleRow:
            raise Conflict("the instance was changed by someone else; reload and try again") from None

    @contextmanager
    def _committed(self) -> Iterator[list[Execution]]:
        """Executions appended inside the block are cached once the transaction has committed."""
        done: list[Execution] = []
        yield done
        for execution in done:
            self.platform.workflows.put(execution.instance.id, execution.instance.version, execution.workflow)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, principal: Principal, instance_id: str) -> InstanceView:
        with self.platform.db.transaction() as session:
            rows = self.platform.db.rows
            instance = rows.instance(session, instance_id)
            if not reads(session, principal, instance):
                raise NotFound(f"process instance {instance_id} does not exist")
            definition = self.platform.specs.get(session, instance.definition_id)
            remaining = None
            if instance.due_at is not None and instance.status == RUNNING:
                now = self.platform.clock.now()
                remaining = self.platform.calendars.remaining_minutes(session, instance, now, instance.due_at)
            outcome = self.platform.archives.outcome(session, instance) if instance.status in ENDED else None
            return InstanceView(instance, definition, rows.open_tasks(session, instance_id), remaining, outcome=outcome)

    def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        definition_key: str | None = None,
        business_key: str | None = None,
        product: str | None = None,
        level: str | None = None,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
    ) -> tuple[list[InstanceView], int | None, str | None]:
        """Newest first; with ``cursor`` (a page's ``next_cursor``) the page after that one, which holds
        still while new applications arrive (an offset page shifts under them), without the total."""
        with self.platform.db.transaction() as session:
            stmt = select(ProcessInstance).join(
                ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id
            )
            if status:
                stmt = stmt.where(ProcessInstance.status == status)
            if definition_key:
                stmt = stmt.where(ProcessDefinition.key == definition_key)
            if business_key:
                stmt = stmt.where(ProcessInstance.business_key == business_key)
            stmt = stmt.where(*application_filters(principal, product=product))
            if level:
                stmt = stmt.where(instance_level_clause(level, self.platform.clock.now()))
            stmt = principal.scope(stmt, ProcessInstance.tenant_id).where(readable(principal))
            # counted for the first page (and offset pages): a bank's 300,000 applications were counted
            # again for every page a client walked through with the cursor
            total = None if cursor is not None else session.scalar(select(func.count()).select_from(stmt.subquery()))
            if cursor is not None:
                stmt = stmt.where(keyset.after(NEWEST_FIRST, keyset.parse_cursor("newest", NEWEST_FIRST, cursor)))
            page = stmt.order_by(*keyset.order_by(NEWEST_FIRST)).limit(limit + 1).offset(offset)
            rows = list(session.scalars(page))
            more, rows = len(rows) > limit, rows[:limit]
            specs = self.platform.specs
            views = [InstanceView(i, specs.get(session, i.definition_id), []) for i in rows]
            return views, total, keyset.cursor_of("newest", NEWEST_FIRST, rows[-1]) if more else None

    def history(self, principal: Principal, instance_id: str) -> list[AuditEvent]:
        """The audit trail, for the bank's staff: rule hits, scores and opinions are not a channel's."""
        if principal.is_service:
            raise Forbidden("an integration account reads an application's channel view, not its audit trail")
        with self.platform.db.transaction() as session:
            self._load(session, principal, instance_id)
            return list(
                session.scalars(
                    select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.seq)
                )
            )

    def verify_audit(self, principal: Principal, instance_id: str) -> VerifyResult:
        with self.platform.db.transaction() as session:
            return verify_chain(session, self._load(session, principal, instance_id))

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _unit(session: Session, principal: Principal, code: str | None) -> int | None:
        if code is None:
            return principal.org_unit_id
        unit = session.execute(
            select(OrgUnit.id, OrgUnit.path).where(OrgUnit.code == code, OrgUnit.tenant_id == principal.tenant_id)
        ).first()
        if unit is None:
            raise InvalidInput(f"no org unit {code!r} in your bank", [{"field": "org_unit", "message": "unknown unit"}])
        # an application filed elsewhere would leave the branch head who supervises its officer blind to it
        paths = [grant.org_path for grant in principal.grants if grant.org_path]
        if not (whole_bank(principal) or any(unit.path.startswith(path) for path in paths)):
            raise InvalidInput(
                f"an application of yours belongs to a unit where you hold a role, or one below it, not {code!r}",
                [{"field": "org_unit", "message": "not a unit of yours"}],
            )
        return unit.id

    def _load(self, session: Session, principal: Principal, instance_id: str) -> ProcessInstance:
        instance = session.get(ProcessInstance, instance_id)
        if not reads(session, principal, instance):
            raise NotFound(f"process instance {instance_id} does not exist")
        return instance
