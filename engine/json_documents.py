"""Strict reading of the JSON documents people author (forms, product configs).

Python's json keeps the last of two duplicate keys and accepts NaN; in a hand-edited config either
silently changes meaning (a second ``required`` hiding the first), so both are refused here.
"""

from __future__ import annotations

import json
from typing import Any


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def load_object(raw: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object; ValueError (with the reason) for anything else."""
    document = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant)
    if not isinstance(document, dict):
        raise ValueError("the top level must be a JSON object")
    return document
