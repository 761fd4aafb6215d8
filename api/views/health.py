"""Readiness: answers without a token so load balancers can probe it, and 503 when this node cannot
serve (its database does not answer, or is not migrated to the code's schema), so they stop sending
it requests that could only fail."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from api.blueprint import Blueprint
from api.schemas import HealthSchema
from engine.errors import Unavailable
from engine.store.migrate import current_revision, head_revision

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Health")


@blp.route("/health")
@blp.response(200, HealthSchema)
@blp.alt_response(503, description="the database does not answer, or its schema is not this code's")
@blp.doc(security=[])
def health() -> dict[str, str | None]:
    platform = current_app.extensions["creditflow"]
    try:
        current = current_revision(platform.db)
    except SQLAlchemyError as exc:
        raise Unavailable("the database does not answer") from exc
    if current != head_revision():
        raise Unavailable(
            f"the database schema is at migration {current or '(none)'}, this code needs {head_revision()}: "
            "run creditflow db upgrade"
        )
    return {"status": "ok", "database": platform.db.engine.dialect.name, "schema": current}
