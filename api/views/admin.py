"""Administration: the business calendar's override table and working hours."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.days import path_day
from api.integers import Integer
from api.schemas import CalendarDayListSchema, CalendarDaySchema, CalendarQuerySchema
from api.security import current_principal, requires
from engine.errors import InvalidInput
from engine.org.roles import CALENDAR_ADMIN

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Administration")


class WorkingHoursSchema(Schema):
    periods = fields.List(
        fields.List(fields.String(), validate=validate.Length(equal=2)),
        required=True,
        validate=validate.Length(min=1, max=8),
        metadata={
            "description": "working periods on every workday, in order, wall-clock time in Asia/Shanghai",
            "example": [["08:30", "12:00"], ["13:30", "17:30"]],
        },
    )
    source = fields.String(
        dump_only=True,
        metadata={"description": "bank: the bank's own hours; province: the province's default; default: built in"},
    )
    minutes_per_day = Integer(
        dump_only=True, metadata={"description": "working minutes in one workday: what P1D in a time limit means"}
    )


def _service() -> Any:
    return current_app.extensions["creditflow"].calendars


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
    return _service().set_day(current_principal(), path_day(day, "day"), body["workday"], body["note"])


@blp.route("/calendar/years/<int:year>", methods=["PUT"])
@blp.response(204)
@blp.alt_response(403, description="only administrators maintain the calendar")
@requires(CALENDAR_ADMIN)
def cover_year(year: int) -> None:
    """Declare the year's holidays and make-up days entered; other days then follow plain weekends."""
    if not 2000 <= year <= 2100:
        raise InvalidInput(f"year {year} is out of range", [{"field": "year", "message": "2000-2100"}])
    _service().cover_year(current_principal(), year)


@blp.route("/calendar/hours", methods=["GET"])
@blp.response(200, WorkingHoursSchema)
@requires(CALENDAR_ADMIN)
def get_hours() -> Any:
    """The working hours in effect for the caller's bank (or the province's default)."""
    return _service().hours(current_principal())


@blp.route("/calendar/hours", methods=["PUT"])
@blp.arguments(WorkingHoursSchema)
@blp.response(200, WorkingHoursSchema)
@blp.alt_response(403, description="only administrators maintain the calendar")
@requires(CALENDAR_ADMIN)
def set_hours(body: dict[str, Any]) -> Any:
    """Set the bank's working hours (a province administrator: the default for every bank).

    Time limits of steps and applications started afterwards run on them; stored due times stay.
    """
    return _service().set_hours(current_principal(), body["periods"])
