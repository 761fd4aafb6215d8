"""Authentication and authorization for every endpoint except health, login and the API docs.

Each view declares the permission it needs with ``@requires`` (innermost, right above ``def``);
the check runs before the request body is parsed, so a caller without the permission learns
nothing from validation errors. A view without a declaration is refused (and a test walks every
endpoint to make sure none is missing one).

Callers authenticate with a bearer token from ``POST /api/v1/auth/token`` or, for integrations, an
API key: ``Authorization: ApiKey cfk_…`` or ``X-API-Key: cfk_…`` (``Authorization`` wins if both
are sent). A session signed in with a temporary password (an administrator's reset) reaches only
``PASSWORD_CHANGE_ENDPOINTS``; everything else answers "password change required".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from engine.errors import Forbidden, PasswordChangeRequired, Unauthorized
from engine.services.principal import Principal

PUBLIC_ENDPOINTS = frozenset(
    {
        "health.health",
        "auth.token",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "static",
    }
)
# Endpoints every signed-in caller may use (their own session and account).
AUTHENTICATED = "authenticated"
# All that a session signed in with a temporary password may do: change it, see who it is, sign out.
PASSWORD_CHANGE_ENDPOINTS = frozenset({"auth.change_password", "auth.me", "auth.logout"})

View = TypeVar("View", bound=Callable[..., Any])


def requires(permission: str) -> Callable[[View], View]:
    """Declare the permission a view needs (checked in ``authenticate_request``)."""

    def mark(view: View) -> View:
        view.required_permission = permission  # type: ignore[attr-defined]
        return view

    return mark


def required_permission(endpoint: str) -> str | None:
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "required_permission", None)


def authenticate_request() -> None:
    """Runs before every request; unknown routes fall through to a 404 without asking for a token."""
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return
    platform = current_app.extensions["creditflow"]
    scheme, credential = _credential()
    g.bearer_token = credential if scheme == "bearer" else None
    if scheme == "bearer":
        principal = platform.auth.authenticate(credential)
    elif scheme == "apikey":
        principal = platform.api_keys.authenticate(credential)
    else:
        raise Unauthorized("a bearer token (POST /api/v1/auth/token) or an API key is required")
    g.principal = principal
    if principal.password_change_required and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        raise PasswordChangeRequired(
            "you signed in with a temporary password: change it first (POST /api/v1/auth/password)"
        )
    permission = required_permission(request.endpoint)
    if permission is None:
        raise Forbidden("this endpoint declares no permission, so nobody may use it")
    if permission != AUTHENTICATED:
        principal.require(permission)


def _credential() -> tuple[str, str]:
    """``(scheme, credential)`` from ``Authorization`` or else ``X-API-Key``; the scheme in lower case."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if not scheme and request.headers.get("X-API-Key"):
        return "apikey", request.headers["X-API-Key"].strip()
    return (scheme.lower(), credential.strip()) if credential.strip() else ("", "")


def current_principal() -> Principal:
    return g.principal


def current_bearer_token() -> str:
    """The caller's own token, for managing its password session; API keys have none."""
    token: str | None = g.bearer_token
    if token is None:
        raise Forbidden("this needs a password login (bearer token); API keys are managed by administrators")
    return token
