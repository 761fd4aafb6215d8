"""Human tasks: the READY user tasks of instances, their forms, and completing them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.errors import Conflict, InvalidInput, NotFound
from engine.forms.catalog import FormDefinition
from engine.forms.validation import validate_form_data
from engine.runtime.workflow_state import load_state, plain_json
from engine.services.execution import RUNNING, Execution
from engine.services.instances import InstanceView
from engine.services.principal import Principal
from engine.sla.deadlines import stored_level
from engine.store.models import HumanTask, ProcessInstance

if TYPE_CHECKING:
    from engine.container import CreditFlow


@dataclass(frozen=True)
class TaskView:
    task: HumanTask
    instance: ProcessInstance
    level: str  # SLA colour now: none | yellow | orange | red
    data: dict[str, Any] | None = None
    form: FormDefinition | None = None


class TaskService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(
        self,
        principal: Principal,
        *,
        status: str | None = "ready",
        instance_id: str | None = None,
        lane: str | None = None,
        bpmn_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TaskView], int]:
        with self.platform.db.transaction() as session:
            stmt = select(HumanTask, ProcessInstance).join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
            if status:
                stmt = stmt.where(HumanTask.status == status)
            if instance_id:
                stmt = stmt.where(HumanTask.instance_id == instance_id)
            if lane:
                stmt = stmt.where(HumanTask.lane == lane)
            if bpmn_id:
                stmt = stmt.where(HumanTask.bpmn_id == bpmn_id)
            stmt = principal.scope(stmt, HumanTask.tenant_id)
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = session.execute(stmt.order_by(HumanTask.created_at, HumanTask.id).limit(limit).offset(offset)).all()
            now = self.platform.clock.now()
            return [TaskView(t, i, stored_level(t, now)) for t, i in rows], total

    def get(self, principal: Principal, task_id: str) -> TaskView:
        """The task with its form and the data the form opens with."""
        with self.platform.db.transaction() as session:
            row = self._row(session, principal, task_id)
            instance = session.get(ProcessInstance, row.instance_id)
            data = None
            if row.status == "ready":
                definition = self.platform.specs.get(session, instance.definition_id)
                workflow = load_state(
                    instance.state, definition.spec, definition.subprocess_specs, self.platform.script_engine
                )
                task = workflow.get_task_from_id(uuid.UUID(row.id))
                data = plain_json(task.data) if task is not None else None
            version = instance.product_version_id
            form = self._form(row.form, version, session)
            return TaskView(row, instance, stored_level(row, self.platform.clock.now()), data, form)

    def complete(self, principal: Principal, task_id: str, data: dict[str, Any]) -> InstanceView:
        """Validate against the task's form, complete it, and run the instance on to its next wait."""

        def locate(session: Session) -> str:
            row = self.platform.db.rows.task(session, task_id)
            if row is None or not principal.sees(row.tenant_id):
                raise NotFound(f"task {task_id} does not exist")
            return row.instance_id

        def complete(execution: Execution) -> None:
            row = execution.open_tasks.get(task_id)  # read under the instance lock
            if row is None:
                raise Conflict(f"task {task_id} is no longer open")
            if execution.instance.status != RUNNING:
                raise Conflict(f"instance is {execution.instance.status}; its tasks cannot be completed now")
            form = self._form(row.form, execution.instance.product_version_id, execution.session)
            if form is not None and (problems := validate_form_data(form, data)):
                raise InvalidInput(f"the submitted data does not match form {form.name}", problems)
            task = execution.workflow.get_task_from_id(uuid.UUID(task_id))
            if task is None or task.state != TaskState.READY:
                raise Conflict(f"task {task_id} is no longer waiting for input")
            changes = {k: {"old": task.data.get(k), "new": v} for k, v in data.items() if task.data.get(k) != v}
            execution.close_task(task_id, "completed", principal.user_id)
            execution.journal.record(
                "task_completed", task_id=task_id, bpmn_id=row.bpmn_id, name=row.name, changes=changes
            )

            def run_task() -> None:
                task.data.update(data)
                task.run()

            execution.run(run_task)

        return self.platform.instances.change(principal, locate, complete)

    def _row(self, session: Session, principal: Principal, task_id: str) -> HumanTask:
        row = session.get(HumanTask, task_id)
        if row is None or not principal.sees(row.tenant_id):
            raise NotFound(f"task {task_id} does not exist")
        return row

    def _form(self, name: str | None, product_version_id: int | None, session: Session) -> FormDefinition | None:
        """The task's form, as the instance's product version adjusted it (banks add or tighten fields)."""
        if not name:
            return None
        try:
            form = self.platform.forms.get(name)
        except KeyError:
            return None
        if product_version_id is None:
            return form
        return self.platform.products.binding(session, product_version_id).derived_forms.get(form.name, form)
