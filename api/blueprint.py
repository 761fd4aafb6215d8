"""The blueprint every API module uses: a query parameter no endpoint defines is refused (422 naming
it), not ignored. ``?q=王秀英`` and ``?id_number=…`` listed every application as if they had matched."""

from __future__ import annotations

from typing import ClassVar

import flask_smorest
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser


class _StrictQueryParser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = _StrictQueryParser()
