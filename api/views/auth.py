"""Login: exchange a username and password for a bearer token."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.schemas import TokenRequestSchema, TokenSchema

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Authentication")


@blp.route("/token", methods=["POST"])
@blp.arguments(TokenRequestSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, description="Invalid username or password")
@blp.doc(security=[])
def token(body: dict[str, Any]) -> dict[str, Any]:
    access_token, ttl = current_app.extensions["creditflow"].auth.issue_token(body["username"], body["password"])
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl}
