"""The ``Idempotency-Key`` request header (IETF draft-ietf-httpapi-idempotency-key-header) on the
requests that start or message an instance: a channel that retries a submission after a timeout
gets the application its first attempt started, not a second loan; a guarantor that retries its
answer gets the instance as that answer left it, not a 409."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import request

from engine.errors import InvalidInput
from engine.services.instances import Idempotency, InstanceView

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: a UUID, or the channel's own request number

DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "The same key with the same request answers with the instance the first one "
            f"started or changed (header {REPLAYED}: true); with another request, 422; while the first is "
            "still running, 409.",
        }
    ]
}


def idempotency(body: Mapping[str, Any]) -> Idempotency | None:
    """The request's key and fingerprint (method, path and the body as parsed), or None without one."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"{HEADER} must be 1 to 255 visible ASCII characters",
            [{"field": HEADER, "message": "1 to 255 visible ASCII characters"}],
        )
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    fingerprint = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
    return Idempotency(key, fingerprint)


def replay_headers(view: InstanceView) -> dict[str, str]:
    return {REPLAYED: "true"} if view.replayed else {}
