"""The notification centre (消息中心): the caller's own notifications, and marking them read."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.security import AUTHENTICATED, current_principal, requires
from engine.services.notifications import NotificationPage, NotificationService

blp = Blueprint(
    "notifications", __name__, url_prefix="/api/v1/notifications", description="Notification centre (消息中心)"
)


class NotificationQuerySchema(Schema):
    unread = fields.Boolean(load_default=False, metadata={"description": "only the unread ones"})
    topic = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "a topic prefix: escalation, escalation.task.red, task.returned, application…"},
    )
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(
        validate=validate.Length(min=1, max=500), metadata={"description": "a page's next_cursor: the page after it"}
    )


class NotificationSchema(Schema):
    id = Integer()
    topic = fields.String(metadata={"description": "e.g. escalation.task.red, task.returned, application.approved"})
    summary = fields.String(metadata={"description": "the line to show, in Chinese"})
    payload = fields.Dict(metadata={"description": "the message as webhooks receive it (no ID numbers)"})
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationListSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), metadata={"description": "newest first"})
    unread = Integer(metadata={"description": "the caller's unread notifications, whatever the filters"})
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as cursor for the next page"})


class ReadAllSchema(Schema):
    marked = Integer(metadata={"description": "how many were unread"})


def _service() -> NotificationService:
    return current_app.extensions["creditflow"].notifications


@blp.route("", methods=["GET"])
@blp.arguments(NotificationQuerySchema, location="query")
@blp.response(200, NotificationListSchema)
@requires(AUTHENTICATED)
def list_notifications(query: dict[str, Any]) -> NotificationPage:
    return _service().list(current_principal(), **query)


@blp.route("/<int:notification_id>/read", methods=["POST"])
@blp.response(204)
@blp.alt_response(404, description="no such notification of yours")
@requires(AUTHENTICATED)
def mark_read(notification_id: int) -> None:
    _service().mark_read(current_principal(), notification_id)


@blp.route("/read", methods=["POST"])
@blp.response(200, ReadAllSchema)
@requires(AUTHENTICATED)
def mark_all_read() -> dict[str, int]:
    return {"marked": _service().mark_all_read(current_principal())}
