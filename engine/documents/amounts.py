"""Money amounts on contracts: validation to exact yuan-and-fen, figures with thousands separators,
and the Chinese capitals (人民币大写) that make a written amount hard to alter."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
# The largest amount a contract may state: below one trillion yuan (万亿), the top of the 亿 group.
LIMIT = Decimal(10) ** 12

DIGITS = "零壹贰叁肆伍陆柒捌玖"
PLACES = ("", "拾", "佰", "仟")
GROUPS = ((10**8, "亿"), (10**4, "万"), (1, ""))


def parse_amount(amount: Decimal | str | int) -> Decimal:
    """An amount as a 2-place ``Decimal``; floats are refused because they cannot hold fen exactly."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | str | int):
        raise TypeError(f"an amount must be a Decimal, int or decimal string, not {type(amount).__name__}")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount} is not a finite amount")
    if value != value.quantize(CENT):
        raise ValueError(f"{amount} has more than two decimals")
    if value < 0:
        raise ValueError(f"{amount} is negative")
    if value >= LIMIT:
        raise ValueError(f"{amount} is not below one trillion (万亿) yuan")
    return value.quantize(CENT)


def format_figures(amount: Decimal | str | int) -> str:
    """The amount in figures as contracts print it: ``300,000.00``."""
    return f"{parse_amount(amount):,.2f}"


def rmb_capitals(amount: Decimal | str | int) -> str:
    """The amount in capitals by the PBOC rules, without the 人民币 prefix (templates write it)."""
    fen_total = int(parse_amount(amount) * 100)
    yuan, jiao, fen = fen_total // 100, fen_total // 10 % 10, fen_total % 10
    yuan_words = _yuan_words(yuan)
    if jiao == 0 and fen == 0:
        return f"{yuan_words or '零'}元整"
    head = f"{yuan_words}元" if yuan else ""
    if jiao == 0:
        # A zero jiao between yuan and fen is spoken: 壹元零壹分.
        return f"{head}{'零' if yuan else ''}{DIGITS[fen]}分"
    return f"{head}{DIGITS[jiao]}角" + (f"{DIGITS[fen]}分" if fen else "整")


def _yuan_words(yuan: int) -> str:
    """Whole yuan in 亿/万 groups; zeros just before a non-zero digit are written as one 零, as they are read."""
    words: list[str] = []
    gap = False
    for size, unit in GROUPS:
        value = yuan // size % 10**4
        if value == 0:
            gap = gap or bool(words)
            continue
        if words and (gap or value < 1000):
            words.append("零")
        words.append(_group_words(value) + unit)
        gap = False
    return "".join(words)


def _group_words(value: int) -> str:
    """One group of up to four digits (1–9999); 壹拾 keeps its 壹 as banks write it."""
    words: list[str] = []
    gap = False
    for power in (3, 2, 1, 0):
        digit = value // 10**power % 10
        if digit == 0:
            gap = bool(words)
        else:
            if gap:
                words.append("零")
            words.append(DIGITS[digit] + PLACES[power])
            gap = False
    return "".join(words)
