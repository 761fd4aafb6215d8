"""Repayment schedules printed on loan contracts, computed in ``Decimal`` so that what the contract
promises adds up to the fen: the last instalment absorbs all rounding and the balance ends at 0.00."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from engine.documents.amounts import CENT, parse_amount

ZERO = Decimal("0.00")

# The product configuration's repayment-method codes and the names contracts print.
METHOD_NAMES: dict[str, str] = {
    "equal_installment": "等额本息",
    "equal_principal": "等额本金",
    "interest_monthly_principal_at_maturity": "按月付息、到期还本",
    "bullet": "利随本清（到期一次还本付息）",
    "flexible": "随借随还",
    "installment_principal": "分期还本、按月付息",
}

# installment_principal repays principal once a quarter.
PRINCIPAL_EVERY_MONTHS = 3
# An annual rate in percent becomes a monthly fraction by dividing by 12 × 100.
PERCENT_MONTHS = Decimal(1200)


@dataclass(frozen=True)
class Instalment:
    """One scheduled repayment; ``payment`` is principal plus interest."""

    period: int
    due_date: date
    principal: Decimal
    interest: Decimal
    payment: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Schedule:
    """All instalments of one loan, with the totals a contract prints under the table."""

    method: str
    rows: tuple[Instalment, ...]

    @property
    def total_principal(self) -> Decimal:
        return sum((row.principal for row in self.rows), ZERO)

    @property
    def total_interest(self) -> Decimal:
        return sum((row.interest for row in self.rows), ZERO)

    @property
    def total_payment(self) -> Decimal:
        return sum((row.payment for row in self.rows), ZERO)


def add_months(start: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (Jan 31 + 1 → Feb 28/29)."""
    year, month_index = divmod(start.month - 1 + months, 12)
    year += start.year
    last_day = calendar.monthrange(year, month_index + 1)[1]
    return date(year, month_index + 1, min(start.day, last_day))


def build_schedule(principal: Decimal, annual_rate: Decimal, term_months: int, method: str, start: date) -> Schedule:
    """The schedule of a loan of ``principal`` yuan at ``annual_rate`` percent a year, paid monthly from ``start``."""
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown repayment method {method!r}")
    amount = parse_amount(principal)
    if amount <= 0:
        raise ValueError(f"principal must be positive, got {principal}")
    if annual_rate < 0:
        raise ValueError(f"annual rate must not be negative, got {annual_rate}")
    if term_months < 1:
        raise ValueError(f"term must be at least one month, got {term_months}")
    if method == "bullet":
        interest = _interest(amount, annual_rate, term_months)
        row = Instalment(1, add_months(start, term_months), amount, interest, amount + interest, ZERO)
        return Schedule(method, (row,))
    due = _principal_rule(method, amount, annual_rate, term_months)
    return Schedule(method, _amortize(amount, annual_rate, term_months, start, due))


# (period, the period's interest) -> principal due in that period
PrincipalRule = Callable[[int, Decimal], Decimal]


def _principal_rule(method: str, amount: Decimal, annual_rate: Decimal, term: int) -> PrincipalRule:
    """How much principal falls due each month (before the last, which takes whatever is left)."""
    if method == "equal_installment":
        payment = _annuity_payment(amount, annual_rate / PERCENT_MONTHS, term)
        return lambda _period, interest: payment - interest
    if method == "equal_principal":
        share = _cents(amount / term)
        return lambda _period, _interest: share
    if method == "installment_principal":
        share = _cents(amount / -(-term // PRINCIPAL_EVERY_MONTHS))
        return lambda period, _interest: share if period % PRINCIPAL_EVERY_MONTHS == 0 else ZERO
    # interest_monthly_principal_at_maturity and flexible: interest only until maturity
    return lambda _period, _interest: ZERO


def _amortize(
    amount: Decimal, annual_rate: Decimal, term: int, start: date, due: PrincipalRule
) -> tuple[Instalment, ...]:
    """Monthly instalments with interest on the outstanding balance; never repays more than is owed."""
    balance = amount
    rows: list[Instalment] = []
    for period in range(1, term + 1):
        interest = _interest(balance, annual_rate, 1)
        principal = balance if period == term else min(due(period, interest), balance)
        balance -= principal
        rows.append(Instalment(period, add_months(start, period), principal, interest, principal + interest, balance))
    return tuple(rows)


def _annuity_payment(amount: Decimal, monthly_rate: Decimal, term: int) -> Decimal:
    """The level monthly payment of an equal-instalment loan (straight-line when the rate is zero)."""
    if monthly_rate == 0:
        return _cents(amount / term)
    growth = (1 + monthly_rate) ** term
    return _cents(amount * monthly_rate * growth / (growth - 1))


def _interest(balance: Decimal, annual_rate: Decimal, months: int) -> Decimal:
    """Simple interest for whole months; dividing last keeps exact halves (721.875 → 721.88) exact."""
    return _cents(balance * annual_rate * months / PERCENT_MONTHS)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
