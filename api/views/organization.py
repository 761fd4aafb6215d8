"""Organisation administration: units, users, role grants, candidate groups and the role catalogue.

Reads need ``org.read``, changes ``org.admin``; the service applies the tenant scope, so another
bank's user, unit or group answers 404 exactly like a missing one. Password hashes never leave.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.absences import AbsenceRequestSchema, AbsenceSchema, absence_body, absence_request
from api.blueprint import Blueprint
from api.integers import Integer
from api.schemas import PageQuerySchema
from api.security import current_principal, requires
from engine.org.roles import ORG_ADMIN, ORG_READ, ROLES, TASKS_ASSIGN
from engine.services.organization import UNIT_KINDS

blp = Blueprint("organization", __name__, url_prefix="/api/v1/admin", description="Organisation administration")


def _service() -> Any:
    return current_app.extensions["creditflow"].organization


# -- schemas ----------------------------------------------------------------------------------


class TenantQuerySchema(Schema):
    tenant = fields.String(metadata={"description": "tenant code; default: every tenant you see"})


class TenantBodySchema(Schema):
    tenant = fields.String(metadata={"description": "tenant code; default: your own tenant"})


class UnitSchema(Schema):
    id = Integer()
    tenant = fields.String()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    parent_code = fields.String(allow_none=True)
    path = fields.String(metadata={"description": "ids from the root, e.g. /3/7/12/"})
    depth = Integer(metadata={"description": "0 for the head office"})


class UnitListSchema(Schema):
    items = fields.List(fields.Nested(UnitSchema), metadata={"description": "in tree order"})


class UnitCreateSchema(TenantBodySchema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(UNIT_KINDS))
    parent_code = fields.String(
        load_default=None, allow_none=True, metadata={"description": "none only for the head office"}
    )


class PatchSchema(Schema):
    """A PATCH that changes nothing is a mistake of the caller, not a success."""

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(f"give at least one of {', '.join(self.fields)}", "body")


class UnitUpdateSchema(PatchSchema):
    name = fields.String()
    parent_code = fields.String(metadata={"description": "move the unit and its subtree under this unit"})


class HeldRoleSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(sorted(ROLES)))
    org_unit_code = fields.String(
        load_default=None, allow_none=True, metadata={"description": "none: anywhere in the user's tenant"}
    )


class UserSchema(Schema):
    id = Integer()
    tenant = fields.String()
    username = fields.String()
    display_name = fields.String()
    org_unit_code = fields.String(allow_none=True, metadata={"description": "home unit"})
    is_active = fields.Boolean()
    is_service = fields.Boolean()
    failed_logins = Integer(allow_none=True, metadata={"description": "null unless the caller administers users"})
    locked_until = fields.DateTime(allow_none=True)
    tokens_valid_after = fields.DateTime(allow_none=True)
    temporary_password_expires_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "after a password reset: when the temporary password stops working, until changed"},
    )
    created_at = fields.DateTime()
    roles = fields.List(fields.Nested(HeldRoleSchema))
    groups = fields.List(fields.String())


class CreatedUserSchema(UserSchema):
    generated_password = fields.String(
        allow_none=True, metadata={"description": "set when no password was given; shown this once only"}
    )


class PasswordResetSchema(UserSchema):
    temporary_password = fields.String(
        metadata={
            "description": "hand it to the user: shown this once only, it signs in until "
            "temporary_password_expires_at, and only to choose a new password"
        }
    )


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))
    total = Integer()


class UserQuerySchema(PageQuerySchema, TenantQuerySchema):
    org_unit_code = fields.String(metadata={"description": "home unit"})
    role = fields.String(validate=validate.OneOf(sorted(ROLES)), metadata={"description": "holds it anywhere"})


class UserCreateSchema(TenantBodySchema):
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    password = fields.String(
        load_only=True, metadata={"description": "at least 12 characters; omit to have one generated"}
    )
    org_unit_code = fields.String(load_default=None, metadata={"description": "home unit"})
    is_service = fields.Boolean(
        load_default=False, metadata={"description": "an integration: signs in with API keys only"}
    )


class UserUpdateSchema(PatchSchema):
    display_name = fields.String()
    org_unit_code = fields.String(metadata={"description": "home unit"})


class GroupSchema(Schema):
    id = Integer()
    tenant = fields.String()
    code = fields.String()
    name = fields.String()
    members = fields.List(fields.String(), metadata={"description": "usernames"})


class GroupListSchema(Schema):
    items = fields.List(fields.Nested(GroupSchema))


class GroupCreateSchema(TenantBodySchema):
    code = fields.String(required=True)
    name = fields.String(required=True)


class RoleSchema(Schema):
    code = fields.String()
    name = fields.String(metadata={"description": "as shown to users"})
    permissions = fields.List(fields.String())
    scope = fields.String(metadata={"description": "where its tasks are offered: application | head_office"})
    duty = fields.String(allow_none=True, metadata={"description": "for segregation of duties"})
    supervises = fields.Boolean()


class RoleListSchema(Schema):
    items = fields.List(fields.Nested(RoleSchema))


# -- org units --------------------------------------------------------------------------------


@blp.route("/org-units", methods=["GET"])
@blp.arguments(TenantQuerySchema, location="query")
@blp.response(200, UnitListSchema)
@requires(ORG_READ)
def list_units(query: dict[str, Any]) -> dict[str, Any]:
    return {"items": _service().list_units(current_principal(), query.get("tenant"))}


@blp.route("/org-units", methods=["POST"])
@blp.arguments(UnitCreateSchema)
@blp.response(201, UnitSchema)
@blp.alt_response(409, description="the code is taken, or the tenant already has a head office")
@requires(ORG_ADMIN)
def create_unit(body: dict[str, Any]) -> Any:
    return _service().create_unit(
        current_principal(), body.get("tenant"), body["code"], body["name"], body["kind"], body["parent_code"]
    )


@blp.route("/org-units/<int:unit_id>", methods=["PATCH"])
@blp.arguments(UnitUpdateSchema)
@blp.response(200, UnitSchema)
@requires(ORG_ADMIN)
def update_unit(body: dict[str, Any], unit_id: int) -> Any:
    """Rename, or move under another unit (the same placement rules as on creation)."""
    return _service().update_unit(current_principal(), unit_id, **body)


# -- users ------------------------------------------------------------------------------------


@blp.route("/users", methods=["GET"])
@blp.arguments(UserQuerySchema, location="query")
@blp.response(200, UserListSchema)
@requires(ORG_READ)
def list_users(query: dict[str, Any]) -> dict[str, Any]:
    items, total = _service().list_users(
        current_principal(),
        query.get("tenant"),
        query.get("org_unit_code"),
        query.get("role"),
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"items": items, "total": total}


@blp.route("/users", methods=["POST"])
@blp.arguments(UserCreateSchema)
@blp.response(201, CreatedUserSchema)
@blp.alt_response(409, description="the username is taken")
@requires(ORG_ADMIN)
def create_user(body: dict[str, Any]) -> dict[str, Any]:
    user, generated = _service().create_user(
        current_principal(),
        body.get("tenant"),
        body["username"],
        body["display_name"],
        password=body.get("password"),
        org_unit_code=body["org_unit_code"],
        is_service=body["is_service"],
    )
    return {**asdict(user), "generated_password": generated}


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.response(200, UserSchema)
@requires(ORG_READ)
def get_user(user_id: int) -> Any:
    return _service().get_user(current_principal(), user_id)


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
@requires(ORG_ADMIN)
def update_user(body: dict[str, Any], user_id: int) -> Any:
    return _service().update_user(current_principal(), user_id, **body)


@blp.route("/users/<int:user_id>/deactivate", methods=["POST"])
@blp.response(200, UserSchema)
@requires(ORG_ADMIN)
def deactivate_user(user_id: int) -> Any:
    """Block sign-in; the user's tokens stop working too."""
    return _service().deactivate_user(current_principal(), user_id)


@blp.route("/users/<int:user_id>/activate", methods=["POST"])
@blp.response(200, UserSchema)
@requires(ORG_ADMIN)
def activate_user(user_id: int) -> Any:
    return _service().activate_user(current_principal(), user_id)


@blp.route("/users/<int:user_id>/unlock", methods=["POST"])
@blp.response(200, UserSchema)
@requires(ORG_ADMIN)
def unlock_user(user_id: int) -> Any:
    """Lift a lock-out after failed logins before it runs out."""
    return _service().unlock_user(current_principal(), user_id)


@blp.route("/users/<int:user_id>/revoke-sessions", methods=["POST"])
@blp.response(200, UserSchema)
@requires(ORG_ADMIN)
def revoke_sessions(user_id: int) -> Any:
    """Sign the user out everywhere: tokens issued before now stop working."""
    return _service().revoke_sessions(current_principal(), user_id)


@blp.route("/users/<int:user_id>/reset-password", methods=["POST"])
@blp.response(200, PasswordResetSchema)
@blp.alt_response(409, description="a service account (API keys only), or your own account (POST /auth/password)")
@requires(ORG_ADMIN)
def reset_password(user_id: int) -> Any:
    """A forgotten password: a generated temporary one, to be changed at the next sign-in; the account is
    unlocked and signed out everywhere."""
    user, password = _service().reset_password(current_principal(), user_id)
    return {**asdict(user), "temporary_password": password}, 200, {"Cache-Control": "no-store"}


@blp.route("/users/<int:user_id>/roles", methods=["POST"])
@blp.arguments(HeldRoleSchema)
@blp.response(201, UserSchema)
@blp.alt_response(409, description="the user already holds the role there")
@requires(ORG_ADMIN)
def grant(body: dict[str, Any], user_id: int) -> Any:
    return _service().grant(current_principal(), user_id, body["role"], body["org_unit_code"])


@blp.route("/users/<int:user_id>/roles", methods=["DELETE"])
@blp.doc(parameters=[{"in": "query", "schema": HeldRoleSchema}])
@blp.response(200, UserSchema)
@blp.alt_response(404, description="the user does not hold the role there")
@requires(ORG_ADMIN)
def revoke(user_id: int) -> Any:
    """The grant to revoke comes as query parameters or, since some clients send DELETE bodies, as JSON."""
    grant = blp.ARGUMENTS_PARSER.parse(HeldRoleSchema, location="json" if request.is_json else "query")
    return _service().revoke(current_principal(), user_id, grant["role"], grant["org_unit_code"])


# -- absences (休假代理): supervisors (``tasks.assign``) for their units, administrators for the bank ------


@blp.route("/users/<int:user_id>/absence", methods=["GET"])
@blp.response(200, AbsenceSchema)
@blp.alt_response(404, description="no such user in your scope, or no absence set")
@requires(TASKS_ASSIGN)
def get_absence(user_id: int) -> dict[str, Any]:
    return absence_body(current_app.extensions["creditflow"].absences.get(current_principal(), user_id), user_id)


@blp.route("/users/<int:user_id>/absence", methods=["PUT"])
@blp.arguments(AbsenceRequestSchema)
@blp.response(200, AbsenceSchema)
@blp.alt_response(403, description="the user is not in a unit you supervise")
@blp.alt_response(422, description="the period or the substitute is not valid (the field is named)")
@requires(TASKS_ASSIGN)
def set_absence(body: dict[str, Any], user_id: int) -> dict[str, Any]:
    """Set the absence of someone who could not (taken ill, sent on training at short notice)."""
    view = current_app.extensions["creditflow"].absences.set(current_principal(), absence_request(body), user_id)
    return absence_body(view, user_id)


@blp.route("/users/<int:user_id>/absence", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="no such user in your scope, or no absence set")
@requires(TASKS_ASSIGN)
def end_absence(user_id: int) -> None:
    current_app.extensions["creditflow"].absences.end(current_principal(), user_id)


# -- groups -----------------------------------------------------------------------------------


@blp.route("/groups", methods=["GET"])
@blp.arguments(TenantQuerySchema, location="query")
@blp.response(200, GroupListSchema)
@requires(ORG_READ)
def list_groups(query: dict[str, Any]) -> dict[str, Any]:
    return {"items": _service().list_groups(current_principal(), query.get("tenant"))}


@blp.route("/groups", methods=["POST"])
@blp.arguments(GroupCreateSchema)
@blp.response(201, GroupSchema)
@blp.alt_response(409, description="the code is taken")
@requires(ORG_ADMIN)
def create_group(body: dict[str, Any]) -> Any:
    return _service().create_group(current_principal(), body.get("tenant"), body["code"], body["name"])


@blp.route("/groups/<int:group_id>/members/<int:user_id>", methods=["POST"])
@blp.response(200, GroupSchema)
@requires(ORG_ADMIN)
def add_member(group_id: int, user_id: int) -> Any:
    return _service().add_member(current_principal(), group_id, user_id)


@blp.route("/groups/<int:group_id>/members/<int:user_id>", methods=["DELETE"])
@blp.response(200, GroupSchema)
@requires(ORG_ADMIN)
def remove_member(group_id: int, user_id: int) -> Any:
    return _service().remove_member(current_principal(), group_id, user_id)


# -- the role catalogue -----------------------------------------------------------------------


@blp.route("/roles", methods=["GET"])
@blp.response(200, RoleListSchema)
@requires(ORG_READ)
def list_roles() -> dict[str, Any]:
    """What each role may do, where its tasks are offered and which duty it performs."""
    return {
        "items": [
            {**asdict(role), "permissions": sorted(role.permissions)}
            for role in sorted(ROLES.values(), key=lambda r: r.code)
        ]
    }
