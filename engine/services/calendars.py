"""Business calendars per tenant: the holiday package under the admins' override table.

Province-wide rows (no tenant) apply to every bank; a bank's own rows win over them. Calendars are
cached per tenant and rebuilt when an admin changes a row through this service.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Forbidden
from engine.services.principal import Principal
from engine.sla.calendar import BusinessCalendar, DayKind, DayOverride
from engine.store.models import CalendarDay, CalendarYear

if TYPE_CHECKING:
    from engine.container import CreditFlow

ADMIN = "admin"


class CalendarService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform
        self._calendars: dict[int | None, BusinessCalendar] = {}
        self._lock = threading.Lock()

    def for_tenant(self, session: Session, tenant_id: int | None) -> BusinessCalendar:
        found = self._calendars.get(tenant_id)
        if found is None:
            owners = (None,) if tenant_id is None else (None, tenant_id)
            overrides: dict[date, DayOverride] = {}
            rows = session.scalars(select(CalendarDay).where(_owned_by(CalendarDay.tenant_id, owners)))
            for row in sorted(rows, key=lambda r: r.tenant_id is not None):  # the bank's rows last: they win
                overrides[row.day] = DayOverride(DayKind.WORKDAY if row.workday else DayKind.HOLIDAY, row.note)
            years = session.scalars(select(CalendarYear.year).where(_owned_by(CalendarYear.tenant_id, owners)))
            found = BusinessCalendar(overrides, covered_years=set(years))
            with self._lock:
                self._calendars[tenant_id] = found
        return found

    def set_day(self, principal: Principal, day: date, workday: bool, note: str = "") -> CalendarDay:
        """Mark one day for the admin's tenant (province admins and the system: for every bank)."""
        owner = self._owner(principal)
        with self.platform.db.transaction(write=True) as session:
            row = session.scalars(
                select(CalendarDay).where(_owned_by(CalendarDay.tenant_id, (owner,)), CalendarDay.day == day)
            ).first() or CalendarDay(tenant_id=owner, day=day)
            row.workday, row.note = workday, note
            session.add(row)
            session.flush()
        self._forget()
        return row

    def cover_year(self, principal: Principal, year: int) -> None:
        """Declare a year's arrangement complete; from then on its other days follow plain weekends."""
        owner = self._owner(principal)
        with self.platform.db.transaction(write=True) as session:
            exists = session.scalars(
                select(CalendarYear).where(_owned_by(CalendarYear.tenant_id, (owner,)), CalendarYear.year == year)
            ).first()
            if exists is None:
                session.add(CalendarYear(tenant_id=owner, year=year))
        self._forget()

    def days(self, principal: Principal, year: int) -> list[CalendarDay]:
        with self.platform.db.transaction() as session:
            owners = (None,) if principal.tenant_id is None else (None, principal.tenant_id)
            return list(
                session.scalars(
                    select(CalendarDay)
                    .where(_owned_by(CalendarDay.tenant_id, owners))
                    .where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
                    .order_by(CalendarDay.day, CalendarDay.id)
                )
            )

    def _owner(self, principal: Principal) -> int | None:
        """Rows an admin writes belong to its bank; the province's and the system's to everyone."""
        if principal.tenant_id is not None and ADMIN not in principal.roles:
            raise Forbidden("only an administrator maintains the business calendar")
        if principal.tenant_id is None or self.platform.products.is_province(principal):
            return None
        return principal.tenant_id

    def _forget(self) -> None:
        with self._lock:
            self._calendars.clear()


def _owned_by(column: object, owners: tuple[int | None, ...]) -> object:
    ids = [o for o in owners if o is not None]
    clause = column.is_(None) if None in owners else None  # type: ignore[attr-defined]
    if ids:
        in_ids = column.in_(ids)  # type: ignore[attr-defined]
        clause = in_ids if clause is None else clause | in_ids
    return clause
