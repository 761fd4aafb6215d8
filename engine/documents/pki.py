"""Seal keys and certificates: a development PKI on disk, and production key sources from configuration.

The development PKI (a test root CA, one seal certificate per bank, a TSA certificate and an empty CRL) lets
every installation seal and verify contracts offline. It is TEST ONLY: its root is trusted by nothing but
this application. In production a bank's seal key comes from a key file or PKCS#12 bundle issued by a
licensed CA, or from an HSM/USB key reached over PKCS#11, configured per bank in a JSON file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.keys import load_certs_from_pemder
from pyhanko.keys.internal import translate_pyca_cryptography_key_to_asn1
from pyhanko.sign.signers import Signer, SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from engine.errors import InvalidInput

SEAL_PURPOSE = "电子合同专用章"
ROOT_NAME = "CreditFlow Development Root CA — TEST ONLY"
TSA_NAME = "CreditFlow Development TSA — TEST ONLY"
# Never fetched: .invalid cannot resolve (RFC 2606); the CRL itself ships in the PKI directory and the DSS.
CRL_URL = "http://pki.creditflow.invalid/dev-root.crl"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # RFC 9336 id-kp-documentSigning
MANIFEST = "manifest.json"
_CN_MAX_BYTES = 64  # X.509 ub-common-name; cryptography counts UTF-8 bytes (~21 CJK characters)
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # bank codes become file names
_ABBREVIATIONS = (("农村商业银行", "农商银行"), ("农村合作银行", "农合银行"), ("农村信用合作联社", "农信联社"))
_CLOCK_SKEW = timedelta(hours=1)
_CRL_LIFETIME = timedelta(days=365)
_CRL_RENEW_BEFORE = timedelta(days=30)


class UnknownSealIdentity(InvalidInput):
    """No seal key is configured or issued for this bank code."""

    title = "Unknown seal identity"


class SealConfigError(RuntimeError):
    """The seal configuration cannot be used (missing file, env variable or library): an operator problem."""


@dataclass(frozen=True)
class BankIdentity:
    code: str
    name: str


@dataclass(frozen=True)
class PkiSummary:
    """What `init_pki` found: ``created`` lists what this run added or renewed (root, tsa, crl, bank codes)."""

    directory: Path
    created: tuple[str, ...]
    banks: tuple[str, ...]


@dataclass(frozen=True)
class KeyFileSource:
    """A seal key in a PEM/DER key file plus certificate, or in one PKCS#12 bundle (``cert`` is then None)."""

    key: Path
    cert: Path | None
    chain: tuple[Path, ...] = ()
    passphrase_env: str | None = None


@dataclass(frozen=True)
class Pkcs11Source:
    """A seal key on a PKCS#11 token (HSM, USB key); the PIN comes from an environment variable."""

    module: Path
    token_label: str
    key_label: str
    pin_env: str
    cert_label: str | None = None
    chain: tuple[Path, ...] = ()


@dataclass(frozen=True)
class SealConfig:
    """Production overrides: per-bank key sources, an external TSA and whether sealing may fetch revocation data.

    Empty means development PKI only. ``tsa_roots`` are the PEM files of the external TSA's root (and any
    intermediate) certificates: its timestamps verify only against them. ``fetch_revocation`` lets sealing
    download the CRLs/OCSP responses of a real CA for the B-LT validation data; without it sealing stays
    offline and embeds the PKI's own CRL.
    """

    banks: dict[str, KeyFileSource | Pkcs11Source] = field(default_factory=dict)
    tsa_url: str | None = None
    tsa_roots: tuple[Path, ...] = ()
    fetch_revocation: bool = False

    @classmethod
    def read(cls, path: Path | None) -> SealConfig:
        """Parse the JSON seal configuration; relative paths are resolved against the file's directory."""
        if path is None:
            return cls()
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SealConfigError(f"cannot read seal configuration {path}: {exc}") from exc
        base = Path(path).parent
        banks = {code: _key_source(code, spec, base) for code, spec in raw.get("banks", {}).items()}
        return cls(
            banks=banks,
            tsa_url=raw.get("tsa_url") or None,
            tsa_roots=tuple(base / name for name in raw.get("tsa_roots", [])),
            fetch_revocation=bool(raw.get("fetch_revocation")),
        )


def _key_source(code: str, spec: dict[str, Any], base: Path) -> KeyFileSource | Pkcs11Source:
    def path(value: str) -> Path:
        return base / value

    try:
        chain = tuple(path(p) for p in spec.get("chain", []))
        if spec["kind"] == "file":
            if "pkcs12" in spec:
                return KeyFileSource(path(spec["pkcs12"]), None, chain, spec.get("passphrase_env"))
            return KeyFileSource(path(spec["key"]), path(spec["cert"]), chain, spec.get("passphrase_env"))
        if spec["kind"] == "pkcs11":
            return Pkcs11Source(
                module=Path(spec["module"]),
                token_label=spec["token_label"],
                key_label=spec["key_label"],
                pin_env=spec["pin_env"],
                cert_label=spec.get("cert_label"),
                chain=chain,
            )
    except KeyError as exc:
        raise SealConfigError(f"seal configuration for {code!r} lacks {exc.args[0]!r}") from exc
    raise SealConfigError(f"seal configuration for {code!r}: kind must be 'file' or 'pkcs11'")


def seal_common_name(bank_name: str) -> str:
    """CN = short bank name + 电子合同专用章, the short name cut so the CN fits X.509's 64-byte limit."""
    short = bank_name
    for suffix in ("股份有限公司", "有限责任公司", "有限公司"):
        if short.endswith(suffix):
            short = short[: -len(suffix)]
            break
    for long, abbreviation in _ABBREVIATIONS:
        short = short.replace(long, abbreviation)
    while len((short + SEAL_PURPOSE).encode()) > _CN_MAX_BYTES:
        short = short[:-1]
    return short + SEAL_PURPOSE


# ---------------------------------------------------------------------------------------------- dev PKI


def init_pki(directory: Path, banks: list[BankIdentity], *, now: datetime) -> PkiSummary:
    """Create or complete the development PKI; existing keys are kept, missing banks are added.

    A bank whose name changed gets a new certificate over its existing key. The CRL is re-issued when it is
    missing or about to expire, so a long-lived installation keeps verifying offline.
    """
    for bank in banks:
        _check_code(bank.code)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    manifest = _read_manifest(directory)
    created: list[str] = []
    not_before = now - _CLOCK_SKEW

    root_key, root = _load_pair(directory, manifest.get("root"))
    if root_key is None or root is None:
        root_key = root_key or ec.generate_private_key(ec.SECP384R1())
        root = _root_certificate(root_key, not_before)
        manifest["root"] = _write_pair(directory, "root-ca", root_key, root)
        created.append("root")
    issuer = _Issuer(root_key, root)

    tsa_key, tsa = _load_pair(directory, manifest.get("tsa"))
    if tsa_key is None or not issuer.issued(tsa):
        # RSA: TSAs conventionally sign with RSA and every RFC 3161 client accepts it
        tsa_key = tsa_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tsa = issuer.leaf(_name(TSA_NAME, "CreditFlow Development (TEST ONLY)"), tsa_key, not_before, tsa=True)
        manifest["tsa"] = _write_pair(directory, "tsa", tsa_key, tsa)
        created.append("tsa")

    crl_path = directory / manifest.get("crl", "root-ca.crl.pem")
    if not crl_path.exists() or "root" in created or _crl_expiring(crl_path, now):
        crl_path.write_bytes(issuer.crl(now).public_bytes(serialization.Encoding.PEM))
        manifest["crl"] = crl_path.name
        created.append("crl")

    bank_entries: dict[str, dict[str, str]] = manifest.setdefault("banks", {})
    for bank in banks:
        entry = bank_entries.get(bank.code)
        key, cert = _load_pair(directory, entry)
        if key is None or not issuer.issued(cert) or (entry or {}).get("name") != bank.name:
            key = key or ec.generate_private_key(ec.SECP256R1())
            cert = issuer.leaf(_bank_name(bank), key, not_before, tsa=False)
            (directory / "banks").mkdir(mode=0o700, exist_ok=True)
            bank_entries[bank.code] = {"name": bank.name, **_write_pair(directory, f"banks/{bank.code}", key, cert)}
            created.append(bank.code)

    _write_manifest(directory, manifest)
    return PkiSummary(directory=directory, created=tuple(created), banks=tuple(sorted(bank_entries)))


def _check_code(code: str) -> None:
    if not _CODE.match(code):
        raise InvalidInput(f"bank code {code!r} must be lower-case letters, digits, '-' or '_'")


def _name(common_name: str, organisation: str, unit: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
    ]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _bank_name(bank: BankIdentity) -> x509.Name:
    return _name(seal_common_name(bank.name), bank.name, "电子印章")


def _root_certificate(key: EllipticCurvePrivateKey, not_before: datetime) -> x509.Certificate:
    name = _name(ROOT_NAME, "CreditFlow Development (TEST ONLY)")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=3652))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )


def _key_usage(*, sign: bool = False, non_repudiation: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class _Issuer:
    key: PrivateKeyTypes
    cert: x509.Certificate

    def leaf(self, subject: x509.Name, key: PrivateKeyTypes, not_before: datetime, *, tsa: bool) -> x509.Certificate:
        """A seal certificate, or with ``tsa`` the time-stamping certificate (RFC 3161 wants its EKU critical)."""
        public = key.public_key()
        # NSS (pdfsig, Evince, Okular) only accepts a document signer whose EKU includes emailProtection
        usages = (
            [ExtendedKeyUsageOID.TIME_STAMPING] if tsa else [ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]
        )
        lifetime = timedelta(days=3650 if tsa else 1095)
        not_after = min(not_before + lifetime, self.cert.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign=True, non_repudiation=not tsa), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=tsa)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)  # type: ignore[arg-type]
            .add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA384())
        )

    def issued(self, cert: x509.Certificate | None) -> bool:
        """Whether this root signed ``cert`` (a root re-created after its key was lost has the same name)."""
        if cert is None:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def crl(self, now: datetime) -> x509.CertificateRevocationList:
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - _CLOCK_SKEW)
            .next_update(now + _CRL_LIFETIME)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA384())
        )


def _crl_expiring(path: Path, now: datetime) -> bool:
    next_update = x509.load_pem_x509_crl(path.read_bytes()).next_update_utc
    return next_update is None or next_update - now < _CRL_RENEW_BEFORE


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    temporary = directory / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, directory / MANIFEST)


def _load_pair(directory: Path, entry: dict[str, str] | None) -> tuple[PrivateKeyTypes | None, x509.Certificate | None]:
    """Key and certificate, each None when its file is missing: a lost certificate is re-issued over the key."""
    if not entry:
        return None, None
    key_path, cert_path = directory / entry["key"], directory / entry["cert"]
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None) if key_path.exists() else None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.exists() else None
    return key, cert


def _write_pair(directory: Path, stem: str, key: PrivateKeyTypes, cert: x509.Certificate) -> dict[str, str]:
    """Write the key owner-only (created 0600, never world-readable even briefly) and the certificate as PEM."""
    key_name, cert_name = f"{stem}.key.pem", f"{stem}.pem"
    key_path = directory / key_name
    if not key_path.exists():
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    (directory / cert_name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return {"key": key_name, "cert": cert_name}


# ---------------------------------------------------------------------------------------------- loading


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class LoadedKeySigner(SimpleSigner):
    """A SimpleSigner that keeps the parsed private key.

    pyHanko's SimpleSigner re-parses its key on every signature, twice per PDF (size estimate, then the real
    one); cryptography validates RSA keys while parsing, which costs ~130 ms for RSA-3072.
    """

    def __init__(
        self, signing_cert: asn1_x509.Certificate, key: PrivateKeyTypes, chain: Iterable[asn1_x509.Certificate]
    ) -> None:
        self._key = key
        super().__init__(
            signing_cert=signing_cert,
            signing_key=translate_pyca_cryptography_key_to_asn1(key),
            cert_registry=SimpleCertificateStore.from_certs(list(chain)),
        )

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        hash_algorithm = get_pyca_cryptography_hash(digest_algorithm)
        if mechanism == "ecdsa" and isinstance(self._key, EllipticCurvePrivateKey):
            return self._key.sign(data, ECDSA(hash_algorithm))
        if mechanism == "rsassa_pkcs1v15" and isinstance(self._key, RSAPrivateKey):
            return self._key.sign(data, PKCS1v15(), hash_algorithm)
        return super().sign_raw(data, digest_algorithm)


class Pki:
    """The development PKI plus configured production keys; seal signers are built once per bank and cached."""

    def __init__(self, directory: Path, config: SealConfig) -> None:
        manifest = _read_manifest(directory)
        if "root" not in manifest:
            raise SealConfigError(f"no seal PKI in {directory}: run init_pki first")
        self.directory = directory
        self.config = config
        self._manifest = manifest
        root_pem = (directory / manifest["root"]["cert"]).read_bytes()
        self.root = _asn1(x509.load_pem_x509_certificate(root_pem))
        crl = x509.load_pem_x509_crl((directory / manifest["crl"]).read_bytes())
        self.crl_der = crl.public_bytes(serialization.Encoding.DER)
        tsa_key, tsa_cert = _load_pair(directory, manifest["tsa"])
        if not isinstance(tsa_key, RSAPrivateKey) or tsa_cert is None:
            raise SealConfigError(f"the development TSA key in {directory} is missing or not RSA")
        self.tsa_key: RSAPrivateKey = tsa_key
        self.tsa_cert = _asn1(tsa_cert)
        self._signers: dict[str, Signer] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path, config: SealConfig | None = None) -> Pki:
        return cls(directory, config or SealConfig())

    @property
    def bank_codes(self) -> tuple[str, ...]:
        return tuple(sorted(set(self._manifest.get("banks", {})) | set(self.config.banks)))

    @property
    def trust_roots(self) -> list[asn1_x509.Certificate]:
        """The development root, every self-signed certificate in the banks' chains and the TSA's roots."""
        roots = [self.root]
        for source in self.config.banks.values():
            roots += [c for c in _chain(source.chain) if c.self_signed and c not in roots]
        return roots + [c for c in _chain(self.config.tsa_roots) if c not in roots]

    def seal_signer(self, bank_code: str) -> Signer:
        """The pyHanko signer for a bank's seal: its configured source, or the development key when the
        seal configuration names no bank at all (never a test key beside production ones)."""
        with self._lock:
            signer = self._signers.get(bank_code)
            if signer is None:
                signer = self._signers[bank_code] = self._build_signer(bank_code)
            return signer

    def _build_signer(self, bank_code: str) -> Signer:
        source = self.config.banks.get(bank_code)
        if isinstance(source, KeyFileSource):
            return _file_signer(bank_code, source)
        if isinstance(source, Pkcs11Source):
            return _pkcs11_signer(bank_code, source)
        if self.config.banks:  # production keys are configured: a bank left out must not seal with a test key
            raise UnknownSealIdentity(
                f"bank {bank_code!r} has no seal key in the seal configuration; the development key seals "
                "only where no production keys are configured"
            )
        entry = self._manifest.get("banks", {}).get(bank_code)
        if entry is None:
            raise UnknownSealIdentity(f"no seal key for bank {bank_code!r}")
        key, cert = _load_pair(self.directory, entry)
        if key is None or cert is None:
            raise SealConfigError(f"seal key files for {bank_code!r} are missing from {self.directory}")
        return LoadedKeySigner(_asn1(cert), key, [self.root])


def _chain(paths: Iterable[Path]) -> list[asn1_x509.Certificate]:
    try:
        return [cert for path in paths for cert in load_certs_from_pemder([str(path)])]
    except (OSError, ValueError) as exc:
        raise SealConfigError(f"cannot read certificate chain: {exc}") from exc


def _secret(variable: str | None, what: str, bank_code: str) -> bytes | None:
    """A passphrase or PIN from the environment; only the variable's name ever appears in errors."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise SealConfigError(f"{what} for seal {bank_code!r} expected in environment variable {variable}")
    return value.encode()


def _file_signer(bank_code: str, source: KeyFileSource) -> Signer:
    passphrase = _secret(source.passphrase_env, "key passphrase", bank_code)
    chain = _chain(source.chain)
    try:
        data = source.key.read_bytes()
        if source.cert is None:
            key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
            if key is None or cert is None:
                raise ValueError("the PKCS#12 bundle lacks a key or a certificate")
            chain += [_asn1(c) for c in extra]
            return LoadedKeySigner(_asn1(cert), key, chain)
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=passphrase)
        else:
            key = serialization.load_der_private_key(data, password=passphrase)
        cert_data = source.cert.read_bytes()
        if cert_data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_data)
        else:
            cert = x509.load_der_x509_certificate(cert_data)
    except (OSError, ValueError, TypeError) as exc:
        # cryptography's messages name the problem (bad passphrase, wrong format), never the key material
        raise SealConfigError(f"cannot load the seal key for {bank_code!r}: {exc}") from exc
    return LoadedKeySigner(_asn1(cert), key, chain)


def _pkcs11_signer(bank_code: str, source: Pkcs11Source) -> Signer:
    """Open the token once; the session stays open for the life of the process (the signer is cached)."""
    try:
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    except ImportError as exc:
        raise SealConfigError(
            f"seal {bank_code!r} uses PKCS#11, which needs python-pkcs11: install 'pyhanko[pkcs11]'"
        ) from exc
    pin = _secret(source.pin_env, "PKCS#11 token PIN", bank_code)
    assert pin is not None  # pin_env is mandatory for PKCS#11 sources
    try:
        session = open_pkcs11_session(
            str(source.module), token_criteria=TokenCriteria(label=source.token_label), user_pin=pin.decode()
        )
    except Exception as exc:  # python-pkcs11 raises its own hierarchy plus OSError for a bad module path
        raise SealConfigError(f"cannot open PKCS#11 token {source.token_label!r} for {bank_code!r}: {exc}") from exc
    return PKCS11Signer(
        session,
        cert_label=source.cert_label or source.key_label,
        key_label=source.key_label,
        ca_chain=_chain(source.chain),
    )
