"""Human tasks: the inbox (views, filters, keyset pages, counts, saved filters), a task with its
form, completing it, and the inbox actions (claim, unclaim, assign, delegate, resolve, return,
comment, attach, bulk)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request

from api.blueprint import Blueprint
from api.files import file_response
from api.rows import inbox_row, task_row
from api.schemas import (
    AssignSchema,
    AttachmentListSchema,
    AttachmentSchema,
    BulkAssignSchema,
    BulkResultSchema,
    BulkSchema,
    CommentListSchema,
    CommentSchema,
    CompleteTaskSchema,
    InstanceSchema,
    PauseSchema,
    ResolveSchema,
    ReturnSchema,
    SavedFilterListSchema,
    SavedFilterSchema,
    TaskCountsSchema,
    TaskDetailSchema,
    TaskListSchema,
    TaskQuerySchema,
    TaskSchema,
)
from api.security import current_principal, requires
from api.views.instances import instance_body
from engine.errors import InvalidInput
from engine.inbox.queries import InboxQuery
from engine.org.roles import TASKS_ASSIGN, TASKS_READ, TASKS_WORK

blp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks", description="Human tasks and the inbox")
files = Blueprint("attachments", __name__, url_prefix="/api/v1/attachments", description="Attachments")


def _service() -> Any:
    return current_app.extensions["creditflow"].tasks


def _query(args: dict[str, Any]) -> InboxQuery:
    query = InboxQuery.of(args)
    if "filter" in args:
        saved = _service().saved_filter(current_principal(), args["filter"])
        query = query.merged_over(saved.query)
    return query


@blp.route("", methods=["GET"])
@blp.arguments(TaskQuerySchema, location="query")
@blp.response(200, TaskListSchema)
@requires(TASKS_READ)
def list_tasks(args: dict[str, Any]) -> dict[str, Any]:
    page = _service().list(current_principal(), _query(args))
    return {"items": [inbox_row(v) for v in page.items], "total": page.total, "next_cursor": page.next_cursor}


@blp.route("/counts", methods=["GET"])
@blp.arguments(TaskQuerySchema, location="query")
@blp.response(200, TaskCountsSchema)
@requires(TASKS_READ)
def counts(args: dict[str, Any]) -> dict[str, Any]:
    return {"counts": _service().counts(current_principal(), _query(args))}


@blp.route("/filters", methods=["GET"])
@blp.response(200, SavedFilterListSchema)
@requires(TASKS_READ)
def list_filters() -> dict[str, Any]:
    return {"items": _service().saved_filters(current_principal())}


@blp.route("/filters", methods=["POST"])
@blp.arguments(SavedFilterSchema)
@blp.response(201, SavedFilterSchema, description="created, or replaced if the name exists")
@requires(TASKS_READ)
def save_filter(body: dict[str, Any]) -> Any:
    query = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in body["query"].items()}
    return _service().save_filter(current_principal(), body["name"], query)


@blp.route("/filters/<int:filter_id>", methods=["DELETE"])
@blp.response(204)
@requires(TASKS_READ)
def delete_filter(filter_id: int) -> None:
    _service().delete_filter(current_principal(), filter_id)


@blp.route("/bulk/claim", methods=["POST"])
@blp.arguments(BulkSchema)
@blp.response(200, BulkResultSchema)
@requires(TASKS_WORK)
def bulk_claim(body: dict[str, Any]) -> dict[str, Any]:
    return {"results": _service().bulk(current_principal(), "claim", body["task_ids"])}


@blp.route("/bulk/assign", methods=["POST"])
@blp.arguments(BulkAssignSchema)
@blp.response(200, BulkResultSchema)
@requires(TASKS_ASSIGN)
def bulk_assign(body: dict[str, Any]) -> dict[str, Any]:
    return {"results": _service().bulk(current_principal(), "assign", body["task_ids"], user_id=body["user_id"])}


@blp.route("/<task_id>", methods=["GET"])
@blp.response(200, TaskDetailSchema)
@requires(TASKS_READ)
def get_task(task_id: str) -> dict[str, Any]:
    view = _service().get(current_principal(), task_id)
    form = None
    if view.form is not None:
        form = {
            "name": view.form.name,
            "sha256": view.form.sha256,
            "schema": view.form.schema,
            "ui_schema": view.form.ui_schema,
        }
    return {
        **inbox_row(view),
        "remaining_working_minutes": view.remaining_minutes,
        "data": view.data,
        "form_definition": form,
        "return_steps": view.return_steps,
        "opinions": view.opinions,
    }


@blp.route("/<task_id>/complete", methods=["POST"])
@blp.arguments(CompleteTaskSchema)
@blp.response(200, InstanceSchema, description="the instance after it ran on to its next wait")
@blp.alt_response(403, description="the task is not offered to you, or segregation of duties bars you")
@blp.alt_response(409, description="the task was already completed, is claimed by someone else, or is delegated")
@blp.alt_response(422, description="the data does not match the form; `errors` names each field")
@requires(TASKS_WORK)
def complete(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return instance_body(_service().complete(current_principal(), task_id, body["data"]))


@blp.route("/<task_id>/claim", methods=["POST"])
@blp.response(200, TaskSchema)
@blp.alt_response(409, description="claimed by someone else")
@requires(TASKS_WORK)
def claim(task_id: str) -> dict[str, Any]:
    return _row(_service().claim(current_principal(), task_id))


@blp.route("/<task_id>/unclaim", methods=["POST"])
@blp.response(200, TaskSchema)
@requires(TASKS_WORK)
def unclaim(task_id: str) -> dict[str, Any]:
    return _row(_service().unclaim(current_principal(), task_id))


@blp.route("/<task_id>/assign", methods=["POST"])
@blp.arguments(AssignSchema)
@blp.response(200, TaskSchema)
@requires(TASKS_ASSIGN)
def assign(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return _row(_service().assign(current_principal(), task_id, body["user_id"]))


@blp.route("/<task_id>/delegate", methods=["POST"])
@blp.arguments(AssignSchema)
@blp.response(200, TaskSchema)
@requires(TASKS_WORK)
def delegate(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return _row(_service().delegate(current_principal(), task_id, body["user_id"]))


@blp.route("/<task_id>/resolve", methods=["POST"])
@blp.arguments(ResolveSchema)
@blp.response(200, TaskSchema)
@requires(TASKS_WORK)
def resolve(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return _row(_service().resolve(current_principal(), task_id, body.get("comment")))


@blp.route("/<task_id>/pause", methods=["POST"])
@blp.arguments(PauseSchema)
@blp.response(200, TaskSchema, description="the step clock stopped: waiting for the customer or an outside party")
@blp.alt_response(409, description="already paused")
@requires(TASKS_WORK)
def pause(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return _row(_service().pause(current_principal(), task_id, body["reason"]))


@blp.route("/<task_id>/resume", methods=["POST"])
@blp.response(200, TaskSchema, description="the clock runs again; its due times moved by the paused time")
@blp.alt_response(409, description="not paused")
@requires(TASKS_WORK)
def resume(task_id: str) -> dict[str, Any]:
    return _row(_service().resume(current_principal(), task_id))


@blp.route("/<task_id>/return", methods=["POST"])
@blp.arguments(ReturnSchema)
@blp.response(200, InstanceSchema, description="the instance, waiting at the earlier step again")
@requires(TASKS_WORK)
def return_task(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return instance_body(_service().return_to(current_principal(), task_id, body["step"], body["reason"]))


@blp.route("/<task_id>/comments", methods=["GET"])
@blp.response(200, CommentListSchema, description="the comments on the whole application")
@requires(TASKS_READ)
def list_comments(task_id: str) -> dict[str, Any]:
    return {"items": _service().comments(current_principal(), task_id)}


@blp.route("/<task_id>/comments", methods=["POST"])
@blp.arguments(CommentSchema)
@blp.response(201, CommentSchema)
@requires(TASKS_WORK)
def add_comment(body: dict[str, Any], task_id: str) -> Any:
    return _service().comment(current_principal(), task_id, body["body"])


@blp.route("/<task_id>/attachments", methods=["GET"])
@blp.response(200, AttachmentListSchema, description="the files of the whole application")
@requires(TASKS_READ)
def list_attachments(task_id: str) -> dict[str, Any]:
    return {"items": _service().attachments(current_principal(), task_id)}


@blp.route("/<task_id>/attachments", methods=["POST"])
@blp.response(201, AttachmentSchema)
@blp.doc(
    requestBody={
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            }
        }
    }
)
@requires(TASKS_WORK)
def attach(task_id: str) -> Any:
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("send the file as multipart field 'file'", [{"field": "file", "message": "missing"}])
    content = upload.read()
    return _service().attach(
        current_principal(), task_id, upload.filename or "", upload.mimetype or "application/octet-stream", content
    )


@files.route("/<attachment_id>", methods=["GET"])
@files.response(200, description="the file")
@requires(TASKS_READ)
def download(attachment_id: str) -> Response:
    found = _service().attachment(current_principal(), attachment_id)
    return file_response(found.content, found.filename, "application/octet-stream", found.sha256)


def _row(view: Any) -> dict[str, Any]:
    return task_row(view.task, view.level)
