"""Incidents: background jobs that failed their last retry, listed, retried or resolved (incidents.manage)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields

from api.blueprint import Blueprint
from api.integers import Integer
from api.schemas import PageQuerySchema
from api.security import current_principal, requires
from engine.org.roles import INCIDENTS_MANAGE
from engine.services.incidents import IncidentService

blp = Blueprint("incidents", __name__, url_prefix="/api/v1", description="Failed background jobs")


class IncidentSchema(Schema):
    id = Integer()
    job_id = Integer()
    kind = fields.String(metadata={"description": "the job's kind: timer, escalate, deliver, …"})
    tenant_id = Integer(allow_none=True)
    instance_id = fields.String(allow_none=True)
    message = fields.String(metadata={"description": "the last error, masked"})
    created_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by_id = Integer(allow_none=True)


class IncidentListSchema(Schema):
    items = fields.List(fields.Nested(IncidentSchema))


class IncidentQuerySchema(PageQuerySchema):
    open = fields.Boolean(metadata={"description": "true: unresolved only, false: resolved only; absent: both"})


def _service() -> IncidentService:
    return current_app.extensions["creditflow"].incidents


@blp.route("/incidents", methods=["GET"])
@blp.arguments(IncidentQuerySchema, location="query")
@blp.response(200, IncidentListSchema)
@requires(INCIDENTS_MANAGE)
def list_incidents(query: dict[str, Any]) -> dict[str, Any]:
    incidents = _service().list(
        current_principal(), is_open=query.get("open"), limit=query["limit"], offset=query["offset"]
    )
    return {"items": incidents}


@blp.route("/incidents/<int:incident_id>/retry", methods=["POST"])
@blp.response(200, IncidentSchema)
@blp.alt_response(404, description="no such incident (or it belongs to another tenant)")
@blp.alt_response(409, description="the incident is already resolved")
@requires(INCIDENTS_MANAGE)
def retry_incident(incident_id: int) -> Any:
    return _service().retry(current_principal(), incident_id)


@blp.route("/incidents/<int:incident_id>/resolve", methods=["POST"])
@blp.response(200, IncidentSchema)
@blp.alt_response(404, description="no such incident (or it belongs to another tenant)")
@blp.alt_response(409, description="the incident is already resolved")
@requires(INCIDENTS_MANAGE)
def resolve_incident(incident_id: int) -> Any:
    return _service().resolve(current_principal(), incident_id)
