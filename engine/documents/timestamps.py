"""RFC 3161 time stamps: an in-process development TSA, its WSGI face, and the choice of timestamper.

A seal's timestamp proves the document existed, sealed, at that time, even after the seal certificate
expires. Development uses the TSA key of the development PKI in-process (no HTTP round trip per seal);
production points ``tsa_url`` at a real TSA (a licensed CA's or the national time service's).

pyHanko's DummyTimeStamper is RSA-only and re-parses its key on every request (~40 ms for RSA-2048);
`LocalTimeStamper` keeps the parsed key and honours certReq, nonce and the requested hash as RFC 3161 asks.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from pyhanko.sign.timestamps.common_utils import handle_tsp_response

from engine.documents.pki import Pki, SealConfig

# A UUID-based OID (X.667 arc 2.25) names the development TSA policy without registering an enterprise number.
TSA_POLICY = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'urn:creditflow:tsa-policy:development').int}"
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_MAX_QUERY_BYTES = 16 * 1024  # a TimeStampReq is ~60-200 bytes; anything much larger is not one

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class LocalTimeStamper(TimeStamper):
    """An RFC 3161 TSA answering in-process with an RSA key held in memory; safe to share between threads."""

    def __init__(self, tsa_cert: x509.Certificate, tsa_key: RSAPrivateKey, chain: list[x509.Certificate]) -> None:
        super().__init__()
        self.tsa_cert = tsa_cert
        self._key = tsa_key
        self._chain = chain
        # Encoded once: asn1crypto re-encodes values built from Python objects (~10 ms a token), not loaded ones.
        self._signing_certificate = simple_cms_attribute(
            "signing_certificate_v2", as_signing_certificate_v2(tsa_cert)
        ).dump()

    @classmethod
    def for_pki(cls, pki: Pki) -> LocalTimeStamper:
        return cls(pki.tsa_cert, pki.tsa_key, [pki.root])

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return self.request_tsa_response(req)

    def reply(self, query: bytes) -> bytes:
        """DER TimeStampResp for a DER TimeStampReq; unreadable queries get a 'rejection' reply, as RFC 3161 says."""
        try:
            request = tsp.TimeStampReq.load(query)
            request.native  # asn1crypto parses lazily: force it so malformed input fails here  # noqa: B018
        except (ValueError, TypeError):
            return _rejection("bad_data_format", "not a DER TimeStampReq").dump()
        return self.request_tsa_response(request).dump()

    def request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if _DIGEST_SIZES.get(algorithm) != len(imprint["hashed_message"].native):
            return _rejection("bad_alg", f"hash algorithm {algorithm} unsupported or digest length wrong")
        policy = req["req_policy"].native
        if policy is not None and policy != TSA_POLICY:
            return _rejection("unaccepted_policy", f"policy {policy} is not offered")
        info = {
            "version": "v1",
            "policy": TSA_POLICY,
            "message_imprint": imprint,
            "serial_number": secrets.randbits(127),
            "gen_time": datetime.now(UTC),
            "tsa": x509.GeneralName(name="directory_name", value=self.tsa_cert.subject),
        }
        if req["nonce"].native is not None:
            info["nonce"] = req["nonce"]
        tst_info = tsp.TSTInfo(info).dump()
        token = cms.ContentInfo({"content_type": "signed_data", "content": self._signed_data(tst_info, req)})
        return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})

    def _signed_data(self, tst_info: bytes, req: tsp.TimeStampReq) -> cms.SignedData:
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("message_digest", hashlib.sha256(tst_info).digest()),
                cms.CMSAttribute.load(self._signing_certificate),
            ]
        )
        signature = self._key.sign(signed_attrs.dump(), PKCS1v15(), hashes.SHA256())
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": self.tsa_cert.issuer,
                            "serial_number": self.tsa_cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
                "signature": signature,
            }
        )
        data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_info)},
            "signer_infos": [signer_info],
        }
        # RFC 3161 §2.4.1: certificates are sent if and only if the client asked for them
        if req["cert_req"].native:
            data["certificates"] = [self.tsa_cert, *self._chain]
        return cms.SignedData(data)


class _TimeStampResp(tsp.TimeStampResp):
    """asn1crypto makes the token mandatory; RFC 3161 omits it from a rejection."""

    _fields = [  # noqa: RUF012 (asn1crypto's declaration style)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _rejection(fail_info: str, text: str) -> tsp.TimeStampResp:
    status = {"status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({fail_info})}
    return _TimeStampResp({"status": status})


def timestamper(config: SealConfig, pki: Pki) -> TimeStamper:
    """The configured TSA over HTTP, or the in-process development TSA when none is configured."""
    if config.tsa_url:
        return HTTPTimeStamper(config.tsa_url)
    return LocalTimeStamper.for_pki(pki)


def timestamp_token(data: bytes, stamper: TimeStamper) -> bytes:
    """A DER RFC 3161 TimeStampResp over sha256(data), e.g. for an archive's tag manifest.

    Verify with ``openssl ts -verify -data FILE -in TOKEN.tsr -CAfile root.pem``.
    """
    nonce, request = stamper.request_cms(hashlib.sha256(data).digest(), "sha256")
    response = asyncio.run(stamper.async_request_tsa_response(request))
    handle_tsp_response(response, nonce)  # raises TimestampRequestError on refusal or a nonce mismatch
    return response.dump()


def tsa_wsgi_app(pki: Pki) -> WsgiApp:
    """A standalone RFC 3161 TSA over HTTP (POST application/timestamp-query) for local development."""
    stamper = LocalTimeStamper.for_pki(pki)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _plain(start_response, "405 Method Not Allowed", "POST a timestamp query", [("Allow", "POST")])
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != "application/timestamp-query":
            return _plain(start_response, "415 Unsupported Media Type", "expected application/timestamp-query")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if not 0 < length <= _MAX_QUERY_BYTES:
            return _plain(start_response, "400 Bad Request", "Content-Length missing or too large")
        body = stamper.reply(environ["wsgi.input"].read(length))
        start_response("200 OK", [("Content-Type", "application/timestamp-reply"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def _plain(
    start_response: Callable[..., Any], status: str, text: str, extra: list[tuple[str, str]] | None = None
) -> Iterable[bytes]:
    body = text.encode() + b"\n"
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *(extra or [])]
    start_response(status, headers)
    return [body]
