"""A tenant's business calendar: which days are workdays, and how much working time lies between two instants.

Whether a day is a workday is decided by, strongest first:

1. the tenant's override table, maintained by admins: a branch closed for a typhoon, a special Saturday
   opening, or the holidays of a year the package does not know yet;
2. chinesecalendar, which carries the State Council holidays *and* the 调休 make-up workdays for 2004–2026;
3. plain weekends (Monday to Friday work), but only for a year an admin has marked complete in
   ``covered_years``.

A day reached by none of these raises ``UnknownCalendarYear`` instead of being guessed. The State Council
publishes next year's arrangement around November and the package lags behind, so a guess would silently put
due dates in the Spring Festival. A year counts as entered only through ``covered_years``, never because some
override rows fall in it: a typhoon row entered for 2027 must not make the rest of 2027 run on plain weekends.

Days are counted in the tenant's zone (Asia/Shanghai, which has no DST); instants go in as aware datetimes and
come out in UTC. Interval arithmetic is done in UTC, so it would stay right in a zone with DST as well. A
calendar is immutable: when admins edit overrides, build a new one. Stored due times stay as computed
(a day closed later does not move them), except clocks a missing year left unset, which start when the
year is entered (``CalendarService.cover_year``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from zoneinfo import ZoneInfo

import chinese_calendar

from engine.errors import CreditFlowError

__all__ = [
    "DEFAULT_HOURS",
    "PACKAGE_YEARS",
    "BusinessCalendar",
    "DayKind",
    "DayOverride",
    "UnknownCalendarYear",
    "WorkingHours",
    "as_utc",
]

PACKAGE_YEARS = range(min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year + 1)
"""The years chinesecalendar knows, holidays and make-up workdays included (2004–2026 in 1.11.0)."""

_ONE_DAY = timedelta(days=1)


class UnknownCalendarYear(CreditFlowError):
    """Nobody has entered this year's holidays: computing a deadline in it would be a guess.

    ``year`` lets the caller raise an alert for the tenant's admins; the message tells them what to do.
    """

    status = 409
    title = "Business calendar year not entered"

    def __init__(self, year: int) -> None:
        super().__init__(
            f"no business calendar for {year}: chinesecalendar covers {PACKAGE_YEARS.start}–{PACKAGE_YEARS.stop - 1} "
            f"and this tenant has not entered {year}. An administrator must enter {year}'s official holidays and "
            f"make-up workdays (调休) from the State Council notice in the holiday override table, then mark {year} "
            f"as complete (请管理员录入{year}年节假日及调休安排)."
        )
        self.year = year


class DayKind(StrEnum):
    WORKDAY = "workday"
    HOLIDAY = "holiday"


@dataclass(frozen=True)
class DayOverride:
    """One row of the admin table: what the day is, with an optional note such as 国庆调休 or 台风停业."""

    kind: DayKind
    note: str = ""


def _span(start: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)


@dataclass(frozen=True)
class WorkingHours:
    """The tenant's working periods on every workday, as (start, end) wall-clock times in order.

    The default, 08:30–12:00 and 13:30–17:30 (7.5 hours), keeps the lunch break most rural branches close for;
    a tenant open straight through configures one period. Make-up Saturdays have the same hours, so one working
    day is always ``per_day`` of working time.
    """

    periods: tuple[tuple[time, time], ...] = ((time(8, 30), time(12)), (time(13, 30), time(17, 30)))

    def __post_init__(self) -> None:
        periods = tuple((start, end) for start, end in self.periods)  # also accepts a list of lists
        if not periods:
            raise ValueError("working hours need at least one period")
        previous_end = time.min
        for start, end in periods:
            if not (isinstance(start, time) and isinstance(end, time)) or start.tzinfo or end.tzinfo:
                raise ValueError(f"a working period is two wall-clock times without a zone, not {start!r}–{end!r}")
            if start >= end:
                raise ValueError(f"working period {start}–{end} must start before it ends")
            if start < previous_end:
                raise ValueError(f"working period {start}–{end} overlaps or precedes the one before it")
            previous_end = end
        object.__setattr__(self, "periods", periods)

    @property
    def per_day(self) -> timedelta:
        """Working time in one workday: what a working-day limit (P1D) stands for."""
        return sum((_span(start, end) for start, end in self.periods), timedelta(0))


DEFAULT_HOURS = WorkingHours()


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is refused, because guessing its zone shifts deadlines by 8 hours."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: pass an aware datetime (UTC)")
    return moment.astimezone(UTC)


def _days_of(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=n) for n in range(date(year, 12, 31).toordinal() - first.toordinal() + 1)]


@cache
def _package_workdays(year: int) -> frozenset[date]:
    """chinesecalendar's workdays in ``year``, once per process: the package re-checks its range on every call."""
    return frozenset(day for day in _days_of(year) if chinese_calendar.is_workday(day))


def _as_override(value: bool | DayKind | DayOverride) -> DayOverride:
    if isinstance(value, DayOverride):
        return value
    if isinstance(value, bool):
        return DayOverride(DayKind.WORKDAY if value else DayKind.HOLIDAY)
    return DayOverride(DayKind(value))


class BusinessCalendar:
    """One tenant's workdays and working hours (module docstring: where a day's kind comes from).

    ``overrides`` maps a date to True/``DayKind.WORKDAY`` or False/``DayKind.HOLIDAY`` (or a ``DayOverride``
    with a note) and wins over everything else. ``covered_years`` lists the years an admin has entered in
    full; outside chinesecalendar's range only those years are computed (weekends plus the overrides).
    """

    def __init__(
        self,
        overrides: Mapping[date, bool | DayKind | DayOverride] = MappingProxyType({}),
        hours: WorkingHours = DEFAULT_HOURS,
        zone: str = "Asia/Shanghai",
        covered_years: Collection[int] | None = None,
    ) -> None:
        for day in overrides:
            if isinstance(day, datetime) or not isinstance(day, date):
                raise ValueError(f"an override is keyed by a calendar date, not {day!r}")
        self.overrides: Mapping[date, DayOverride] = MappingProxyType(
            {day: _as_override(value) for day, value in overrides.items()}
        )
        self.hours = hours
        self.zone = ZoneInfo(zone)
        self.covered_years = frozenset(covered_years or ())
        self._base_years: dict[int, frozenset[date]] = {}

    def is_workday(self, day: date) -> bool:
        """Whether staff work on ``day`` (a date in the tenant's zone); UnknownCalendarYear if nobody knows."""
        if isinstance(day, datetime):
            raise TypeError("is_workday takes a date in the tenant's zone, not a datetime")
        override = self.overrides.get(day)
        if override is not None:
            return override.kind is DayKind.WORKDAY
        return day in self._base_workdays(day.year)

    def _base_workdays(self, year: int) -> frozenset[date]:
        """A year's workdays before overrides, computed once: the package's, or Monday–Friday for an entered year."""
        workdays = self._base_years.get(year)
        if workdays is None:
            if year in PACKAGE_YEARS:
                workdays = _package_workdays(year)
            elif year in self.covered_years:
                workdays = frozenset(day for day in _days_of(year) if day.weekday() < 5)
            else:
                raise UnknownCalendarYear(year)
            self._base_years[year] = workdays
        return workdays

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th workday after ``day`` (``day`` itself for n = 0): customer-facing promises in working days."""
        if n < 0:
            raise ValueError(f"working days to add must not be negative, got {n}")
        while n:
            day += _ONE_DAY
            n -= self.is_workday(day)
        return day

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant, in UTC, when ``duration`` of working time has passed since ``start``.

        Counting begins at the next working period when ``start`` is outside one. A result exactly at a period's
        end stays there: a task due at 17:30 is due today, not at 08:30 tomorrow. Zero adds nothing.
        """
        if duration < timedelta(0):
            raise ValueError(f"working time to add must not be negative, got {duration}")
        current = as_utc(start)
        if not duration:
            return current
        left = duration
        day = self._local_date(current)
        while True:
            periods = [(opens, closes) for opens, closes in self._periods(day) if closes > current]
            if periods and self.is_workday(day):
                for opens, closes in periods:
                    current = max(current, opens)
                    if left <= closes - current:
                        return current + left
                    left -= closes - current
                    current = closes
            day += _ONE_DAY

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end``; negative when ``end`` comes first, as for an overdue task."""
        start, end = as_utc(start), as_utc(end)
        if end < start:
            return -self.working_time_between(end, start)
        total = timedelta(0)
        day, last = self._local_date(start), self._local_date(end)
        while day <= last:
            # A day is looked up only if [start, end] meets its hours, so an instant just past midnight
            # into an unentered year does not raise.
            overlaps = [(max(opens, start), min(closes, end)) for opens, closes in self._periods(day)]
            overlaps = [(lower, upper) for lower, upper in overlaps if lower < upper]
            if overlaps and self.is_workday(day):
                total += sum((upper - lower for lower, upper in overlaps), timedelta(0))
            day += _ONE_DAY
        return total

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def _periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's working periods as UTC instants, whether or not the day is a workday."""
        return [(self._instant(day, start), self._instant(day, end)) for start, end in self.hours.periods]

    def _instant(self, day: date, wall_clock: time) -> datetime:
        return datetime.combine(day, wall_clock, tzinfo=self.zone).astimezone(UTC)
