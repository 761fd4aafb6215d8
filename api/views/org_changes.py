"""The organisation's change trail (权限与配置变更留痕): who changed a tenant's organisation or configuration,
when, from what to what: units, users, role grants, groups, the calendar, API keys and webhooks."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import fields, validate

from api.blueprint import Blueprint
from api.change_trails import ChangePageSchema, ChangeQuerySchema, ChangeSchema, change_page, subject_filter
from api.security import requires
from engine.org.changes import ACTIONS
from engine.org.roles import ORG_CHANGES_READ

blp = Blueprint(
    "org_changes",
    __name__,
    url_prefix="/api/v1/org-changes",
    description="Organisation change trail (权限与配置变更留痕)",
)

SUBJECT = "username, unit code, group code, API key id, webhook id, day (YYYY-MM-DD), year, or working_hours"


class OrgChangeQuerySchema(ChangeQuerySchema):
    subject = subject_filter(SUBJECT)
    action = fields.String(validate=validate.OneOf(ACTIONS))


class OrgChangeSchema(ChangeSchema):
    action = fields.String(metadata={"description": ", ".join(ACTIONS)})
    subject = fields.String(metadata={"description": SUBJECT})
    details = fields.Dict(
        metadata={
            "description": "changes: [{path (JSON pointer), old, new}] of an update (no old: it was created); "
            "a grant's or revocation's role and org_unit_code (null: the whole tenant); a membership's group; "
            "what was created; never a password, key or secret"
        }
    )


class OrgChangeListSchema(ChangePageSchema):
    items = fields.List(fields.Nested(OrgChangeSchema))


@blp.route("", methods=["GET"])
@blp.arguments(OrgChangeQuerySchema, location="query")
@blp.response(200, OrgChangeListSchema)
@requires(ORG_CHANGES_READ)
def list_changes(query: dict[str, Any]) -> dict[str, Any]:
    return change_page(current_app.extensions["creditflow"].org_changes, OrgChangeSchema, query)
