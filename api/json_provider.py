"""Flask's JSON, with request bodies read by the project's strict, bounded parser."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import Request
from flask.json.provider import DefaultJSONProvider

from engine import json_documents
from engine.errors import CreditFlowError


class JsonProvider(DefaultJSONProvider):
    """Chinese as text, not ``\\u`` escapes; a body nested too deeply is a 400, not a RecursionError."""

    ensure_ascii = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_documents.loads(s, **kwargs)


class JsonRequest(Request):
    """A body that is not JSON says why (Flask answers a bare 400 outside debug mode)."""

    def on_json_loading_failed(self, e: ValueError | None) -> NoReturn:
        if e is None:
            super().on_json_loading_failed(e)
        reason = str(e)
        raise CreditFlowError(f"the body is not valid JSON: {reason}", [{"field": "body", "message": reason}])
