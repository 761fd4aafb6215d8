"""Inbox queries: the views of a user's work, filters, sorting and keyset pagination.

Views:
- ``mine``: open tasks assigned to the user;
- ``candidate``: unassigned open tasks offered to the user (a role they hold in the task's org
  unit, or as an explicit candidate user or group) that segregation of duties does not bar them from;
- ``covering``: open tasks of colleagues on leave whom the user substitutes for (休假代理,
  ``engine.inbox.absences``) that segregation of duties does not bar them from;
- ``inbox`` (default): ``mine``, ``candidate`` and ``covering`` together, what a loan officer works through;
- ``team``: every task in the units a supervisor (支行行长, 风险经理, admin) oversees;
- ``all``: every task the caller's tenant scope lets them read (supervisors only; the province
  reads across its banks).

Pages are keyset-paginated on (sort key, id), so page N costs what page 1 costs. "mine" and
"candidate" by due time are served in index order by ``ix_human_task_inbox_mine`` and
``ix_human_task_inbox_offer`` (see ``bench/inbox.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, false, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from engine.errors import Forbidden
from engine.org.roles import ROLES, TASKS_OVERRIDE
from engine.org.units import unit_ids
from engine.services.instance_access import readable_tasks
from engine.services.principal import Principal
from engine.store import keyset
from engine.store.models import (
    HumanTask,
    OrgUnit,
    ProcessInstance,
    Product,
    ProductVersion,
    TaskCandidate,
    TaskExclusion,
    Tenant,
)

VIEWS = ("inbox", "mine", "candidate", "covering", "delegated", "team", "all")
SORTS = ("due", "priority", "created")
LEVELS = ("none", "yellow", "orange", "red")
STATUSES = ("ready", "completed", "cancelled", "returned")


@dataclass(frozen=True)
class InboxQuery:
    view: str = "inbox"
    status: str = "ready"
    product: str | None = None
    step: str | None = None
    role: str | None = None
    due_before: datetime | None = None
    level: str | None = None
    business_key: str | None = None
    applicant: str | None = None  # applicant name, prefix match
    org_unit: str | None = None  # unit code: applications of this unit and the units below it
    instance_id: str | None = None
    returned: bool | None = None  # only rounds reopened by a return (退回), or none of them
    sort: str = "due"
    limit: int = 50
    cursor: str | None = None

    @classmethod
    def of(cls, values: dict[str, Any]) -> InboxQuery:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})

    def merged_over(self, saved: dict[str, Any]) -> InboxQuery:
        """A saved filter with this query's explicitly given values on top."""
        base = InboxQuery.of(saved)
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        return replace(base, **given)


class InSubquery(FunctionElement[bool]):
    """``column IN (subquery)``, which PostgreSQL gets as ``column = ANY(ARRAY(subquery))``.

    As an array the subquery runs once, up front, and the test is an index condition that the planner
    can OR with the others: the inbox is one BitmapOr over ``ix_human_task_inbox_mine``,
    ``ix_human_task_inbox_offer`` and the primary key. ``IN (subquery)`` can only be a filter, and one
    arm that is a filter turns the whole OR into one: every open task of the bank is read to find the
    caller's hundred (see ``bench/inbox.py``).
    """

    inherit_cache = True
    name = "in_subquery"


@compiles(InSubquery)
def _in_subquery(element: InSubquery, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = element.clauses
    return f"{compiler.process(column, **kw)} IN {compiler.process(subquery, **kw)}"


@compiles(InSubquery, "postgresql")
def _any_array(element: InSubquery, compiler: SQLCompiler, **kw: Any) -> str:
    column, subquery = element.clauses
    return f"{compiler.process(column, **kw)} = ANY(ARRAY{compiler.process(subquery, **kw)})"


def offered_to(principal: Principal) -> ColumnElement[bool]:
    """Tasks offered to the principal: by role in a unit, or as an explicit candidate."""
    by_unit: dict[int | None, set[str]] = {}
    for grant in principal.grants:
        by_unit.setdefault(grant.org_unit_id, set()).add(grant.role)
    clauses: list[ColumnElement[bool]] = []
    for unit_id, roles in by_unit.items():
        role_match = HumanTask.role.in_(sorted(roles))
        # a tenant-wide grant is offered the role's tasks anywhere in the tenant
        clauses.append(role_match if unit_id is None else and_(HumanTask.org_unit_id == unit_id, role_match))
    all_roles = sorted({g.role for g in principal.grants})
    if all_roles:  # tasks of instances without an org unit are offered tenant-wide by role
        clauses.append(and_(HumanTask.org_unit_id.is_(None), HumanTask.role.in_(all_roles)))
    explicit = TaskCandidate.user_id == principal.user_id
    if principal.group_ids:
        explicit = or_(explicit, TaskCandidate.group_id.in_(sorted(principal.group_ids)))
    clauses.append(InSubquery(HumanTask.id, select(TaskCandidate.task_id).where(explicit).scalar_subquery()))
    return or_(*clauses)


def not_barred(principal: Principal) -> ColumnElement[bool]:
    return ~exists().where(TaskExclusion.task_id == HumanTask.id, TaskExclusion.user_id == principal.user_id)


def eligible_clause(principal: Principal) -> ColumnElement[bool]:
    """Tasks the principal may be given: offered to them, in their own bank, not barred."""
    return and_(HumanTask.tenant_id == principal.tenant_id, offered_to(principal), not_barred(principal))


def candidate_clause(principal: Principal) -> ColumnElement[bool]:
    return and_(HumanTask.assignee_id.is_(None), eligible_clause(principal))


def mine_clause(principal: Principal) -> ColumnElement[bool]:
    return HumanTask.assignee_id == principal.user_id


def supervised_units(principal: Principal, unit_column: Any = HumanTask.org_unit_id) -> ColumnElement[bool] | None:
    """The rows (tasks, or with ``unit_column`` applications) of the units a supervisor oversees (their
    grant's unit and everything below, as resolved when the principal was loaded); None: the
    principal supervises nothing."""
    supervising = [g for g in principal.grants if g.role in ROLES and ROLES[g.role].supervises]
    if not supervising:
        return None
    if any(g.org_unit_id is None or unit_ids(g.org_path or "")[1:] == [] for g in supervising):
        return true()  # tenant-wide, or the head office: the whole bank
    return unit_column.in_(sorted(principal.supervised_unit_ids))


def covering(principal: Principal, away: Collection[int]) -> ColumnElement[bool]:
    """Tasks assigned, or offered by name, to ``away`` (the colleagues the principal covers for now,
    ``absences.covered_by``), in their own bank, that segregation of duties does not bar them from; not a
    committee member's ballot (it has a duty and no role: a vote is the member's own), not one
    delegated onwards. Nobody to cover for, the usual case, is no clause at all."""
    if not away:
        return false()
    named = select(TaskCandidate.task_id).where(TaskCandidate.user_id.in_(sorted(away)))
    return and_(
        HumanTask.tenant_id == principal.tenant_id,
        or_(
            HumanTask.assignee_id.in_(sorted(away)),
            and_(HumanTask.assignee_id.is_(None), InSubquery(HumanTask.id, named.scalar_subquery())),
        ),
        or_(HumanTask.role.is_not(None), HumanTask.duty.is_(None)),
        or_(HumanTask.delegation.is_(None), HumanTask.delegation != "pending"),
        not_barred(principal),
    )


def view_clause(principal: Principal, view: str, away: Collection[int] = ()) -> ColumnElement[bool]:
    """The view's rows for ``principal``; ``away``: whom they cover for now (``absences.covered_by``)."""
    if principal.is_system:
        return true()
    if view == "mine":
        return mine_clause(principal)
    if view == "candidate":
        return candidate_clause(principal)
    if view == "covering":
        return covering(principal, away)
    if view == "inbox":
        views = (mine_clause(principal), candidate_clause(principal))
        return or_(*views, covering(principal, away)) if away else or_(*views)
    if view == "delegated":  # handed to someone else, still mine: it comes back when they resolve it
        return and_(HumanTask.owner_id == principal.user_id, HumanTask.delegation == "pending")
    if view == "team":
        units = supervised_units(principal)
        if units is None:
            raise Forbidden("the team view is for supervisors (支行行长, 风险经理, administrators)")
        return and_(HumanTask.tenant_id.in_(sorted(principal.scope_tenants or {principal.tenant_id})), units)
    if supervised_units(principal) is None and not principal.can(TASKS_OVERRIDE):
        raise Forbidden("the 'all' view is for supervisors and administrators")
    return readable_tasks(principal)  # a branch head's "all" is every task of what the branch may read


def level_clause(level: str, now: datetime) -> ColumnElement[bool]:
    """The SLA colour of a task at ``now`` from its stored thresholds (as ``stored_level``); a paused
    clock shows the colour it had when it stopped, an ended one the colour it ended at."""
    return clock_level_clause(HumanTask, level, func.coalesce(HumanTask.paused_at, HumanTask.ended_at, now))


def instance_level_clause(level: str, now: datetime) -> ColumnElement[bool]:
    """The SLA colour of an application's process clock at ``now``; an ended one's, when it ended."""
    return clock_level_clause(ProcessInstance, level, func.coalesce(ProcessInstance.ended_at, now))


def clock_level_clause(row: Any, level: str, at: Any) -> ColumnElement[bool]:
    """The SLA colour at ``at`` of a clock stored as ``warn_at``/``due_at``/``escalate_at`` on ``row``'s
    table: a step's (``HumanTask``) or an application's (``ProcessInstance``)."""
    if level == "red":
        return row.escalate_at <= at
    if level == "orange":
        return and_(row.due_at <= at, or_(row.escalate_at.is_(None), row.escalate_at > at))
    if level == "yellow":
        return and_(row.warn_at <= at, or_(row.due_at.is_(None), row.due_at > at))
    return or_(row.warn_at.is_(None), row.warn_at > at)


def filtered(principal: Principal, query: InboxQuery, now: datetime, away: Collection[int] = ()) -> Select[Any]:
    """The tasks of a view with the query's filters, not yet sorted or paged; ``away``: whom the
    principal covers for now (``absences.covered_by``), for the inbox and covering views."""
    stmt = select(HumanTask).where(view_clause(principal, query.view, away))
    # The candidate clause pins the caller's own tenant, which the scope always holds; PostgreSQL would
    # multiply the two tenant tests' selectivities, expect 1/110 of the bank's tasks and scan them all.
    if query.view != "candidate":
        stmt = principal.scope(stmt, HumanTask.tenant_id)
    if query.status:
        stmt = stmt.where(HumanTask.status == query.status)
    if query.step:
        stmt = stmt.where(HumanTask.bpmn_id == query.step)
    if query.role:
        stmt = stmt.where(HumanTask.role == query.role)
    if query.instance_id:
        stmt = stmt.where(HumanTask.instance_id == query.instance_id)
    if query.due_before:
        stmt = stmt.where(HumanTask.due_at < query.due_before)
    if query.level:
        stmt = stmt.where(level_clause(query.level, now))
    if query.returned is not None:
        returned = HumanTask.returned_by_id
        stmt = stmt.where(returned.is_not(None) if query.returned else returned.is_(None))
    instance_filters = application_filters(principal, org_unit=query.org_unit, product=query.product)
    if query.business_key:
        instance_filters.append(ProcessInstance.business_key == query.business_key)
    if query.applicant:
        instance_filters.append(ProcessInstance.applicant_name.startswith(query.applicant, autoescape=True))
    if instance_filters:
        stmt = stmt.where(HumanTask.instance_id.in_(select(ProcessInstance.id).where(*instance_filters)))
    return stmt


def application_filters(
    principal: Principal, *, bank: str | None = None, org_unit: str | None = None, product: str | None = None
) -> list[ColumnElement[bool]]:
    """Conditions on applications (``ProcessInstance``): of the bank ``bank`` (a tenant code), in the unit
    ``org_unit`` or below it, of any version of the product ``product``."""
    found: list[ColumnElement[bool]] = []
    if bank:
        found.append(ProcessInstance.tenant_id.in_(select(Tenant.id).where(Tenant.code == bank)))
    if org_unit:
        found.append(ProcessInstance.org_unit_id.in_(unit_subtree(principal, org_unit)))
    if product:
        found.append(ProcessInstance.product_version_id.in_(product_versions(product)))
    return found


def product_versions(code: str) -> Select[Any]:
    """The ids of every version of the product ``code``."""
    versions = select(ProductVersion.id).join(Product, Product.id == ProductVersion.product_id)
    return versions.where(Product.code == code)


def unit_subtree(principal: Principal, code: str) -> Select[Any]:
    """The ids of the units named ``code`` in the banks the caller reads, and of every unit below them."""
    named = aliased(OrgUnit)  # the code may exist in several banks the caller can read
    subtree = select(OrgUnit.id).join(named, OrgUnit.path.startswith(named.path)).where(named.code == code)
    if principal.tenant_id is not None:
        subtree = subtree.where(named.tenant_id.in_(sorted(principal.scope_tenants or {principal.tenant_id})))
    return subtree


# -- sorting and keyset pagination -----------------------------------------------------------------

# (column, descending, nullable) per sort; ``id`` always last so that the order is total
_KEYS: dict[str, list[tuple[Any, bool, bool]]] = {
    "due": [(HumanTask.due_at, False, True), (HumanTask.id, False, False)],
    "priority": [(HumanTask.priority, True, False), (HumanTask.due_at, False, True), (HumanTask.id, False, False)],
    "created": [(HumanTask.created_at, False, False), (HumanTask.id, False, False)],
}


def order_by(sort: str) -> list[Any]:
    return keyset.order_by(_KEYS[sort])


def after(sort: str, cursor: list[Any]) -> ColumnElement[bool]:
    return keyset.after(_KEYS[sort], cursor)


def cursor_of(sort: str, row: HumanTask) -> str:
    return keyset.cursor_of(sort, _KEYS[sort], row)


def parse_cursor(sort: str, text: str) -> list[Any]:
    return keyset.parse_cursor(sort, _KEYS[sort], text)


def count(stmt: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())
