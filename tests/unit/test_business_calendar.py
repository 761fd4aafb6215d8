"""Business calendar and SLA deadlines: workdays, working time, time limits, pauses and the escalation ladder.

Times are written as Beijing wall-clock times (``beijing``) and compared as UTC instants, which is what the
calendar takes and returns. No test reads the real clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sla.calendar import (
    BusinessCalendar,
    DayKind,
    DayOverride,
    UnknownCalendarYear,
    WorkingHours,
)
from engine.sla.deadlines import (
    Ladder,
    Level,
    TimeLimit,
    after_pause,
    due_at,
    level,
    parse_limit,
    remaining,
    thresholds,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = BusinessCalendar()
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
NINE_TO_HALF_FIVE = WorkingHours(((time(8, 30), time(17, 30)),))  # the research helper's hours, no lunch break


def beijing(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Beijing wall-clock time as the UTC instant the calendar works with."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# --- workdays ---------------------------------------------------------------------------------------------------


def test_three_working_days_after_national_day_eve_2025_end_on_a_make_up_saturday() -> None:
    assert CAL.add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 11)
    assert date(2025, 10, 11).weekday() == 5


def test_add_working_days_counts_days_after_the_start() -> None:
    assert CAL.add_working_days(date(2026, 3, 6), 1) == date(2026, 3, 9)  # Friday -> Monday
    assert CAL.add_working_days(date(2026, 3, 7), 0) == date(2026, 3, 7)
    with pytest.raises(ValueError, match="must not be negative"):
        CAL.add_working_days(date(2026, 3, 6), -1)


@pytest.mark.parametrize("make_up_day", [date(2026, 2, 14), date(2026, 2, 28), date(2026, 10, 10)])
def test_2026_make_up_saturdays_are_workdays(make_up_day: date) -> None:
    assert make_up_day.weekday() == 5
    assert CAL.is_workday(make_up_day)


def test_2026_spring_festival_block_is_not_worked() -> None:
    block = [date(2026, 2, 15) + timedelta(days=n) for n in range(9)]  # 2/15–2/23
    assert not any(CAL.is_workday(day) for day in block)
    assert CAL.is_workday(date(2026, 2, 13))
    assert CAL.is_workday(date(2026, 2, 24))
    assert not CAL.is_workday(date(2026, 3, 7))  # an ordinary Saturday


def test_an_override_wins_over_the_package() -> None:
    typhoon, saturday_opening, holiday_opening = date(2025, 9, 16), date(2025, 9, 20), date(2025, 10, 8)
    assert CAL.is_workday(typhoon) and not CAL.is_workday(saturday_opening) and not CAL.is_workday(holiday_opening)
    calendar = BusinessCalendar(
        {
            typhoon: DayOverride(DayKind.HOLIDAY, "台风停业"),
            saturday_opening: True,
            holiday_opening: DayKind.WORKDAY,
        }
    )
    assert not calendar.is_workday(typhoon)
    assert calendar.is_workday(saturday_opening)
    assert calendar.is_workday(holiday_opening)
    assert calendar.overrides[typhoon].note == "台风停业"
    assert calendar.overrides[saturday_opening] == DayOverride(DayKind.WORKDAY)
    # Monday 15 September 17:00 + 1 working hour: the typhoon Tuesday is skipped.
    assert calendar.add_working_time(beijing(2025, 9, 15, 17), HOUR) == beijing(2025, 9, 17, 9)


def test_a_bool_false_override_closes_the_day() -> None:
    assert not BusinessCalendar({date(2026, 3, 2): False}).is_workday(date(2026, 3, 2))


def test_a_year_nobody_entered_fails_loudly_and_says_what_to_do() -> None:
    with pytest.raises(UnknownCalendarYear) as raised:
        CAL.is_workday(date(2027, 1, 4))
    assert raised.value.year == 2027
    message = str(raised.value)
    assert "2027" in message
    assert "holiday override table" in message
    assert "mark 2027 as complete" in message
    with pytest.raises(UnknownCalendarYear, match="2027"):
        CAL.add_working_days(date(2026, 12, 31), 1)
    with pytest.raises(UnknownCalendarYear, match="2003"):
        CAL.is_workday(date(2003, 12, 31))


def test_a_few_override_rows_do_not_make_a_year_entered() -> None:
    calendar = BusinessCalendar({date(2027, 1, 1): DayOverride(DayKind.HOLIDAY, "元旦")})
    assert not calendar.is_workday(date(2027, 1, 1))  # the row itself is known
    with pytest.raises(UnknownCalendarYear, match="2027"):
        calendar.is_workday(date(2027, 1, 4))  # the rest of 2027 is not guessed


def test_an_entered_year_uses_weekends_plus_its_overrides() -> None:
    calendar = BusinessCalendar(
        {
            date(2027, 1, 1): DayOverride(DayKind.HOLIDAY, "元旦"),
            date(2027, 2, 6): DayOverride(DayKind.WORKDAY, "春节调休"),
        },
        covered_years={2027},
    )
    assert not calendar.is_workday(date(2027, 1, 1))  # Friday, entered holiday
    assert calendar.is_workday(date(2027, 1, 4))  # plain Monday
    assert not calendar.is_workday(date(2027, 1, 9))  # plain Saturday
    assert calendar.is_workday(date(2027, 2, 6))  # entered make-up Saturday
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_marking_a_package_year_complete_keeps_the_package_holidays() -> None:
    calendar = BusinessCalendar({date(2026, 3, 2): False}, covered_years={2026})
    assert not calendar.is_workday(date(2026, 2, 16))  # Monday in the Spring Festival block
    assert calendar.is_workday(date(2026, 2, 14))


def test_days_are_dates_not_datetimes() -> None:
    with pytest.raises(TypeError, match="not a datetime"):
        CAL.is_workday(datetime(2026, 3, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="calendar date"):
        BusinessCalendar({datetime(2026, 3, 2, tzinfo=UTC): False})


# --- working hours ----------------------------------------------------------------------------------------------


def test_default_hours_have_a_lunch_break() -> None:
    assert WorkingHours().per_day == timedelta(hours=7, minutes=30)
    assert NINE_TO_HALF_FIVE.per_day == timedelta(hours=9)
    assert WorkingHours([[time(9), time(12)], [time(13), time(17)]]).periods == (
        (time(9), time(12)),
        (time(13), time(17)),
    )


@pytest.mark.parametrize(
    ("periods", "problem"),
    [
        ((), "at least one period"),
        (((time(12), time(9)),), "must start before it ends"),
        (((time(9), time(9)),), "must start before it ends"),
        (((time(9), time(13)), (time(12), time(17))), "overlaps"),
        (((time(13), time(17)), (time(9), time(12))), "overlaps or precedes"),
        (((time(9, tzinfo=UTC), time(17, tzinfo=UTC)),), "without a zone"),
        ((("09:00", "17:00"),), "without a zone"),
    ],
)
def test_bad_working_hours_are_refused(periods: tuple[tuple[time, time], ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        WorkingHours(periods)


# --- adding working time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        pytest.param(beijing(2026, 3, 2, 11), 2 * HOUR, beijing(2026, 3, 2, 14, 30), id="across-lunch"),
        pytest.param(beijing(2026, 3, 6, 17), HOUR, beijing(2026, 3, 9, 9), id="across-weekend"),
        pytest.param(beijing(2026, 9, 30, 16), 3 * HOUR, beijing(2026, 10, 8, 10), id="across-national-day"),
        pytest.param(beijing(2026, 3, 2, 7), HOUR, beijing(2026, 3, 2, 9, 30), id="before-opening"),
        pytest.param(beijing(2026, 3, 2, 12, 30), HOUR, beijing(2026, 3, 2, 14, 30), id="during-lunch"),
        pytest.param(beijing(2026, 3, 2, 20), HOUR, beijing(2026, 3, 3, 9, 30), id="evening"),
        pytest.param(beijing(2026, 3, 8, 10), HOUR, beijing(2026, 3, 9, 9, 30), id="sunday"),
        pytest.param(beijing(2026, 3, 2, 12), 30 * MINUTE, beijing(2026, 3, 2, 14), id="from-a-period-end"),
        pytest.param(beijing(2026, 3, 2, 11), HOUR, beijing(2026, 3, 2, 12), id="ends-at-lunch"),
        pytest.param(beijing(2026, 3, 2, 17), 30 * MINUTE, beijing(2026, 3, 2, 17, 30), id="ends-at-closing"),
        pytest.param(beijing(2026, 3, 2, 8, 30), 75 * HOUR, beijing(2026, 3, 13, 17, 30), id="ten-days-to-closing"),
        pytest.param(beijing(2026, 3, 2, 20), timedelta(0), beijing(2026, 3, 2, 20), id="zero"),
    ],
)
def test_add_working_time(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert CAL.add_working_time(start, duration) == expected


def test_27_working_hours_from_national_day_eve_end_on_the_make_up_saturday() -> None:
    calendar = BusinessCalendar(hours=NINE_TO_HALF_FIVE)
    assert calendar.add_working_time(beijing(2026, 9, 30, 16), 27 * HOUR) == beijing(2026, 10, 10, 16)


def test_negative_working_time_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        CAL.add_working_time(beijing(2026, 3, 2, 9), -HOUR)


def test_instants_go_in_aware_and_come_out_in_utc() -> None:
    start = datetime(2026, 9, 30, 8, tzinfo=UTC)  # 16:00 in Beijing
    due = CAL.add_working_time(start, timedelta(hours=1, minutes=30))
    assert due == datetime(2026, 9, 30, 9, 30, tzinfo=UTC)  # 17:30 in Beijing: closing time, not 10-08 08:30
    assert due.tzinfo is UTC
    same_start_in_beijing = datetime(2026, 9, 30, 16, tzinfo=timezone(timedelta(hours=8)))
    assert CAL.add_working_time(same_start_in_beijing, timedelta(hours=1, minutes=30)) == due
    assert CAL.working_time_between(start, datetime(2026, 9, 30, 10, tzinfo=UTC)) == timedelta(hours=1, minutes=30)
    with pytest.raises(ValueError, match="no time zone"):
        CAL.add_working_time(datetime(2026, 9, 30, 16), HOUR)


def test_the_tenant_zone_decides_the_hours() -> None:
    utc_bank = BusinessCalendar(zone="UTC")
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)  # 16:00 in Beijing, 08:00 in UTC
    assert utc_bank.add_working_time(start, HOUR) == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert CAL.add_working_time(start, HOUR) == beijing(2026, 3, 2, 17)


# --- working time between two instants --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(beijing(2026, 3, 2, 10), beijing(2026, 3, 2, 15), timedelta(hours=3, minutes=30), id="lunch"),
        pytest.param(beijing(2026, 3, 7, 10), beijing(2026, 3, 8, 18), timedelta(0), id="weekend"),
        pytest.param(beijing(2026, 9, 30, 16), beijing(2026, 10, 8, 10), 3 * HOUR, id="national-day"),
        pytest.param(beijing(2026, 3, 2, 12, 10), beijing(2026, 3, 2, 13, 20), timedelta(0), id="inside-lunch"),
        pytest.param(beijing(2026, 3, 2, 8, 30), beijing(2026, 3, 13, 17, 30), 75 * HOUR, id="two-weeks"),
    ],
)
def test_working_time_between_is_antisymmetric(start: datetime, end: datetime, expected: timedelta) -> None:
    assert CAL.working_time_between(start, end) == expected
    assert CAL.working_time_between(end, start) == -expected


def test_working_time_over_a_whole_year_matches_the_package() -> None:
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(365)]
    workdays = sum(chinese_calendar.is_workday(day) for day in days)
    assert workdays == 248  # chinesecalendar 1.11.0 for 2025
    assert CAL.working_time_between(beijing(2025, 1, 1), beijing(2026, 1, 1)) == workdays * timedelta(hours=7.5)


def test_midnight_into_an_unentered_year_needs_no_calendar_for_it() -> None:
    assert CAL.working_time_between(beijing(2026, 12, 31, 9), beijing(2027, 1, 1)) == 7 * HOUR
    with pytest.raises(UnknownCalendarYear, match="2027"):
        CAL.working_time_between(beijing(2026, 12, 31, 9), beijing(2027, 1, 4, 9))


PROPERTY_SETTINGS = settings(deadline=None)  # the first call in a year builds that year's cache
STARTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 9, 30), timezones=st.just(UTC))


@PROPERTY_SETTINGS
@given(start=STARTS, duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=150)))
def test_adding_working_time_is_undone_by_measuring_it(start: datetime, duration: timedelta) -> None:
    end = CAL.add_working_time(start, duration)
    assert CAL.working_time_between(start, end) == duration
    assert CAL.working_time_between(end, start) == -duration
    if duration:  # the earliest such instant: a microsecond before, the time has not yet passed
        assert CAL.working_time_between(start, end - TICK) < duration


# --- time limits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("P5D", timedelta(hours=37, minutes=30)),
        ("P10D", 75 * HOUR),
        ("PT4H", 4 * HOUR),
        ("PT30M", 30 * MINUTE),
        ("P1DT4H", timedelta(hours=11, minutes=30)),
        ("P0DT1M", MINUTE),
        ("PT1H30M", 90 * MINUTE),
    ],
)
def test_parse_limit_accepts_working_days_hours_and_minutes(text: str, duration: timedelta) -> None:
    assert parse_limit(text) == TimeLimit(working=True, duration=duration)


def test_a_working_day_is_the_tenants_full_working_day() -> None:
    assert parse_limit("P1D", hours=NINE_TO_HALF_FIVE).duration == 9 * HOUR
    monday_ten = beijing(2026, 3, 2, 10)
    assert due_at(CAL, monday_ten, parse_limit("P1D")) == beijing(2026, 3, 3, 10)


def test_natural_limits_run_on_wall_time() -> None:
    limit = parse_limit("P2D", "natural")
    assert limit == TimeLimit(working=False, duration=timedelta(days=2))
    friday_ten = beijing(2026, 3, 6, 10)
    assert due_at(CAL, friday_ten, limit) == beijing(2026, 3, 8, 10)  # a Sunday: natural time does not stop


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("P1M", "months"),
        ("P1W", "weeks"),
        ("P1Y", "years"),
        ("P1Y2M", "months"),
        ("abc", "not an ISO 8601 duration"),
        ("", "not an ISO 8601 duration"),
        ("P", "not an ISO 8601 duration"),
        ("PT", "not an ISO 8601 duration"),
        ("P1DT", "not an ISO 8601 duration"),
        ("P1.5D", "not an ISO 8601 duration"),
        ("p5d", "not an ISO 8601 duration"),
        ("-P1D", "not an ISO 8601 duration"),
        ("PT30S", "not an ISO 8601 duration"),
        ("P\u0665D", "not an ISO 8601 duration"),  # a non-ASCII digit
        ("PT0M", "longer than zero"),
        ("P0D", "longer than zero"),
        ("PT0H0M", "longer than zero"),
        ("PT99999999999999999H", "too long"),
    ],
)
def test_parse_limit_refuses_bad_text(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_limit(text)


def test_parse_limit_refuses_an_unknown_calendar() -> None:
    with pytest.raises(ValueError, match="unknown calendar 'lunar'"):
        parse_limit("P1D", "lunar")


def test_a_time_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        TimeLimit(working=True, duration=timedelta(0))


# --- due times and pauses ---------------------------------------------------------------------------------------

MONDAY_OPENING = beijing(2026, 3, 2, 8, 30)
FOUR_HOURS = parse_limit("PT4H")


@pytest.mark.parametrize(
    ("paused", "expected"),
    [
        pytest.param([], beijing(2026, 3, 2, 14), id="none"),
        pytest.param([(beijing(2026, 3, 2, 9), beijing(2026, 3, 2, 10))], beijing(2026, 3, 2, 15), id="one-hour"),
        pytest.param(
            [(beijing(2026, 3, 2, 11), beijing(2026, 3, 2, 14))], beijing(2026, 3, 2, 15, 30), id="over-lunch"
        ),
        pytest.param(
            [
                (beijing(2026, 3, 2, 9), beijing(2026, 3, 2, 10)),
                (beijing(2026, 3, 2, 9, 30), beijing(2026, 3, 2, 10, 30)),
            ],
            beijing(2026, 3, 2, 15, 30),
            id="overlapping",
        ),
        pytest.param(
            [(beijing(2026, 3, 2, 9), beijing(2026, 3, 2, 10))] * 2, beijing(2026, 3, 2, 15), id="recorded-twice"
        ),
        pytest.param([(beijing(2026, 3, 2, 16), beijing(2026, 3, 2, 17))], beijing(2026, 3, 2, 14), id="after-due"),
        pytest.param([(beijing(2026, 3, 2, 14), beijing(2026, 3, 2, 15))], beijing(2026, 3, 2, 14), id="at-due"),
        pytest.param(
            [(beijing(2026, 3, 1, 10), beijing(2026, 3, 2, 9))], beijing(2026, 3, 2, 14, 30), id="over-the-start"
        ),
    ],
)
def test_pauses_push_the_due_time_by_the_working_time_they_cover(
    paused: list[tuple[datetime, datetime]], expected: datetime
) -> None:
    assert due_at(CAL, MONDAY_OPENING, FOUR_HOURS, paused) == expected


def test_only_the_part_of_a_pause_after_the_start_counts() -> None:
    monday_ten = beijing(2026, 3, 2, 10)
    paused = [(beijing(2026, 3, 2, 9), beijing(2026, 3, 2, 11))]  # the clock stops from 10:00 to 11:00
    assert due_at(CAL, monday_ten, FOUR_HOURS, paused) == beijing(2026, 3, 2, 16, 30)
    assert level(CAL, monday_ten, parse_limit("PT1H"), beijing(2026, 3, 2, 12), paused) is Level.ORANGE


def test_a_pause_over_a_weekend_costs_nothing() -> None:
    friday = beijing(2026, 3, 6, 15, 30)
    weekend = [(beijing(2026, 3, 7, 10), beijing(2026, 3, 8, 18))]
    assert due_at(CAL, friday, FOUR_HOURS) == beijing(2026, 3, 9, 10, 30)
    assert due_at(CAL, friday, FOUR_HOURS, weekend) == beijing(2026, 3, 9, 10, 30)


def test_an_overnight_pause_counts_only_working_time_on_both_days() -> None:
    monday_afternoon = beijing(2026, 3, 2, 15, 30)
    overnight = [(beijing(2026, 3, 2, 17), beijing(2026, 3, 3, 9))]  # 30 minutes on each side
    assert due_at(CAL, monday_afternoon, FOUR_HOURS) == beijing(2026, 3, 3, 10, 30)
    assert due_at(CAL, monday_afternoon, FOUR_HOURS, overnight) == beijing(2026, 3, 3, 11, 30)


def test_a_pause_on_a_natural_limit_adds_its_wall_time() -> None:
    limit = parse_limit("PT4H", "natural")
    paused = [(beijing(2026, 3, 2, 11), beijing(2026, 3, 2, 12, 30))]
    assert due_at(CAL, beijing(2026, 3, 2, 10), limit, paused) == beijing(2026, 3, 2, 15, 30)


def test_a_resume_moves_only_the_times_not_yet_reached_and_the_same_way_as_recomputing() -> None:
    monday = beijing(2026, 3, 2, 9)
    paused = (beijing(2026, 3, 2, 14), beijing(2026, 3, 3, 10))  # 14:00 to Tuesday 10:00
    stored, recomputed = thresholds(CAL, monday, FOUR_HOURS), thresholds(CAL, monday, FOUR_HOURS, [paused])
    assert stored.warn_at < paused[0] < stored.overdue_at  # yellow (13:42) had come before the pause
    assert after_pause(CAL, FOUR_HOURS, stored.warn_at, *paused) == stored.warn_at
    assert after_pause(CAL, FOUR_HOURS, stored.overdue_at, *paused) == recomputed.overdue_at
    assert after_pause(CAL, FOUR_HOURS, stored.escalate_at, *paused) == recomputed.escalate_at
    assert after_pause(CAL, FOUR_HOURS, None, *paused) is None
    # hours a bank changed during the pause run the rest of the clock; they do not rewrite its past
    long_days = BusinessCalendar(hours=WorkingHours(((time(8), time(18)),)))
    one_minute = (beijing(2026, 3, 2, 10), beijing(2026, 3, 2, 10, 1))
    due = due_at(CAL, monday, FOUR_HOURS)  # 14:30, across the 12:00–13:30 lunch break
    assert after_pause(long_days, FOUR_HOURS, due, *one_minute) == due + MINUTE
    assert due_at(long_days, monday, FOUR_HOURS, [one_minute]) == beijing(2026, 3, 2, 13, 1)  # what recomputing did


def test_a_pause_that_ends_before_it_begins_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it begins"):
        due_at(CAL, MONDAY_OPENING, FOUR_HOURS, [(beijing(2026, 3, 2, 10), beijing(2026, 3, 2, 9))])


def test_a_due_time_in_an_unentered_year_is_not_guessed() -> None:
    with pytest.raises(UnknownCalendarYear, match="2027"):
        due_at(CAL, beijing(2026, 12, 31, 16), parse_limit("P1D"))


# --- escalation ladder ------------------------------------------------------------------------------------------

TEN_HOURS = parse_limit("PT10H")  # from Monday 08:30: 80 % on Tuesday 09:00, 100 % at 11:00, 150 % at 17:30


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(beijing(2026, 3, 1, 12), Level.NONE, id="before-start"),
        pytest.param(beijing(2026, 3, 3, 8, 54), Level.NONE, id="79%"),
        pytest.param(beijing(2026, 3, 3, 9) - TICK, Level.NONE, id="just-under-80%"),
        pytest.param(beijing(2026, 3, 3, 9), Level.YELLOW, id="80%"),
        pytest.param(beijing(2026, 3, 3, 11) - TICK, Level.YELLOW, id="just-under-100%"),
        pytest.param(beijing(2026, 3, 3, 11), Level.ORANGE, id="100%"),
        pytest.param(beijing(2026, 3, 3, 12, 30), Level.ORANGE, id="lunch-at-110%"),
        pytest.param(beijing(2026, 3, 3, 17, 30) - TICK, Level.ORANGE, id="just-under-150%"),
        pytest.param(beijing(2026, 3, 3, 17, 30), Level.RED, id="150%"),
        pytest.param(beijing(2026, 3, 4, 8), Level.RED, id="next-morning"),
    ],
)
def test_ladder_levels_at_the_boundaries(now: datetime, expected: Level) -> None:
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, now) is expected


def test_thresholds_are_the_boundary_times() -> None:
    assert thresholds(CAL, MONDAY_OPENING, TEN_HOURS) == (
        thresholds(CAL, MONDAY_OPENING, TEN_HOURS, ladder=Ladder(yellow=0.8, orange=1.0, red=1.5))
    )
    times = thresholds(CAL, MONDAY_OPENING, TEN_HOURS)
    assert times.warn_at == beijing(2026, 3, 3, 9)
    assert times.overdue_at == beijing(2026, 3, 3, 11) == due_at(CAL, MONDAY_OPENING, TEN_HOURS)
    assert times.escalate_at == beijing(2026, 3, 3, 17, 30)


def test_a_custom_ladder_moves_the_levels() -> None:
    ladder = Ladder(yellow=0.5, orange=1.0, red=2.0)
    times = thresholds(CAL, MONDAY_OPENING, TEN_HOURS, ladder=ladder)
    assert times.warn_at == beijing(2026, 3, 2, 15)  # 5 working hours: 3.5 before lunch, 1.5 after
    assert times.escalate_at == beijing(2026, 3, 4, 15)  # 20 working hours
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 2, 15) - TICK, ladder=ladder) is Level.NONE
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 2, 15), ladder=ladder) is Level.YELLOW
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 3, 17, 30), ladder=ladder) is Level.ORANGE
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 4, 15), ladder=ladder) is Level.RED


@pytest.mark.parametrize(
    ("yellow", "orange", "red"),
    [(0.8, 0.8, 1.5), (0.0, 1.0, 1.5), (0.8, 1.5, 1.0), (-0.2, 1.0, 1.5), (0.8, 1.0, float("inf"))],
)
def test_a_ladder_must_increase(yellow: float, orange: float, red: float) -> None:
    with pytest.raises(ValueError, match="must be finite and increase"):
        Ladder(yellow=yellow, orange=orange, red=red)


def test_paused_time_does_not_count_towards_the_level() -> None:
    paused = [(beijing(2026, 3, 2, 9), beijing(2026, 3, 2, 10))]
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 3, 9), paused) is Level.NONE
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 3, 10), paused) is Level.YELLOW
    assert thresholds(CAL, MONDAY_OPENING, TEN_HOURS, paused).warn_at == beijing(2026, 3, 3, 10)


def test_an_open_pause_stops_the_clock_until_now() -> None:
    now = beijing(2026, 3, 3, 16)
    waiting_for_customer = [(beijing(2026, 3, 3, 8, 30), now)]
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, now) is Level.ORANGE  # 13.5 h of 10 h
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, now, waiting_for_customer) is Level.NONE  # 7.5 h


def test_a_pause_still_running_at_now_counts_only_up_to_now() -> None:
    paused = [(beijing(2026, 3, 3, 9, 30), beijing(2026, 3, 4, 9, 30))]  # recorded later, looked at on Tuesday noon
    assert level(CAL, MONDAY_OPENING, TEN_HOURS, beijing(2026, 3, 3, 12), paused) is Level.YELLOW  # 8.5 h of 10 h


def test_natural_limits_have_natural_thresholds() -> None:
    start = datetime(2026, 3, 6, 12, tzinfo=UTC)
    times = thresholds(CAL, start, parse_limit("PT10H", "natural"))
    assert times.warn_at == start + 8 * HOUR
    assert times.overdue_at == start + 10 * HOUR
    assert times.escalate_at == start + 15 * HOUR


# --- remaining working time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(MONDAY_OPENING, 10 * HOUR, id="at-start"),
        pytest.param(beijing(2026, 3, 2, 20), timedelta(hours=2, minutes=30), id="evening"),
        pytest.param(beijing(2026, 3, 3, 11), timedelta(0), id="at-due"),
        pytest.param(beijing(2026, 3, 3, 12, 30), -HOUR, id="overdue-in-lunch"),
        pytest.param(beijing(2026, 3, 3, 14, 30), -2 * HOUR, id="overdue"),
    ],
)
def test_remaining_working_time(now: datetime, expected: timedelta) -> None:
    due = due_at(CAL, MONDAY_OPENING, TEN_HOURS)
    assert remaining(CAL, now, due) == expected


PAUSES = st.lists(
    st.tuples(
        st.timedeltas(min_value=-timedelta(days=2), max_value=timedelta(days=4)),  # may begin before the start
        st.timedeltas(max_value=timedelta(days=3), min_value=timedelta(0)),
    ),
    max_size=3,
)


@PROPERTY_SETTINGS
@given(
    started=STARTS,
    duration=st.timedeltas(min_value=MINUTE, max_value=timedelta(hours=60)),
    pauses=PAUSES,
    since_start=st.timedeltas(min_value=-timedelta(days=1), max_value=timedelta(days=40)),
)
def test_the_level_agrees_with_the_stored_thresholds(
    started: datetime, duration: timedelta, pauses: list[tuple[timedelta, timedelta]], since_start: timedelta
) -> None:
    limit = TimeLimit(working=True, duration=duration)
    paused = [(started + offset, started + offset + length) for offset, length in pauses]
    now = started + since_start
    times = thresholds(CAL, started, limit, paused)
    assert times.warn_at <= times.overdue_at <= times.escalate_at
    assert times.overdue_at == due_at(CAL, started, limit, paused)
    expected = (
        Level.RED
        if now >= times.escalate_at
        else Level.ORANGE
        if now >= times.overdue_at
        else Level.YELLOW
        if now >= times.warn_at
        else Level.NONE
    )
    assert level(CAL, started, limit, now, paused) is expected
