"""Starting, reading, cancelling and retrying process instances."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.errors import Conflict, InvalidInput, NotFound
from engine.runtime.workflow_state import SERIALIZER_VERSION, load_state, new_workflow
from engine.services.execution import CANCELLED, COMPLETED, ERROR, RUNNING, Execution
from engine.services.principal import Principal
from engine.store.audit import GENESIS, Journal, VerifyResult, verify_chain
from engine.store.models import AuditEvent, HumanTask, ProcessDefinition, ProcessInstance

if TYPE_CHECKING:
    from engine.container import CreditFlow

STATUSES = (RUNNING, COMPLETED, CANCELLED, ERROR)


@dataclass(frozen=True)
class InstanceView:
    instance: ProcessInstance
    definition: ProcessDefinition
    tasks: list[HumanTask]


class InstanceService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    # -- changes -------------------------------------------------------------------------------

    def start(
        self,
        principal: Principal,
        definition_key: str,
        *,
        version: int | None = None,
        business_key: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> InstanceView:
        with self.platform.db.transaction(write=True) as session:
            definition = self.platform.definitions.find(session, definition_key, version)
            if definition is None:
                field = "version" if version is not None else "definition_key"
                raise InvalidInput(
                    f"no deployed process {definition_key!r}" + (f" at version {version}" if version else ""),
                    [{"field": field, "message": "no such deployed process definition"}],
                )
            spec, subprocesses = self.platform.specs.get(session, definition)
            workflow = new_workflow(spec, subprocesses, self.platform.script_engine)
            workflow.get_next_task(state=TaskState.READY).data.update(data or {})
            now = self.platform.clock.now()
            instance = ProcessInstance(
                id=str(uuid.uuid4()),
                tenant_id=principal.tenant_id,
                definition_id=definition.id,
                business_key=business_key,
                status=RUNNING,
                serializer_version=SERIALIZER_VERSION,
                started_by_id=principal.user_id,
                created_at=now,
                updated_at=now,
                audit_seq=0,
                audit_head=GENESIS,
            )
            journal = Journal(principal.user_id)
            journal.record(
                "started",
                definition=definition.key,
                version=definition.version,
                business_key=business_key,
                data=data or {},
            )
            Execution(session, instance, workflow, journal, now, is_new=True).run()
            return self._view(session, instance, definition)

    def cancel(self, principal: Principal, instance_id: str, reason: str | None = None) -> InstanceView:
        def cancel(execution: Execution) -> None:
            if execution.instance.status not in (RUNNING, ERROR):
                raise Conflict(
                    f"instance is {execution.instance.status}; only running or failed instances can be cancelled"
                )
            execution.workflow.cancel()
            execution.journal.record("cancelled", reason=reason)
            for row in execution.session.scalars(
                select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "ready")
            ):
                row.status, row.ended_at = "cancelled", execution.now
            execution.instance.status, execution.instance.ended_at = CANCELLED, execution.now
            execution.save()

        return self.change(principal, instance_id, cancel)

    def retry(self, principal: Principal, instance_id: str, data: dict[str, Any] | None = None) -> InstanceView:
        """Resume a failed instance: apply the corrected data to the failed task(s) and run again."""

        def retry(execution: Execution) -> None:
            if execution.instance.status != ERROR:
                raise Conflict(f"instance is {execution.instance.status}; only failed instances can be retried")
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

    def change(self, principal: Principal, instance_id: str, step: Callable[[Execution], None]) -> InstanceView:
        """Run ``step`` on the instance under its lock, in one transaction."""
        with self.execution(principal, instance_id) as execution:
            step(execution)
            return self._view(execution.session, execution.instance)

    @contextmanager
    def execution(self, principal: Principal, instance_id: str) -> Iterator[Execution]:
        """Lock the instance row, load its workflow, and hand out an Execution for one change."""
        try:
            with self.platform.db.transaction(write=True) as session:
                instance = self.platform.db.lock_instance(session, instance_id)
                if instance is None or not self._visible(principal, instance):
                    raise NotFound(f"process instance {instance_id} does not exist")
                definition = session.get(ProcessDefinition, instance.definition_id)
                spec, subprocesses = self.platform.specs.get(session, definition)
                workflow = load_state(instance.state, spec, subprocesses, self.platform.script_engine)
                yield Execution(session, instance, workflow, Journal(principal.user_id), self.platform.clock.now())
        except StaleDataError:
            raise Conflict("the instance was changed by someone else; reload and try again") from None

    # -- reads ---------------------------------------------------------------------------------

    def get(self, principal: Principal, instance_id: str) -> InstanceView:
        with self.platform.db.transaction() as session:
            return self._view(session, self._load(session, principal, instance_id))

    def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        definition_key: str | None = None,
        business_key: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[InstanceView], int]:
        with self.platform.db.transaction() as session:
            stmt = select(ProcessInstance, ProcessDefinition).join(
                ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id
            )
            if status:
                stmt = stmt.where(ProcessInstance.status == status)
            if definition_key:
                stmt = stmt.where(ProcessDefinition.key == definition_key)
            if business_key:
                stmt = stmt.where(ProcessInstance.business_key == business_key)
            stmt = self._scoped(principal, stmt)
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = session.execute(
                stmt.order_by(ProcessInstance.created_at.desc(), ProcessInstance.id).limit(limit).offset(offset)
            ).all()
            return [InstanceView(i, d, []) for i, d in rows], total

    def history(self, principal: Principal, instance_id: str) -> list[AuditEvent]:
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

    def _load(self, session: Session, principal: Principal, instance_id: str) -> ProcessInstance:
        instance = session.get(ProcessInstance, instance_id)
        if instance is None or not self._visible(principal, instance):
            raise NotFound(f"process instance {instance_id} does not exist")
        return instance

    @staticmethod
    def _visible(principal: Principal, instance: ProcessInstance) -> bool:
        """Tenant scope: another tenant's instance is indistinguishable from a missing one."""
        return principal.tenant_id is None or instance.tenant_id in (None, principal.tenant_id)

    @staticmethod
    def _scoped(principal: Principal, stmt: Any) -> Any:
        if principal.tenant_id is None:
            return stmt
        return stmt.where((ProcessInstance.tenant_id == principal.tenant_id) | ProcessInstance.tenant_id.is_(None))

    def _view(
        self, session: Session, instance: ProcessInstance, definition: ProcessDefinition | None = None
    ) -> InstanceView:
        definition = definition or session.get(ProcessDefinition, instance.definition_id)
        tasks = list(
            session.scalars(
                select(HumanTask)
                .where(HumanTask.instance_id == instance.id, HumanTask.status == "ready")
                .order_by(HumanTask.created_at, HumanTask.id)
            )
        )
        return InstanceView(instance, definition, tasks)
