"""Verify an archived bag zip the way an auditor would, and say exactly what failed.

The CMS seal and the RFC 3161 token are checked by ``openssl``, the tool README.txt tells auditors to use,
so the platform and the auditor cannot disagree. Bad input never raises: it yields ``ok=False`` and reasons.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import itertools
import re
import shutil
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from engine.archive.bag import (
    BAG_INFO,
    BAGIT_TXT,
    CA_PEM,
    MANIFEST,
    PAYLOAD_DIR,
    RENEWALS_DIR,
    SIGNATURE,
    TAG_MANIFEST,
    UNLISTED_TAG_FILES,
    path_problem,
)
from engine.archive.renewal import RENEWALS_README, Link, covered_paths, evidence_chain

DEFAULT_MAX_TOTAL_SIZE = 1 << 30  # uncompressed bytes, against zip bombs
DEFAULT_MAX_ENTRIES = 10_000
OWN_CA = "bag's own ca.pem (compare with the published root)"
GIVEN_ROOTS = "trust_roots_pem"
CHECKS = (
    "structure",
    "completeness",
    "payload_hashes",
    "tag_manifest",
    "payload_oxum",
    "signature",
    "timestamp",
    "timestamp_renewals",
)
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64})[ \t]+(.+)$")
_BAGIT_ENCODED = re.compile(r"%(0[aAdD]|25)")
_OPENSSL_TIMEOUT = 60
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000


@dataclass(frozen=True)
class Check:
    """One verification step; ``details`` names the files or values behind the verdict."""

    name: str
    ok: bool
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BagReport:
    ok: bool
    bag_name: str | None
    checks: tuple[Check, ...]
    info: Mapping[str, str] = field(default_factory=dict)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    @property
    def summary(self) -> str:
        """One line for people and logs: what was proven, or each failed check with its reason."""
        failed = [f"{check.name}: {check.reason}" for check in self.checks if not check.ok]
        if failed:
            return "; ".join(failed)
        stamped = self.timestamp_time
        return (
            f"ok: {self.info.get('Payload-Oxum', '?').split('.')[-1]} files complete and intact, tag manifest sealed"
            f" and timestamped {stamped.isoformat() if stamped else ''}".rstrip()
        )

    @property
    def timestamp_time(self) -> datetime | None:
        """When the TSA saw the tag manifest, if the timestamp verified."""
        timestamp = self.check("timestamp")
        return datetime.fromisoformat(timestamp.details["gen_time"]) if timestamp.ok else None

    @property
    def evidence_expires_at(self) -> datetime | None:
        """When the newest timestamp's TSA certificate expires: the archive must be renewed before then."""
        renewals = self.check("timestamp_renewals")
        expires = renewals.details.get("evidence_expires_at") if renewals.ok else None
        return datetime.fromisoformat(expires) if expires else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "bag_name": self.bag_name,
            "info": dict(self.info),
            "checks": {c.name: {"ok": c.ok, "reason": c.reason, **c.details} for c in self.checks},
        }


def verify_bag(
    zip_bytes: bytes,
    *,
    trust_roots_pem: bytes | None = None,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    at: datetime | None = None,
) -> BagReport:
    """Run every check; without ``trust_roots_pem`` the bag's own ca.pem is used and the report says so.

    ``at`` is the time the newest timestamp must be valid at (default: now), e.g. to see whether an
    archive will still verify after its TSA certificate expires.
    """
    bag_name, files, structure = _read_zip(zip_bytes, max_total_size, max_entries)
    if not structure.ok:
        skipped = (Check(name, False, "not checked: the bag structure is invalid") for name in CHECKS[1:])
        return BagReport(False, bag_name, (structure, *skipped))
    info = _parse_bag_info(files.get(BAG_INFO, b""))
    roots, trusted_by = (trust_roots_pem, GIVEN_ROOTS) if trust_roots_pem else (files.get(CA_PEM), OWN_CA)
    # Each timestamp is judged as of the next one's time (the renewal proves it existed while valid).
    renewals, original_at = _renewals_check(files, roots, trusted_by, at)
    timestamp = _token_check("timestamp", files, evidence_chain(files)[0], roots, trusted_by, original_at)
    # The seal is judged as of the TSA's time, not today: a seal certificate expires after a few years,
    # the timestamp proves the manifest was sealed while it was valid (long-term validation).
    sealed_at = datetime.fromisoformat(timestamp.details["gen_time"]) if timestamp.ok else None
    checks = (
        structure,
        *_payload_checks(files),
        _tag_manifest_check(files),
        _oxum_check(files, info),
        _signature_check(files, roots, trusted_by, sealed_at),
        timestamp,
        renewals,
    )
    return BagReport(all(check.ok for check in checks), bag_name, checks, info)


def _read_zip(data: bytes, max_total_size: int, max_entries: int) -> tuple[str | None, dict[str, bytes], Check]:
    """The bag's files by path inside the top folder, after the structural checks that make reading safe."""
    fail = functools.partial(_bad_structure, None)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        return fail(f"not a readable zip file: {exc}")
    if len(entries) > max_entries:
        return fail(f"too many zip entries: {len(entries)} > {max_entries}")
    declared = sum(entry.file_size for entry in entries)
    if declared > max_total_size:
        return fail(f"uncompressed size {declared} exceeds the limit {max_total_size}")
    problems = _entry_problems(entries)
    if problems:
        return fail("unsafe or invalid zip entries", entries=problems)
    names = [entry.filename for entry in entries if not entry.is_dir()]
    tops = sorted({entry.filename.split("/", 1)[0] for entry in entries})
    loose = [name for name in names if "/" not in name]
    if len(tops) != 1 or loose:
        return fail("the zip must hold exactly one top folder", top_level=tops, loose_files=loose)
    bag_name = tops[0]
    files: dict[str, bytes] = {}
    fail = functools.partial(_bad_structure, bag_name)
    for entry in entries:
        if entry.is_dir():
            continue
        try:
            with archive.open(entry) as stream:
                files[entry.filename.split("/", 1)[1]] = stream.read(entry.file_size)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            return fail(f"corrupt zip entry {entry.filename!r}: {exc}")
    declaration = _parse_bagit_txt(files.get(BAGIT_TXT))
    if declaration is not None:
        return fail(declaration)
    return bag_name, files, Check("structure", True, details={"bag_name": bag_name, "entries": len(files)})


def _bad_structure(bag_name: str | None, reason: str, **details: Any) -> tuple[str | None, dict[str, bytes], Check]:
    return bag_name, {}, Check("structure", False, reason, {"bag_name": bag_name, **details})


def _entry_problems(entries: list[zipfile.ZipInfo]) -> list[dict[str, str]]:
    """Traversal, duplicates, links and encryption: anything an extracting auditor should not meet."""
    problems = []
    seen: set[str] = set()
    for entry in entries:
        name = entry.filename
        problem = path_problem(name[:-1] if entry.is_dir() else name)
        kind = (entry.external_attr >> 16) & _S_IFMT if entry.create_system == 3 else 0
        if problem is None and name in seen:
            problem = "duplicate entry"
        if problem is None and kind not in (0, _S_IFREG, _S_IFDIR):
            problem = "not a regular file (symbolic link or device)"
        if problem is None and entry.flag_bits & 0x1:
            problem = "encrypted entry"
        if problem:
            problems.append({"entry": name, "problem": problem})
        seen.add(name)
    return problems


def _parse_bagit_txt(content: bytes | None) -> str | None:
    """Why bagit.txt is missing or invalid, or None."""
    if content is None:
        return "bagit.txt is missing"
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return "bagit.txt is not UTF-8"
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    if len(fields) != 2 or len(lines) != 2:
        return "bagit.txt must hold exactly BagIt-Version and Tag-File-Character-Encoding"
    if fields.get("BagIt-Version") != "1.0" or fields.get("Tag-File-Character-Encoding", "").upper() != "UTF-8":
        return f"bagit.txt declares {fields}, expected BagIt-Version 1.0 and UTF-8"
    return None


def _parse_manifest(content: bytes) -> tuple[dict[str, str], list[str]]:
    """Entries (path -> lowercase hex) and the lines that could not be read."""
    entries: dict[str, str] = {}
    problems: list[str] = []
    try:
        lines = content.decode("utf-8").split("\n")  # not splitlines(): U+2028 and friends are not line ends here
    except UnicodeDecodeError:
        return {}, ["not UTF-8"]
    for number, line in enumerate((line.removesuffix("\r") for line in lines), 1):
        if not line:
            continue
        match = _MANIFEST_LINE.match(line)
        if not match:
            problems.append(f"line {number}: malformed")
            continue
        path = _BAGIT_ENCODED.sub(lambda code: chr(int(code.group(1), 16)), match.group(2))
        if path in entries:
            problems.append(f"line {number}: {path} listed twice")
        entries[path] = match.group(1).lower()
    return entries, problems


def _payload_checks(files: Mapping[str, bytes]) -> tuple[Check, Check]:
    """Completeness (sha256sum -c cannot see added files) and the payload hashes."""
    if MANIFEST not in files:
        reason = f"{MANIFEST} is missing"
        return Check("completeness", False, reason), Check("payload_hashes", False, reason)
    listed, malformed = _parse_manifest(files[MANIFEST])
    payload = {path for path in files if path.startswith(f"{PAYLOAD_DIR}/")}
    missing = sorted(set(listed) - payload)
    extra = sorted(payload - set(listed))
    reasons = []
    if missing:
        reasons.append(f"listed but missing: {', '.join(missing)}")
    if extra:
        reasons.append(f"not in the manifest: {', '.join(extra)}")
    reasons.extend(malformed)
    details = {"missing": missing, "extra": extra, "malformed": malformed}
    completeness = Check("completeness", not reasons, "; ".join(reasons), details)
    mismatched = sorted(path for path in listed.keys() & payload if _sha256(files[path]) != listed[path])
    hashes = Check(
        "payload_hashes",
        not mismatched and not malformed,
        f"{len(mismatched)} file(s) do not match the manifest" if mismatched else "; ".join(malformed),
        {"checked": len(listed.keys() & payload), "mismatched": mismatched},
    )
    return completeness, hashes


def _tag_manifest_check(files: Mapping[str, bytes]) -> Check:
    """Hashes of the tag files, and that the signed list covers everything an auditor relies on."""
    if TAG_MANIFEST not in files:
        return Check("tag_manifest", False, f"{TAG_MANIFEST} is missing")
    listed, malformed = _parse_manifest(files[TAG_MANIFEST])
    tag_files = {path for path in files if not path.startswith((f"{PAYLOAD_DIR}/", f"{RENEWALS_DIR}/"))}
    details = {
        "checked": sorted(listed.keys() & tag_files),
        "mismatched": sorted(path for path in listed.keys() & tag_files if _sha256(files[path]) != listed[path]),
        "missing": sorted(listed.keys() - tag_files),
        "not_covered": sorted({BAGIT_TXT, BAG_INFO, MANIFEST} - listed.keys()),
        "unlisted": sorted(tag_files - listed.keys() - UNLISTED_TAG_FILES - {TAG_MANIFEST}),
        "malformed": malformed,
    }
    problems = [f"{key}: {', '.join(value)}" for key, value in details.items() if key != "checked" and value]
    return Check("tag_manifest", not problems, "; ".join(problems), details)


def _oxum_check(files: Mapping[str, bytes], info: Mapping[str, str]) -> Check:
    payload = [content for path, content in files.items() if path.startswith(f"{PAYLOAD_DIR}/")]
    actual = f"{sum(len(content) for content in payload)}.{len(payload)}"
    declared = info.get("Payload-Oxum")
    details = {"declared": declared, "actual": actual}
    if declared != actual:
        return Check("payload_oxum", False, "Payload-Oxum in bag-info.txt does not match the payload", details)
    return Check("payload_oxum", True, details=details)


def _signature_check(files: Mapping[str, bytes], roots: bytes | None, trusted_by: str, at: datetime | None) -> Check:
    """openssl cms -verify as in README.txt (at the timestamp's time when there is one); on failure, a run
    without the chain tells forged from untrusted."""
    inputs = _evidence(files, Link(TAG_MANIFEST, SIGNATURE), roots)
    if isinstance(inputs, str):
        return Check("signature", False, inputs)
    with _workspace(*inputs) as work:
        command = ["cms", "-verify", "-binary", "-inform", "DER", "-in", "evidence", "-content", "data"]
        command += ["-purpose", "any", "-signer", "signer.pem", "-out", "content"]
        when = ["-attime", str(int(at.timestamp()))] if at is not None else []
        trusted = _openssl(work, *command, *when, "-CAfile", "ca.pem")
        if trusted.returncode == 0:
            details = {"trusted_by": trusted_by, "signer": _subject(work / "signer.pem"), "signature_valid": True}
            details["valid_at"] = at.isoformat() if at is not None else "now"
            return Check("signature", True, details=details)
        untrusted = _openssl(work, *command, "-noverify")
        signer = _subject(work / "signer.pem")
    valid = untrusted.returncode == 0
    details = {"trusted_by": trusted_by, "signer": signer, "signature_valid": valid, "openssl": _tail(trusted.stderr)}
    if valid:
        return Check("signature", False, "the signer's certificate does not chain to the trust root", details)
    return Check("signature", False, "the signature does not match the tag manifest or cannot be read", details)


def _token_check(
    name: str, files: Mapping[str, bytes], link: Link, roots: bytes | None, trusted_by: str, at: datetime | None
) -> Check:
    """The token must be over this data (checked here) and verify with openssl against the roots, as of ``at``
    (now when None)."""
    inputs = _evidence(files, link, roots)
    if isinstance(inputs, str):
        return Check(name, False, inputs)
    data, token, _ = inputs
    try:
        details = _token_details(token, data)
    except Exception as exc:  # asn1crypto raises assorted types on malformed DER
        return Check(name, False, f"{link.token} cannot be read: {exc}")
    details |= {"trusted_by": trusted_by, "valid_at": at.isoformat() if at is not None else "now"}
    if not details["imprint_matches"]:
        return Check(name, False, f"the timestamp is not over {link.data}", details)
    when = ["-attime", str(int(at.timestamp()))] if at is not None else []
    with _workspace(*inputs) as work:
        result = _openssl(work, "ts", "-verify", "-data", "data", "-in", "evidence", "-CAfile", "ca.pem", *when)
    if result.returncode == 0 and "Verification: OK" in result.stdout:
        return Check(name, True, details=details)
    details["openssl"] = _tail(result.stderr or result.stdout)
    expires = details["tsa_not_after"]
    if expires is not None and datetime.fromisoformat(expires) < (at or datetime.now(UTC)):
        reason = f"the TSA certificate of {link.token} expired on {expires}: the timestamp needed a renewal before"
        return Check(name, False, reason, details)
    return Check(name, False, "the timestamp token's signature or certificate chain is invalid", details)


def _renewals_check(
    files: Mapping[str, bytes], roots: bytes | None, trusted_by: str, at: datetime | None
) -> tuple[Check, datetime | None]:
    """Each renewal lists exactly the evidence before it, with matching hashes, and its token verifies as of
    the next one's time (the newest as of ``at``); times only move forward. Also returns the time the
    original timestamp must be valid at: the first renewal's, or ``at`` when there is none (or it fails)."""
    chain = evidence_chain(files)
    expected = {path for link in chain[1:] for path in (link.data, link.token)} | {RENEWALS_README}
    stray = sorted(path for path in files if path.startswith(f"{RENEWALS_DIR}/") and path not in expected)
    problems = [f"files that are not part of the chain: {', '.join(stray)}"] if stray else []
    renewals: list[dict[str, Any]] = []
    valid_at = at
    for index in range(len(chain) - 1, 0, -1):  # newest first: each one fixes the time for the one before
        link = chain[index]
        problems += _coverage_problems(files, link, covered_paths(chain[:index]))
        token = _token_check(f"renewal {index}", files, link, roots, trusted_by, valid_at)
        if not token.ok:
            problems.append(f"renewal {index}: {token.reason}")
        renewals.insert(0, {"number": index, **token.details})
        valid_at = datetime.fromisoformat(token.details["gen_time"]) if "gen_time" in token.details else None
    times = [_token_times(files, link)[0] for link in chain]
    if any(later is None or earlier is None or later <= earlier for earlier, later in itertools.pairwise(times)):
        problems.append("each renewal must be later than the timestamp before it")
    _, newest = _token_times(files, chain[-1])
    details = {"count": len(chain) - 1, "renewals": renewals, "evidence_expires_at": newest}
    if problems:
        return Check("timestamp_renewals", False, "; ".join(problems), details), at
    return Check("timestamp_renewals", True, details=details), valid_at if len(chain) > 1 else at


def _coverage_problems(files: Mapping[str, bytes], link: Link, wanted: list[str]) -> list[str]:
    listed, malformed = _parse_manifest(files[link.data])
    problems = [f"{link.data}: {line}" for line in malformed]
    if sorted(listed) != wanted:
        problems.append(f"{link.data} must list exactly {', '.join(wanted)}")
    changed = sorted(path for path in listed.keys() & set(wanted) if _sha256(files.get(path, b"")) != listed[path])
    if changed:
        problems.append(f"{link.data}: changed since the renewal: {', '.join(changed)}")
    return problems


def _token_times(files: Mapping[str, bytes], link: Link) -> tuple[datetime | None, str | None]:
    """The token's time and its TSA certificate's end, or None where it is missing or malformed (the token's
    own check says why)."""
    try:
        signed_data = tsp.TimeStampResp.load(files[link.token])["time_stamp_token"]["content"]
        gen_time = signed_data["encap_content_info"]["content"].parsed["gen_time"].native
        certificate = _tsa_certificate(signed_data)
    except Exception:  # asn1crypto raises assorted types on malformed DER
        return None, None
    return gen_time, certificate.not_valid_after.isoformat() if certificate is not None else None


def _token_details(token: bytes, data: bytes) -> dict[str, Any]:
    response = tsp.TimeStampResp.load(token)
    status = response["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        raise ValueError(f"the TSA did not grant it (status {status})")
    signed_data = response["time_stamp_token"]["content"]
    info = signed_data["encap_content_info"]["content"].parsed
    algorithm = info["message_imprint"]["hash_algorithm"]["algorithm"].native
    expected = hashlib.new(algorithm, data).digest() if algorithm in ("sha256", "sha384", "sha512") else None
    certificate = _tsa_certificate(signed_data)
    return {
        "status": status,
        "gen_time": info["gen_time"].native.isoformat(),
        "hash_algorithm": algorithm,
        "imprint_matches": info["message_imprint"]["hashed_message"].native == expected,
        "tsa": certificate.subject.human_friendly if certificate is not None else None,
        "tsa_not_after": certificate.not_valid_after.isoformat() if certificate is not None else None,
    }


def _tsa_certificate(signed_data: cms.SignedData) -> asn1_x509.Certificate | None:
    """The certificate the token's signer identifier points at, if the token carries it."""
    sid = signed_data["signer_infos"][0]["sid"]
    for choice in signed_data["certificates"] or ():
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            match = cert.issuer == sid.chosen["issuer"] and cert.serial_number == sid.chosen["serial_number"].native
        else:
            match = cert.key_identifier == sid.chosen.native
        if match:
            return cert
    return None


def _evidence(files: Mapping[str, bytes], link: Link, roots: bytes | None) -> tuple[bytes, bytes, bytes] | str:
    """(data, evidence file, trust roots), or why they cannot be checked."""
    data, evidence = files.get(link.data), files.get(link.token)
    if data is None:
        return f"{link.data} is missing"
    if evidence is None:
        return f"{link.token} is missing"
    if not roots:
        return "no trust root: pass trust_roots_pem or include ca.pem in the bag"
    if shutil.which("openssl") is None:
        return "openssl is not installed"
    return data, evidence, roots


@contextlib.contextmanager
def _workspace(data: bytes, evidence: bytes, roots: bytes) -> Iterator[Path]:
    """A private folder holding the three files openssl reads."""
    with tempfile.TemporaryDirectory(prefix="bag-verify-") as folder:
        work = Path(folder)
        (work / "data").write_bytes(data)
        (work / "evidence").write_bytes(evidence)
        (work / "ca.pem").write_bytes(roots)
        yield work


def _openssl(work: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("openssl") or "openssl"
    return subprocess.run(  # noqa: S603 - fixed argument list of our own, no shell
        [executable, *arguments], cwd=work, capture_output=True, text=True, timeout=_OPENSSL_TIMEOUT, check=False
    )


def _subject(pem_file: Path) -> str | None:
    try:
        return x509.load_pem_x509_certificates(pem_file.read_bytes())[0].subject.rfc4514_string()
    except (OSError, ValueError, IndexError):
        return None


def _parse_bag_info(content: bytes) -> dict[str, str]:
    """Labels and values; continuation lines (leading whitespace) join the previous value."""
    fields: dict[str, str] = {}
    label = None
    for line in content.decode("utf-8", errors="replace").splitlines():
        if line[:1] in (" ", "\t") and label:
            fields[label] += " " + line.strip()
        elif ":" in line:
            label, value = line.split(":", 1)
            fields[label.strip()] = value.strip()
    return fields


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _tail(text: str) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-3:])
