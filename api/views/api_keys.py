"""API keys for integrations: created, listed and revoked by administrators (org.admin)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC
from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.security import current_principal, requires
from engine.org.roles import ORG_ADMIN

blp = Blueprint("api_keys", __name__, url_prefix="/api/v1/admin", description="API keys for integrations")


class ApiKeySchema(Schema):
    id = Integer()
    name = fields.String()
    prefix = fields.String(metadata={"description": "the public part of the key, to recognise it"})
    user_id = Integer()
    username = fields.String()
    tenant_id = Integer()
    created_by_id = Integer(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True, metadata={"description": "updated at most once a minute"})


class CreatedApiKeySchema(ApiKeySchema):
    key = fields.String(
        metadata={"description": "the key to send as 'Authorization: ApiKey …' or 'X-API-Key'; shown only once"}
    )


class ApiKeyListSchema(Schema):
    items = fields.List(fields.Nested(ApiKeySchema))


class ApiKeyQuerySchema(Schema):
    username = fields.String(metadata={"description": "only the keys of this user"})


class ApiKeyCreateSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=100))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    expires_at = fields.AwareDateTime(
        load_default=None, allow_none=True, default_timezone=UTC, metadata={"description": "none: never expires"}
    )


def _service() -> Any:
    return current_app.extensions["creditflow"].api_keys


@blp.route("/api-keys", methods=["GET"])
@blp.arguments(ApiKeyQuerySchema, location="query")
@blp.response(200, ApiKeyListSchema)
@blp.alt_response(404, description="the user does not exist (or belongs to another tenant)")
@requires(ORG_ADMIN)
def list_keys(query: dict[str, Any]) -> dict[str, Any]:
    return {"items": _service().list(current_principal(), query.get("username"))}


@blp.route("/api-keys", methods=["POST"])
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, CreatedApiKeySchema)
@blp.alt_response(404, description="the user does not exist (or belongs to another tenant)")
@requires(ORG_ADMIN)
def create_key(body: dict[str, Any]) -> dict[str, Any]:
    created = _service().create(current_principal(), body["username"], body["name"], body["expires_at"])
    return {**asdict(created.key), "key": created.plaintext}


@blp.route("/api-keys/<int:key_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="no such key (or it belongs to another tenant)")
@requires(ORG_ADMIN)
def revoke_key(key_id: int) -> None:
    _service().revoke(current_principal(), key_id)
