"""Webhooks for notifications: created, listed, changed and deactivated by administrators (webhooks.admin).

How a receiver verifies a request's signature is described in ``engine/notify/delivery.py``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.schemas import PageQuerySchema
from api.security import current_principal, requires
from engine.org.roles import WEBHOOKS_ADMIN
from engine.services.webhooks import MAX_SECRET_LENGTH, MAX_URL_LENGTH, MIN_SECRET_LENGTH, WebhookService

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1", description="Webhooks for notifications")


def _url(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={"description": "http or https, without credentials"},
        **kwargs,
    )


def _topics(**kwargs: Any) -> fields.List:
    description = 'topic prefixes, e.g. ["escalation."] or ["escalation.task.red"]; [] means every topic'
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=50),
        metadata={"description": description},
        **kwargs,
    )


class WebhookSchema(Schema):
    id = Integer()
    tenant_id = Integer(allow_none=True)
    url = fields.String()
    topics = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()


class CreatedWebhookSchema(WebhookSchema):
    secret = fields.String(
        metadata={"description": "the HMAC-SHA256 key that signs every request; shown only this once"}
    )


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema))


class WebhookCreateSchema(Schema):
    url = _url(required=True)
    topics = _topics(required=True)
    secret = fields.String(
        load_only=True,
        validate=validate.Length(min=MIN_SECRET_LENGTH, max=MAX_SECRET_LENGTH),
        metadata={"description": "the signing key; generated when absent"},
    )


class WebhookPatchSchema(Schema):
    url = _url()
    topics = _topics()
    active = fields.Boolean(metadata={"description": "false: pending deliveries are dropped, nothing new is sent"})


class DeliverySchema(Schema):
    id = Integer(metadata={"description": "sent as X-CreditFlow-Delivery"})
    message_id = Integer()
    topic = fields.String()
    created_at = fields.DateTime(metadata={"description": "when the message was published"})
    status = fields.String(metadata={"description": "pending, delivered or failed (its retries are used up)"})
    attempts = Integer()
    last_error = fields.String(allow_none=True, metadata={"description": "of the last failed attempt, masked"})
    delivered_at = fields.DateTime(allow_none=True)


class DeliveryListSchema(Schema):
    items = fields.List(fields.Nested(DeliverySchema))


def _service() -> WebhookService:
    return current_app.extensions["creditflow"].webhooks


@blp.route("/admin/webhooks", methods=["GET"])
@blp.response(200, WebhookListSchema)
@requires(WEBHOOKS_ADMIN)
def list_webhooks() -> dict[str, Any]:
    return {"items": _service().list(current_principal())}


@blp.route("/admin/webhooks", methods=["POST"])
@blp.arguments(WebhookCreateSchema)
@blp.response(201, CreatedWebhookSchema)
@requires(WEBHOOKS_ADMIN)
def create_webhook(body: dict[str, Any]) -> dict[str, Any]:
    created = _service().create(current_principal(), body["url"], body["topics"], body.get("secret"))
    return {**asdict(created.webhook), "secret": created.secret}


@blp.route("/admin/webhooks/<int:webhook_id>", methods=["PATCH"])
@blp.arguments(WebhookPatchSchema)
@blp.response(200, WebhookSchema)
@blp.alt_response(404, description="no such webhook (or it belongs to another tenant)")
@requires(WEBHOOKS_ADMIN)
def update_webhook(body: dict[str, Any], webhook_id: int) -> Any:
    return _service().update(current_principal(), webhook_id, **body)


@blp.route("/admin/webhooks/<int:webhook_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="no such webhook (or it belongs to another tenant)")
@requires(WEBHOOKS_ADMIN)
def deactivate_webhook(webhook_id: int) -> None:
    _service().deactivate(current_principal(), webhook_id)


@blp.route("/admin/webhooks/<int:webhook_id>/deliveries", methods=["GET"])
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, DeliveryListSchema)
@blp.alt_response(404, description="no such webhook (or it belongs to another tenant)")
@requires(WEBHOOKS_ADMIN)
def list_deliveries(query: dict[str, Any], webhook_id: int) -> dict[str, Any]:
    return {"items": _service().deliveries(current_principal(), webhook_id, query["limit"], query["offset"])}
