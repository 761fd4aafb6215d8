"""What the change trails' endpoints share (变更留痕): the query, a change as listed, and a page of them.

Each trail's view subclasses the schemas with its own ``subject``, ``action`` and ``details`` (and the
page's ``items``), so that OpenAPI documents each trail's vocabulary.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.integers import Integer
from api.security import current_principal
from engine.services.change_trails import ChangeTrailService

_VIEW_FIELDS = ("actor", "tenant")  # the view's; every other field of a change is its own column


class ChangeQuerySchema(Schema):
    actor = Integer(validate=validate.Range(min=1), metadata={"description": "the user id of who made the change"})
    since = fields.AwareDateTime(metadata={"description": "changes at or after this time"})
    until = fields.AwareDateTime(metadata={"description": "changes before this time (later than since)"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(
        validate=validate.Length(min=1, max=500), metadata={"description": "a page's next_cursor: the page after it"}
    )


def subject_filter(description: str) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=255), metadata={"description": description})


class ChangeSchema(Schema):
    id = Integer()
    tenant_id = Integer(allow_none=True, metadata={"description": "the owning tenant; null: the province's, shared"})
    tenant = fields.String(allow_none=True, metadata={"description": "the owning tenant's code"})
    actor_id = Integer(allow_none=True, metadata={"description": "null: the system or the command line"})
    actor = fields.String(allow_none=True, metadata={"description": "the actor's username"})
    at = fields.DateTime()
    hash = fields.String(metadata={"description": "SHA-256 chaining this change to the owner's previous one"})


class ChangePageSchema(Schema):
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as cursor for the next page"})


def change_page(service: ChangeTrailService, item: type[ChangeSchema], query: dict[str, Any]) -> dict[str, Any]:
    """One page of the trail for the current principal, each change with the fields ``item`` lists."""
    views, next_cursor = service.list(current_principal(), **query)
    columns = [name for name in item().fields if name not in _VIEW_FIELDS]
    items = [
        {**{name: getattr(view.change, name) for name in columns}, "actor": view.actor, "tenant": view.tenant}
        for view in views
    ]
    return {"items": items, "next_cursor": next_cursor}
