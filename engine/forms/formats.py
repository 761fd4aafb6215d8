"""JSON Schema formats for Chinese credit forms, registered on ``FORMAT_CHECKER``.

Each format has a ``*_problem`` function that says *why* a value fails (the text the user sees)
and an ``is_*`` predicate registered as the format checker. Messages never repeat the value, so a
resident ID number cannot leak into logs or API responses through a validation error.

Draft 2020-12 treats ``format`` as an annotation unless a format checker is passed to the
validator; the catalog always passes ``FORMAT_CHECKER``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from jsonschema import FormatChecker

__all__ = [
    "FORMAT_CHECKER",
    "age_on",
    "amount_problem",
    "bank_card_problem",
    "date_time_problem",
    "format_problem",
    "is_amount",
    "is_bank_card",
    "is_date_time",
    "is_mobile",
    "is_resident_id",
    "is_uscc",
    "mask_resident_id",
    "mobile_problem",
    "resident_id_birth_date",
    "resident_id_problem",
    "uscc_problem",
]

FORMAT_CHECKER = FormatChecker()
"""The standard formats jsonschema can check here, plus the ones below."""

# China has used UTC+8 without daylight saving since 1991; a fixed offset needs no tz database.
_CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")

_RESIDENT_ID = re.compile(r"[0-9]{17}[0-9Xx]")
_RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK = "10X98765432"
_EARLIEST_BIRTH = date(1900, 1, 1)

_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_BANK_CARD = re.compile(r"[0-9]{16,19}")

# Plain decimal notation only: exponents, "NaN", "Infinity", "1_000" and spaces are not amounts.
_AMOUNT_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CENT = Decimal("0.01")
_MAX_INTEGER_DIGITS = 15


def _china_today() -> date:
    return datetime.now(_CHINA).date()


def resident_id_problem(value: str) -> str | None:
    """Why ``value`` is not an 18-character mainland resident ID number (GB 11643), or None.

    Checks layout, region code, birth date (real, 1900 or later, not in the future) and the
    ISO 7064 MOD 11-2 check character. A lowercase ``x`` is accepted as the check character.
    """
    if len(value) != 18:
        return "is not a valid resident ID number (must be 18 characters)"
    if not _RESIDENT_ID.fullmatch(value):
        return "is not a valid resident ID number (17 digits followed by a digit or X)"
    if value[0] == "0":
        return "is not a valid resident ID number (region code)"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "is not a valid resident ID number (birth date)"
    if born < _EARLIEST_BIRTH:
        return "is not a valid resident ID number (birth date before 1900)"
    if born > _china_today():
        return "is not a valid resident ID number (birth date in the future)"
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], _RESIDENT_ID_WEIGHTS, strict=True))
    if _RESIDENT_ID_CHECK[total % 11] != value[17].upper():
        return "is not a valid resident ID number (checksum)"
    return None


@FORMAT_CHECKER.checks("cn-resident-id")
def is_resident_id(value: object) -> bool:
    """Format ``cn-resident-id``; non-strings are left to the ``type`` keyword."""
    return not isinstance(value, str) or resident_id_problem(value) is None


def resident_id_birth_date(value: str) -> date:
    """The birth date encoded in a valid resident ID number; ValueError if it is not valid."""
    problem = resident_id_problem(value)
    if problem is not None:
        raise ValueError(f"{mask_resident_id(value)} {problem}")
    return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def age_on(value: str, on: date) -> int:
    """Completed years of age on ``on`` for the holder of a resident ID (for age rules).

    Someone born on 29 February turns a year older on 1 March in common years.
    """
    born = resident_id_birth_date(value)
    if on < born:
        raise ValueError(f"{on.isoformat()} is before the birth date")
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def mask_resident_id(value: str) -> str:
    """Keep the first 6 and last 4 characters (``110105********1234``) for lists and logs.

    Values of 10 characters or fewer are masked completely, so nothing is ever shown whole.
    """
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def uscc_problem(value: str) -> str | None:
    """Why ``value`` is not an 18-character unified social credit code (GB 32100-2015), or None.

    Only the mod-31 check character is verified, as GB 32100 defines it; letters must be upper case.
    """
    if len(value) != 18:
        return "is not a valid unified social credit code (must be 18 characters)"
    if any(char not in _USCC_CHARSET for char in value):
        return "is not a valid unified social credit code (digits and capitals except I, O, S, V, Z)"
    total = sum(_USCC_CHARSET.index(char) * weight for char, weight in zip(value[:17], _USCC_WEIGHTS, strict=True))
    if _USCC_CHARSET[-total % 31] != value[17]:
        return "is not a valid unified social credit code (checksum)"
    return None


@FORMAT_CHECKER.checks("cn-uscc")
def is_uscc(value: object) -> bool:
    """Format ``cn-uscc``; non-strings are left to the ``type`` keyword."""
    return not isinstance(value, str) or uscc_problem(value) is None


def mobile_problem(value: str) -> str | None:
    """Why ``value`` is not a mainland mobile number (11 digits, ``1[3-9]…``), or None."""
    if not _MOBILE.fullmatch(value):
        return "is not a valid mainland mobile number (11 digits starting with 13 to 19)"
    return None


@FORMAT_CHECKER.checks("cn-mobile")
def is_mobile(value: object) -> bool:
    """Format ``cn-mobile``; non-strings are left to the ``type`` keyword."""
    return not isinstance(value, str) or mobile_problem(value) is None


def bank_card_problem(value: str) -> str | None:
    """Why ``value`` is not a bank card number (16 to 19 digits, Luhn check digit), or None."""
    if not _BANK_CARD.fullmatch(value):
        return "is not a valid bank card number (16 to 19 digits)"
    total = 0
    for position, char in enumerate(reversed(value)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    if total % 10:
        return "is not a valid bank card number (checksum)"
    return None


@FORMAT_CHECKER.checks("bank-card")
def is_bank_card(value: object) -> bool:
    """Format ``bank-card``; non-strings are left to the ``type`` keyword."""
    return not isinstance(value, str) or bank_card_problem(value) is None


def amount_problem(value: object) -> str | None:
    """Why ``value`` is not an amount in yuan, or None.

    An amount is a string in plain decimal notation or a number (int, float, Decimal): finite,
    not negative, at most two decimal places and at most 15 integer digits (NUMERIC(17, 2)).
    A float is read through ``str`` so that 0.1 means 0.1 and not its binary approximation.
    """
    if isinstance(value, bool):
        return "is not an amount (true/false)"
    if isinstance(value, str):
        if not _AMOUNT_TEXT.fullmatch(value):
            return "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(str(value))
    elif isinstance(value, int | Decimal):
        number = Decimal(value)
    else:
        return "is not an amount (expected text or a number)"
    if not number.is_finite():
        return "must be a finite number"
    if number.is_signed():
        return "must not be negative"
    if number and number.adjusted() >= _MAX_INTEGER_DIGITS:
        return f"must have at most {_MAX_INTEGER_DIGITS} digits before the decimal point"
    # Below 15 integer digits the quantized value fits the default 28-digit context exactly.
    if number.quantize(_CENT) != number:
        return "must be at most 2 decimal places"
    return None


@FORMAT_CHECKER.checks("amount")
def is_amount(value: object) -> bool:
    """Format ``amount``: applies to strings and numbers (booleans are rejected, not ignored).

    Other types (null, objects, arrays) are left to the ``type`` keyword, so ``"type": ["string",
    "null"]`` with ``"format": "amount"`` accepts null.
    """
    if isinstance(value, str | int | float | Decimal):
        return amount_problem(value) is None
    return True


def date_time_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 3339 date-time with its offset (``2026-12-08T10:15:00+08:00``), or None.

    jsonschema checks ``date-time`` only with an optional package this project does not install; a
    signing time without an offset would be read in whatever zone the reader assumes.
    """
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return "is not a valid date-time (e.g. 2026-12-08T10:15:00+08:00)"
    if "T" not in value.upper() or moment.tzinfo is None:
        return "must be a date and time with its UTC offset (e.g. 2026-12-08T10:15:00+08:00)"
    return None


@FORMAT_CHECKER.checks("date-time")
def is_date_time(value: object) -> bool:
    """Format ``date-time``: applies to strings only."""
    return not isinstance(value, str) or date_time_problem(value) is None


_STRING_PROBLEMS: dict[str, Callable[[str], str | None]] = {
    "date-time": date_time_problem,
    "cn-resident-id": resident_id_problem,
    "cn-uscc": uscc_problem,
    "cn-mobile": mobile_problem,
    "bank-card": bank_card_problem,
}


def format_problem(format_name: str, value: object) -> str:
    """The message for a value that failed ``format_name``: specific for ours, generic otherwise."""
    if format_name == "amount":
        problem = amount_problem(value)
    elif format_name in _STRING_PROBLEMS and isinstance(value, str):
        problem = _STRING_PROBLEMS[format_name](value)
    else:
        problem = None
    return problem or f"is not a valid {format_name}"
