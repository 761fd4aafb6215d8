"""Keyset pagination: pages that hold still while rows arrive (an offset page shifts under a new row,
and a sync job then reads one row twice and skips another).

A sort is a list of keys ``(column, descending, nullable)`` ending with a unique one (``id``); a cursor
is the last row's values under the sort's name, opaque to clients.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_

from engine import json_documents
from engine.errors import InvalidInput
from engine.store.types import UtcDateTime

Key = tuple[Any, bool, bool]  # (column, descending, nullable): NULLs sort last


def order_by(keys: Sequence[Key]) -> list[Any]:
    return [
        (column.desc() if desc else column.asc()).nulls_last() if nullable else (column.desc() if desc else column)
        for column, desc, nullable in keys
    ]


def after(keys: Sequence[Key], cursor: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after the cursor in ``order_by(keys)`` order (NULLs last)."""
    alternatives: list[ColumnElement[bool]] = []
    equal_so_far: list[ColumnElement[bool]] = []
    for (column, desc, nullable), value in zip(keys, cursor, strict=True):
        if value is None:  # at the NULLs (last): only equality can continue
            beyond: ColumnElement[bool] = false()
            same: ColumnElement[bool] = column.is_(None)
        else:
            beyond = column < value if desc else column > value
            if nullable:
                beyond = or_(beyond, column.is_(None))
            same = column == value
        alternatives.append(and_(*equal_so_far, beyond))
        equal_so_far.append(same)
    return or_(*alternatives)


def cursor_of(name: str, keys: Sequence[Key], row: Any) -> str:
    values = []
    for column, _, _ in keys:
        value = getattr(row, column.key)
        values.append(value.isoformat() if isinstance(value, datetime) else value)
    return base64.urlsafe_b64encode(json.dumps([name, values]).encode()).decode().rstrip("=")


def parse_cursor(name: str, keys: Sequence[Key], text: str) -> list[Any]:
    """Decode a cursor from a previous page; one that does not fit the sort is a 422, not a 500."""
    problem = InvalidInput("the cursor is not one this list issued", [{"field": "cursor", "message": "invalid"}])
    try:
        kind, values = json_documents.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, TypeError):
        raise problem from None
    if kind != name or not isinstance(values, list) or len(values) != len(keys):
        raise problem
    decoded = []
    for (column, _, nullable), value in zip(keys, values, strict=True):
        if value is None and not nullable:
            raise problem
        if value is not None and isinstance(column.type, UtcDateTime):
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise problem from None
        elif value is not None and not isinstance(value, int | str):
            raise problem
        decoded.append(value)
    return decoded
