"""A bank may add fields to a form or tighten it, never loosen what the province requires."""

from __future__ import annotations

import re
from typing import Any

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
# Keywords whose change could let through what the province's form refuses (a merge patch replaces an
# array whole: ``"allOf": [{}]`` dropped the rule that an approval states its amount). An override
# keeps each one the form has; ``allOf`` may gain conditions, never lose one.
_KEPT = (
    "$ref", "type", "format", "pattern", "const", "if", "then", "else", "not", "anyOf", "oneOf",
    "additionalProperties", "dependentRequired", "dependentSchemas", "items", "x-creditflow-bounds",
    "x-creditflow-matches", "x-creditflow-opinion",
)  # fmt: skip
# a group that repeats and is itself repeated or alternating ("(a|a)*", "(a+)+"): exponential backtracking
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*|}](?:[^()\\]|\\.)*\)[+*{]")
_MAX_PATTERN = 200


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
    for key in _KEPT:
        if key in base and derived.get(key) != base[key]:
            problems.append(f"{where}: {key} cannot change")
    kept = base.get("allOf") or []
    if any(condition not in (derived.get("allOf") or []) for condition in kept):
        problems.append(f"{where}: allOf may gain conditions, never lose one")
    for name, schema in (base.get("properties") or {}).items():
        child = (derived.get("properties") or {}).get(name)
        if child is None:
            problems.append(f"{where}: field {name!r} cannot be removed")
        elif isinstance(schema, dict) and isinstance(child, dict):
            problems.extend(loosening_problems(schema, child, f"{path}.{name}" if path else name))
    return problems


def unsafe_keywords(derived: Any, catalog_files: set[str], path: str = "") -> list[str]:
    """What an override may not add anywhere: a ``$ref`` outside the form catalog (a remote or missing
    schema made every completion of the step fail), or a ``pattern`` that backtracks exponentially
    (one comment field held a worker thread for seconds per character); nor, at the top, a change to
    a shared file the bundled form embeds (the province's definition of an amount)."""
    problems: list[str] = []
    where = path or "(form)"
    if isinstance(derived, dict) and not path:  # what bundling sets (engine.forms.definition)
        bundled = derived.get("$defs") if isinstance(derived.get("$defs"), dict) else {}
        problems.extend(
            f"$defs.{name}: is the shared file {name} as the form catalog holds it; it cannot be overridden"
            for name in sorted(set(bundled) & catalog_files)
        )
    if isinstance(derived, dict):
        ref = derived.get("$ref")
        if isinstance(ref, str) and ref.split("#", 1)[0] not in catalog_files:
            problems.append(f"{where}: $ref must name a schema of the form catalog, not {ref!r}")
        pattern = derived.get("pattern")
        if isinstance(pattern, str) and (len(pattern) > _MAX_PATTERN or _NESTED_QUANTIFIER.search(pattern)):
            problems.append(f"{where}: pattern is too long or repeats a repeated group")
        for key, value in derived.items():
            if key not in ("enum", "const", "default", "examples"):
                problems.extend(unsafe_keywords(value, catalog_files, f"{path}.{key}" if path else key))
    elif isinstance(derived, list):
        for index, value in enumerate(derived):
            problems.extend(unsafe_keywords(value, catalog_files, f"{path}[{index}]"))
    return problems


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
