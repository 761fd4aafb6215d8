"""Login, the signed-in account (who am I), sign-out, password change and the own absence (休假代理)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.absences import AbsenceRequestSchema, AbsenceSchema, absence_body, absence_request
from api.blueprint import Blueprint
from api.integers import Integer
from api.schemas import TokenRequestSchema, TokenSchema
from api.security import AUTHENTICATED, current_bearer_token, current_principal, requires
from engine.org.roles import TASKS_WORK
from engine.services.auth import IssuedToken

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Authentication")


class LogoutSchema(Schema):
    everywhere = fields.Boolean(
        load_default=False, metadata={"description": "also end every other session of the account"}
    )


class PasswordChangeSchema(Schema):
    old_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=200))
    new_password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(max=200),
        metadata={"description": "at least 12 characters, different from the old one"},
    )


class GrantSchema(Schema):
    role = fields.String()
    org_unit_id = Integer(allow_none=True, metadata={"description": "none: anywhere in the tenant"})


class AccountSchema(Schema):
    id = Integer()
    username = fields.String()
    display_name = fields.String()
    tenant = fields.String(metadata={"description": "tenant code"})
    org_unit_id = Integer(allow_none=True, metadata={"description": "home org unit"})
    roles = fields.List(fields.Nested(GrantSchema))
    permissions = fields.List(fields.String(), metadata={"description": "what this session may do"})
    password_change_required = fields.Boolean(
        metadata={"description": "signed in with a temporary password: change it before anything else"}
    )
    temporary_password_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "when the temporary password stops working"}
    )


def _service() -> Any:
    return current_app.extensions["creditflow"].auth


def _token_body(issued: IssuedToken) -> dict[str, Any]:
    return {**asdict(issued), "token_type": "Bearer"}


@blp.route("/token", methods=["POST"])
@blp.arguments(TokenRequestSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, description="Invalid username or password, or the account is temporarily locked")
@blp.doc(security=[])
def token(body: dict[str, Any]) -> dict[str, Any]:
    return _token_body(_service().issue_token(body["username"], body["password"]))


@blp.route("/me", methods=["GET"])
@blp.response(200, AccountSchema)
@requires(AUTHENTICATED)
def me() -> dict[str, Any]:
    return _service().me(current_principal())


@blp.route("/logout", methods=["POST"])
@blp.arguments(LogoutSchema, required=False)
@blp.response(204)
@blp.alt_response(403, description="API keys cannot sign out; an administrator revokes them")
@requires(AUTHENTICATED)
def logout(body: dict[str, Any]) -> None:
    """Sign out the token of this request; the body is optional."""
    _service().logout(current_bearer_token(), everywhere=body.get("everywhere", False))


@blp.route("/password", methods=["POST"])
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(422, description="The old password is wrong or the new one is too short or unchanged")
@blp.alt_response(403, description="API keys have no password session")
@requires(AUTHENTICATED)
def change_password(body: dict[str, Any]) -> dict[str, Any]:
    """Change the own password; every session ends and the returned token starts a new one. After an
    administrator's reset, the temporary password is the old one, and this is all its session may do."""
    return _token_body(
        _service().change_password(
            current_principal(), current_bearer_token(), body["old_password"], body["new_password"]
        )
    )


@blp.route("/me/absence", methods=["GET"])
@blp.response(200, AbsenceSchema)
@blp.alt_response(404, description="no absence set")
@requires(TASKS_WORK)
def my_absence() -> dict[str, Any]:
    principal = current_principal()
    return absence_body(current_app.extensions["creditflow"].absences.get(principal), principal.username)


@blp.route("/me/absence", methods=["PUT"])
@blp.arguments(AbsenceRequestSchema)
@blp.response(200, AbsenceSchema)
@blp.alt_response(422, description="the period or the substitute is not valid (the field is named)")
@requires(TASKS_WORK)
def set_my_absence(body: dict[str, Any]) -> dict[str, Any]:
    """Going on leave: from ``starts_at`` to ``ends_at`` the substitute sees and works the tasks
    assigned to you, and new work meant for you goes to them. Setting it again replaces it."""
    view = current_app.extensions["creditflow"].absences.set(current_principal(), absence_request(body))
    return absence_body(view, view.username)


@blp.route("/me/absence", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="no absence set")
@requires(TASKS_WORK)
def end_my_absence() -> None:
    """Back early (or the leave is called off): your tasks are yours alone again."""
    current_app.extensions["creditflow"].absences.end(current_principal())
