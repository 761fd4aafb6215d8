"""What an absence (休假代理) looks like on the wire, for the caller's own (``/auth/me/absence``) and for
one a supervisor or administrator sets (``/admin/users/{id}/absence``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from api.integers import Integer
from engine.errors import NotFound
from engine.services.absences import AbsenceRequest, AbsenceView


class UserRefField(fields.Field):
    """A user by id (a number) or by username (a string)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError("a user id or a username")
        if isinstance(value, int):
            return Integer()._deserialize(value, attr, data, **kwargs)
        if not value.strip() or len(value) > 100:
            raise ValidationError("a username of 1 to 100 characters")
        return value.strip()


class AbsenceRequestSchema(Schema):
    starts_at = fields.AwareDateTime(required=True, metadata={"description": "when the leave starts"})
    ends_at = fields.AwareDateTime(
        required=True, metadata={"description": "when the user is back: after starts_at, at most 90 days later"}
    )
    substitute = UserRefField(
        required=True,
        metadata={"description": "who covers meanwhile: an active colleague's username or user id", "type": "string"},
    )
    note = fields.String(
        load_default="", validate=validate.Length(max=200), metadata={"description": "年假、培训、出差…"}
    )


class AbsenceSchema(Schema):
    username = fields.String(metadata={"description": "the absent user"})
    substitute = fields.String(metadata={"description": "the substitute's username"})
    substitute_name = fields.String()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    note = fields.String()
    in_force = fields.Boolean(metadata={"description": "the substitute covers now"})
    set_by = fields.String(allow_none=True)
    set_at = fields.DateTime()


def absence_request(body: dict[str, Any]) -> AbsenceRequest:
    return AbsenceRequest(body["starts_at"], body["ends_at"], body["substitute"], body["note"])


def absence_body(view: AbsenceView | None, username: str | int) -> dict[str, Any]:
    """The absence, or 404 when the user has none set."""
    if view is None:
        raise NotFound(f"{username} has no absence set")
    return asdict(view)
