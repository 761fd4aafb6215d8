"""Liveness/readiness: answers without a token so load balancers can probe it."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from sqlalchemy import text

from api.schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Health")


@blp.route("/health")
@blp.response(200, HealthSchema)
@blp.doc(security=[])
def health() -> dict[str, str]:
    platform = current_app.extensions["creditflow"]
    with platform.db.transaction() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "database": platform.db.engine.dialect.name}
