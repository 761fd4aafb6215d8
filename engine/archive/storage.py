"""Write-once blob storage for archives and documents: a local folder or an S3 bucket.

Archived evidence must never change once written, so ``put`` refuses to replace a key with different
content and is a no-op for identical content (a retried job just succeeds).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_KEY_LENGTH = 512
_FILE_MODE = 0o640
_FOLDER_MODE = 0o750


@dataclass(frozen=True)
class StoredBlob:
    key: str
    sha256: str  # hex
    size: int


class BlobConflict(RuntimeError):
    """The key already holds different content; archives are write-once."""


class BlobNotFound(LookupError):
    pass


class BlobStorage(Protocol):
    def put(self, key: str, data: bytes) -> StoredBlob: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Only for cleaning up after a failed run; archived blobs are kept."""
        ...


def check_key(key: str) -> str:
    """Keys are ``/``-separated segments of ``[A-Za-z0-9._-]`` not starting with a dot: portable, no traversal."""
    segments = key.split("/")
    if len(key) > _MAX_KEY_LENGTH or not all(_SEGMENT.match(segment) for segment in segments):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def _describe(key: str, data: bytes) -> StoredBlob:
    return StoredBlob(key, hashlib.sha256(data).hexdigest(), len(data))


class LocalStorage:
    """Files under ``root``; each put is atomic (temporary file, fsync, then a link that cannot overwrite)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> StoredBlob:
        target = self._path(key)
        blob = _describe(key, data)
        if target.exists():
            return self._same_or_conflict(target, blob)
        target.parent.mkdir(parents=True, exist_ok=True, mode=_FOLDER_MODE)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fchmod(stream.fileno(), _FILE_MODE)
                os.fsync(stream.fileno())
            try:
                # os.link, unlike os.replace, fails if the key appeared meanwhile: a concurrent put cannot be lost.
                os.link(temporary, target)
            except FileExistsError:
                return self._same_or_conflict(target, blob)
        finally:
            os.unlink(temporary)
        _fsync_folder(target.parent)
        return blob

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @staticmethod
    def _same_or_conflict(target: Path, blob: StoredBlob) -> StoredBlob:
        if _describe(blob.key, target.read_bytes()) != blob:
            raise BlobConflict(f"{blob.key} already exists with different content")
        return blob


def _fsync_folder(folder: Path) -> None:
    """Make the new directory entry durable, not just the file's bytes."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class S3Storage:
    """An S3 (or S3-compatible) bucket via boto3; writes are conditional (If-None-Match) and checksummed."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None, prefix: str = "", client: Any = None) -> None:
        try:  # optional dependency, imported only when S3 is configured
            from botocore.exceptions import ClientError

            if client is None:
                import boto3

                client = boto3.client("s3", endpoint_url=endpoint_url)
        except ImportError as exc:
            raise RuntimeError("S3 storage needs boto3: pip install boto3") from exc
        self.bucket = bucket
        self.prefix = check_key(prefix.strip("/")) + "/" if prefix.strip("/") else ""
        self._client = client
        self._client_error = ClientError

    def put(self, key: str, data: bytes) -> StoredBlob:
        blob = _describe(key, data)
        if self.exists(key):
            return self._same_or_conflict(blob)
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._name(key),
                Body=data,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                Metadata={"sha256": blob.sha256},
                IfNoneMatch="*",
            )
        except self._client_error as exc:
            if _error_code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                raise
            return self._same_or_conflict(blob)
        return blob

    def get(self, key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self._client_error as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from None
            raise
        data: bytes = response["Body"].read()
        expected = response.get("Metadata", {}).get("sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise OSError(f"{key}: content does not match its stored SHA-256")
        return data

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except self._client_error as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _same_or_conflict(self, blob: StoredBlob) -> StoredBlob:
        if _describe(blob.key, self.get(blob.key)) != blob:
            raise BlobConflict(f"{blob.key} already exists with different content")
        return blob


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def storage_from_settings(data_dir: Path, url: str | None) -> BlobStorage:
    """``None`` or ``file://[/path]`` -> LocalStorage (default ``<data_dir>/blobs``);
    ``s3://bucket/prefix?endpoint=https://host`` -> S3Storage."""
    if not url:
        return LocalStorage(data_dir / "blobs")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or (parts.path and not parts.path.startswith("/")):
            raise ValueError(f"storage URL {url!r}: use file:///absolute/path")
        return LocalStorage(Path(parts.path) if parts.path else data_dir / "blobs")
    if parts.scheme == "s3":
        query = parse_qs(parts.query, strict_parsing=bool(parts.query))
        endpoint = query.pop("endpoint", [None])[-1]
        if not parts.netloc or query or (endpoint and urlsplit(endpoint).scheme not in ("http", "https")):
            raise ValueError(f"storage URL {url!r}: use s3://bucket/prefix?endpoint=https://host")
        return S3Storage(parts.netloc, endpoint_url=endpoint, prefix=parts.path)
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path or s3://bucket/prefix")
