"""File downloads: the name survives any characters (RFC 5987), browsers never sniff the type, and
the SHA-256 travels along so a client can check what it stored."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response


def file_response(content: bytes, name: str, media_type: str, sha256: str) -> Response:
    response = Response(content, mimetype=media_type)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Digest"] = f"sha-256={sha256}"
    return response
