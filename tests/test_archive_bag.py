"""The archive bag: built, verified in process, and verified again by an auditor's sha256sum/openssl commands.

A throwaway CA signs an EC seal certificate and an RSA TSA certificate; pyHanko's DummyTimeStamper is a real
RFC 3161 TSA running in process. Every tamper case is checked by ``verify_bag`` and, where the README
promises it, by the same shell commands an auditor runs on the unzipped bag.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import subprocess
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import bagit
import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps import DummyTimeStamper

from engine.archive.bag import (
    CMD_COMPLETENESS,
    CMD_HASHES,
    CMD_SEALED_AT,
    CMD_SIGNATURE,
    CMD_TIMESTAMP,
    BagFile,
    KeyManifestSigner,
    TimestampError,
    auditor_readme,
    build_bag,
    path_problem,
    safe_name,
)
from engine.archive.renewal import CMD_RENEWALS, RENEWALS_README, renew_bag
from engine.archive.storage import (
    BlobConflict,
    BlobNotFound,
    LocalStorage,
    S3Storage,
    StoredBlob,
    storage_from_settings,
)
from engine.archive.verification import CHECKS, GIVEN_ROOTS, OWN_CA, BagReport, verify_bag

# README step 4: the seal, checked as of the timestamp's time
SEAL_CHECK = f"{CMD_SEALED_AT} && {CMD_SIGNATURE}"
BAG = "NX-2026-000123"
ORGANIZATION = "示例县农村商业银行股份有限公司"
INFO = {
    "Source-Organization": ORGANIZATION,
    "External-Identifier": BAG,
    "External-Description": "个人借款合同 loan file",
}
PDF = "data/contract/借款合同.pdf"
FILES = (
    BagFile("contract/借款合同.pdf", b"%PDF-1.7\n" + os.urandom(300_000) + b"\n%%EOF\n"),
    BagFile("forms/0001-investigation.json", json.dumps({"收入": "8000.00"}, ensure_ascii=False).encode()),
    BagFile("decisions/rule_evaluations.json", b'[{"rule": "dti", "result": "pass"}]'),
    BagFile("audit/audit_trail.jsonl", b'{"event": "submitted"}\n{"event": "approved"}\n'),
    BagFile("uploads/身份证 正面.jpg", b"\xff\xd8\xff\xe0 jpeg"),
)
UTF8_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    other_ca_pem: bytes
    seal_keys: Mapping[str, tuple[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, x509.Certificate]]
    tsa: Callable[[bytes], bytes]

    def signer(self, kind: str = "ec") -> KeyManifestSigner:
        key, certificate = self.seal_keys[kind]
        return KeyManifestSigner(key, certificate, [], self.tsa, self.ca_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "示例县农村商业银行"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    timestamping: bool = False,
    valid_days: int = 30,
) -> x509.Certificate:
    now = datetime.now(UTC)
    ca = issuer is None
    unused = ("key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only")
    usage = dict.fromkeys(unused, False)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject) if issuer is None else issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca and not timestamping,
                key_cert_sign=ca,
                crl_sign=ca,
                **usage,
            ),
            critical=True,
        )
    )
    if timestamping:  # openssl ts -verify demands this EKU, alone and critical
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _root(common_name: str, valid_days: int = 30) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _certificate(common_name, key, None, key, valid_days=valid_days)


def _tsa(
    common_name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, **options: Any
) -> Callable[[bytes], bytes]:
    """An RFC 3161 TSA in process (DER request in, DER reply out); ``fixed_dt`` sets the time it signs."""
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_cert = _certificate(
        common_name, tsa_key, ca, ca_key, timestamping=True, valid_days=options.pop("valid_days", 30)
    )
    stamper = DummyTimeStamper(
        asn1_x509.Certificate.load(tsa_cert.public_bytes(serialization.Encoding.DER)),
        asn1_keys.PrivateKeyInfo.load(
            tsa_key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
        **options,
    )
    return lambda request: stamper.request_tsa_response(tsp.TimeStampReq.load(request)).dump()


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key, ca = _root("测试根证书")
    _, other_ca = _root("另一个根证书")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Pki(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        other_ca_pem=other_ca.public_bytes(serialization.Encoding.PEM),
        seal_keys={
            "ec": (ec_key, _certificate("电子合同专用章", ec_key, ca, ca_key)),
            "rsa": (rsa_key, _certificate("电子合同专用章RSA", rsa_key, ca, ca_key)),
        },
        tsa=_tsa("测试时间戳服务", ca, ca_key),
    )


@pytest.fixture(scope="module")
def bag_zip(pki: Pki) -> bytes:
    return _build(pki.signer())


def _build(signer: KeyManifestSigner) -> bytes:
    readme = auditor_readme(BAG, organization=ORGANIZATION)
    return build_bag(FILES, info=INFO, signer=signer, readme=readme, bagging_date=date(2026, 12, 1))


def _rewrite(zip_bytes: bytes, changes: Mapping[str, bytes | None]) -> bytes:
    """The same zip with entries (paths inside the bag folder) replaced, removed (None) or appended."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as source, zipfile.ZipFile(buffer, "w") as target:
        for entry in source.infolist():
            path = entry.filename.split("/", 1)[1]
            if path not in changes:
                target.writestr(entry, source.read(entry))
            elif changes[path] is not None:
                target.writestr(entry, changes[path])
        for path, content in changes.items():
            if content is not None and f"{BAG}/{path}" not in source.namelist():
                target.writestr(f"{BAG}/{path}", content)
    return buffer.getvalue()


def _entries(zip_bytes: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return {entry.filename.split("/", 1)[1]: archive.read(entry) for entry in archive.infolist()}


def _manifest(files: Mapping[str, bytes], paths: list[str]) -> bytes:
    return "".join(f"{hashlib.sha256(files[path]).hexdigest()}  {path}\n" for path in sorted(paths)).encode()


def _extract(zip_bytes: bytes, folder: Path) -> Path:
    """Unzip with the real unzip, as an auditor would."""
    (folder / "bag.zip").write_bytes(zip_bytes)
    subprocess.run(["unzip", "-q", "bag.zip"], cwd=folder, check=True, env=UTF8_ENV)
    return folder / BAG


def _sh(command: str, bag: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=bag, capture_output=True, text=True, env=UTF8_ENV)


def _failed(report: BagReport) -> set[str]:
    return {check.name for check in report.checks if not check.ok}


# --- building and verifying -------------------------------------------------------------------------------


def test_bag_layout_and_report(bag_zip: bytes, pki: Pki, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bag_zip)) as archive:
        names = archive.namelist()
        bag_info = archive.read(f"{BAG}/bag-info.txt").decode()
        assert all(entry.flag_bits & 0x800 for entry in archive.infolist() if not entry.filename.isascii())
    tags = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"]
    tags += ["tagmanifest-sha256.txt.p7s", "tagmanifest-sha256.txt.tsr", "README.txt", "ca.pem"]
    payload = sorted(f"data/{bag_file.path}" for bag_file in FILES)
    assert names == [f"{BAG}/{path}" for path in tags + payload]
    assert bag_info.splitlines()[:5] == [
        f"Source-Organization: {ORGANIZATION}",
        f"External-Identifier: {BAG}",
        "Bagging-Date: 2026-12-01",
        f"Payload-Oxum: {sum(len(f.content) for f in FILES)}.5",
        f"Bag-Size: {sum(len(f.content) for f in FILES) / 1024:.1f} KB",
    ]
    assert "External-Description: 个人借款合同 loan file" in bag_info
    (tmp_path / "bag.zip").write_bytes(bag_zip)
    listing = subprocess.run(["unzip", "-l", "bag.zip"], cwd=tmp_path, capture_output=True, env=UTF8_ENV, check=True)
    assert f"{BAG}/{PDF}" in listing.stdout.decode()

    report = verify_bag(bag_zip)
    assert report.ok, report.to_dict()
    assert report.bag_name == BAG
    assert report.info["External-Identifier"] == BAG
    signature, timestamp = report.check("signature"), report.check("timestamp")
    assert signature.details["trusted_by"] == OWN_CA == "bag's own ca.pem (compare with the published root)"
    assert "CN=电子合同专用章" in signature.details["signer"]
    assert timestamp.details["imprint_matches"] and timestamp.details["hash_algorithm"] == "sha256"
    assert report.timestamp_time is not None and report.timestamp_time > datetime.now(UTC) - timedelta(minutes=10)
    assert report.summary.startswith(
        f"ok: {len(FILES)} files complete and intact, tag manifest sealed and timestamped 20"
    )
    assert "测试时间戳服务" in timestamp.details["tsa"]
    assert json.loads(json.dumps(report.to_dict(), ensure_ascii=False))["ok"] is True

    with_root = verify_bag(bag_zip, trust_roots_pem=pki.ca_pem)
    assert with_root.ok and with_root.check("signature").details["trusted_by"] == GIVEN_ROOTS


def test_auditor_commands_from_the_readme_pass(bag_zip: bytes, tmp_path: Path) -> None:
    bag = _extract(bag_zip, tmp_path)
    readme = (bag / "README.txt").read_text(encoding="utf-8")
    for command in (CMD_HASHES, CMD_COMPLETENESS, CMD_SEALED_AT, CMD_SIGNATURE, CMD_TIMESTAMP):
        assert command in readme
    assert "Verification successful" in readme and "贷款档案" in readme and "published" in readme

    hashes = _sh(CMD_HASHES, bag)
    assert hashes.returncode == 0, hashes.stderr
    assert "data/contract/借款合同.pdf: OK" in hashes.stdout and "data/uploads/身份证 正面.jpg: OK" in hashes.stdout
    assert "manifest-sha256.txt: OK" in hashes.stdout and "FAILED" not in hashes.stdout
    completeness = _sh(CMD_COMPLETENESS, bag)
    assert completeness.returncode == 0 and completeness.stdout == "" and completeness.stderr == ""
    seal = _sh(SEAL_CHECK, bag)
    assert seal.returncode == 0 and "Verification successful" in seal.stderr
    stamp = _sh(CMD_TIMESTAMP, bag)
    assert stamp.returncode == 0 and "Verification: OK" in stamp.stdout
    bagit.Bag(str(bag)).validate()  # an independent BagIt implementation agrees (it ignores the .p7s/.tsr)


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_seal_key_kinds(pki: Pki, kind: str) -> None:
    report = verify_bag(_build(pki.signer(kind)), trust_roots_pem=pki.ca_pem)
    assert report.ok, report.to_dict()
    assert ("电子合同专用章RSA" in report.check("signature").details["signer"]) == (kind == "rsa")


def test_same_inputs_give_the_same_zip_apart_from_signature_and_timestamp(pki: Pki) -> None:
    first, second = _build(pki.signer()), _build(pki.signer())
    with zipfile.ZipFile(io.BytesIO(first)) as one, zipfile.ZipFile(io.BytesIO(second)) as two:
        assert one.namelist() == two.namelist()
        for left, right in zip(one.infolist(), two.infolist(), strict=True):
            assert left.date_time == right.date_time == (2026, 12, 1, 0, 0, 0)
            assert (left.external_attr, left.flag_bits) == (right.external_attr, right.flag_bits)
            if not left.filename.endswith((".p7s", ".tsr")):
                assert (left.CRC, left.compress_size) == (right.CRC, right.compress_size)
                assert one.read(left) == two.read(right)
    unsigned = {"tagmanifest-sha256.txt.p7s": b"", "tagmanifest-sha256.txt.tsr": b""}
    assert _rewrite(first, unsigned) == _rewrite(second, unsigned)


# --- tampering --------------------------------------------------------------------------------------------


def test_changed_payload_byte_fails_the_hashes(bag_zip: bytes, tmp_path: Path) -> None:
    pdf = bytearray(_entries(bag_zip)[PDF])
    pdf[1000] ^= 0x01
    tampered = _rewrite(bag_zip, {PDF: bytes(pdf)})
    report = verify_bag(tampered)
    assert _failed(report) == {"payload_hashes"}
    assert report.check("payload_hashes").details["mismatched"] == [PDF]
    assert report.summary == "payload_hashes: 1 file(s) do not match the manifest"
    hashes = _sh(CMD_HASHES, _extract(tampered, tmp_path))
    assert hashes.returncode != 0 and "data/contract/借款合同.pdf: FAILED" in hashes.stdout


def test_recomputed_manifests_break_the_seal_and_the_timestamp(bag_zip: bytes, pki: Pki, tmp_path: Path) -> None:
    files = _entries(bag_zip)
    files["data/decisions/rule_evaluations.json"] = b'[{"rule": "dti", "result": "fail"}]'
    files["manifest-sha256.txt"] = _manifest(files, [path for path in files if path.startswith("data/")])
    tag_paths = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "README.txt", "ca.pem"]
    files["tagmanifest-sha256.txt"] = _manifest(files, tag_paths)
    tampered = _rewrite(bag_zip, files)

    report = verify_bag(tampered, trust_roots_pem=pki.ca_pem)
    assert _failed(report) == {"signature", "timestamp"}
    assert report.check("signature").details["signature_valid"] is False
    assert report.check("timestamp").reason == "the timestamp is not over tagmanifest-sha256.txt"
    assert report.timestamp_time is None

    bag = _extract(tampered, tmp_path)
    assert _sh(CMD_HASHES, bag).returncode == 0  # the hashes alone are fooled...
    seal = _sh(SEAL_CHECK, bag)
    assert seal.returncode != 0 and "Verification successful" not in seal.stderr  # ...the seal is not
    stamp = _sh(CMD_TIMESTAMP, bag)
    assert stamp.returncode != 0 and "Verification: FAILED" in stamp.stdout


def test_added_file_is_caught_only_by_the_completeness_check(bag_zip: bytes, tmp_path: Path) -> None:
    extra = "data/uploads/补充 材料.jpg"
    tampered = _rewrite(bag_zip, {extra: b"smuggled"})
    report = verify_bag(tampered)
    assert _failed(report) == {"completeness", "payload_oxum"}
    assert report.check("completeness").details["extra"] == [extra]
    assert extra in report.check("completeness").reason

    bag = _extract(tampered, tmp_path)
    assert _sh(CMD_HASHES, bag).returncode == 0  # sha256sum -c does not notice
    assert _sh(CMD_COMPLETENESS, bag).stdout.strip() == extra


def test_removed_file_is_reported_missing(bag_zip: bytes, tmp_path: Path) -> None:
    tampered = _rewrite(bag_zip, {PDF: None})
    report = verify_bag(tampered)
    assert _failed(report) == {"completeness", "payload_oxum"}
    assert report.check("completeness").details["missing"] == [PDF]
    assert _sh(CMD_COMPLETENESS, _extract(tampered, tmp_path)).stdout.strip() == PDF


def test_wrong_trust_root_is_untrusted(bag_zip: bytes, pki: Pki, tmp_path: Path) -> None:
    report = verify_bag(bag_zip, trust_roots_pem=pki.other_ca_pem)
    assert _failed(report) == {"signature", "timestamp"}
    signature = report.check("signature")
    assert signature.details["signature_valid"] is True and signature.details["trusted_by"] == GIVEN_ROOTS
    assert signature.reason == "the signer's certificate does not chain to the trust root"
    assert "CN=电子合同专用章" in signature.details["signer"]  # who claims to have sealed it is still shown

    bag = _extract(bag_zip, tmp_path)
    (bag / "ca.pem").write_bytes(pki.other_ca_pem)  # the auditor uses the (here: different) published root
    assert _sh(SEAL_CHECK, bag).returncode != 0
    assert _sh(CMD_TIMESTAMP, bag).returncode != 0


def _zip_of(entries: list[tuple[str, bytes]], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
        if symlink:
            entry = zipfile.ZipInfo(symlink)
            entry.create_system = 3
            entry.external_attr = 0o120777 << 16
            archive.writestr(entry, "/etc/passwd")
    return buffer.getvalue()


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


BAGIT_TXT = (f"{BAG}/bagit.txt", b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda good: b"PK\x03\x04 not really a zip", "not a readable zip file"),
        (lambda good: good[: len(good) // 2], "not a readable zip file"),
        (lambda good: _flip(good, len(good) // 3), "corrupt zip entry"),
        (lambda good: _zip_of([BAGIT_TXT, ("../evil", b"x")]), "unsafe or invalid zip entries"),
        (lambda good: _zip_of([BAGIT_TXT, ("/etc/cron.d/evil", b"x")]), "unsafe or invalid zip entries"),
        (lambda good: _zip_of([BAGIT_TXT, (f"{BAG}/data/a\\b", b"x")]), "unsafe or invalid zip entries"),
        (lambda good: _zip_of([BAGIT_TXT], symlink=f"{BAG}/data/link"), "unsafe or invalid zip entries"),
        (lambda good: _zip_of([BAGIT_TXT, ("other/bagit.txt", b"")]), "exactly one top folder"),
        (lambda good: _zip_of([BAGIT_TXT, ("loose.txt", b"")]), "exactly one top folder"),
        (lambda good: _zip_of([(f"{BAG}/data/x", b"x")]), "bagit.txt is missing"),
        (
            lambda good: _zip_of([(BAGIT_TXT[0], b"BagIt-Version: 0.9\nTag-File-Character-Encoding: x\n")]),
            "bagit",
        ),
    ],
    ids=[
        "garbage",
        "truncated",
        "crc",
        "dotdot",
        "absolute",
        "backslash",
        "symlink",
        "two-tops",
        "loose",
        "no-bagit",
        "bad-bagit",
    ],
)
def test_bad_zips_give_a_report_not_an_exception(bag_zip: bytes, make: Callable[[bytes], bytes], reason: str) -> None:
    report = verify_bag(make(bag_zip))
    assert not report.ok
    assert reason in report.check("structure").reason
    assert _failed(report) == set(CHECKS)  # nothing is checked on a broken structure


def test_duplicate_entries_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate we are making on purpose
        data = _zip_of([BAGIT_TXT, (f"{BAG}/data/x", b"1"), (f"{BAG}/data/x", b"2")])
    report = verify_bag(data)
    assert report.check("structure").details["entries"] == [{"entry": f"{BAG}/data/x", "problem": "duplicate entry"}]


def test_size_and_entry_limits_guard_against_zip_bombs(bag_zip: bytes) -> None:
    bomb = verify_bag(bag_zip, max_total_size=100_000)
    assert not bomb.ok and "exceeds the limit 100000" in bomb.check("structure").reason
    crowd = verify_bag(bag_zip, max_entries=5)
    assert not crowd.ok and "too many zip entries" in crowd.check("structure").reason


def test_garbage_signature_and_timestamp_files(bag_zip: bytes) -> None:
    tampered = _rewrite(bag_zip, {"tagmanifest-sha256.txt.p7s": b"\x30\x03junk", "tagmanifest-sha256.txt.tsr": b"junk"})
    report = verify_bag(tampered)
    assert _failed(report) == {"signature", "timestamp"}
    assert report.check("signature").reason == "the signature does not match the tag manifest or cannot be read"
    assert "cannot be read" in report.check("timestamp").reason


def test_unsigned_tag_file_and_uncovered_manifest_fail(bag_zip: bytes) -> None:
    files = _entries(bag_zip)
    files["tagmanifest-sha256.txt"] = _manifest(files, ["bagit.txt", "bag-info.txt"])
    report = verify_bag(_rewrite(bag_zip, {**files, "VERIFY-ME-INSTEAD.txt": b"trust me"}))
    details = report.check("tag_manifest").details
    assert details["not_covered"] == ["manifest-sha256.txt"]
    assert details["unlisted"] == ["README.txt", "VERIFY-ME-INSTEAD.txt", "ca.pem", "manifest-sha256.txt"]


# --- timestamp renewals -----------------------------------------------------------------------------------

LATER = datetime.now(UTC) + timedelta(days=40)  # the first TSA's certificate (30 days) has expired by then


@dataclass(frozen=True)
class RenewalTsa:
    ca_pem: bytes
    timestamp: Callable[[bytes], bytes]  # data -> DER reply over its SHA-256


def _renewal_tsa(pki: Pki, name: str, days_ahead: float, valid_days: int = 400) -> RenewalTsa:
    """A newer TSA under its own root, whose clock reads ``days_ahead`` days from now."""
    ca_key, ca = _root(f"{name}根证书", valid_days=valid_days)
    at = datetime.now(UTC) + timedelta(days=days_ahead)
    key, certificate = pki.seal_keys["ec"]
    tsa = _tsa(name, ca, ca_key, valid_days=valid_days, fixed_dt=at)
    return RenewalTsa(
        ca.public_bytes(serialization.Encoding.PEM), KeyManifestSigner(key, certificate, [], tsa, None).timestamp
    )


@pytest.fixture(scope="module")
def renewal_tsa(pki: Pki) -> RenewalTsa:
    return _renewal_tsa(pki, "续期时间戳服务", days_ahead=20)


@pytest.fixture(scope="module")
def renewed(bag_zip: bytes, renewal_tsa: RenewalTsa) -> bytes:
    return renew_bag(bag_zip, renewal_tsa.timestamp, date(2036, 6, 1))


def test_an_expired_tsa_certificate_fails_the_archive_and_a_renewal_keeps_it_valid(
    bag_zip: bytes, pki: Pki, renewal_tsa: RenewalTsa, renewed: bytes
) -> None:
    assert verify_bag(bag_zip, trust_roots_pem=pki.ca_pem).ok
    expired = verify_bag(bag_zip, trust_roots_pem=pki.ca_pem, at=LATER)
    assert _failed(expired) == {"timestamp"}
    assert "expired on" in expired.check("timestamp").reason and "renewal" in expired.check("timestamp").reason

    roots = pki.ca_pem + renewal_tsa.ca_pem
    report = verify_bag(renewed, trust_roots_pem=roots, at=LATER)
    assert report.ok, report.summary
    renewals = report.check("timestamp_renewals").details
    assert renewals["count"] == 1 and "续期时间戳服务" in renewals["renewals"][0]["tsa"]
    renewed_at = datetime.fromisoformat(renewals["renewals"][0]["gen_time"])
    assert renewed_at - datetime.now(UTC) > timedelta(days=19)
    # the original timestamp is judged as of the renewal, the seal as of the original timestamp
    assert report.check("timestamp").details["valid_at"] == renewed_at.isoformat()
    assert report.check("signature").details["valid_at"] == report.timestamp_time.isoformat()
    assert report.evidence_expires_at is not None
    assert report.evidence_expires_at - datetime.now(UTC) > timedelta(days=390)
    assert verify_bag(bag_zip, trust_roots_pem=pki.ca_pem).evidence_expires_at < LATER

    too_late = verify_bag(renewed, trust_roots_pem=roots, at=LATER + timedelta(days=400))
    assert _failed(too_late) == {"timestamp", "timestamp_renewals"}  # nothing vouches for the original either
    assert "renewal 1: the TSA certificate" in too_late.check("timestamp_renewals").reason


def test_a_renewal_appends_and_changes_no_byte_of_the_bag(bag_zip: bytes, renewed: bytes) -> None:
    assert renewed.startswith(bag_zip[: _central_directory(bag_zip)])
    before, after = _entries(bag_zip), _entries(renewed)
    assert {path: after[path] for path in before} == before
    assert sorted(after.keys() - before.keys()) == [
        "timestamp-renewals/0001-manifest-sha256.txt",
        "timestamp-renewals/0001-manifest-sha256.txt.tsr",
        RENEWALS_README,
    ]
    assert after["timestamp-renewals/0001-manifest-sha256.txt"].decode().splitlines() == [
        f"{hashlib.sha256(before[path]).hexdigest()}  {path}"
        for path in ("tagmanifest-sha256.txt", "tagmanifest-sha256.txt.p7s", "tagmanifest-sha256.txt.tsr")
    ]


def _central_directory(zip_bytes: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return archive.start_dir


def test_auditor_commands_for_renewals_pass(pki: Pki, renewal_tsa: RenewalTsa, renewed: bytes, tmp_path: Path) -> None:
    bag = _extract(renewed, tmp_path)
    assert CMD_RENEWALS in (bag / RENEWALS_README).read_text(encoding="utf-8")
    (bag / "ca.pem").write_bytes(pki.ca_pem + renewal_tsa.ca_pem)  # the roots the bank publishes
    result = _sh(CMD_RENEWALS, bag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Verification: OK") == 2 and "FAILED" not in result.stdout
    assert result.stdout.count(": OK") == 3 + 2  # three files in the renewal's manifest, two tokens
    (bag / "ca.pem").write_bytes(pki.ca_pem)  # without the renewal TSA's root
    assert "Verification: OK" not in _sh(CMD_RENEWALS, bag).stdout.split("\n")[-2]


def test_a_second_renewal_chains_onto_the_first(pki: Pki, renewed: bytes, renewal_tsa: RenewalTsa) -> None:
    third = _renewal_tsa(pki, "第三代时间戳服务", days_ahead=30, valid_days=800)
    twice = renew_bag(renewed, third.timestamp, date(2040, 1, 1))
    roots = pki.ca_pem + renewal_tsa.ca_pem + third.ca_pem
    report = verify_bag(twice, trust_roots_pem=roots, at=LATER + timedelta(days=400))
    assert report.ok, report.summary
    renewals = report.check("timestamp_renewals").details["renewals"]
    assert [renewal["number"] for renewal in renewals] == [1, 2]
    assert renewals[0]["valid_at"] == renewals[1]["gen_time"]
    second = _entries(twice)["timestamp-renewals/0002-manifest-sha256.txt"].decode()
    assert "timestamp-renewals/0001-manifest-sha256.txt.tsr" in second and "tagmanifest-sha256.txt.p7s" in second


def test_a_renewal_dated_before_the_timestamp_it_renews_fails(pki: Pki, bag_zip: bytes) -> None:
    backdated = _renewal_tsa(pki, "倒签时间戳服务", days_ahead=-1)
    report = verify_bag(
        renew_bag(bag_zip, backdated.timestamp, date(2026, 12, 1)), trust_roots_pem=pki.ca_pem + backdated.ca_pem
    )
    assert _failed(report) == {"timestamp_renewals"}
    assert "later than the timestamp before it" in report.check("timestamp_renewals").reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"timestamp-renewals/0001-manifest-sha256.txt": b"0" * 64 + b"  tagmanifest-sha256.txt\n"},
            "must list exactly",
        ),
        ({"timestamp-renewals/0001-manifest-sha256.txt.tsr": None}, "0001-manifest-sha256.txt.tsr is missing"),
        ({"timestamp-renewals/0003-manifest-sha256.txt": b""}, "not part of the chain"),
        ({"tagmanifest-sha256.txt.p7s": b"\x30\x03\x02\x01\x00"}, "changed since the renewal"),
    ],
    ids=["edited-manifest", "missing-token", "stray-file", "swapped-seal"],
)
def test_tampered_renewals_fail(
    pki: Pki, renewal_tsa: RenewalTsa, renewed: bytes, change: dict[str, bytes | None], reason: str
) -> None:
    report = verify_bag(_rewrite(renewed, change), trust_roots_pem=pki.ca_pem + renewal_tsa.ca_pem)
    assert "timestamp_renewals" in _failed(report)
    assert reason in report.check("timestamp_renewals").reason


def test_a_bag_without_its_timestamp_cannot_be_renewed(bag_zip: bytes, renewal_tsa: RenewalTsa) -> None:
    with pytest.raises(ValueError, match=r"tagmanifest-sha256\.txt\.tsr"):
        renew_bag(_rewrite(bag_zip, {"tagmanifest-sha256.txt.tsr": None}), renewal_tsa.timestamp, date(2030, 1, 1))


# --- building refuses bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../x",
        "contract/../../x",
        "a\\b",
        "a//b",
        "a/",
        "",
        "./a",
        "x%0A.pdf",
        "a\nb",
        "C:/x",
        "合同\u202efdp.exe",
        "a\u2028b",
    ],
)
def test_unsafe_payload_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="unsafe bag path"):
        BagFile(path, b"x")
    # ...while an uploaded file of that name is kept under a name that is safe
    assert path_problem(f"attachments/001-{safe_name(path)}") is None


def test_safe_names_keep_what_they_can() -> None:
    assert safe_name("现场照片.pdf") == "现场照片.pdf"
    assert safe_name("100%.pdf") == "100_.pdf" and safe_name("..") == "file"
    assert safe_name("e\u0301.pdf") == "\u00e9.pdf"  # NFC


@pytest.mark.parametrize(
    ("files", "info", "message"),
    [
        ((BagFile("a.json", b"1"), BagFile("a.json", b"2")), INFO, "duplicate bag path"),
        ((BagFile("a", b"1"), BagFile("a/b", b"2")), INFO, "both a file and a folder"),
        (FILES, {"External-Identifier": BAG}, "needs Source-Organization"),
        (FILES, {**INFO, "Payload-Oxum": "1.1"}, "is computed"),
        (FILES, {**INFO, "Bagging-Date": "2026-01-01"}, "is computed"),
        (FILES, {**INFO, "Contact-Name": "张三\n李四"}, "not single-line"),
        (FILES, {**INFO, "External-Identifier": "../up"}, "unsafe bag name"),
    ],
)
def test_build_refuses_bad_input(pki: Pki, files: tuple[BagFile, ...], info: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_bag(files, info=info, signer=pki.signer(), readme="")


def test_signer_checks_its_key_and_the_tsa_answer(pki: Pki) -> None:
    ec_key, _ = pki.seal_keys["ec"]
    _, rsa_certificate = pki.seal_keys["rsa"]
    with pytest.raises(ValueError, match="does not match"):
        KeyManifestSigner(ec_key, rsa_certificate, [], pki.tsa, None)

    def wrong_document(request: bytes) -> bytes:  # a real TSA answer, but for another document
        other = tsp.TimeStampReq.load(request).copy()
        other["message_imprint"]["hashed_message"] = hashlib.sha256(b"another document").digest()
        return pki.tsa(other.dump())

    key, certificate = pki.seal_keys["ec"]
    with pytest.raises(TimestampError, match="different request"):
        KeyManifestSigner(key, certificate, [], wrong_document, None).timestamp(b"tag manifest")


# --- storage ----------------------------------------------------------------------------------------------


def test_local_storage_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    key = "archives/bank-lingyuan/2026/12/inst-42.zip"
    blob = storage.put(key, b"bag bytes")
    assert blob == StoredBlob(key, hashlib.sha256(b"bag bytes").hexdigest(), 9)
    assert storage.get(key) == b"bag bytes" and storage.exists(key)
    path = tmp_path / "blobs" / key
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.listdir(path.parent) == ["inst-42.zip"]  # the temporary file is gone
    assert storage.put(key, b"bag bytes") == blob  # a retried put of the same content succeeds
    with pytest.raises(BlobConflict):
        storage.put(key, b"other bytes")
    assert storage.get(key) == b"bag bytes" and os.listdir(path.parent) == ["inst-42.zip"]
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)
    with pytest.raises(BlobNotFound):
        storage.get(key)


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/../b", "", ".hidden", "a/.tmp-x", "a\\b", "a/b/", "档案"])
def test_local_storage_refuses_unsafe_keys(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "blobs")
    with pytest.raises(ValueError, match="invalid blob key"):
        storage.put(key, b"x")
    with pytest.raises(ValueError, match="invalid blob key"):
        storage.get(key)
    assert not (tmp_path / "x").exists()


def test_storage_from_settings(tmp_path: Path) -> None:
    default = storage_from_settings(tmp_path, None)
    assert isinstance(default, LocalStorage) and default.root == tmp_path / "blobs"
    explicit = storage_from_settings(tmp_path, f"file://{tmp_path}/archive")
    assert isinstance(explicit, LocalStorage) and explicit.root == tmp_path / "archive"
    for bad in (
        "file://host/x",
        "file:relative",
        "s3:///prefix",
        "s3://b/p?endpoint=ftp://x",
        "s3://b/p?x=1",
        "ftp://x",
    ):
        with pytest.raises(ValueError):
            storage_from_settings(tmp_path, bad)
    url = "s3://loan-archive/lingyuan?endpoint=https://minio.bank.internal"
    if importlib.util.find_spec("boto3") is None:
        with pytest.raises(RuntimeError, match="pip install boto3"):
            storage_from_settings(tmp_path, url)
    else:
        s3 = storage_from_settings(tmp_path, url)
        assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("loan-archive", "lingyuan/")
