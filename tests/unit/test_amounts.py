"""Amounts on contracts: the PBOC capitals rules, figures, and what is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.documents.amounts import format_figures, parse_amount, rmb_capitals

# Hand-checked against the PBOC rules for writing amounts (《支付结算办法》附件 正确填写票据和结算凭证的基本规定).
CAPITALS = [
    ("0", "零元整"),
    ("0.05", "伍分"),
    ("0.50", "伍角整"),
    ("0.56", "伍角陆分"),
    ("1", "壹元整"),
    ("1.01", "壹元零壹分"),
    ("1.10", "壹元壹角整"),
    ("10", "壹拾元整"),
    ("15", "壹拾伍元整"),
    ("100.01", "壹佰元零壹分"),
    ("1005", "壹仟零伍元整"),
    ("1010.10", "壹仟零壹拾元壹角整"),
    ("1680.32", "壹仟陆佰捌拾元叁角贰分"),
    ("10000", "壹万元整"),
    ("20000.06", "贰万元零陆分"),
    ("100000", "壹拾万元整"),
    ("100010", "壹拾万零壹拾元整"),
    ("105000.20", "壹拾万伍仟元贰角整"),
    ("300000", "叁拾万元整"),
    ("1000001", "壹佰万零壹元整"),
    ("10005000", "壹仟万伍仟元整"),
    ("100000000", "壹亿元整"),
    ("100000001", "壹亿零壹元整"),
    ("100100000", "壹亿零壹拾万元整"),
    ("105000000", "壹亿零伍佰万元整"),
    ("123456789.12", "壹亿贰仟叁佰肆拾伍万陆仟柒佰捌拾玖元壹角贰分"),
    ("1010101010.01", "壹拾亿壹仟零壹拾万壹仟零壹拾元零壹分"),
    ("999999999999.99", "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
]


@pytest.mark.parametrize(("amount", "expected"), CAPITALS)
def test_capitals_follow_the_pboc_rules(amount: str, expected: str) -> None:
    assert rmb_capitals(amount) == expected


def test_capitals_are_the_same_for_decimal_int_and_string() -> None:
    assert rmb_capitals(Decimal("300000.00")) == rmb_capitals(300000) == rmb_capitals("300000") == "叁拾万元整"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("0", "0.00"), ("0.5", "0.50"), (300000, "300,000.00"), (Decimal("1234567.89"), "1,234,567.89")],
)
def test_figures_have_thousands_separators_and_two_decimals(amount: Decimal | str | int, expected: str) -> None:
    assert format_figures(amount) == expected


def test_trailing_zero_decimals_are_not_extra_precision() -> None:
    assert parse_amount("1.500") == Decimal("1.50")


@pytest.mark.parametrize("amount", [0.1, 300000.0, True])
def test_float_and_bool_are_refused(amount: object) -> None:
    with pytest.raises(TypeError):
        rmb_capitals(amount)  # type: ignore[arg-type]


def test_more_than_two_decimals_is_refused_naming_the_amount() -> None:
    with pytest.raises(ValueError, match=r"^1\.005 has more than two decimals$"):
        rmb_capitals("1.005")


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-0.01", "negative"),
        (-1, "negative"),
        (10**12, "trillion"),
        ("1000000000000.00", "trillion"),
        ("abc", "not a decimal amount"),
        ("NaN", "not a finite amount"),
        ("Infinity", "not a finite amount"),
    ],
)
def test_out_of_range_and_malformed_amounts_are_refused(amount: str | int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_figures(amount)
