"""Screening of what every request carries, before a view reads it.

A JSON body is parsed once by the bounded parser (``[[[[…`` was a RecursionError, a 500, in the
parser webargs uses). Text that no database can store is refused naming the field: PostgreSQL
stores neither a NUL in text nor ``\\u0000`` in jsonb, and an unpaired surrogate (``"\\ud800"`` is
valid JSON) cannot be encoded as UTF-8 at all, so such a value failed deep inside a write as a 500
(SQLite stored a NUL, for an export or a contract to trip over later). No name, ID number or
comment needs either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import request
from werkzeug.exceptions import NotFound

from engine.errors import InvalidInput
from engine.forms.validation import field_path

NUL = "\x00"
MESSAGE = "must not contain NUL characters (U+0000) or unpaired surrogates (U+D800 to U+DFFF)"


def unstorable(text: str) -> bool:
    """True for text with a NUL or a lone surrogate (which UTF-8 cannot encode)."""
    if NUL in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_fields(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[str]:
    """The path of every string (or key) in a JSON value that holds unstorable text."""
    if isinstance(value, str):
        if unstorable(value):
            yield field_path(path) or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            if unstorable(key):
                yield field_path((*path, key))
            else:
                yield from unstorable_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_fields(item, (*path, index))


def _json_body() -> Any:
    """The parsed body (a 400 if it is not JSON or nested too deeply); None when there is none."""
    if not request.is_json or not request.get_data(cache=True).strip():
        return None
    return request.get_json()


def screen_request() -> None:
    """No route for a path with a NUL; a 422 naming each query, form or JSON field with unstorable text."""
    if NUL in request.path:
        raise NotFound()
    fields = [name for name, value in request.args.items(multi=True) if unstorable(name + value)]
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        fields += [name for name, value in request.form.items(multi=True) if unstorable(name + value)]
        fields += [name for name, upload in request.files.items(multi=True) if unstorable(upload.filename or "")]
    fields += unstorable_fields(_json_body())
    if fields:
        problems = [{"field": name, "message": MESSAGE} for name in dict.fromkeys(fields)]
        raise InvalidInput("text must not contain NUL characters or unpaired surrogates", problems)
