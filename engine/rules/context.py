"""Turning a process context into the plain values zen-engine accepts, without losing a digit.

zen refuses ``Decimal``. We pass a Decimal as a float, and only when that is exact at the decimal
level: zen reads a Python float by its shortest repr (0.35 arrives as the decimal 0.35, and its own
arithmetic is decimal), so ``float(d)`` is safe whenever ``Decimal(repr(float(d))) == d`` — true for
every amount below 10^13 with two decimals. A float keeps the value numeric, so ``> 50000`` compares
numbers and the input schema's ``"type": "number"`` holds; a str would silently compare as text. A
Decimal that would change (more than ~15 significant digits, NaN, infinity) is refused, naming the
field. Amount *strings* such as "50000.00" are not converted: the schema rejects them, fail closed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.rules.errors import RuleEvaluationError

_INT_RANGE = range(-(2**63), 2**64)  # what zen's integer conversion accepts
_AS_IS = frozenset({str, bool, type(None)})


def to_zen_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict of str, bool, int, float, None, lists and dicts; RuleEvaluationError names a bad field."""
    if not isinstance(context, Mapping):
        raise RuleEvaluationError(f"the rule context must be a mapping, not {type(context).__name__}")
    plain = {}
    for name, value in context.items():  # the hot path of every evaluation: plain values pass untouched
        path = name if type(name) is str else str(name)
        kind = type(value)
        if kind in _AS_IS or (kind is int and value in _INT_RANGE) or (kind is float and math.isfinite(value)):
            plain[path] = value
        else:
            plain[path] = _plain(value, path)
    return plain


def _plain(value: Any, path: str) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        if value not in _INT_RANGE:
            raise RuleEvaluationError(f"input field {path!r}: integer {value} is out of range", field=path)
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RuleEvaluationError(f"input field {path!r}: {value} is not a finite number", field=path)
        return float(value)
    if isinstance(value, Decimal):
        return _decimal(value, path)
    if isinstance(value, Mapping):
        return {str(name): _plain(item, f"{path}.{name}") for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise RuleEvaluationError(
        f"input field {path!r}: {type(value).__name__} values cannot be passed to rules", field=path
    )


def _decimal(value: Decimal, path: str) -> float:
    number = float(value) if value.is_finite() else None
    if number is None or Decimal(repr(number)) != value:
        raise RuleEvaluationError(
            f"input field {path!r}: {value} cannot be passed to rules without rounding", field=path
        )
    return number
