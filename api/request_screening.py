"""Screening of what every request carries, before a view reads it.

A JSON body is parsed once by the bounded parser (``[[[[…`` was a RecursionError, a 500, in the
parser webargs uses). Text with a NUL character is refused naming the field: PostgreSQL stores
neither a NUL in text nor ``\\u0000`` in jsonb, so such a value failed deep inside a write as a 500
(SQLite stored it, for an export or a contract to trip over later). No name, ID number or comment
needs one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import request
from werkzeug.exceptions import NotFound

from engine.errors import InvalidInput
from engine.forms.validation import field_path

NUL = "\x00"
MESSAGE = "must not contain NUL characters (U+0000)"


def nul_fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[str]:
    """The path of every string (or key) in a JSON value that holds a NUL."""
    if isinstance(value, str):
        if NUL in value:
            yield field_path(path) or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield field_path((*path, key))
            else:
                yield from nul_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nul_fields(item, (*path, index))


def _json_body() -> Any:
    """The parsed body (a 400 if it is not JSON or nested too deeply); None when there is none."""
    if not request.is_json or not request.get_data(cache=True).strip():
        return None
    return request.get_json()


def screen_request() -> None:
    """No route for a path with a NUL; a 422 naming each query, form or JSON field with one."""
    if NUL in request.path:
        raise NotFound()
    fields = [name for name, value in request.args.items(multi=True) if NUL in name or NUL in value]
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields += [name for name, value in request.form.items(multi=True) if NUL in name or NUL in value]
        fields += [name for name, upload in request.files.items(multi=True) if NUL in (upload.filename or "")]
    fields += nul_fields(_json_body())
    if fields:
        problems = [{"field": name, "message": MESSAGE} for name in dict.fromkeys(fields)]
        raise InvalidInput("text must not contain NUL characters", problems)
