"""Documents of an instance (the contract as Word, PDF and sealed PDF), seal verification, and the
archived loan file of an ended instance."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from marshmallow import Schema, fields

from api.blueprint import Blueprint
from api.files import file_response
from api.integers import Integer
from api.security import current_principal, requires
from engine.errors import InvalidInput
from engine.org.roles import AUDIT_READ, INSTANCES_READ

blp = Blueprint("documents", __name__, url_prefix="/api/v1", description="Contracts, seals and archived loan files")


class DocumentSchema(Schema):
    id = fields.String()
    instance_id = fields.String()
    kind = fields.String(metadata={"description": "contract_docx | contract_pdf | contract_sealed"})
    name = fields.String()
    media_type = fields.String()
    size = Integer()
    sha256 = fields.String()
    contract_no = fields.String(allow_none=True)
    template = fields.String(allow_none=True)
    source_id = fields.String(allow_none=True, metadata={"description": "the document this one was made from"})
    details = fields.Dict(metadata={"description": "for a sealed PDF: signer, signed_at, field"})
    created_at = fields.DateTime()
    voided_at = fields.DateTime(
        allow_none=True,
        metadata={
            "description": "when the contract became void (作废): its application ended without the money moving "
            "(withdrawn, lapsed, cancelled, aborted); null for a contract that stands"
        },
    )
    void_reason = fields.String(
        allow_none=True, metadata={"description": "how the application ended, e.g. 'withdrawn: 借款人放弃签约'"}
    )


class DocumentListSchema(Schema):
    items = fields.List(fields.Nested(DocumentSchema))


class VoidSchema(Schema):
    at = fields.DateTime()
    reason = fields.String()


class VerificationSchema(Schema):
    status = fields.String(
        metadata={
            "description": "valid | tampered | untrusted | unsigned | invalid: the cryptography's verdict on the "
            "seals, which a void contract keeps (see binding)"
        }
    )
    summary = fields.String()
    signatures = fields.List(fields.Dict(), metadata={"description": "signer, times, integrity, coverage"})
    document_id = fields.String()
    sha256_matches = fields.Boolean(metadata={"description": "the stored file still has its recorded SHA-256"})
    binding = fields.Boolean(
        metadata={
            "description": "a stored document's verdict for business use: true only if its seal is valid, the file "
            "is the one stored, and the contract is not void. A void contract's seal still verifies (status valid), "
            "but it binds neither the bank nor the borrower. For a PDF handed in (POST /documents/verify), present "
            "when its bytes are those of a document the caller reads; absent otherwise (judged on its seals alone)"
        }
    )
    void = fields.Nested(
        VoidSchema,
        allow_none=True,
        metadata={"description": "a stored document's voiding (when, why); null if it is not void"},
    )


class UploadSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ArchiveSchema(Schema):
    instance_id = fields.String()
    outcome = fields.String(
        metadata={"description": "approved | rejected | aborted | withdrawn | cancelled | completed"}
    )
    name = fields.String()
    size = Integer()
    sha256 = fields.String()
    file_count = Integer()
    timestamped_at = fields.DateTime(allow_none=True)
    retention_until = fields.Date()
    created_at = fields.DateTime()
    evidence_expires_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "when the newest timestamp's TSA certificate expires; renewed ahead of it"},
    )
    renewals = Integer(metadata={"description": "timestamp renewals appended to the bag so far"})
    renewed_at = fields.DateTime(allow_none=True)


class ArchiveReportSchema(Schema):
    ok = fields.Boolean()
    summary = fields.String()
    checks = fields.List(fields.Dict(), metadata={"description": "each check: name, ok, details"})
    instance_id = fields.String()


def _platform() -> Any:
    return current_app.extensions["creditflow"]


def _upload() -> bytes:
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("send the file as multipart field 'file'", [{"field": "file", "message": "missing"}])
    return upload.read()


@blp.route("/process-instances/<instance_id>/documents", methods=["GET"])
@blp.response(200, DocumentListSchema)
@blp.alt_response(404, description="no such instance (or another tenant's)")
@requires(INSTANCES_READ)
def list_documents(instance_id: str) -> dict[str, Any]:
    return {"items": _platform().documents.list(current_principal(), instance_id)}


@blp.route("/documents/<document_id>", methods=["GET"])
@blp.response(200, DocumentSchema)
@blp.alt_response(404, description="no such document (or another tenant's)")
@requires(INSTANCES_READ)
def get_document(document_id: str) -> Any:
    return _platform().documents.get(current_principal(), document_id)


@blp.route("/documents/<document_id>/content", methods=["GET"])
@blp.response(200, description="the file")
@blp.alt_response(404, description="no such document (or another tenant's)")
@requires(INSTANCES_READ)
def download_document(document_id: str) -> Response:
    view, content = _platform().documents.content(current_principal(), document_id)
    return file_response(content, view.name, view.media_type, view.sha256)


@blp.route("/documents/<document_id>/verify", methods=["POST"])
@blp.response(200, VerificationSchema)
@blp.alt_response(404, description="no such document (or another tenant's)")
@blp.alt_response(422, description="the document is not a PDF")
@requires(INSTANCES_READ)
def verify_document(document_id: str) -> Any:
    return _platform().documents.verify(current_principal(), document_id)


@blp.route("/documents/verify", methods=["POST"])
@blp.arguments(UploadSchema, location="files")
@blp.response(200, VerificationSchema)
@blp.alt_response(422, description="no file, or too large")
@requires(INSTANCES_READ)
def verify_upload(_files: dict[str, Any]) -> Any:
    """Check the seal of a PDF someone hands in (a customer's copy, say) against the platform's CA; a
    copy of a document the caller reads is also judged as that document (void, binding)."""
    return _platform().documents.verify_upload(current_principal(), _upload())


@blp.route("/archives/<instance_id>", methods=["GET"])
@blp.response(200, ArchiveSchema)
@blp.alt_response(404, description="not archived (yet), or another tenant's")
@requires(AUDIT_READ)
def get_archive(instance_id: str) -> Any:
    return _platform().archives.get(current_principal(), instance_id)


@blp.route("/archives/<instance_id>/content", methods=["GET"])
@blp.response(200, description="the BagIt zip")
@blp.alt_response(404, description="not archived (yet), or another tenant's")
@requires(AUDIT_READ)
def download_archive(instance_id: str) -> Response:
    view, content = _platform().archives.content(current_principal(), instance_id)
    return file_response(content, view.name, "application/zip", view.sha256)


@blp.route("/archives/<instance_id>/verify", methods=["POST"])
@blp.response(200, ArchiveReportSchema)
@blp.alt_response(404, description="not archived (yet), or another tenant's")
@requires(AUDIT_READ)
def verify_archive(instance_id: str) -> Any:
    return _platform().archives.verify(current_principal(), instance_id)
