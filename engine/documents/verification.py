"""Verify the signatures in an uploaded PDF offline and say, in one word and in detail, whether to rely on it.

Verification never fetches anything: trust comes from the given roots, revocation data from the PKI's CRL
and the document's own DSS (B-LT). Every failure, including bytes that are not a PDF at all, becomes a
report: the API calls this with uploaded files, so no exception may escape for bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from io import BytesIO
from typing import Any, Literal

from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    SignatureCoverageLevel,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import DocumentTimestampStatus, PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from engine.documents.pki import Pki

Status = Literal["valid", "tampered", "untrusted", "unsigned", "invalid"]
# worst wins when a document carries several signatures
_SEVERITY: dict[str, int] = {"valid": 0, "untrusted": 1, "invalid": 2, "tampered": 3}
_COVERAGE = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire_file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire_revision",
}
_MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class SignatureReport:
    """One signature (or document timestamp) as a verifier sees it; times are UTC-aware."""

    field_name: str
    kind: Literal["signature", "document_timestamp"]
    status: Status
    summary: str
    signer_common_name: str | None = None
    signer_organization: str | None = None
    signing_time: datetime | None = None  # claimed by the signer, not proven
    timestamp_time: datetime | None = None  # asserted by the TSA
    timestamp_valid: bool | None = None  # None: the signature carries no timestamp
    timestamp_trusted: bool | None = None
    intact: bool = False
    valid: bool = False
    trusted: bool = False
    revoked: bool = False
    coverage: str | None = None  # "entire_file" / "entire_revision" / "partial"
    modification_level: str | None = None  # pyHanko's ModificationLevel name, lower case
    docmdp_ok: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class VerificationReport:
    status: Status
    summary: str
    signatures: tuple[SignatureReport, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "signatures": [signature.to_dict() for signature in self.signatures],
        }


def verify_pdf(pdf: bytes, trust: Pki | Iterable[x509.Certificate]) -> VerificationReport:
    """Validate every signature and document timestamp in ``pdf`` against the trust roots, offline."""
    if isinstance(trust, Pki):
        roots, crls = list(trust.trust_roots), [trust.crl_der]
    else:
        roots, crls = list(trust), []
    try:
        reader = PdfFileReader(BytesIO(pdf))  # strict: refuses hybrid-reference files, a known signature attack
        embedded = reader.embedded_signatures
    except Exception as exc:  # any parser failure on uploaded bytes is a verdict, not a crash
        return VerificationReport("invalid", f"Not a readable PDF ({_error_text(exc)}).")
    if not embedded:
        return VerificationReport("unsigned", "The document carries no signature.")
    context = _validation_context(reader, roots, crls)
    reports = tuple(
        _as_of_timestamp(signature, _verify_one(signature, context), reader, roots, crls) for signature in embedded
    )
    worst = max(reports, key=lambda report: _SEVERITY[report.status])
    if worst.status == "valid":
        summary = f"All {len(reports)} signature(s) are intact, valid and trusted; no disallowed changes."
    else:
        summary = f"{worst.field_name}: {worst.summary}"
    return VerificationReport(worst.status, summary, reports)


def _validation_context(
    reader: PdfFileReader, roots: list[x509.Certificate], crls: list[bytes], moment: datetime | None = None
) -> ValidationContext:
    """Trust only ``roots``; take certificates and CRLs from the document's DSS as evidence (they are signed).
    With ``moment``, certificates are judged as of then (the signature timestamp's time), not now."""
    settings: dict[str, Any] = {"trust_roots": roots, "crls": crls, "allow_fetching": False}
    if moment is not None:
        settings["moment"] = moment
    try:
        return DocumentSecurityStore.read_dss(reader).as_validation_context(settings)
    except Exception:  # no DSS (B-T) or a broken one: only optional evidence is lost, signatures are still judged
        return ValidationContext(**settings)


def _verify_one(signature: EmbeddedPdfSignature, context: ValidationContext) -> SignatureReport:
    field_name = str(signature.field_name)
    try:
        if signature.sig_object_type == "/DocTimeStamp":
            return _timestamp_report(field_name, validate_pdf_timestamp(signature, validation_context=context))
        status = validate_pdf_signature(signature, signer_validation_context=context, ts_validation_context=context)
        return _signature_report(field_name, status)
    except Exception as exc:  # malformed CMS, unsupported algorithms (e.g. SM2), broken structures
        return SignatureReport(
            field_name, "signature", "invalid", f"The signature could not be processed ({_error_text(exc)})."
        )


def _as_of_timestamp(
    signature: EmbeddedPdfSignature,
    report: SignatureReport,
    reader: PdfFileReader,
    roots: list[x509.Certificate],
    crls: list[bytes],
) -> SignatureReport:
    """A seal whose certificate has expired since is judged as of its trusted timestamp (long-term
    validation: the TSA proves the seal was made while the certificate was valid; the B-LT file
    carries the certificates and CRL of that time)."""
    # Today the embedded CRLs are stale too, so the timestamp itself is only required to be intact here:
    # the second pass judges the seal's and the TSA's certificates both as of the timestamp's time.
    stamped = report.timestamp_time is not None and report.timestamp_valid
    if report.status != "untrusted" or report.revoked or not (report.intact and report.valid) or not stamped:
        return report
    then = _verify_one(signature, _validation_context(reader, roots, crls, moment=report.timestamp_time))
    if then.status != "valid":
        return report
    when = report.timestamp_time.isoformat() if report.timestamp_time else ""
    return replace(
        then,
        summary=f"{then.summary} Trusted as of its timestamp ({when}); the certificate has expired or lapsed since.",
        timestamp_time=report.timestamp_time,
        timestamp_valid=True,
        timestamp_trusted=True,
    )


def _signature_report(field_name: str, status: PdfSignatureStatus) -> SignatureReport:
    timestamp = status.timestamp_validity
    verdict, summary = _judge(status)
    if verdict == "valid" and timestamp is not None:
        if not (timestamp.intact and timestamp.valid):
            verdict, summary = "invalid", "The signature timestamp does not verify."
        elif not timestamp.trusted:
            verdict, summary = "untrusted", "The signature timestamp's TSA does not chain to a trusted root."
    if verdict == "valid":
        summary += " Timestamped." if timestamp else " No timestamp: the signing time is only claimed."
    common_name, organization = _subject(status.signing_cert)
    return SignatureReport(
        field_name=field_name,
        kind="signature",
        status=verdict,
        summary=summary,
        signer_common_name=common_name,
        signer_organization=organization,
        signing_time=status.signer_reported_dt,
        timestamp_time=timestamp.timestamp if timestamp else None,
        timestamp_valid=(timestamp.intact and timestamp.valid) if timestamp else None,
        timestamp_trusted=timestamp.trusted if timestamp else None,
        **_common(status),
    )


def _timestamp_report(field_name: str, status: DocumentTimestampStatus) -> SignatureReport:
    verdict, summary = _judge(status)
    common_name, organization = _subject(status.signing_cert)
    return SignatureReport(
        field_name=field_name,
        kind="document_timestamp",
        status=verdict,
        summary=summary,
        signer_common_name=common_name,
        signer_organization=organization,
        timestamp_time=status.timestamp,
        timestamp_valid=status.intact and status.valid,
        timestamp_trusted=status.trusted,
        **_common(status),
    )


def _judge(status: PdfSignatureStatus | DocumentTimestampStatus) -> tuple[Status, str]:
    """The one-word verdict, checked from the most to the least serious finding."""
    level = status.modification_level
    if not status.intact:
        return "tampered", "The signed bytes were changed after signing (digest mismatch)."
    if status.docmdp_ok is False or level == ModificationLevel.OTHER:
        return "tampered", "The document was modified after signing in a way its signature does not permit."
    if not status.valid:
        return "invalid", "The cryptographic signature does not verify."
    if status.coverage not in _COVERAGE:
        return "invalid", "The signature does not cover its whole revision; the uncovered bytes cannot be relied on."
    if status.revoked:
        return "untrusted", "The signer's certificate has been revoked."
    if not status.trusted:
        return "untrusted", "The signer's certificate does not chain to a trusted root (or is expired or misused)."
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return "valid", "Intact, valid and trusted; covers the entire file."
    changes = "validation data only" if level == ModificationLevel.LTA_UPDATES else "permitted changes only"
    return "valid", f"Intact, valid and trusted; later revisions add {changes}."


def _common(status: PdfSignatureStatus | DocumentTimestampStatus) -> dict[str, Any]:
    level = status.modification_level
    return {
        "intact": status.intact,
        "valid": status.valid,
        "trusted": status.trusted,
        "revoked": status.revoked,
        "coverage": _COVERAGE.get(status.coverage, "partial"),  # type: ignore[arg-type]
        "modification_level": level.name.lower() if level is not None else None,
        "docmdp_ok": status.docmdp_ok,
    }


def _subject(cert: x509.Certificate) -> tuple[str | None, str | None]:
    names = cert.subject.native

    def joined(key: str) -> str | None:
        value = names.get(key)
        return ", ".join(value) if isinstance(value, list) else value

    return joined("common_name"), joined("organization_name")


def _error_text(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "…"
