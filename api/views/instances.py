"""Process instances: start, read, list, history, opinions, cancel, retry."""

from __future__ import annotations

from typing import Any

from flask import current_app

from api.blueprint import Blueprint
from api.idempotency import DOC as IDEMPOTENCY_DOC
from api.idempotency import idempotency, replay_headers
from api.rows import application_label, task_row
from api.schemas import (
    CancelSchema,
    HistorySchema,
    InstanceListSchema,
    InstanceQuerySchema,
    InstanceSchema,
    MessageSchema,
    OpinionListSchema,
    RetrySchema,
    StartInstanceSchema,
)
from api.security import current_principal, requires
from engine.org.roles import AUDIT_READ, INSTANCES_MANAGE, INSTANCES_READ, INSTANCES_START
from engine.services.channel_view import channel_data, channel_error
from engine.services.instances import InstanceView
from engine.sla.deadlines import stored_level

blp = Blueprint("instances", __name__, url_prefix="/api/v1/process-instances", description="Process instances")


def _service() -> Any:
    return current_app.extensions["creditflow"].instances


def instance_body(view: InstanceView) -> dict[str, Any]:
    """An instance as the API shows it; to an integration account, its channel view (``channel_view``)."""
    i = view.instance
    now = current_app.extensions["creditflow"].clock.now()
    channel = current_principal().is_service
    return {
        "id": i.id,
        "definition_key": view.definition.key,
        "definition_version": view.definition.version,
        "business_key": i.business_key,
        "status": i.status,
        "outcome": view.outcome,
        "version": i.version,
        "data": channel_data(i.data) if channel else i.data,
        "error": channel_error(i.error) if channel else i.error,
        "tasks": [task_row(t, stored_level(t, now)) for t in view.tasks],
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "ended_at": i.ended_at,
        "warn_at": i.warn_at,
        "due_at": i.due_at,
        "escalate_at": i.escalate_at,
        "level": stored_level(i, now),
        "remaining_working_minutes": view.remaining_minutes,
        "org_unit_id": i.org_unit_id,
        "applicant_name": i.applicant_name,
        "applicant_id_masked": i.applicant_id_masked,
        **application_label(i),
    }


@blp.route("", methods=["POST"])
@blp.arguments(StartInstanceSchema)
@blp.response(201, InstanceSchema)
@blp.alt_response(409, description="a request with the same Idempotency-Key is still being handled")
@blp.doc(**IDEMPOTENCY_DOC)
@requires(INSTANCES_START)
def start(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = _service().start(
        current_principal(),
        body["definition_key"],
        version=body.get("version"),
        business_key=body.get("business_key"),
        data=body["data"],
        org_unit=body.get("org_unit"),
        idempotency=idempotency(body),
    )
    return instance_body(view), 201, replay_headers(view)


@blp.route("", methods=["GET"])
@blp.arguments(InstanceQuerySchema, location="query")
@blp.response(200, InstanceListSchema)
@requires(INSTANCES_READ)
def list_instances(query: dict[str, Any]) -> dict[str, Any]:
    views, total, next_cursor = _service().list(
        current_principal(),
        status=query.get("status"),
        definition_key=query.get("definition_key"),
        business_key=query.get("business_key"),
        product=query.get("product"),
        level=query.get("level"),
        limit=query["limit"],
        offset=query["offset"],
        cursor=query.get("cursor"),
    )
    return {"items": [instance_body(v) for v in views], "total": total, "next_cursor": next_cursor}


@blp.route("/<instance_id>", methods=["GET"])
@blp.response(200, InstanceSchema)
@requires(INSTANCES_READ)
def get_instance(instance_id: str) -> dict[str, Any]:
    return instance_body(_service().get(current_principal(), instance_id))


@blp.route("/<instance_id>/history", methods=["GET"])
@blp.response(200, HistorySchema)
@requires(AUDIT_READ)
def history(instance_id: str) -> dict[str, Any]:
    return {"items": _service().history(current_principal(), instance_id)}


@blp.route("/<instance_id>/opinions", methods=["GET"])
@blp.response(200, OpinionListSchema)
@requires(INSTANCES_READ)
def opinions(instance_id: str) -> dict[str, Any]:
    """Every person's decision on the application, round by round, read from its audit trail."""
    return {"items": current_app.extensions["creditflow"].opinions.list(current_principal(), instance_id)}


@blp.route("/<instance_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, InstanceSchema)
@blp.alt_response(409, description="the instance has already ended")
@requires(INSTANCES_MANAGE)
def cancel(body: dict[str, Any], instance_id: str) -> dict[str, Any]:
    return instance_body(_service().cancel(current_principal(), instance_id, body.get("reason")))


@blp.route("/<instance_id>/retry", methods=["POST"])
@blp.arguments(RetrySchema)
@blp.response(200, InstanceSchema)
@blp.alt_response(409, description="the instance is not in error")
@requires(INSTANCES_MANAGE)
def retry(body: dict[str, Any], instance_id: str) -> dict[str, Any]:
    return instance_body(_service().retry(current_principal(), instance_id, body["data"]))


@blp.route("/<instance_id>/messages", methods=["POST"])
@blp.arguments(MessageSchema)
@blp.response(200, InstanceSchema)
@blp.alt_response(409, description="the instance is not waiting for this message")
@blp.doc(**IDEMPOTENCY_DOC)
@requires(INSTANCES_MANAGE)
def send_message(body: dict[str, Any], instance_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = _service().send_message(
        current_principal(), instance_id, body["name"], body["payload"], idempotency=idempotency(body)
    )
    return instance_body(view), 200, replay_headers(view)
