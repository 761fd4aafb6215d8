"""The HTTP edge: a Flask app over one CreditFlow platform object. Views parse, call one service, serialize."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from api import request_ids
from api.integers import PathInteger
from api.json_provider import JsonProvider, JsonRequest
from api.problems import from_domain_error, from_http_exception, problem
from api.request_screening import screen_request
from api.schemas import ProblemSchema
from api.security import authenticate_request
from api.views import (
    admin,
    api_keys,
    auth,
    catalog_changes,
    definitions,
    documents,
    health,
    incidents,
    instances,
    lpr_quotes,
    monitor,
    notifications,
    org_changes,
    organization,
    products,
    publication_requests,
    tasks,
    webhooks,
)
from engine.errors import CreditFlowError
from engine.masking import install_log_masking

log = logging.getLogger(__name__)


class CreditFlowFlask(Flask):
    json_provider_class = JsonProvider
    request_class = JsonRequest


class CreditFlowApi(Api):
    """flask-smorest with RFC 9457 problem bodies instead of its default error JSON."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return from_http_exception(error)


def create_app(platform: Any) -> Flask:
    install_log_masking()
    app = CreditFlowFlask(__name__)
    app.url_map.converters["int"] = PathInteger  # before any route is added
    settings = platform.settings
    app.config.update(
        API_TITLE="CreditFlow API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/",
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}, {"apiKey": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            },
        },
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
    )
    app.extensions["creditflow"] = platform
    api = CreditFlowApi(app)
    blueprints = (health, auth, definitions, instances, tasks, products, publication_requests, admin, organization)
    blueprints += (api_keys,)
    trails = (catalog_changes, org_changes)
    for module in (*blueprints, monitor, incidents, webhooks, documents, *trails, notifications, lpr_quotes):
        api.register_blueprint(module.blp)
    api.register_blueprint(tasks.files)
    api.register_blueprint(monitor.escalations_blp)
    api.register_blueprint(publication_requests.worklist)

    request_ids.install(app)  # first: every answer below, errors included, carries the id

    @app.before_request
    def _limits_and_auth() -> None:
        if request.is_json:  # application/json and every +json type the parser reads alike
            if (request.content_length or 0) > settings.max_json_body_bytes:
                raise RequestEntityTooLarge(f"JSON bodies are limited to {settings.max_json_body_bytes} bytes")
            request.max_content_length = settings.max_json_body_bytes  # a chunked body, too
        authenticate_request()
        screen_request()

    app.register_error_handler(CreditFlowError, from_domain_error)
    app.register_error_handler(HTTPException, from_http_exception)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        detail = (  # it may have committed
            f"the error was logged under request id {request_ids.current_request_id()}; "
            "read the resource back before retrying a change"
        )
        return problem(500, "Internal server error", detail)

    return app
