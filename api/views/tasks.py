"""Human tasks: list, read with form, complete."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_smorest import Blueprint

from api.schemas import (
    CompleteTaskSchema,
    InstanceSchema,
    TaskDetailSchema,
    TaskListSchema,
    TaskQuerySchema,
    TaskSchema,
)
from api.security import current_principal
from api.views.instances import instance_body

blp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks")


def _service() -> Any:
    return current_app.extensions["creditflow"].tasks


@blp.route("", methods=["GET"])
@blp.arguments(TaskQuerySchema, location="query")
@blp.response(200, TaskListSchema)
def list_tasks(query: dict[str, Any]) -> dict[str, Any]:
    views, total = _service().list(
        current_principal(),
        status=query["status"],
        instance_id=query.get("instance_id"),
        lane=query.get("lane"),
        bpmn_id=query.get("bpmn_id"),
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"items": [{**_columns(v.task), "level": v.level} for v in views], "total": total}


@blp.route("/<task_id>", methods=["GET"])
@blp.response(200, TaskDetailSchema)
def get_task(task_id: str) -> dict[str, Any]:
    view = _service().get(current_principal(), task_id)
    t = view.task
    form = None
    if view.form is not None:
        form = {
            "name": view.form.name,
            "schema": view.form.schema,
            "ui_schema": view.form.ui_schema,
        }
    return {**_columns(t), "level": view.level, "data": view.data, "form_definition": form}


def _columns(task: Any) -> dict[str, Any]:
    """The task row's own fields, as TaskSchema lists them (``level`` is computed by the service)."""
    return {name: getattr(task, name) for name in TaskSchema().fields if name != "level"}


@blp.route("/<task_id>/complete", methods=["POST"])
@blp.arguments(CompleteTaskSchema)
@blp.response(200, InstanceSchema, description="the instance after it ran on to its next wait")
@blp.alt_response(409, description="the task was already completed or the instance is not running")
@blp.alt_response(422, description="the data does not match the form; `errors` names each field")
def complete(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return instance_body(_service().complete(current_principal(), task_id, body["data"]))
