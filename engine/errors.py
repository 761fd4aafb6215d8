"""Domain errors raised by the engine; the API maps each to an RFC 9457 problem response.

They carry machine-readable details (``problems``: a list of ``{"field"|"location", "message"}``)
so that a client can show every problem at once instead of fixing them one by one.
"""

from __future__ import annotations

from typing import Any


class CreditFlowError(Exception):
    """Base class: ``status`` is the HTTP status the API answers with."""

    status = 400
    title = "Bad request"
    # RFC 9457's ``type``: a URI for a problem a client must tell apart from others of its status
    problem_type = "about:blank"

    def __init__(self, detail: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []


class InvalidInput(CreditFlowError):
    status = 422
    title = "Invalid input"


class InvalidModel(CreditFlowError):
    """A BPMN/DMN upload failed validation or lint; ``problems`` lists every finding."""

    status = 422
    title = "Invalid process model"


class UnsafeXml(CreditFlowError):
    """DOCTYPE, entities, external references or oversized documents: refused outright."""

    status = 400
    title = "Refused XML document"


class PayloadTooLarge(CreditFlowError):
    status = 413
    title = "Payload too large"


class NotFound(CreditFlowError):
    status = 404
    title = "Not found"


class Conflict(CreditFlowError):
    """The resource changed under the caller (optimistic version) or is not in a usable state."""

    status = 409
    title = "Conflict"


class Busy(CreditFlowError):
    """Another writer held the records this change needs for longer than a request waits."""

    status = 503
    title = "Busy"


class Unavailable(CreditFlowError):
    """This node cannot serve: its database does not answer, or its schema is not the code's."""

    status = 503
    title = "Service Unavailable"


class Unauthorized(CreditFlowError):
    status = 401
    title = "Unauthorized"


class Forbidden(CreditFlowError):
    status = 403
    title = "Forbidden"


class PasswordChangeRequired(Forbidden):
    """Signed in with a temporary password: nothing but changing it (and who am I, sign out) until then."""

    title = "Password change required"
    problem_type = "urn:creditflow:problem:password-change-required"


class ScriptError(CreditFlowError):
    """A BPMN expression or script failed, was refused by the sandbox, or exceeded its limits."""

    status = 422
    title = "Script error"
