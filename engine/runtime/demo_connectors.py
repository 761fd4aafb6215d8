"""Connectors the demo processes call, standing in for the credit bureau until integrations land.

They are deterministic so that demos and tests give the same answer every time; they are
registered only when no connector registry is supplied (``make run``), never in production wiring.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.runtime.connectors import ConnectorError, ConnectorRegistry

UNAVAILABLE_SUFFIX = "0000"


def bureau_score(id_number: str) -> dict[str, Any]:
    """A stable pseudo score in 550–849; IDs ending in 0000 simulate a bureau outage."""
    if not isinstance(id_number, str) or not id_number:
        raise ConnectorError("id_number is required", code="CONNECTOR_ERROR")
    if id_number.endswith(UNAVAILABLE_SUFFIX):
        raise ConnectorError("credit bureau did not answer within 5 s", code="CONNECTOR_ERROR")
    score = 550 + int(hashlib.sha256(id_number.encode()).hexdigest()[:8], 16) % 300
    return {"score": score, "source": "demo"}


def register_demo_connectors(registry: ConnectorRegistry) -> None:
    registry.register("credit_bureau/score", bureau_score)
