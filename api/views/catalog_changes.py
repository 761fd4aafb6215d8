"""The catalog's change trail (变更留痕): who changed which product or process, when, from what to what."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.integers import Integer
from api.security import current_principal, requires
from engine.catalog.changes import ACTIONS
from engine.org.roles import CATALOG_CHANGES_READ
from engine.services.catalog_changes import CatalogChangeService, ChangeView

blp = Blueprint(
    "catalog_changes", __name__, url_prefix="/api/v1/catalog-changes", description="Catalog change trail (变更留痕)"
)


class CatalogChangeQuerySchema(Schema):
    subject = fields.String(
        validate=validate.Length(min=1, max=255), metadata={"description": "product code or process id"}
    )
    action = fields.String(validate=validate.OneOf(ACTIONS))
    actor = Integer(validate=validate.Range(min=1), metadata={"description": "the user id of who made the change"})
    since = fields.AwareDateTime(metadata={"description": "changes at or after this time"})
    until = fields.AwareDateTime(metadata={"description": "changes before this time (later than since)"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(
        validate=validate.Length(min=1, max=500), metadata={"description": "a page's next_cursor: the page after it"}
    )


class CatalogChangeSchema(Schema):
    id = Integer()
    tenant_id = Integer(allow_none=True, metadata={"description": "the owning bank; null: the province's"})
    tenant = fields.String(allow_none=True, metadata={"description": "the owning bank's code; null: the province's"})
    actor_id = Integer(allow_none=True, metadata={"description": "null: the system or the command line"})
    actor = fields.String(allow_none=True, metadata={"description": "the actor's username"})
    at = fields.DateTime()
    action = fields.String(metadata={"description": ", ".join(ACTIONS)})
    subject = fields.String(metadata={"description": "product code or process id"})
    version = Integer(allow_none=True, metadata={"description": "the version published or deployed"})
    details = fields.Dict(
        metadata={
            "description": "changes: [{path (JSON pointer), old, new}] of the config (no old/new: absent); "
            "a publish's or deploy's sha256; a variant's template and template_version; a rebase's versions"
        }
    )
    hash = fields.String(metadata={"description": "SHA-256 chaining this change to the owner's previous one"})


class CatalogChangeListSchema(Schema):
    items = fields.List(fields.Nested(CatalogChangeSchema))
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as cursor for the next page"})


def _service() -> CatalogChangeService:
    return current_app.extensions["creditflow"].catalog_changes


_NAMES = ("actor", "tenant")  # the view's; every other field is the change's own column
_COLUMNS = [name for name in CatalogChangeSchema().fields if name not in _NAMES]


def _row(view: ChangeView) -> dict[str, Any]:
    return {**{name: getattr(view.change, name) for name in _COLUMNS}, "actor": view.actor, "tenant": view.tenant}


@blp.route("", methods=["GET"])
@blp.arguments(CatalogChangeQuerySchema, location="query")
@blp.response(200, CatalogChangeListSchema)
@requires(CATALOG_CHANGES_READ)
def list_changes(query: dict[str, Any]) -> dict[str, Any]:
    views, next_cursor = _service().list(
        current_principal(),
        subject=query.get("subject"),
        action=query.get("action"),
        actor=query.get("actor"),
        since=query.get("since"),
        until=query.get("until"),
        limit=query["limit"],
        cursor=query.get("cursor"),
    )
    return {"items": [_row(view) for view in views], "next_cursor": next_cursor}
