"""Administration: the business calendar's override table."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.schemas import CalendarDayListSchema, CalendarDaySchema, CalendarQuerySchema
from api.security import current_principal, requires
from engine.errors import InvalidInput
from engine.org.roles import CALENDAR_ADMIN

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Administration")


def _service() -> Any:
    return current_app.extensions["creditflow"].calendars


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date", [{"field": "day", "message": "use YYYY-MM-DD"}]) from None


@blp.route("/calendar/days", methods=["GET"])
@blp.arguments(CalendarQuerySchema, location="query")
@blp.response(200, CalendarDayListSchema)
@requires(CALENDAR_ADMIN)
def list_days(query: dict[str, Any]) -> dict[str, Any]:
    return {"items": _service().days(current_principal(), query["year"])}


@blp.route("/calendar/days/<day>", methods=["PUT"])
@blp.arguments(CalendarDaySchema)
@blp.response(200, CalendarDaySchema)
@blp.alt_response(403, description="only administrators maintain the calendar")
@requires(CALENDAR_ADMIN)
def set_day(body: dict[str, Any], day: str) -> Any:
    return _service().set_day(current_principal(), _day(day), body["workday"], body["note"])


@blp.route("/calendar/years/<int:year>", methods=["PUT"])
@blp.response(204)
@blp.alt_response(403, description="only administrators maintain the calendar")
@requires(CALENDAR_ADMIN)
def cover_year(year: int) -> None:
    """Declare the year's holidays and make-up days entered; other days then follow plain weekends."""
    if not 2000 <= year <= 2100:
        raise InvalidInput(f"year {year} is out of range", [{"field": "year", "message": "2000-2100"}])
    _service().cover_year(current_principal(), year)
