"""Build a loan file's archive: a zipped BagIt bag (RFC 8493) with a sealed, time-stamped tag manifest.

Why this shape: one CMS signature and one RFC 3161 timestamp over ``tagmanifest-sha256.txt`` cover every
file, because the tag manifest hashes ``manifest-sha256.txt``, which hashes every payload file. An
auditor needs only ``sha256sum`` and ``openssl`` (see ``auditor_readme``).
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import unicodedata
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7

PAYLOAD_DIR = "data"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = "tagmanifest-sha256.txt.p7s"
TIMESTAMP = "tagmanifest-sha256.txt.tsr"
README = "README.txt"
CA_PEM = "ca.pem"
RENEWALS_DIR = "timestamp-renewals"  # later timestamps over the evidence, see engine.archive.renewal
# They sign the tag manifest, so the tag manifest cannot list them (BagIt allows unlisted tag files).
UNLISTED_TAG_FILES = frozenset({SIGNATURE, TIMESTAMP})
BAGIT_DECLARATION = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
COMPUTED_INFO = ("Bagging-Date", "Payload-Oxum", "Bag-Size")
REQUIRED_INFO = ("Source-Organization", "External-Identifier")
BANK_ZONE = ZoneInfo("Asia/Shanghai")

# The auditor's commands, run with bash inside the bag folder. README.txt prints them and the tests run them.
CMD_HASHES = "sha256sum -c tagmanifest-sha256.txt && sha256sum -c manifest-sha256.txt"
CMD_COMPLETENESS = "comm -3 <(cut -d' ' -f3- manifest-sha256.txt | sort) <(find data -type f | sort)"
CMD_TIMESTAMP = "openssl ts -verify -data tagmanifest-sha256.txt -in tagmanifest-sha256.txt.tsr -CAfile ca.pem"
CMD_TIMESTAMP_TIME = "openssl ts -reply -in tagmanifest-sha256.txt.tsr -text | grep 'Time stamp'"
# The seal is checked as of the timestamp's time: its certificate may have expired since (long-term validation).
CMD_SEALED_AT = (
    'SEALED_AT=$(date -d "$(openssl ts -reply -in tagmanifest-sha256.txt.tsr -text'
    " | sed -n 's/^Time stamp: //p')\" +%s)"
)
CMD_SIGNATURE = (
    "openssl cms -verify -binary -inform DER -in tagmanifest-sha256.txt.p7s"
    ' -content tagmanifest-sha256.txt -CAfile ca.pem -purpose any -attime "$SEALED_AT" -out /dev/null'
)
CMD_CA_FINGERPRINT = "openssl x509 -in ca.pem -noout -fingerprint -sha256"

_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})  # incl. CR/LF, NUL, U+202E (spoofs extensions), U+2028
_DRIVE = re.compile(r"^[A-Za-z]:")
_INFO_LABEL = re.compile(r"^[^:\s][^:\r\n]*(?<!\s)$")


def path_problem(path: str) -> str | None:
    """Why ``path`` is unsafe as a relative file path in a bag, or None.

    Besides traversal, this refuses what would make the BagIt manifest and ``sha256sum`` disagree:
    ``%``, CR and LF are percent-encoded by BagIt but not by sha256sum, and a backslash is an escape for it.
    """
    if not path:
        return "empty path"
    if path.startswith("/") or _DRIVE.match(path):
        return "absolute path"
    if "\\" in path:
        return "backslash in path"
    if any(unicodedata.category(char) in _INVISIBLE for char in path):
        return "control, format or line-separator character in path"
    if "%" in path:
        return "percent sign in path"
    if not unicodedata.is_normalized("NFC", path):
        return "path is not NFC-normalised Unicode"
    for segment in path.split("/"):
        if segment == "":
            return "empty path segment"
        if segment in (".", ".."):
            return f"'{segment}' path segment"
    return None


def safe_name(name: str) -> str:
    """A user's file name as one path segment that ``path_problem`` accepts (NFC, no separators, no
    control or percent characters); what cannot stay becomes ``_``."""
    normal = unicodedata.normalize("NFC", name)
    kept = "".join("_" if char in "/\\%" or unicodedata.category(char) in _INVISIBLE else char for char in normal)
    return kept.strip(" .") or "file"


@dataclass(frozen=True)
class BagFile:
    """One payload file; ``path`` is relative to ``data/``, e.g. ``contract/借款合同.pdf``."""

    path: str
    content: bytes

    def __post_init__(self) -> None:
        problem = path_problem(self.path)
        if problem:
            raise ValueError(f"unsafe bag path {self.path!r}: {problem}")


class ManifestSigner(Protocol):
    """The bank's seal over the tag manifest, plus a trusted time for it."""

    ca_pem: bytes | None  # root certificate(s) to ship as ca.pem for auditors, if any

    def sign(self, data: bytes) -> bytes:
        """DER CMS SignedData, detached, over ``data``."""
        ...

    def timestamp(self, data: bytes) -> bytes:
        """DER RFC 3161 TimeStampResp whose message imprint is the SHA-256 of ``data``."""
        ...


class TimestampError(RuntimeError):
    """The TSA refused the request or answered for something else."""


class KeyManifestSigner:
    """Seal with a private key in process; ``timestamp`` is the TSA transport.

    ``timestamp`` receives a DER TimeStampReq and returns the TSA's DER TimeStampResp (an HTTP POST to a
    real TSA, or a test TSA in process); this class builds the request and checks the answer.
    """

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        timestamp: Callable[[bytes], bytes],
        ca_pem: bytes | None,
    ) -> None:
        if _public_der(private_key.public_key()) != _public_der(certificate.public_key()):
            raise ValueError("the seal key does not match the seal certificate")
        self._key = private_key
        self._certificate = certificate
        self._chain = tuple(chain)
        self._tsa = timestamp
        self.ca_pem = ca_pem

    def sign(self, data: bytes) -> bytes:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(self._certificate, self._key, hashes.SHA256())
        for certificate in self._chain:
            builder = builder.add_certificate(certificate)
        options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
        return builder.sign(serialization.Encoding.DER, options)

    def timestamp(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        nonce = secrets.randbits(63)
        request = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
                "nonce": nonce,
                "cert_req": True,
            }
        )
        answer = self._tsa(request.dump())
        response = tsp.TimeStampResp.load(answer)
        status = response["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            raise TimestampError(f"TSA refused the request: {status} {response['status']['status_string'].native}")
        info = response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        if info["message_imprint"]["hashed_message"].native != digest or info["nonce"].native != nonce:
            raise TimestampError("TSA answered for a different request (message imprint or nonce)")
        return answer


def build_bag(
    files: Sequence[BagFile],
    *,
    info: Mapping[str, str],
    signer: ManifestSigner,
    readme: str,
    name: str | None = None,
    bagging_date: date | None = None,
) -> bytes:
    """The bag as a zip under ``<name>/`` (default: the External-Identifier).

    ``info`` must hold Source-Organization and External-Identifier; ``bagging_date`` defaults to today in
    China. Same inputs and date give the same zip apart from the .p7s and .tsr files.
    """
    bagging_date = bagging_date or datetime.now(BANK_ZONE).date()
    info_lines = _bag_info(files, info, bagging_date)
    name = name if name is not None else info.get("External-Identifier", "")
    if "/" in name or path_problem(name):
        raise ValueError(f"unsafe bag name {name!r}")
    payload = _payload(files)
    tag_files = {
        BAGIT_TXT: BAGIT_DECLARATION,
        BAG_INFO: info_lines,
        MANIFEST: sha256_manifest(payload),
        README: readme.encode(),
    }
    if signer.ca_pem:
        tag_files[CA_PEM] = signer.ca_pem
    tag_manifest = sha256_manifest(tag_files)
    entries = {
        BAGIT_TXT: tag_files.pop(BAGIT_TXT),
        BAG_INFO: tag_files.pop(BAG_INFO),
        MANIFEST: tag_files.pop(MANIFEST),
        TAG_MANIFEST: tag_manifest,
        SIGNATURE: signer.sign(tag_manifest),
        TIMESTAMP: signer.timestamp(tag_manifest),
        **tag_files,
        **payload,
    }
    return _zip(name, entries, bagging_date)


def auditor_readme(identifier: str, *, organization: str = "", ca_included: bool = True) -> str:
    """Default README.txt: what the bag is and how to check it with standard tools (Chinese + English)."""
    if ca_included:
        ca_zh = (
            "本包附带的 ca.pem 仅为方便核验，不能证明自身可信：请先将其指纹与本行公布的根证书指纹比对，"
            "或改用公布的根证书文件。"
        )
        ca_en = (
            "The ca.pem in this bag is a convenience copy and proves nothing by itself: compare its fingerprint"
            " with the root certificate(s) the bank publishes, or use the published file as ca.pem instead."
        )
    else:
        ca_zh = "本包未附带根证书：请将本行公布的根证书保存为本目录下的 ca.pem。"
        ca_en = "This bag carries no root certificate: save the bank's published root certificate(s) here as ca.pem."
    return f"""{organization}{"  " if organization else ""}贷款档案 Loan archive  {identifier}

本档案为 BagIt 1.0（RFC 8493）数据包。data/ 目录为贷款资料；manifest-sha256.txt 记录 data/ 下每个文件的
SHA-256；tagmanifest-sha256.txt 记录各标签文件（含 manifest-sha256.txt）的 SHA-256，并由本行电子印章签名
（tagmanifest-sha256.txt.p7s，CMS 分离式签名）及加盖时间戳（tagmanifest-sha256.txt.tsr，RFC 3161）。

This is a BagIt 1.0 bag (RFC 8493). data/ holds the loan file; manifest-sha256.txt lists the SHA-256 of
every file under data/; tagmanifest-sha256.txt lists the SHA-256 of the tag files, manifest-sha256.txt
included, and is sealed by the bank (tagmanifest-sha256.txt.p7s, detached CMS signature) and time-stamped
(tagmanifest-sha256.txt.tsr, RFC 3161).

请在本目录中使用 bash 执行 / Run in bash, in this folder:

1. 完整性：每行均应为 OK / Integrity: every line must end in OK
   {CMD_HASHES}

2. 齐全性：不得有任何输出（sha256sum -c 发现不了新增的文件）
   Completeness: must print nothing (sha256sum -c does not notice added files)
   {CMD_COMPLETENESS}

3. 时间戳：应显示 "Verification: OK"，第二条命令显示时间
   Timestamp: must print "Verification: OK"; the second command shows the time
   {CMD_TIMESTAMP}
   {CMD_TIMESTAMP_TIME}

4. 电子印章（按时间戳时间验证，印章证书此后到期不影响）：应显示 "Verification successful"
   Bank seal, as of the timestamp's time (its certificate may have expired since): must print
   "Verification successful"
   {CMD_SEALED_AT}
   {CMD_SIGNATURE}

5. 时间戳续期：时间戳服务证书到期前，本行会对证据加盖新的时间戳，存放于 {RENEWALS_DIR}/ 目录；
   如该目录存在，请按其中 README.txt 的命令验证（取代第 3 步）。
   Timestamp renewals: before the TSA certificate expires, the bank time-stamps the evidence again in
   {RENEWALS_DIR}/; if that folder exists, check it as its README.txt says (instead of step 3).

根证书 / Root certificate (ca.pem):
   {CMD_CA_FINGERPRINT}
{ca_zh}
{ca_en}
ca.pem 可包含多个根证书（印章根证书与时间戳服务根证书）。
ca.pem may hold several root certificates (the seal's root and the timestamp authority's root).
"""


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _payload(files: Sequence[BagFile]) -> dict[str, bytes]:
    """Payload entries by bag path, sorted; refuses duplicates and a path that is also a folder."""
    payload: dict[str, bytes] = {}
    for bag_file in sorted(files, key=lambda item: item.path):
        path = f"{PAYLOAD_DIR}/{bag_file.path}"
        if path in payload:
            raise ValueError(f"duplicate bag path {bag_file.path!r}")
        payload[path] = bag_file.content
    parts = [path.split("/") for path in payload]
    folders = {"/".join(segments[:end]) for segments in parts for end in range(1, len(segments))}
    clash = sorted(folders & payload.keys())
    if clash:
        raise ValueError(f"bag path {clash[0]!r} is both a file and a folder")
    return payload


def _bag_info(files: Sequence[BagFile], info: Mapping[str, str], bagging_date: date) -> bytes:
    """bag-info.txt: the standard fields first, then the caller's in their order."""
    for label in REQUIRED_INFO:
        if not info.get(label):
            raise ValueError(f"bag-info needs {label}")
    for label, value in info.items():
        if label in COMPUTED_INFO:
            raise ValueError(f"bag-info {label} is computed, do not pass it")
        if not _INFO_LABEL.match(label) or any(char in value for char in "\r\n"):
            raise ValueError(f"bag-info label or value not single-line: {label!r}")
    octets = sum(len(bag_file.content) for bag_file in files)
    fields = {
        "Source-Organization": info["Source-Organization"],
        "External-Identifier": info["External-Identifier"],
        "Bagging-Date": bagging_date.isoformat(),
        "Payload-Oxum": f"{octets}.{len(files)}",
        "Bag-Size": _human_size(octets),
    }
    fields.update((label, value) for label, value in info.items() if label not in fields)
    return "".join(f"{label}: {value}\n" for label, value in fields.items()).encode()


def _human_size(octets: int) -> str:
    """Bag-Size is approximate by definition (RFC 8493 §2.2.2): one decimal, binary units."""
    if octets < 1024:
        return f"{octets} B"
    size = octets / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def sha256_manifest(files: Mapping[str, bytes]) -> bytes:
    """Lines in sha256sum's own format ("<hex>  <path>"), sorted by path, so ``sha256sum -c`` reads them."""
    return "".join(f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n" for path in sorted(files)).encode()


def _zip(bag_name: str, entries: Mapping[str, bytes], bagging_date: date) -> bytes:
    """Entries in the given order with fixed metadata, so the same entries give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        write_entries(archive, bag_name, entries, bagging_date)
    return buffer.getvalue()


def write_entries(archive: zipfile.ZipFile, bag_name: str, entries: Mapping[str, bytes], day: date) -> None:
    """Write bag files as regular Unix files dated ``day``, UTF-8 names, deflated."""
    stamp = (day.year, day.month, day.day, 0, 0, 0)
    for path, content in entries.items():
        entry = zipfile.ZipInfo(f"{bag_name}/{path}", date_time=stamp)
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.create_system = 3  # Unix, so the mode below applies when extracting
        entry.external_attr = 0o100644 << 16
        archive.writestr(entry, content, compresslevel=6)
