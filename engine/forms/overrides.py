"""A bank may add fields to a form or tighten it, never loosen what the province requires."""

from __future__ import annotations

from typing import Any

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


def loosening_problems(base: dict[str, Any], derived: dict[str, Any], path: str = "") -> list[str]:
    """Where ``derived`` accepts something ``base`` refuses: a dropped required field or property,
    a lower minimum, a higher maximum, a wider enum. Adding fields and narrowing is fine."""
    problems: list[str] = []
    where = path or "(form)"
    missing = set(base.get("required", [])) - set(derived.get("required", []))
    problems.extend(f"{where}: required field {name!r} cannot be dropped" for name in sorted(missing))
    for key in _LOWER_BOUNDS:
        if key in base and (key not in derived or _number(derived[key]) < _number(base[key])):
            problems.append(f"{where}: {key} cannot go below {base[key]}")
    for key in _UPPER_BOUNDS:
        if key in base and (key not in derived or _number(derived[key]) > _number(base[key])):
            problems.append(f"{where}: {key} cannot go above {base[key]}")
    if "enum" in base and not set(map(repr, derived.get("enum", []))) <= set(map(repr, base["enum"])):
        problems.append(f"{where}: enum cannot gain values")
    for name, schema in (base.get("properties") or {}).items():
        child = (derived.get("properties") or {}).get(name)
        if child is None:
            problems.append(f"{where}: field {name!r} cannot be removed")
        elif isinstance(schema, dict) and isinstance(child, dict):
            problems.extend(loosening_problems(schema, child, f"{path}.{name}" if path else name))
    return problems


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
