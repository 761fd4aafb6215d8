"""Publication requests (双人复核): a product manager submits a draft, another approves (publishes) or rejects it."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.schemas import PageQuerySchema
from api.security import current_principal, requires
from engine.org.roles import CATALOG_CHANGES_READ, PRODUCTS_PUBLISH, PRODUCTS_WRITE
from engine.services.publication_requests import PublicationRequestService, RequestView
from engine.store.models import REQUEST_STATUSES

blp = Blueprint(
    "publication_requests",
    __name__,
    url_prefix="/api/v1/products",
    description="Four-eyes publication of products (双人复核): submit, approve, reject, withdraw",
)
worklist = Blueprint(
    "publication_worklist",
    __name__,
    url_prefix="/api/v1/publication-requests",
    description="Publication requests across products: what waits for a checker (双人复核)",
)


class PublicationRequestSchema(Schema):
    id = Integer()
    product = fields.String(metadata={"description": "the product's code"})
    status = fields.String(metadata={"description": ", ".join(REQUEST_STATUSES) + "; only submitted is open"})
    sha256 = fields.String(metadata={"description": "pins the draft (and template version) that was submitted"})
    note = fields.String(allow_none=True, metadata={"description": "the submitter's note to the checker"})
    submitted_by_id = Integer()
    submitted_by = fields.String(metadata={"description": "the submitter's username"})
    submitted_at = fields.DateTime()
    decided_by_id = Integer(
        allow_none=True,
        metadata={"description": "who approved, rejected or withdrew it, or changed the draft it pinned"},
    )
    decided_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "why it was rejected"})
    published_version = Integer(allow_none=True, metadata={"description": "the version its approval published"})
    compared_to_version = Integer(
        allow_none=True,
        metadata={"description": "the version on sale it was compared with (null: a variant's template version)"},
    )
    changes = fields.List(
        fields.Dict(),
        metadata={"description": "[{path (JSON pointer), old, new}] of the config it publishes (no old/new: absent)"},
    )
    publishes = fields.Dict(
        allow_none=True,
        metadata={
            "description": "what approving it publishes besides the config, as submitted: `process` (key:version), "
            "`decisions` (slot -> rule decision key with its content hash), `forms` (form -> sha256) and "
            "`version_sha256`; if any differs at approval the request is superseded (409) and nothing is "
            "published. Null for requests submitted before this was recorded"
        },
    )


class PublicationRequestListSchema(Schema):
    items = fields.List(fields.Nested(PublicationRequestSchema), metadata={"description": "newest first"})
    total = Integer()


class PublicationRequestQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))


class SubmitSchema(Schema):
    note = fields.String(
        validate=validate.Length(max=500), metadata={"description": "what changes and why, e.g. 上调授信上限"}
    )


class RejectSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "why, for the submitter, e.g. 利率上限超出定价政策"},
    )


def _service() -> PublicationRequestService:
    return current_app.extensions["creditflow"].publication_requests


def request_body(view: RequestView) -> dict[str, Any]:
    r = view.request
    return {
        **{name: getattr(r, name) for name in PublicationRequestSchema().fields if hasattr(r, name)},
        "product": view.product,
        "submitted_by": view.submitted_by,
        "decided_by": view.decided_by,
    }


@blp.route("/<code>/publication-requests", methods=["POST"])
@blp.arguments(SubmitSchema)
@blp.response(201, PublicationRequestSchema)
@blp.alt_response(409, description="another request is open, nothing changed, or the product is withdrawn")
@blp.alt_response(422, description="the draft could not be published; `errors` lists every problem")
@requires(PRODUCTS_WRITE)
def submit(body: dict[str, Any], code: str) -> dict[str, Any]:
    """Submit the product's draft as it is now for another product manager's approval."""
    return request_body(_service().submit(current_principal(), code, body.get("note")))


def _listed(query: dict[str, Any], code: str | None) -> dict[str, Any]:
    items, total = _service().list(
        current_principal(), code, status=query.get("status"), limit=query["limit"], offset=query["offset"]
    )
    return {"items": [request_body(view) for view in items], "total": total}


@blp.route("/<code>/publication-requests", methods=["GET"])
@blp.arguments(PublicationRequestQuerySchema, location="query")
@blp.response(200, PublicationRequestListSchema)
@requires(CATALOG_CHANGES_READ)
def list_requests(query: dict[str, Any], code: str) -> dict[str, Any]:
    return _listed(query, code)


@worklist.route("", methods=["GET"])
@worklist.arguments(PublicationRequestQuerySchema, location="query")
@worklist.response(200, PublicationRequestListSchema)
@requires(CATALOG_CHANGES_READ)
def list_all_requests(query: dict[str, Any]) -> dict[str, Any]:
    """Every product's requests the caller sees: ``?status=submitted`` is what waits for a checker."""
    return _listed(query, None)


@blp.route("/<code>/publication-requests/<int:request_id>", methods=["GET"])
@blp.response(200, PublicationRequestSchema)
@requires(CATALOG_CHANGES_READ)
def get_request(code: str, request_id: int) -> dict[str, Any]:
    return request_body(_service().get(current_principal(), code, request_id))


@blp.route("/<code>/publication-requests/<int:request_id>/approve", methods=["POST"])
@blp.response(200, PublicationRequestSchema)
@blp.alt_response(403, description="the caller submitted or prepared the draft")
@blp.alt_response(409, description="no longer open, the draft changed since (superseded), or the product is withdrawn")
@blp.alt_response(422, description="the pinned draft cannot be published (any more); the request stays open")
@requires(PRODUCTS_PUBLISH)
def approve(code: str, request_id: int) -> dict[str, Any]:
    """Publish exactly the draft the request pinned."""
    return request_body(_service().approve(current_principal(), code, request_id))


@blp.route("/<code>/publication-requests/<int:request_id>/reject", methods=["POST"])
@blp.arguments(RejectSchema)
@blp.response(200, PublicationRequestSchema)
@blp.alt_response(403, description="the caller submitted it (withdraw it instead)")
@requires(PRODUCTS_PUBLISH)
def reject(body: dict[str, Any], code: str, request_id: int) -> dict[str, Any]:
    return request_body(_service().reject(current_principal(), code, request_id, body["reason"]))


@blp.route("/<code>/publication-requests/<int:request_id>/withdraw", methods=["POST"])
@blp.response(200, PublicationRequestSchema)
@blp.alt_response(403, description="someone else submitted it (reject it instead)")
@requires(PRODUCTS_WRITE)
def withdraw(code: str, request_id: int) -> dict[str, Any]:
    return request_body(_service().withdraw(current_principal(), code, request_id))
