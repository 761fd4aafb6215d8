"""Bearer-token authentication for every endpoint except health, login and the API docs."""

from __future__ import annotations

from flask import current_app, g, request

from engine.errors import Unauthorized
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


def authenticate_request() -> None:
    """Runs before every request; unknown routes fall through to a 404 without asking for a token."""
    if request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required (POST /api/v1/auth/token)")
    g.principal = current_app.extensions["creditflow"].auth.authenticate(token.strip())


def current_principal() -> Principal:
    return g.principal
