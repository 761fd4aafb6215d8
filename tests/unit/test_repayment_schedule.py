"""Repayment schedules: hand-checked figures per method, due dates, and invariants for any loan."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.documents.schedule import METHOD_NAMES, add_months, build_schedule

START = date(2025, 3, 20)


def test_equal_installment_300000_over_24_months_sums_exactly() -> None:
    schedule = build_schedule(Decimal("300000"), Decimal("4.35"), 24, "equal_installment", START)
    # P·r(1+r)^n / ((1+r)^n − 1) with r = 4.35%/12, n = 24: 13,074.2617… → 13,074.26
    assert {row.payment for row in schedule.rows[:-1]} == {Decimal("13074.26")}
    first = schedule.rows[0]
    assert (first.interest, first.principal, first.balance_after) == (
        Decimal("1087.50"),  # 300,000 × 4.35% / 12
        Decimal("11986.76"),
        Decimal("288013.24"),
    )
    last = schedule.rows[-1]
    assert (last.principal, last.interest, last.payment, last.balance_after) == (
        Decimal("13027.07"),
        Decimal("47.22"),
        Decimal("13074.29"),  # the last instalment absorbs the rounding
        Decimal("0.00"),
    )
    assert schedule.total_principal == Decimal("300000.00")
    assert schedule.total_interest == Decimal("13782.27")
    assert schedule.total_payment == Decimal("313782.27")


def test_equal_principal_first_months_by_hand() -> None:
    schedule = build_schedule(Decimal("300000"), Decimal("3.85"), 24, "equal_principal", START)
    first, second = schedule.rows[:2]
    # 300,000 / 24 = 12,500.00; 300,000 × 3.85% / 12 = 962.50
    assert (first.principal, first.interest, first.payment, first.balance_after) == (
        Decimal("12500.00"),
        Decimal("962.50"),
        Decimal("13462.50"),
        Decimal("287500.00"),
    )
    # 287,500 × 3.85% / 12 = 922.3958… → 922.40
    assert (second.principal, second.interest) == (Decimal("12500.00"), Decimal("922.40"))
    # 12,500 × 3.85% / 12 = 40.1041… → 40.10
    assert schedule.rows[-1].interest == Decimal("40.10")


def test_equal_principal_last_instalment_takes_the_remainder() -> None:
    schedule = build_schedule(Decimal("1000"), Decimal("0"), 3, "equal_principal", START)
    assert [row.principal for row in schedule.rows] == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]


def test_equal_installment_at_zero_rate_is_straight_line() -> None:
    schedule = build_schedule(Decimal("1000"), Decimal("0"), 3, "equal_installment", START)
    assert [row.payment for row in schedule.rows] == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert schedule.total_interest == Decimal("0.00")


@pytest.mark.parametrize("method", ["interest_monthly_principal_at_maturity", "flexible"])
def test_interest_monthly_principal_at_maturity(method: str) -> None:
    schedule = build_schedule(Decimal("300000"), Decimal("3.85"), 12, method, START)
    assert {row.interest for row in schedule.rows} == {Decimal("962.50")}
    assert [row.principal for row in schedule.rows] == [Decimal("0.00")] * 11 + [Decimal("300000.00")]
    assert schedule.total_payment == Decimal("311550.00")


def test_bullet_pays_everything_once_at_maturity() -> None:
    schedule = build_schedule(Decimal("300000"), Decimal("3.85"), 24, "bullet", START)
    (row,) = schedule.rows
    # 300,000 × 3.85% × 24/12
    assert (row.period, row.due_date, row.principal, row.interest, row.payment) == (
        1,
        date(2027, 3, 20),
        Decimal("300000.00"),
        Decimal("23100.00"),
        Decimal("323100.00"),
    )


def test_installment_principal_repays_quarterly_and_the_last_month_takes_the_rest() -> None:
    schedule = build_schedule(Decimal("300000"), Decimal("3.85"), 10, "installment_principal", START)
    principal = {row.period: row.principal for row in schedule.rows if row.principal}
    assert principal == dict.fromkeys((3, 6, 9, 10), Decimal("75000.00"))
    # 225,000 × 3.85% / 12 = 721.875 exactly: half-up gives 721.88, not the 721.87 a pre-divided rate yields
    assert schedule.rows[3].interest == Decimal("721.88")
    assert schedule.rows[-1].balance_after == Decimal("0.00")


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2025, 1, 31), 2, date(2025, 3, 31)),
        (date(2025, 1, 31), 3, date(2025, 4, 30)),
        (date(2025, 11, 15), 2, date(2026, 1, 15)),
        (date(2025, 12, 31), 12, date(2026, 12, 31)),
    ],
)
def test_due_dates_keep_the_day_clamped_to_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_due_dates_do_not_drift_after_a_short_month() -> None:
    schedule = build_schedule(Decimal("3000"), Decimal("3.85"), 3, "equal_principal", date(2025, 1, 31))
    assert [row.due_date for row in schedule.rows] == [date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]


@pytest.mark.parametrize(
    ("principal", "rate", "term", "method", "message"),
    [
        (Decimal("1000"), Decimal("3.85"), 12, "balloon", "balloon"),
        (Decimal("1000"), Decimal("3.85"), 0, "bullet", "at least one month"),
        (Decimal("0"), Decimal("3.85"), 12, "bullet", "positive"),
        (Decimal("-1000"), Decimal("3.85"), 12, "bullet", "negative"),
        (Decimal("1000"), Decimal("-0.01"), 12, "bullet", "rate"),
        (Decimal("1000.001"), Decimal("3.85"), 12, "bullet", "more than two decimals"),
    ],
)
def test_invalid_loans_are_refused(principal: Decimal, rate: Decimal, term: int, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_schedule(principal, rate, term, method, START)


def test_every_method_has_a_chinese_name() -> None:
    assert METHOD_NAMES == {
        "equal_installment": "等额本息",
        "equal_principal": "等额本金",
        "interest_monthly_principal_at_maturity": "按月付息、到期还本",
        "bullet": "利随本清（到期一次还本付息）",
        "flexible": "随借随还",
        "installment_principal": "分期还本、按月付息",
    }


@settings(max_examples=300, deadline=None)
@given(
    cents=st.integers(min_value=1, max_value=10**10),
    rate_bp=st.integers(min_value=0, max_value=2400),
    term=st.integers(min_value=1, max_value=360),
    method=st.sampled_from(sorted(METHOD_NAMES)),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
)
def test_any_schedule_repays_exactly_the_principal(
    cents: int, rate_bp: int, term: int, method: str, start: date
) -> None:
    principal = Decimal(cents) / 100
    schedule = build_schedule(principal, Decimal(rate_bp) / 100, term, method, start)
    rows = schedule.rows
    assert schedule.total_principal == principal
    assert rows[-1].balance_after == Decimal("0.00")
    assert rows[-1].due_date == add_months(start, term)
    assert [row.period for row in rows] == list(range(1, len(rows) + 1))
    assert all(row.principal >= 0 and row.interest >= 0 for row in rows)
    assert all(row.payment == row.principal + row.interest for row in rows)
    balances_before = [principal, *(row.balance_after for row in rows[:-1])]
    assert all(row.balance_after == before - row.principal for before, row in zip(balances_before, rows, strict=True))
    assert all(earlier.due_date < later.due_date for earlier, later in pairwise(rows))
    assert all(row.principal.as_tuple().exponent == -2 and row.interest.as_tuple().exponent == -2 for row in rows)
