"""The LPR quotes contracts are priced on: everyone reads them, the province's administrators enter
each month's announcement (and correct a wrong one)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields

from api.blueprint import Blueprint
from api.days import path_day
from api.security import AUTHENTICATED, current_principal, requires
from engine.org.roles import RATES_ADMIN
from engine.services.lpr_quotes import LprQuoteService, LprQuoteView

blp = Blueprint("lpr-quotes", __name__, url_prefix="/api/v1/lpr-quotes", description="Loan prime rate quotes (LPR)")

_RATE = {"description": "percent a year, two decimals, as announced", "example": "3.10"}


class LprRatesSchema(Schema):
    LPR_1Y = fields.Raw(required=True, metadata=_RATE | {"description": "一年期 LPR, " + _RATE["description"]})
    LPR_5Y = fields.Raw(required=True, metadata=_RATE | {"example": "3.60", "description": "五年期以上 LPR"})


class LprQuoteSchema(Schema):
    effective = fields.Date(metadata={"description": "the day the quote takes effect (announced on the 20th)"})
    LPR_1Y = fields.Decimal(as_string=True, places=2)
    LPR_5Y = fields.Decimal(as_string=True, places=2)
    source = fields.String(metadata={"description": "shipped (the release's table) or entered (by the province)"})
    entered_by = fields.String(allow_none=True)
    entered_at = fields.DateTime(allow_none=True)


class LprQuoteListSchema(Schema):
    items = fields.List(fields.Nested(LprQuoteSchema), metadata={"description": "newest first"})


def _service() -> LprQuoteService:
    return current_app.extensions["creditflow"].lpr_quotes


def _body(view: LprQuoteView) -> dict[str, Any]:
    return {
        "effective": view.effective,
        **view.rates,
        "source": view.source,
        "entered_by": view.entered_by,
        "entered_at": view.entered_at,
    }


@blp.route("", methods=["GET"])
@blp.response(200, LprQuoteListSchema)
@requires(AUTHENTICATED)
def list_quotes() -> dict[str, Any]:
    return {"items": [_body(view) for view in _service().list(current_principal())]}


@blp.route("/<effective>", methods=["PUT"])
@blp.arguments(LprRatesSchema)
@blp.response(200, LprQuoteSchema)
@blp.alt_response(403, description="only the province's administrators enter the LPR")
@requires(RATES_ADMIN)
def enter_quote(body: dict[str, Any], effective: str) -> dict[str, Any]:
    """Enter the announcement that takes effect on ``effective`` (YYYY-MM-DD), or correct it. Contracts
    generated from then on use it; those generated before keep the rate they state."""
    return _body(_service().enter(current_principal(), path_day(effective, "effective"), body))
