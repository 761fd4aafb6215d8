"""Deploying BPMN/DMN and reading process definitions."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from api.blueprint import Blueprint
from api.schemas import (
    DefinitionListSchema,
    DefinitionQuerySchema,
    DefinitionSchema,
    DeployFilesSchema,
    DeployResultSchema,
)
from api.security import current_principal, requires
from engine.org.roles import DEFINITIONS_DEPLOY, DEFINITIONS_READ

blp = Blueprint("definitions", __name__, url_prefix="/api/v1/process-definitions", description="Process definitions")


def _platform() -> Any:
    return current_app.extensions["creditflow"]


@blp.route("", methods=["POST"])
@blp.arguments(DeployFilesSchema, location="files")
@blp.response(201, DeployResultSchema)
@blp.alt_response(200, schema=DeployResultSchema, description="identical content was already deployed")
@blp.alt_response(422, description="the model is invalid; `errors` lists every problem")
@requires(DEFINITIONS_DEPLOY)
def deploy(_files: dict[str, Any]) -> tuple[dict[str, Any], int]:
    uploads = [(f.filename or "", f.read()) for name in request.files for f in request.files.getlist(name)]
    result = _platform().definitions.deploy(current_principal(), uploads)
    return {"created": result.created, "definitions": result.definitions}, 201 if result.created else 200


@blp.route("", methods=["GET"])
@blp.arguments(DefinitionQuerySchema, location="query")
@blp.response(200, DefinitionListSchema)
@requires(DEFINITIONS_READ)
def list_definitions(query: dict[str, Any]) -> dict[str, Any]:
    items, total = _platform().definitions.list(
        current_principal(),
        key=query.get("key"),
        latest_only=query["latest"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"items": items, "total": total}


@blp.route("/<int:definition_id>", methods=["GET"])
@blp.response(200, DefinitionSchema)
@requires(DEFINITIONS_READ)
def get_definition(definition_id: int) -> Any:
    return _platform().definitions.get(current_principal(), definition_id)


@blp.route("/<int:definition_id>/xml", methods=["GET"])
@blp.response(
    200,
    description="The BPMN XML of the definition (other files of its deployment via ?file=)",
    content_type="application/xml",
)
@requires(DEFINITIONS_READ)
def get_definition_xml(definition_id: int) -> Response:
    resource = _platform().definitions.resource(current_principal(), definition_id, request.args.get("file"))
    return Response(resource.content, mimetype="application/xml")
