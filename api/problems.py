"""RFC 9457 problem responses for every error the API returns."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from werkzeug.exceptions import HTTPException

from engine.errors import CreditFlowError

PROBLEM_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    problems: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    problem_type: str = "about:blank",
) -> Response:
    body: dict[str, Any] = {"type": problem_type, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if problems:
        body["errors"] = problems
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain_error(exc: CreditFlowError) -> Response:
    headers = {
        401: {"WWW-Authenticate": 'Bearer realm="creditflow", ApiKey realm="creditflow"'},
        503: {"Retry-After": "1"},  # another writer held the records; they are usually free within a second
    }.get(exc.status)
    return problem(exc.status, exc.title, exc.detail, exc.problems, headers, exc.problem_type)


def from_http_exception(exc: HTTPException) -> Response:
    """Werkzeug and webargs errors; webargs puts per-field messages in ``exc.data['messages']``."""
    data = getattr(exc, "data", None) or {}
    problems = flatten_messages(data.get("messages") or {})
    detail = exc.description if not problems else "the request has invalid fields"
    status = exc.code or 500
    return problem(status, exc.name, detail, problems, dict(data.get("headers") or {}))


def flatten_messages(messages: Any, prefix: str = "", *, located: bool = False) -> list[dict[str, Any]]:
    """``{"json": {"data": {"amount": ["Not a valid number."]}}}`` → ``[{"field": "data.amount", …}]``.

    Only the outermost keys are webargs locations: a body field named ``query`` (a saved filter's)
    is a field like any other."""
    found: list[dict[str, Any]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not located and key in ("json", "query", "files", "form", "headers", "view_args"):
                found.extend(flatten_messages(value, "", located=True))
                continue
            name = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            found.extend(flatten_messages(value, name, located=True))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        found.extend({"field": prefix or "body", "message": m} for m in messages)
    elif isinstance(messages, list):
        for item in messages:
            found.extend(flatten_messages(item, prefix, located=True))
    else:
        found.append({"field": prefix or "body", "message": str(messages)})
    return found
