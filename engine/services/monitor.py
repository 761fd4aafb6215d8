"""The overdue monitor (超时监控): open tasks by SLA level per bank, branch, product or step, and the share of
steps finished on time over a period.

Every figure is one aggregate query grouped in the database: a province holds on the order of a million open
tasks, so rows are never loaded to be counted. Which tasks a caller counts, and the filters, are the inbox's
(``engine.inbox.queries``): a supervisor counts their team view (a branch head their branch's units), the
province every task of its banks, and levels come from the stored thresholds exactly as the inbox colours them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from engine.errors import Forbidden, InvalidInput
from engine.inbox.queries import (
    LEVELS,
    InboxQuery,
    application_filters,
    filtered,
    instance_level_clause,
    level_clause,
    supervised_units,
)
from engine.notify.summaries import LEVEL_NAMES
from engine.services.instance_access import readable
from engine.services.principal import Principal
from engine.store.models import OPEN_STATUSES, HumanTask, OrgUnit, ProcessInstance, Product, ProductVersion, Tenant

if TYPE_CHECKING:
    from engine.container import CreditFlow

GROUPS = ("level", "bank", "branch", "product", "step")
APPLICATION_GROUPS = GROUPS[:-1]  # an application waits at no one step: outside the bank, or at several
COUNTS = (*LEVELS, "total")
MAX_PERIOD_DAYS = 366  # a leap year: longer periods are split by the caller, so one query stays bounded
ZONE = ZoneInfo("Asia/Shanghai")  # the business calendar's zone: a period's days start at midnight there


@dataclass(frozen=True)
class LevelCounts:
    """Open tasks of one group by level now; ``bank`` tells branches of different banks apart."""

    key: str | None
    name: str | None
    none: int
    yellow: int
    orange: int
    red: int
    total: int
    bank: str | None = None


@dataclass(frozen=True)
class StepRate:
    """Tasks of one step completed in a period that had a due time, and how many of them were on time."""

    step: str
    name: str | None
    completed: int
    on_time: int
    overdue: int
    rate: float


@dataclass(frozen=True)
class OverdueReport:
    group_by: str
    as_of: datetime  # the levels are those at this moment
    items: list[LevelCounts]


@dataclass(frozen=True)
class OnTimeReport:
    start: date
    end: date
    items: list[StepRate]


class MonitorService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def overdue(
        self,
        principal: Principal,
        group_by: str = "level",
        *,
        bank: str | None = None,
        branch: str | None = None,
        product: str | None = None,
        step: str | None = None,
        level: str | None = None,
    ) -> OverdueReport:
        """Open tasks per group and level, worst groups first; ``branch`` filters the application's unit
        subtree, like the inbox's ``org_unit``."""
        if group_by not in GROUPS:
            raise InvalidInput(f"cannot group by {group_by!r}", [{"field": "group_by", "message": ", ".join(GROUPS)}])
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            tasks = self._tasks(
                session, principal, now, "ready", bank, org_unit=branch, product=product, step=step, level=level
            )
            return _level_report(session, _TASKS, tasks, group_by, now)

    def applications(
        self,
        principal: Principal,
        group_by: str = "level",
        *,
        bank: str | None = None,
        branch: str | None = None,
        product: str | None = None,
        level: str | None = None,
    ) -> OverdueReport:
        """Open applications per group and level of their process clock: the bank's promise to the
        customer, which runs on while an application waits outside the bank (for a signature, a
        guarantee) with no task to show it."""
        if group_by not in APPLICATION_GROUPS:
            message = ", ".join(APPLICATION_GROUPS)
            raise InvalidInput(f"cannot group by {group_by!r}", [{"field": "group_by", "message": message}])
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            stmt = select(ProcessInstance).where(
                ProcessInstance.status.in_(OPEN_STATUSES), ProcessInstance.product_version_id.is_not(None)
            )
            stmt = principal.scope(stmt, ProcessInstance.tenant_id)
            if self.platform.products.is_province(principal, session):
                stmt = stmt.where(readable(principal))
            else:
                units = supervised_units(principal, ProcessInstance.org_unit_id)
                if units is None:
                    raise Forbidden("the application monitor is for supervisors (支行行长, 风险经理, administrators)")
                stmt = stmt.where(units)
            stmt = stmt.where(*application_filters(principal, bank=bank, org_unit=branch, product=product))
            if level is not None:
                stmt = stmt.where(_APPLICATIONS.level(level, now))
            return _level_report(session, _APPLICATIONS, stmt, group_by, now)

    def on_time(
        self,
        principal: Principal,
        start: date,
        end: date,
        *,
        bank: str | None = None,
        branch: str | None = None,
        product: str | None = None,
    ) -> OnTimeReport:
        """Per step, tasks completed from ``start`` to ``end`` (days in Asia/Shanghai, both included) that
        had a due time: how many ended by it. Steps with the lowest rate come first."""
        lower, upper = period_bounds(start, end)
        on_time = func.count(case((HumanTask.ended_at <= HumanTask.due_at, 1)))
        with self.platform.db.transaction() as session:
            tasks = self._tasks(
                session, principal, self.platform.clock.now(), "completed", bank, org_unit=branch, product=product
            )
            stmt = (
                _aggregate(tasks, HumanTask.bpmn_id, func.max(HumanTask.name), func.count(), on_time)
                .where(HumanTask.due_at.is_not(None), HumanTask.ended_at >= lower, HumanTask.ended_at < upper)
                .group_by(HumanTask.bpmn_id)
            )
            rates = [
                StepRate(step, name, completed, in_time, completed - in_time, round(in_time / completed, 4))
                for step, name, completed, in_time in session.execute(stmt)
            ]
        return OnTimeReport(start, end, sorted(rates, key=lambda r: (r.rate, r.step)))

    def _tasks(
        self,
        session: Session,
        principal: Principal,
        now: datetime,
        status: str,
        bank: str | None,
        **filters: str | None,
    ) -> Select[Any]:
        """The caller's tasks with the filters: the team view of a supervisor (their subtree; the whole
        bank for admins and head-office supervisors), every task of its banks for the province."""
        view = "all" if self.platform.products.is_province(principal, session) else "team"
        stmt = filtered(principal, InboxQuery.of({"view": view, "status": status, **filters}), now)
        if bank is not None:
            stmt = stmt.where(HumanTask.tenant_id.in_(select(Tenant.id).where(Tenant.code == bank)))
        return stmt


def _aggregate(tasks: Select[Any], *columns: Any) -> Select[Any]:
    """The filtered task query reduced to aggregates (joins start from human_task)."""
    return tasks.with_only_columns(*columns).select_from(HumanTask)


def _level_report(
    session: Session, counted: _Counted, rows: Select[Any], group_by: str, now: datetime
) -> OverdueReport:
    """``rows`` (filtered tasks or applications) counted per level, per group, worst groups first."""
    counts = [
        *(func.count(case((counted.level(name, now), 1))).label(name) for name in LEVELS),
        func.count().label("total"),
    ]
    if group_by == "level":
        totals = session.execute(rows.with_only_columns(*counts).select_from(counted.table)).one()._mapping
        groups = [
            LevelCounts(name, LEVEL_NAMES[name], **_only(name, totals[name]), total=totals[name]) for name in LEVELS
        ]
        return OverdueReport(group_by, now, groups)
    grouping = counted.groupings[group_by]
    per_grain = rows.with_only_columns(grouping.grain.label("grain"), *grouping.carried, *counts)
    per_grain = per_grain.select_from(counted.table)
    if grouping.of_instance:
        per_grain = per_grain.join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    per = per_grain.group_by(grouping.grain).subquery()
    stmt = grouping.label(per).add_columns(*(func.sum(per.c[name]).label(name) for name in COUNTS))
    groups = [
        LevelCounts(**{k: int(v) if k in COUNTS else v for k, v in row._mapping.items()})
        for row in session.execute(stmt)
    ]
    worst_first = sorted(groups, key=lambda g: (-g.red, -g.orange, -g.yellow, -g.total, g.bank or "", g.key or ""))
    return OverdueReport(group_by, now, worst_first)


def _only(level: str, count: int) -> dict[str, int]:
    return {name: count if name == level else 0 for name in LEVELS}


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants from ``start``'s midnight to the midnight after ``end`` (days in Asia/Shanghai,
    both included); a 422 naming ``to`` for a period that is reversed or longer than a year."""
    if end < start:
        raise InvalidInput("the period ends before it starts", [{"field": "to", "message": "on or after from"}])
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput(
            f"a period is at most {MAX_PERIOD_DAYS} days",
            [{"field": "to", "message": f"at most {MAX_PERIOD_DAYS} days after from"}],
        )
    return _midnight(start), _midnight(end + timedelta(days=1))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZONE).astimezone(UTC)


@dataclass(frozen=True)
class _Grouping:
    """How open tasks are grouped: counted per ``grain`` in the database first (an id or a step, cheap to group a
    million rows by), then the grains' counts summed into the groups ``label`` selects from them."""

    grain: Any
    label: Callable[[Subquery], Select[Any]]
    of_instance: bool = False  # the grain is the application's: join its process instance
    carried: tuple[Any, ...] = ()  # per-grain values the label shows


def _by_bank(per: Subquery) -> Select[Any]:
    return (
        select(Tenant.code.label("key"), Tenant.name.label("name"))
        .select_from(per)
        .outerjoin(Tenant, Tenant.id == per.c.grain)
        .group_by(Tenant.id, Tenant.code, Tenant.name)
    )


def _by_branch(per: Subquery) -> Select[Any]:
    """The application's branch: the branch its unit lies in (a sub-branch's, a grid's), else the unit itself
    (a head office), resolved on the org units alone."""
    unit, branch, shown = aliased(OrgUnit), aliased(OrgUnit), aliased(OrgUnit)
    branch_of = (
        select(unit.id.label("unit_id"), func.coalesce(branch.id, unit.id).label("branch_id"))
        .outerjoin(
            branch,
            and_(branch.kind == "branch", branch.tenant_id == unit.tenant_id, unit.path.startswith(branch.path)),
        )
        .subquery()
    )
    return (
        select(shown.code.label("key"), shown.name.label("name"), Tenant.code.label("bank"))
        .select_from(per)
        .outerjoin(branch_of, branch_of.c.unit_id == per.c.grain)
        .outerjoin(shown, shown.id == branch_of.c.branch_id)
        .outerjoin(Tenant, Tenant.id == shown.tenant_id)
        .group_by(shown.id, shown.code, shown.name, Tenant.code)
    )


def _by_product(per: Subquery) -> Select[Any]:
    return (
        select(Product.code.label("key"), Product.name.label("name"))
        .select_from(per)
        .outerjoin(ProductVersion, ProductVersion.id == per.c.grain)
        .outerjoin(Product, Product.id == ProductVersion.product_id)
        .group_by(Product.id, Product.code, Product.name)
    )


def _by_step(per: Subquery) -> Select[Any]:
    """A step is its BPMN id; its name may differ between versions of a process, so one is shown."""
    return (
        select(per.c.grain.label("key"), per.c.step_name.label("name"))
        .select_from(per)
        .group_by(per.c.grain, per.c.step_name)
    )


@dataclass(frozen=True)
class _Counted:
    """What a level report counts: open tasks by their step clocks, or applications by their process clocks."""

    table: Any
    level: Callable[[str, datetime], ColumnElement[bool]]
    groupings: dict[str, _Grouping]


_TASKS = _Counted(
    HumanTask,
    level_clause,
    {
        "bank": _Grouping(HumanTask.tenant_id, _by_bank),
        "branch": _Grouping(ProcessInstance.org_unit_id, _by_branch, of_instance=True),
        "product": _Grouping(ProcessInstance.product_version_id, _by_product, of_instance=True),
        "step": _Grouping(HumanTask.bpmn_id, _by_step, carried=(func.max(HumanTask.name).label("step_name"),)),
    },
)
_APPLICATIONS = _Counted(
    ProcessInstance,
    instance_level_clause,
    {
        "bank": _Grouping(ProcessInstance.tenant_id, _by_bank),
        "branch": _Grouping(ProcessInstance.org_unit_id, _by_branch),
        "product": _Grouping(ProcessInstance.product_version_id, _by_product),
    },
)
