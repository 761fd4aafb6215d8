"""The catalog's change trail (变更留痕): who changed which product or process, when, from what to what."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import fields, validate

from api.blueprint import Blueprint
from api.change_trails import ChangePageSchema, ChangeQuerySchema, ChangeSchema, change_page, subject_filter
from api.integers import Integer
from api.security import requires
from engine.catalog.changes import ACTIONS
from engine.org.roles import CATALOG_CHANGES_READ

blp = Blueprint(
    "catalog_changes", __name__, url_prefix="/api/v1/catalog-changes", description="Catalog change trail (变更留痕)"
)


class CatalogChangeQuerySchema(ChangeQuerySchema):
    subject = subject_filter("product code or process id")
    action = fields.String(validate=validate.OneOf(ACTIONS))


class CatalogChangeSchema(ChangeSchema):
    action = fields.String(metadata={"description": ", ".join(ACTIONS)})
    subject = fields.String(metadata={"description": "product code or process id"})
    version = Integer(allow_none=True, metadata={"description": "the version published or deployed"})
    details = fields.Dict(
        metadata={
            "description": "changes: [{path (JSON pointer), old, new}] of the config (no old/new: absent); "
            "a publish's or deploy's sha256; a variant's template and template_version; a rebase's versions"
        }
    )


class CatalogChangeListSchema(ChangePageSchema):
    items = fields.List(fields.Nested(CatalogChangeSchema))


@blp.route("", methods=["GET"])
@blp.arguments(CatalogChangeQuerySchema, location="query")
@blp.response(200, CatalogChangeListSchema)
@requires(CATALOG_CHANGES_READ)
def list_changes(query: dict[str, Any]) -> dict[str, Any]:
    return change_page(current_app.extensions["creditflow"].catalog_changes, CatalogChangeSchema, query)
