"""Flask's JSON, with request bodies read by the project's bounded parser."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from engine import json_documents


class JsonProvider(DefaultJSONProvider):
    """Chinese as text, not ``\\u`` escapes; a body nested too deeply is a 400, not a RecursionError."""

    ensure_ascii = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json_documents.loads(s, **kwargs)
