"""The escalation log (预警升级记录): every level a step's or an application's clock reached, newest first.

The overdue monitor counts what is late now; a supervisor also asks what happened: which applications
went red last week, in which branch, who was told and where a task was moved. Each row of the
``escalation`` table is one such event, written exactly once by the scheduler; this reads them for a
period, in the same scope as the monitor (the province reads its banks, a supervisor the units they
oversee).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from engine.errors import Forbidden, InvalidInput
from engine.inbox.queries import application_filters, supervised_units
from engine.notify.summaries import LEVEL_NAMES
from engine.org.roles import MONITOR_READ
from engine.services.monitor import ZONE, period_bounds
from engine.services.principal import Principal
from engine.store.models import (
    Escalation,
    HumanTask,
    OrgUnit,
    ProcessInstance,
    Product,
    ProductVersion,
    Tenant,
    User,
)

if TYPE_CHECKING:
    from engine.container import CreditFlow

DEFAULT_DAYS = 7  # without a period: the last week, today included
MAX_EXPORT = 10_000  # rows in one spreadsheet; more is a narrower period or filter


@dataclass(frozen=True)
class EscalationRecord:
    id: int
    scope: str  # task | process
    level: str
    level_name: str
    reached_at: datetime  # when the clock passed the threshold
    handled_at: datetime  # when the scheduler acted on it
    instance_id: str
    business_key: str | None
    applicant_name: str | None
    bank: str | None
    unit: str | None  # the application's unit (branch, sub-branch or grid)
    unit_name: str | None
    product: str | None
    product_name: str | None
    task_id: str | None
    step: str | None
    step_name: str | None
    notified: list[str]  # usernames
    reassigned_to_role: str | None  # red on a step: the supervisors' role the task moved to


@dataclass(frozen=True)
class EscalationPage:
    start: date
    end: date
    total: int
    items: list[EscalationRecord]


class EscalationLog:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(
        self,
        principal: Principal,
        start: date | None = None,
        end: date | None = None,
        *,
        bank: str | None = None,
        unit: str | None = None,
        product: str | None = None,
        level: str | None = None,
        scope: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> EscalationPage:
        """Escalations reached from ``start`` to ``end`` (Asia/Shanghai days, both included; default the
        last week), newest first; ``unit`` takes the applications of that unit and the units below it."""
        principal.require(MONITOR_READ)
        end = end or self.platform.clock.now().astimezone(ZONE).date()
        start = start or end - timedelta(days=DEFAULT_DAYS - 1)
        lower, upper = period_bounds(start, end)
        with self.platform.db.transaction() as session:
            stmt = self._visible(session, principal).where(Escalation.due_at >= lower, Escalation.due_at < upper)
            stmt = stmt.where(*application_filters(principal, bank=bank, org_unit=unit, product=product))
            if level is not None:
                stmt = stmt.where(Escalation.level == level)
            if scope is not None:
                stmt = stmt.where(Escalation.scope == scope)
            total = session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0
            rows = session.execute(
                _described(stmt).order_by(Escalation.due_at.desc(), Escalation.id.desc()).limit(limit).offset(offset)
            ).all()
            told = {user for row in rows for user in (row.Escalation.actions or {}).get("notified", [])}
            names = _usernames(session, told)
        return EscalationPage(start, end, total, [_record(row, names) for row in rows])

    def export(
        self, principal: Principal, start: date | None = None, end: date | None = None, **filters: Any
    ) -> EscalationPage:
        """Every escalation of the period for a spreadsheet, or a 422 when more match than one should hold."""
        page = self.list(principal, start, end, limit=MAX_EXPORT, offset=0, **filters)
        if page.total > MAX_EXPORT:
            raise InvalidInput(
                f"{page.total} escalations match; a spreadsheet holds at most {MAX_EXPORT}",
                [{"field": "to", "message": "choose a shorter period or filter by bank, branch, product or level"}],
            )
        return page

    def _visible(self, session: Session, principal: Principal) -> Select[Any]:
        """Escalations of the applications the caller oversees: a province's banks', a supervisor's units'."""
        stmt = principal.scope(
            select(Escalation).join(ProcessInstance, ProcessInstance.id == Escalation.instance_id),
            ProcessInstance.tenant_id,
        )
        if principal.is_system or self.platform.products.is_province(principal, session):
            return stmt
        units = supervised_units(principal, ProcessInstance.org_unit_id)
        if units is None:
            raise Forbidden("the escalation log is for supervisors (支行行长, 风险经理, administrators)")
        return stmt.where(units)


def _described(stmt: Select[Any]) -> Select[Any]:
    """The escalations with what a reader needs to recognise them: application, bank, unit, product, step."""
    return (
        stmt.add_columns(
            ProcessInstance.business_key,
            ProcessInstance.applicant_name,
            Tenant.code.label("bank"),
            OrgUnit.code.label("unit"),
            OrgUnit.name.label("unit_name"),
            Product.code.label("product"),
            Product.name.label("product_name"),
            HumanTask.bpmn_id.label("step"),
            HumanTask.name.label("step_name"),
        )
        .outerjoin(Tenant, Tenant.id == ProcessInstance.tenant_id)
        .outerjoin(OrgUnit, OrgUnit.id == ProcessInstance.org_unit_id)
        .outerjoin(ProductVersion, ProductVersion.id == ProcessInstance.product_version_id)
        .outerjoin(Product, Product.id == ProductVersion.product_id)
        .outerjoin(HumanTask, and_(Escalation.scope == "task", HumanTask.id == Escalation.subject_id))
    )


def _usernames(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(sorted(user_ids))))
    return {user_id: username for user_id, username in rows}


def _record(row: Any, names: dict[int, str]) -> EscalationRecord:
    escalation: Escalation = row.Escalation
    actions = escalation.actions or {}
    return EscalationRecord(
        id=escalation.id,
        scope=escalation.scope,
        level=escalation.level,
        level_name=LEVEL_NAMES[escalation.level],
        reached_at=escalation.due_at,
        handled_at=escalation.created_at,
        instance_id=escalation.instance_id,
        business_key=row.business_key,
        applicant_name=row.applicant_name,
        bank=row.bank,
        unit=row.unit,
        unit_name=row.unit_name,
        product=row.product,
        product_name=row.product_name,
        task_id=escalation.subject_id if escalation.scope == "task" else None,
        step=row.step,
        step_name=row.step_name,
        notified=[names.get(user_id, str(user_id)) for user_id in actions.get("notified", [])],
        reassigned_to_role=(actions.get("reassigned") or {}).get("to_role"),
    )
