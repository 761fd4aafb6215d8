"""Business calendars per tenant: the holiday package under the admins' override table, and working hours.

Province-wide rows (no tenant) apply to every bank; a bank's own rows win over them. Calendars are
cached per tenant, rebuilt when an admin changes a row through this service and read again after a
minute, so a change made on another node or with the CLI reaches every server within a minute.
Entering a year starts the clocks its absence left unset; other edits apply to clocks started
afterwards. Every edit is recorded in the organisation's change trail (``engine.org.changes``), as the
owner's: the bank's, or none for the province-wide rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select, true, update
from sqlalchemy.orm import Session

from engine.errors import Forbidden, InvalidInput
from engine.org.changes import (
    CALENDAR_DAY_SET,
    CALENDAR_YEAR_COVERED,
    HOURS_SET,
    WORKING_HOURS,
    record_org_change,
    record_org_update,
)
from engine.services.principal import Principal
from engine.sla.calendar import (
    DEFAULT_HOURS,
    PACKAGE_YEARS,
    BusinessCalendar,
    DayKind,
    DayOverride,
    UnknownCalendarYear,
    WorkingHours,
)
from engine.sla.escalation import PROCESS, TASK, reached, schedule
from engine.store.models import CalendarDay, CalendarHours, CalendarYear, HumanTask, ProcessInstance, Tenant

if TYPE_CHECKING:
    from engine.container import CreditFlow

ADMIN = "admin"
CACHE_AGE = timedelta(seconds=60)  # how soon a node sees a calendar another process changed
_CLOCK = "%H:%M"  # how periods are written in calendar_hours and the API: [["08:30", "12:00"], ...]


@dataclass(frozen=True)
class HoursSetting:
    """The working hours in effect for a tenant, and whose setting they are, so an admin can tell
    whether the bank overrides the province ("bank"), follows it ("province") or neither ("default")."""

    hours: WorkingHours
    source: str

    @property
    def periods(self) -> list[list[str]]:
        return _texts(self.hours)

    @property
    def minutes_per_day(self) -> int:
        """What one working day (P1D in a time limit) stands for."""
        return int(self.hours.per_day.total_seconds()) // 60


class CalendarService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform
        self._calendars: dict[int | None, tuple[BusinessCalendar, datetime]] = {}
        self._lock = threading.Lock()

    def for_tenant(self, session: Session, tenant_id: int | None) -> BusinessCalendar:
        """The tenant's calendar, cached; read again once it is CACHE_AGE old, since another node
        (or ``creditflow calendar`` run beside the server) may have changed it in the database."""
        now = self.platform.clock.now()
        cached = self._calendars.get(tenant_id)
        found = cached[0] if cached is not None and now - cached[1] < CACHE_AGE else None
        if found is None:
            owners = _owners(tenant_id)
            overrides: dict[date, DayOverride] = {}
            rows = session.scalars(select(CalendarDay).where(_owned_by(CalendarDay.tenant_id, owners)))
            for row in sorted(rows, key=lambda r: r.tenant_id is not None):  # the bank's rows last: they win
                overrides[row.day] = DayOverride(DayKind.WORKDAY if row.workday else DayKind.HOLIDAY, row.note)
            years = session.scalars(select(CalendarYear.year).where(_owned_by(CalendarYear.tenant_id, owners)))
            hours = self._hours(session, tenant_id).hours
            found = BusinessCalendar(overrides, hours=hours, covered_years=set(years))
            with self._lock:
                self._calendars[tenant_id] = (found, now)
        return found

    def remaining_minutes(self, session: Session, instance: Any, since: datetime, due: datetime) -> int | None:
        """Minutes from ``since`` to ``due`` on the clock the application's product counts (working
        time in the tenant's calendar, or natural time; negative once overdue), or None when the span
        reaches a year nobody has entered: no countdown is shown, none guessed."""
        version = instance.product_version_id
        natural = version is not None and not self.platform.products.binding(session, version).working_time
        if natural:
            return int((due - since).total_seconds() // 60)
        try:
            left = self.for_tenant(session, instance.tenant_id).working_time_between(since, due)
        except UnknownCalendarYear:
            return None
        return int(left.total_seconds() // 60)

    def set_day(self, principal: Principal, day: date, workday: bool, note: str = "") -> CalendarDay:
        """Mark one day for the admin's tenant (province admins and the system: for every bank)."""
        owner = self._owner(principal)
        with self.platform.db.transaction(write=True) as session:
            found = session.scalars(
                select(CalendarDay).where(_owned_by(CalendarDay.tenant_id, (owner,)), CalendarDay.day == day)
            ).first()
            before = {"workday": found.workday, "note": found.note} if found is not None else {}
            row = found or CalendarDay(tenant_id=owner, day=day)
            row.workday, row.note = workday, note
            session.add(row)
            session.flush()
            record_org_update(
                session,
                principal,
                self.platform.clock.now(),
                tenant_id=owner,
                action=CALENDAR_DAY_SET,
                subject=str(day),
                before=before,
                after={"workday": workday, "note": note},
            )
        self._forget()
        return row

    def cover_year(self, principal: Principal, year: int) -> None:
        """Declare a year's arrangement complete; from then on its other days follow plain weekends. A
        year the holiday package does not know needs its official holidays entered first: declared
        complete without them, 元旦 and the Spring Festival would count as working days."""
        owner = self._owner(principal)
        with self.platform.db.transaction(write=True) as session:
            holidays = select(CalendarDay.id).where(
                _owned_by(CalendarDay.tenant_id, _owners(owner)),
                CalendarDay.workday.is_(False),
                CalendarDay.day >= date(year, 1, 1),
                CalendarDay.day <= date(year, 12, 31),
            )
            if year not in PACKAGE_YEARS and session.scalars(holidays.limit(1)).first() is None:
                message = f"enter {year}'s official holidays (and make-up workdays) first: none is entered"
                raise InvalidInput(
                    f"{year} cannot be declared complete: {message}", [{"field": "year", "message": message}]
                )
            entered = session.scalars(
                select(CalendarYear).where(_owned_by(CalendarYear.tenant_id, (owner,)), CalendarYear.year == year)
            ).first()
            if entered is None:
                session.add(CalendarYear(tenant_id=owner, year=year))
                now = self.platform.clock.now()
                record_org_change(
                    session, principal, now, tenant_id=owner, action=CALENDAR_YEAR_COVERED, subject=str(year)
                )
        self._forget()
        self._start_unset_clocks(owner, year)

    def _start_unset_clocks(self, owner: int | None, year: int) -> None:
        """Clocks a missing ``year`` left unset (``calendar_missing``) run from when they started, now
        that the year is entered: each application's under its lock, with the levels already due next."""
        since = datetime(year - 1, 1, 1, tzinfo=UTC)  # a clock that reaches into ``year`` started after this
        unset_task = and_(HumanTask.status == "ready", HumanTask.due_at.is_(None), HumanTask.created_at >= since)
        scope = true() if owner is None else ProcessInstance.tenant_id == owner
        candidates = (
            select(ProcessInstance.id)
            .where(scope, ProcessInstance.status == "running", ProcessInstance.product_version_id.is_not(None))
            .where(
                or_(
                    and_(ProcessInstance.due_at.is_(None), ProcessInstance.created_at >= since),
                    exists().where(HumanTask.instance_id == ProcessInstance.id, unset_task),
                )
            )
        )
        with self.platform.db.transaction() as session:
            instance_ids = list(session.scalars(candidates))
        for instance_id in instance_ids:
            with self.platform.instances.annotation(Principal.system(), instance_id) as (session, journal, instance):
                self._start_clocks(session, journal, instance, unset_task, year)

    def _start_clocks(self, session: Session, journal: Any, instance: Any, unset_task: Any, year: int) -> None:
        now = self.platform.clock.now()
        binding = self.platform.products.binding(session, instance.product_version_id)
        calendar = self.for_tenant(session, instance.tenant_id)
        clocks: list[tuple[str, Any, list[tuple[datetime, datetime]]]] = [
            (TASK, task, [(datetime.fromisoformat(b), datetime.fromisoformat(e)) for b, e in task.pauses or []])
            for task in session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id, unset_task))
        ]
        if instance.due_at is None and instance.status == "running":
            clocks.append((PROCESS, instance, []))
        for scope, subject, pauses in clocks:
            step = subject.bpmn_id if scope == TASK else None
            try:  # closed pauses only: an open one moves the times when it is resumed
                found = binding.deadlines(step, subject.created_at, calendar, pauses)
            except UnknownCalendarYear:
                continue  # it reaches a later year still missing
            if found is None:
                continue
            values = {"warn_at": found.warn_at, "due_at": found.overdue_at, "escalate_at": found.escalate_at}
            table = HumanTask if scope == TASK else ProcessInstance
            session.execute(update(table).where(table.id == subject.id).values(**values))
            if getattr(subject, "paused_at", None) is None:
                clock = SimpleNamespace(id=subject.id, **values)
                schedule(session, scope, clock, instance, now, after=reached(session, scope, subject.id))
            journal.record(
                "clock_started",
                task_id=subject.id if scope == TASK else None,
                bpmn_id=step,
                actor=False,
                scope=scope,
                year=year,
                due=found.overdue_at.isoformat(),
            )

    def days(self, principal: Principal, year: int) -> list[CalendarDay]:
        with self.platform.db.transaction() as session:
            return list(
                session.scalars(
                    select(CalendarDay)
                    .where(_owned_by(CalendarDay.tenant_id, _owners(principal.tenant_id)))
                    .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
                    .order_by(CalendarDay.day, CalendarDay.id)
                )
            )

    def hours(self, principal: Principal) -> HoursSetting:
        """The working hours deadlines in the caller's tenant run on."""
        with self.platform.db.transaction() as session:
            return self._hours(session, principal.tenant_id)

    def set_hours(
        self, principal: Principal, periods: Sequence[Sequence[str]], tenant_code: str | None = None
    ) -> HoursSetting:
        """Set the working periods ("HH:MM" pairs) for the admin's bank, or the province's default for every
        bank. The system (the CLI) may name a bank by ``tenant_code`` to set that bank's own hours.

        Due times already stored are not moved: like a calendar day, new hours apply to clocks started later.
        """
        owner = self._owner(principal) if tenant_code is None else self._named_owner(principal, tenant_code)
        hours = parse_hours(periods)
        with self.platform.db.transaction(write=True) as session:
            found = session.scalars(select(CalendarHours).where(_owned_by(CalendarHours.tenant_id, (owner,)))).first()
            before = {"periods": found.periods} if found is not None else {}
            row = found or CalendarHours(tenant_id=owner)
            row.periods = _texts(hours)
            session.add(row)
            record_org_update(
                session,
                principal,
                self.platform.clock.now(),
                tenant_id=owner,
                action=HOURS_SET,
                subject=WORKING_HOURS,
                before=before,
                after={"periods": row.periods},
            )
        self._forget()
        return HoursSetting(hours, "province" if owner is None else "bank")

    def _hours(self, session: Session, tenant_id: int | None) -> HoursSetting:
        """The bank's own row, else the province's default, else the package's 08:30–12:00 / 13:30–17:30."""
        rows = session.scalars(select(CalendarHours).where(_owned_by(CalendarHours.tenant_id, _owners(tenant_id))))
        chosen = max(rows, key=lambda r: r.tenant_id is not None, default=None)
        if chosen is None:
            return HoursSetting(DEFAULT_HOURS, "default")
        return HoursSetting(parse_hours(chosen.periods), "province" if chosen.tenant_id is None else "bank")

    def _owner(self, principal: Principal) -> int | None:
        """Rows an admin writes belong to its bank; the province's and the system's to everyone."""
        if principal.tenant_id is not None and ADMIN not in principal.roles:
            raise Forbidden("only an administrator maintains the business calendar")
        if principal.tenant_id is None or self.platform.products.is_province(principal):
            return None
        return principal.tenant_id

    def _named_owner(self, principal: Principal, tenant_code: str) -> int | None:
        """An operator's choice of tenant (the CLI's --tenant); naming the province means its default."""
        if not principal.is_system:
            raise Forbidden("only the system sets another tenant's working hours")
        with self.platform.db.transaction() as session:
            tenant = session.scalars(select(Tenant).where(Tenant.code == tenant_code)).first()
        if tenant is None:
            raise InvalidInput(f"no tenant {tenant_code}", [{"field": "tenant", "message": "unknown tenant code"}])
        return None if tenant.kind == "province" else tenant.id

    def _forget(self) -> None:
        with self._lock:
            self._calendars.clear()


def parse_hours(periods: Sequence[Sequence[str]]) -> WorkingHours:
    """``[["08:30", "12:00"], ...]`` as WorkingHours; anything else is an InvalidInput naming ``periods``."""
    try:
        pairs = []
        for period in periods:
            if not isinstance(period, list | tuple) or len(period) != 2:
                raise ValueError(f"{period!r} is not a [start, end] pair")
            pairs.append((_clock(period[0]), _clock(period[1])))
        return WorkingHours(tuple(pairs))
    except (TypeError, ValueError) as exc:
        message = f"{exc}; give [start, end] pairs such as [['08:30', '12:00'], ['13:30', '17:30']]"
        raise InvalidInput(f"invalid working hours: {message}", [{"field": "periods", "message": message}]) from None


def _clock(text: str) -> time:
    try:
        return datetime.strptime(text, _CLOCK).time()
    except ValueError:
        raise ValueError(f"{text!r} is not a time written HH:MM") from None


def _texts(hours: WorkingHours) -> list[list[str]]:
    return [[start.strftime(_CLOCK), end.strftime(_CLOCK)] for start, end in hours.periods]


def _owners(tenant_id: int | None) -> tuple[int | None, ...]:
    """Whose rows apply to a tenant: the province's (no tenant), then its own."""
    return (None,) if tenant_id is None else (None, tenant_id)


def _owned_by(column: object, owners: tuple[int | None, ...]) -> object:
    ids = [o for o in owners if o is not None]
    clause = column.is_(None) if None in owners else None  # type: ignore[attr-defined]
    if ids:
        in_ids = column.in_(ids)  # type: ignore[attr-defined]
        clause = in_ids if clause is None else clause | in_ids
    return clause
