"""Errors of the rules package; each is a CreditFlowError so the API maps it to a problem response."""

from __future__ import annotations

from engine.errors import CreditFlowError


class RuleEvaluationError(CreditFlowError):
    """A decision could not produce a result: missing or ill-typed input, unknown key, engine failure.

    ``field`` names the offending input field when there is one, so a caller can point at it.
    """

    status = 422
    title = "Rule evaluation failed"

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail, [{"field": field, "message": detail}] if field else None)
        self.field = field


class RuleDefinitionError(CreditFlowError):
    """Decision content the engine refuses to load (bad graph, no fail-closed input schema)."""

    status = 422
    title = "Invalid rule decision"


class RuleConflictError(CreditFlowError):
    """A key is an immutable version: registering different content under it is refused."""

    status = 409
    title = "Rule decision version conflict"


class ParameterError(CreditFlowError):
    """Placeholders without a value and parameters no placeholder uses, all listed at once."""

    status = 422
    title = "Invalid rule parameters"
