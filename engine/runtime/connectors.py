"""Named connectors behind ``spiffworkflow:serviceTaskOperator``.

A connector is a plain callable taking the operator's evaluated parameters as keyword arguments
and returning JSON-serialisable data. A platform connector that works on the instance itself (the
contract steps read the whole application) is registered ``with_task`` and gets the task first.
Any exception it raises becomes a BPMN error (code from ``ConnectorError.code``, else
``CONNECTOR_ERROR``) that a boundary error event can catch; the original message travels in the
error payload.
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
        self._with_task: set[str] = set()

    def register(self, name: str, connector: Connector, *, with_task: bool = False) -> None:
        if name in self._connectors:
            raise ValueError(f"connector {name!r} is already registered")
        self._connectors[name] = connector
        if with_task:
            self._with_task.add(name)

    def get(self, name: str) -> Connector:
        try:
            return self._connectors[name]
        except KeyError:
            raise KeyError(f"no connector named {name!r}") from None

    def call(self, name: str, task: Any, params: dict[str, Any]) -> Any:
        connector = self.get(name)
        return connector(task, **params) if name in self._with_task else connector(**params)

    def __contains__(self, name: object) -> bool:
        return name in self._connectors
