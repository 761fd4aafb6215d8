"""Named connectors behind ``spiffworkflow:serviceTaskOperator``.

A connector is a plain callable taking the operator's evaluated parameters as keyword arguments
and returning JSON-serialisable data. A platform connector that works on the instance itself (the
contract steps read the whole application) is registered ``with_task`` and gets the task first.
Any exception it raises becomes a BPMN error (code from ``ConnectorError.code``, else
``CONNECTOR_ERROR``) that a boundary error event can catch; the original message travels in the
error payload, with ``outcome_unknown``: whether the other side may have acted all the same (a
timeout after the request went out), which matters when the connector moves money.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Connector = Callable[..., Any]

DEFAULT_ERROR_CODE = "CONNECTOR_ERROR"


class ConnectorError(Exception):
    """A connector's failure with a BPMN error code (e.g. ``BUREAU_UNAVAILABLE``).

    ``outcome_unknown`` says the request may have been carried out (it went out and no answer came
    back); left False, the other side answered and refused, so nothing happened there.
    """

    def __init__(self, message: str, code: str = DEFAULT_ERROR_CODE, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.outcome_unknown = outcome_unknown


def outcome_unknown(exc: Exception) -> bool:
    """Whether a failed call may have been carried out all the same. Only a ``ConnectorError`` speaks
    for the other side; any other exception (a dropped connection, a bug in the connector) leaves it
    open, and a payout must then be treated as possibly made."""
    return exc.outcome_unknown if isinstance(exc, ConnectorError) else True


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
