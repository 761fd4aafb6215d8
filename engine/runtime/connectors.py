"""Named connectors behind ``spiffworkflow:serviceTaskOperator``.

A connector is a plain callable taking the operator's evaluated parameters as keyword arguments
and returning JSON-serialisable data. Any exception it raises becomes a BPMN error (code from
``ConnectorError.code``, else ``CONNECTOR_ERROR``) that a boundary error event can catch; the
original message travels in the error payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Connector = Callable[..., Any]

DEFAULT_ERROR_CODE = "CONNECTOR_ERROR"


class ConnectorError(Exception):
    """A connector's business failure with a BPMN error code (e.g. ``BUREAU_UNAVAILABLE``)."""

    def __init__(self, message: str, code: str = DEFAULT_ERROR_CODE) -> None:
        super().__init__(message)
        self.code = code


class ConnectorRegistry:
    def __init__(self) -> None:
        self._connectors: dict[str, Connector] = {}

    def register(self, name: str, connector: Connector) -> None:
        if name in self._connectors:
            raise ValueError(f"connector {name!r} is already registered")
        self._connectors[name] = connector

    def get(self, name: str) -> Connector:
        try:
            return self._connectors[name]
        except KeyError:
            raise KeyError(f"no connector named {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._connectors
