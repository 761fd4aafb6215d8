"""Strict reading of JSON that comes from outside: request bodies, cursors, authored documents.

Python's json accepts ``NaN``, ``Infinity`` and ``1e999`` (read as infinity), none of which JSON
has: a body carrying one was stored and failed later (PostgreSQL's jsonb refuses them), so every
reader here refuses them. It also keeps the last of two duplicate keys; in a hand-edited config that
silently changes meaning (a second ``required`` hiding the first), so configs refuse those too. Any
outside JSON is bounded in depth: ``[[[[…`` raised RecursionError (a 500) in the parser, or later
in whatever walks the value (validation, deep copies, serialization).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range for a JSON number")
    return number


def loads(text: str | bytes, **options: Any) -> Any:
    """``json.loads`` that refuses NaN and infinities and raises ValueError, never RecursionError,
    for values nested too deeply."""
    too_deep = f"JSON may be nested at most {MAX_DEPTH} levels deep"
    options.setdefault("parse_constant", _refuse_constant)
    options.setdefault("parse_float", _finite_float)
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise ValueError(too_deep) from None
    if _deeper_than(value, MAX_DEPTH):
        raise ValueError(too_deep)
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_object(raw: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object; ValueError (with the reason) for anything else."""
    document = loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    if not isinstance(document, dict):
        raise ValueError("the top level must be a JSON object")
    return document
