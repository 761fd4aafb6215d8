"""A day named in a URL path (``/calendar/days/2026-10-01``): a 422 naming the field, not a 404."""

from __future__ import annotations

from datetime import date

from engine.errors import InvalidInput


def path_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date", [{"field": field, "message": "use YYYY-MM-DD"}]) from None
