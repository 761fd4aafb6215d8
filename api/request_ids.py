"""A request id on every answer and in every log line a request writes, so an operator can find what
a user quotes ("the error was logged") among many nodes' logs."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a caller's (or load balancer's) id, if it is a plain token


def current_request_id() -> str | None:
    return getattr(g, "request_id", None) if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (``-`` outside a request: the scheduler, the CLI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


def install(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def _answer(response: Response) -> Response:
        if (request_id := current_request_id()) is not None:
            response.headers[HEADER] = request_id
        return response
