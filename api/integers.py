"""Integers a client sends must fit the database's integer columns.

Ids, counts, limits and offsets are 32-bit ``INTEGER`` columns on PostgreSQL. A larger number
reached the driver (out of range on PostgreSQL, ``OverflowError`` past 64 bits on SQLite) and came
back as a 500. In a body or a query it is now a 422 naming the field; in a path, no route matches.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marshmallow import fields
from werkzeug.routing import IntegerConverter

LOWEST, HIGHEST = -(2**31), 2**31 - 1


class Integer(fields.Integer):
    default_error_messages: ClassVar[dict[str, str]] = {"int32": f"Must be between {LOWEST} and {HIGHEST}."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | None:
        number = super()._deserialize(value, attr, data, **kwargs)
        if number is not None and not LOWEST <= number <= HIGHEST:
            raise self.make_error("int32")
        return number


class PathInteger(IntegerConverter):
    """Flask's ``<int:…>``, bounded: the ids in paths are positive 32-bit integers."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", HIGHEST)
        super().__init__(url_map, *args, **kwargs)
