"""Time limits from product configs, and what they mean for one task or instance: due time, level, time left.

A limit is an ISO 8601 duration in days, hours and minutes (P5D, PT4H, PT30M, P1DT4H), the grammar the product
validator accepts; months, years and weeks have no fixed length in working time. Which clock it runs on comes
from the ``calendar`` field beside it in ``time_limits``: ``working`` (the default: the tenant's business
calendar) or ``natural`` (elapsed wall time, for promises such as "within 48 hours").

In working time a day is one full working day of the tenant's hours (7.5 hours by default), so P1D from Monday
10:00 is due Tuesday 10:00 and P1DT4H is 11.5 working hours. In natural time P1D is 24 hours.

Pauses, while a task waits for the customer or an outside party, stop the bank's clock: the time they cover
is not charged, so they push the due time out. Due and threshold times are computed when a task or instance
starts and stored in UTC; a resume moves the stored ones the clock had not reached (``after_pause``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from engine.sla.calendar import DEFAULT_HOURS, BusinessCalendar, WorkingHours, as_utc

__all__ = [
    "CALENDARS",
    "DEFAULT_LADDER",
    "Ladder",
    "Level",
    "Pause",
    "Thresholds",
    "TimeLimit",
    "after_pause",
    "due_at",
    "level",
    "parse_limit",
    "remaining",
    "thresholds",
]

CALENDARS = ("working", "natural")

# The product validator's grammar (engine/catalog/config.py): whole days, hours and minutes, ASCII digits.
_DURATION = re.compile(r"P(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?)?")
_CALENDAR_UNITS = re.compile(r"P(?:[0-9]+[YMW])+")
_FORMS = "use whole days, hours and minutes (P5D, PT4H, PT30M, P1DT4H)"

Pause = tuple[datetime, datetime]


class Level(StrEnum):
    """The SLA colour a clock shows; staff see the same words as in post-loan warnings."""

    NONE = "none"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"


@dataclass(frozen=True)
class TimeLimit:
    """How long a step or process may take: ``duration`` of working time, or of wall time if not ``working``."""

    working: bool
    duration: timedelta

    def __post_init__(self) -> None:
        if self.duration <= timedelta(0):
            raise ValueError(f"a time limit must be longer than zero, got {self.duration}")


@dataclass(frozen=True)
class Ladder:
    """Fractions of the limit at which a clock turns yellow (提醒), orange (超时) and red (严重超时)."""

    yellow: float = 0.8
    orange: float = 1.0
    red: float = 1.5

    def __post_init__(self) -> None:
        if not (0 < self.yellow < self.orange < self.red and math.isfinite(self.red)):
            raise ValueError(
                f"ladder fractions must be finite and increase from above zero: "
                f"yellow {self.yellow} < orange {self.orange} < red {self.red}"
            )

    def steps(self) -> tuple[tuple[Level, float], ...]:
        """(level, fraction) pairs, highest first, so the first one reached is the level."""
        return (Level.RED, self.red), (Level.ORANGE, self.orange), (Level.YELLOW, self.yellow)


DEFAULT_LADDER = Ladder()


@dataclass(frozen=True)
class Thresholds:
    """When a clock turns yellow, orange and red, in UTC: stored once so the scheduler only compares times."""

    warn_at: datetime
    overdue_at: datetime
    escalate_at: datetime


def parse_limit(text: str, calendar: str = "working", *, hours: WorkingHours = DEFAULT_HOURS) -> TimeLimit:
    """The limit a product config writes as ``text``; ``hours`` are the tenant's, and fix how long P1D is."""
    if calendar not in CALENDARS:
        raise ValueError(f"unknown calendar {calendar!r}: use one of {', '.join(CALENDARS)}")
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        if _CALENDAR_UNITS.match(text):
            raise ValueError(f"{text!r}: years, months and weeks have no fixed length in working time; {_FORMS}")
        raise ValueError(f"{text!r} is not an ISO 8601 duration; {_FORMS}")
    days, whole_hours, minutes = (int(group or 0) for group in match.groups())
    working = calendar == "working"
    try:
        duration = days * (hours.per_day if working else timedelta(days=1)) + timedelta(
            hours=whole_hours, minutes=minutes
        )
    except OverflowError:
        raise ValueError(f"{text!r} is too long for a time limit") from None
    if not duration:
        raise ValueError(f"{text!r}: a time limit must be longer than zero")
    return TimeLimit(working=working, duration=duration)


def due_at(calendar: BusinessCalendar, started: datetime, limit: TimeLimit, paused: Iterable[Pause] = ()) -> datetime:
    """When the limit runs out, in UTC, with paused time not charged."""
    return _reach(calendar, as_utc(started), limit, limit.duration, paused)


def thresholds(
    calendar: BusinessCalendar,
    started: datetime,
    limit: TimeLimit,
    paused: Iterable[Pause] = (),
    ladder: Ladder = DEFAULT_LADDER,
) -> Thresholds:
    """The yellow, orange and red times of one clock, for the scheduler to store."""
    started = as_utc(started)
    pauses = list(paused)
    warn, overdue, escalate = (
        _reach(calendar, started, limit, limit.duration * fraction, pauses)
        for fraction in (ladder.yellow, ladder.orange, ladder.red)
    )
    return Thresholds(warn_at=warn, overdue_at=overdue, escalate_at=escalate)


def level(
    calendar: BusinessCalendar,
    started: datetime,
    limit: TimeLimit,
    now: datetime,
    paused: Iterable[Pause] = (),
    ladder: Ladder = DEFAULT_LADDER,
) -> Level:
    """The clock's colour at ``now``: the highest step whose share of the limit has been used (elapsed ÷ limit)."""
    used = _elapsed(calendar, as_utc(started), limit, as_utc(now), paused)
    for step, fraction in ladder.steps():
        if used >= limit.duration * fraction:
            return step
    return Level.NONE


def after_pause(
    calendar: BusinessCalendar, limit: TimeLimit, at: datetime | None, paused: datetime, resumed: datetime
) -> datetime | None:
    """A stored threshold once a pause ends: the clock had ``paused``→``at`` left when it stopped and
    runs it from ``resumed``; a threshold it had already reached stays. Only the stored times are
    used, so hours a bank changed meanwhile apply to the rest of the clock, not to its past."""
    if at is None or as_utc(at) <= as_utc(paused):
        return at
    return _add(calendar, limit, as_utc(resumed), _between(calendar, limit, as_utc(paused), as_utc(at)))


def remaining(calendar: BusinessCalendar, now: datetime, due: datetime) -> timedelta:
    """Working time left until ``due``, shown on the task card; negative once overdue."""
    return calendar.working_time_between(now, due)


def _add(calendar: BusinessCalendar, limit: TimeLimit, start: datetime, amount: timedelta) -> datetime:
    return calendar.add_working_time(start, amount) if limit.working else start + amount


def _between(calendar: BusinessCalendar, limit: TimeLimit, start: datetime, end: datetime) -> timedelta:
    return calendar.working_time_between(start, end) if limit.working else end - start


def _merged(paused: Iterable[Pause], started: datetime) -> list[Pause]:
    """Pauses in UTC, clipped to the clock's start, sorted and merged: overlapping records are not counted twice."""
    merged: list[Pause] = []
    for begin, end in sorted((as_utc(begin), as_utc(end)) for begin, end in paused):
        if end < begin:
            raise ValueError(f"a pause ends before it begins: {begin.isoformat()} to {end.isoformat()}")
        begin = max(begin, started)
        if end <= begin:
            continue
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _reach(
    calendar: BusinessCalendar, started: datetime, limit: TimeLimit, amount: timedelta, paused: Iterable[Pause]
) -> datetime:
    """The earliest instant at which the clock started at ``started`` has run ``amount``, stopping in pauses."""
    current, left = started, amount
    for begin, end in _merged(paused, started):
        reached = _add(calendar, limit, current, left)
        if reached <= begin:
            return reached
        left -= _between(calendar, limit, current, begin)
        current = end
    return _add(calendar, limit, current, left)


def _elapsed(
    calendar: BusinessCalendar, started: datetime, limit: TimeLimit, now: datetime, paused: Iterable[Pause]
) -> timedelta:
    """Clock time used from ``started`` to ``now``: the pauses' share is taken back out."""
    used = _between(calendar, limit, started, now)
    for begin, end in _merged(paused, started):
        if begin >= now:
            break
        used -= _between(calendar, limit, begin, min(end, now))
    return used


def stored_level(task: Any, now: datetime) -> Level:
    """The level of a clock from its stored thresholds (no calendar needed): how inboxes colour rows.
    A paused clock (a task waiting for the customer) shows the level it had when it stopped, and an
    ended one (a step done, an application closed) the level it ended at: a step done on time stays
    on time in the history."""
    now = getattr(task, "paused_at", None) or task.ended_at or now
    for at, reached in ((task.escalate_at, Level.RED), (task.due_at, Level.ORANGE), (task.warn_at, Level.YELLOW)):
        if at is not None and now >= at:
            return reached
    return Level.NONE
