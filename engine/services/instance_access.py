"""Who reads which application: need to know inside a bank, not the whole bank's files.

An application holds an applicant's identity, income and accounts. Staff read the applications of
the units where they hold a role and of every unit below (a branch's sub-branches and grids); a
role held bank-wide or at the head office (审查岗, 审批岗, 放款岗, 风险经理, 系统管理员) reads the
whole bank; anyone reads an application they have or had a task on (a delegate from another
branch). The province reads its banks' applications; the platform reads all. Tenant scope
(``Principal.sees``) comes first; this narrows within the tenant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select, true
from sqlalchemy.orm import Session

from engine.org.units import unit_ids
from engine.services.principal import Principal
from engine.store.models import HumanTask, InstanceDuty, OrgUnit, ProcessInstance


def readable(principal: Principal) -> ColumnElement[bool]:
    """The applications ``principal`` reads, as a WHERE clause on ``ProcessInstance`` (within its tenants)."""
    if principal.is_system or whole_bank(principal):
        return true()
    paths = sorted({grant.org_path for grant in principal.grants if grant.org_path})
    conditions: list[ColumnElement[bool]] = [
        ProcessInstance.tenant_id != principal.tenant_id,  # the province, reading its banks'
        ProcessInstance.tenant_id.is_(None),  # the platform's own processes, as before
    ]
    if paths:
        units = select(OrgUnit.id).where(or_(*(OrgUnit.path.startswith(path) for path in paths)))
        conditions.append(ProcessInstance.org_unit_id.in_(units))
    if principal.user_id is not None:
        me = principal.user_id
        worked = or_(HumanTask.assignee_id == me, HumanTask.owner_id == me, HumanTask.completed_by_id == me)
        conditions.append(exists().where(HumanTask.instance_id == ProcessInstance.id, worked))
        # a duty done on it: a delegate who resolved a task back is no assignee any more, yet did its work
        conditions.append(exists().where(InstanceDuty.instance_id == ProcessInstance.id, InstanceDuty.user_id == me))
        conditions.append(ProcessInstance.started_by_id == me)
    return or_(*conditions)


def readable_tasks(principal: Principal) -> ColumnElement[bool]:
    """The tasks of the applications ``principal`` reads, as a WHERE clause on ``HumanTask``."""
    if principal.is_system or whole_bank(principal):
        return true()
    return HumanTask.instance_id.in_(select(ProcessInstance.id).where(readable(principal)))


def reads(session: Session, principal: Principal, instance: Any) -> bool:
    """Whether ``principal`` reads this application: tenant scope, then ``readable``."""
    if instance is None or not principal.sees(instance.tenant_id):
        return False
    if principal.is_system or whole_bank(principal):
        return True
    found = session.scalar(select(ProcessInstance.id).where(ProcessInstance.id == instance.id, readable(principal)))
    return found is not None


def whole_bank(principal: Principal) -> bool:
    """A role held bank-wide, or at the head office (the root of the bank's tree)."""
    return any(grant.org_unit_id is None or len(unit_ids(grant.org_path or "")) == 1 for grant in principal.grants)
