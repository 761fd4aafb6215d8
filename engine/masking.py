"""Masking of personal numbers and credentials, shared by the audit trail and the logs.

Logs and audit payloads leave the database (log shipping, exports, support tickets), so resident
ID and bank card numbers are cut down to what a person needs to recognise them (first 6 and last 4),
and credentials are removed outright. One set of patterns serves both places so that what is
considered sensitive cannot drift apart.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[REDACTED]"

# A resident ID (17 digits and a check digit or X) or a bank card number (16-19 digits), bounded by
# anything but an ASCII letter or digit: Chinese text around a number must not hide it.
_NUMBER = re.compile(r"(?<![A-Za-z0-9])(?:\d{17}[\dXx]|\d{16,19})(?![A-Za-z0-9])")
# JWT: base64url header (always starting '{"' → "eyJ"), payload and signature joined by dots.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# "Bearer <token>" / "ApiKey <key>"; short words ("a bearer token is required") are left alone.
_SCHEME = re.compile(r"\b(bearer|apikey)(\s+)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE)
# An API key anywhere (e.g. an X-API-Key header): its prefix is public and stays, the secret goes.
_API_KEY = re.compile(r"\b(cfk_[A-Za-z0-9]+_)[A-Za-z0-9_-]+")
_CREDENTIAL_NAME = r"\w*(?:password|passwd|secret)\w*"
_CREDENTIAL_KEY = re.compile(rf"^{_CREDENTIAL_NAME}$", re.IGNORECASE)
# password=value, "password": "value", 'new_password': '...' (Python reprs), secret_key=...
_CREDENTIAL_ASSIGNMENT = re.compile(
    rf"""(?P<key>\b{_CREDENTIAL_NAME}["']?\s*[:=]\s*)(?:(?P<q>["'])(?:\\.|(?!(?P=q)).)*(?P=q)|[^\s&,;"'}}]+)""",
    re.IGNORECASE,
)


def mask_number(number: str) -> str:
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def _redact_assignment(match: re.Match[str]) -> str:
    quote = match.group("q") or ""
    return f"{match.group('key')}{quote}{REDACTED}{quote}"


def mask_text(text: str) -> str:
    """Credentials first (a JWT may contain digit runs), then ID and card numbers."""
    text = _JWT.sub(REDACTED, text)
    text = _SCHEME.sub(rf"\1\2{REDACTED}", text)
    text = _API_KEY.sub(rf"\1{REDACTED}", text)
    text = _CREDENTIAL_ASSIGNMENT.sub(_redact_assignment, text)
    return _NUMBER.sub(lambda m: mask_number(m.group()), text)


def mask_sensitive(value: Any) -> Any:
    """Mask a JSON-like payload (audit events, lists): strings as text, values of secret keys entirely."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _CREDENTIAL_KEY.match(k) else mask_sensitive(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_sensitive(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


class MaskingFilter(logging.Filter):
    """Replaces each record's message, arguments and traceback text with their masked form.

    It works on the final message, so secrets passed as ``%s`` arguments or inside exception
    messages are caught as well as literal ones. Handlers after this one see the masked record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def install_log_masking() -> None:
    """Put the filter on every root handler (and Python's last-resort handler); safe to call twice.

    Loggers propagate to the root, so this covers the application's loggers, werkzeug's request
    lines and libraries alike.
    """
    handlers = [*logging.getLogger().handlers, *([logging.lastResort] if logging.lastResort else [])]
    for handler in handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())


def quiet_workflow_loggers() -> None:
    """SpiffWorkflow logs every task state change at INFO, and while its loggers' own level is unset it
    puts each task's data (ID numbers and all) and every task id into the record's extras, which the
    message filter above never sees and a JSON log formatter would write out. The audit trail keeps
    what happened; the engine's loggers say only what goes wrong."""
    for name in ("spiff.task", "spiff.workflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
