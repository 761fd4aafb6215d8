"""Electronic seals end to end: development PKI, seal image, RFC 3161 TSA, PAdES sealing and verification.

Everything is real: LibreOffice makes the contract PDF, pyHanko signs and validates, poppler's pdfsig (NSS)
and OpenSSL check the results independently.
"""

from __future__ import annotations

import io
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from docx import Document
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.timestamps import HTTPTimeStamper

from engine.documents.pki import (
    BankIdentity,
    Pki,
    SealConfig,
    SealConfigError,
    UnknownSealIdentity,
    init_pki,
    seal_common_name,
)
from engine.documents.seal_image import seal_png
from engine.documents.sealing import SEAL_POINTS, Sealer, SealingError, SealResult
from engine.documents.timestamps import LocalTimeStamper, timestamp_token, timestamper, tsa_wsgi_app
from engine.documents.verification import verify_pdf
from tests.conftest import pdfsig

LINGYUAN = BankIdentity("bank-lingyuan", "陵源农商银行")
QINGHE = BankIdentity("bank-qinghe", "清河农商银行")
ANCHOR = "贷款人（盖章）"


def _contract_docx(path: Path, *, with_anchor: bool) -> None:
    """An A4 loan contract, two pages long, whose signature block (with the anchor) is on the last page."""
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    normal = document.styles["Normal"]
    normal.font.name = "Noto Sans CJK SC"
    normal.font.size = Pt(11)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), "Noto Sans CJK SC")  # python-docx's font.name skips CJK
    document.add_heading("个人借款合同", level=1)
    for number in range(1, 41):
        document.add_paragraph(f"第{number}条 借款人应按照本合同约定的期限和方式按期足额归还借款本金和利息。")
    document.add_paragraph("借款人（签字）：张三")
    document.add_paragraph("贷款人（盖章）：陵源农商银行" if with_anchor else "贷款人：陵源农商银行")
    document.add_paragraph("签订日期：2026年12月1日")
    document.save(str(path))


@pytest.fixture(scope="module")
def contract_pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real LibreOffice conversions (own profile, so a parallel soffice elsewhere cannot interfere)."""
    work = tmp_path_factory.mktemp("contracts")
    _contract_docx(work / "anchored.docx", with_anchor=True)
    _contract_docx(work / "plain.docx", with_anchor=False)
    subprocess.run(
        [
            "soffice",
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(work),
            str(work / "anchored.docx"),
            str(work / "plain.docx"),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return {name: (work / f"{name}.pdf").read_bytes() for name in ("anchored", "plain")}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    init_pki(directory, [LINGYUAN, QINGHE], now=datetime.now(UTC))
    return directory


@pytest.fixture(scope="module")
def pki(pki_dir: Path) -> Pki:
    return Pki.load(pki_dir)


@pytest.fixture(scope="module")
def sealer(pki: Pki) -> Sealer:
    return Sealer(pki, LocalTimeStamper.for_pki(pki))


@pytest.fixture(scope="module")
def sealed(sealer: Sealer, contract_pdfs: dict[str, bytes]) -> SealResult:
    return sealer.seal(contract_pdfs["anchored"], bank_code=LINGYUAN.code, bank_name=LINGYUAN.name)


# ---------------------------------------------------------------------------------------------- PKI


def test_init_pki_is_idempotent_keeps_keys_and_adds_missing_banks(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    now = datetime.now(UTC)
    first = init_pki(directory, [LINGYUAN], now=now)
    assert first.created == ("root", "tsa", "crl", LINGYUAN.code)
    keys = {path: path.read_bytes() for path in directory.rglob("*.key.pem")}

    second = init_pki(directory, [LINGYUAN, QINGHE], now=now + timedelta(days=1))
    assert second.created == (QINGHE.code,) and second.banks == (LINGYUAN.code, QINGHE.code)
    assert all(path.read_bytes() == pem for path, pem in keys.items())
    assert init_pki(directory, [LINGYUAN, QINGHE], now=now + timedelta(days=2)).created == ()

    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["banks"][QINGHE.code] == {
        "name": QINGHE.name,
        "cert": "banks/bank-qinghe.pem",
        "key": "banks/bank-qinghe.key.pem",
    }
    for key_file in directory.rglob("*.key.pem"):
        assert key_file.stat().st_mode & 0o777 == 0o600, key_file


def test_seal_certificate_profile(pki_dir: Path) -> None:
    cert = x509.load_pem_x509_certificate((pki_dir / "banks" / "bank-lingyuan.pem").read_bytes())
    subject = {attribute.oid: attribute.value for attribute in cert.subject}
    assert subject[NameOID.ORGANIZATION_NAME] == "陵源农商银行"
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "电子印章"
    assert subject[NameOID.COMMON_NAME] == "陵源农商银行电子合同专用章"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {oid.dotted_string for oid in extended} == {"1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36"}
    tsa = x509.load_pem_x509_certificate((pki_dir / "tsa.pem").read_bytes())
    assert tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage).critical
    root = x509.load_pem_x509_certificate((pki_dir / "root-ca.pem").read_bytes())
    assert "TEST ONLY" in root.subject.rfc4514_string()


def test_common_name_fits_64_bytes_for_long_bank_names() -> None:
    name = seal_common_name("广东省某某市某某区某某镇农村信用合作联社股份有限公司")
    assert name.endswith("电子合同专用章") and len(name.encode()) <= 64
    assert seal_common_name("示例县农村商业银行股份有限公司") == "示例县农商银行电子合同专用章"


def test_unknown_bank_is_a_clear_error(pki: Pki) -> None:
    with pytest.raises(UnknownSealIdentity, match="bank-nowhere"):
        pki.seal_signer("bank-nowhere")


def test_pkcs11_bank_that_cannot_be_opened_is_a_configuration_error(pki_dir: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "seal.json"
    config_file.write_text(
        json.dumps(
            {
                "banks": {
                    "bank-hsm": {
                        "kind": "pkcs11",
                        "module": "/usr/lib/softhsm/libsofthsm2.so",
                        "token_label": "seal",
                        "key_label": "bank-hsm",
                        "pin_env": "CREDITFLOW_TEST_PIN",
                    }
                }
            }
        )
    )
    pki = Pki.load(pki_dir, SealConfig.read(config_file))
    with pytest.raises(SealConfigError, match="PKCS#11"):
        pki.seal_signer("bank-hsm")
    # a bank the production configuration leaves out has no seal: its contracts were sealed with the
    # development key (TEST ONLY) and reported valid
    assert "bank-lingyuan" in Pki.load(pki_dir).bank_codes  # it has a development key ...
    with pytest.raises(UnknownSealIdentity, match="no seal key in the seal configuration"):
        pki.seal_signer("bank-lingyuan")  # ... which does not seal once production keys are configured


# ---------------------------------------------------------------------------------------------- seal image


def test_seal_png_is_transparent_red_and_deterministic() -> None:
    png = seal_png("陵源农商银行")
    assert png == seal_png.__wrapped__("陵源农商银行")  # same bytes when drawn afresh
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    assert image.size == (300, 300)
    assert image.getpixel((2, 2))[3] == 0  # corner outside the ring is transparent
    red = sum(1 for r, g, b, a in image.get_flattened_data() if a > 200 and r > 180 and g < 90 and b < 90)
    assert red > 5000  # ring, star and lettering
    assert seal_png("清河农商银行") != png


# ---------------------------------------------------------------------------------------------- TSA


def test_timestamp_token_verifies_with_openssl(pki: Pki, pki_dir: Path, tmp_path: Path) -> None:
    data = "tagmanifest-sha256.txt 内容\n".encode()
    (tmp_path / "tagmanifest.txt").write_bytes(data)
    (tmp_path / "token.tsr").write_bytes(timestamp_token(data, LocalTimeStamper.for_pki(pki)))
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            "tagmanifest.txt",
            "-in",
            "token.tsr",
            "-CAfile",
            str(pki_dir / "root-ca.pem"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_configured_tsa_url_replaces_the_local_tsa(pki: Pki) -> None:
    remote = timestamper(SealConfig(tsa_url="https://tsa.example.cn/tsr"), pki)
    assert isinstance(remote, HTTPTimeStamper) and remote.url == "https://tsa.example.cn/tsr"
    assert isinstance(timestamper(SealConfig(), pki), LocalTimeStamper)


def test_wsgi_tsa_answers_an_openssl_query(pki: Pki, pki_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("loan file", encoding="utf-8")
    subprocess.run(
        ["openssl", "ts", "-query", "-data", "file.txt", "-sha256", "-cert", "-out", "query.tsq"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    query = (tmp_path / "query.tsq").read_bytes()
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/timestamp-query",
        "CONTENT_LENGTH": str(len(query)),
        "wsgi.input": io.BytesIO(query),
    }
    body = b"".join(tsa_wsgi_app(pki)(environ, start_response))
    assert answer["status"] == "200 OK" and answer["headers"]["Content-Type"] == "application/timestamp-reply"
    (tmp_path / "reply.tsr").write_bytes(body)
    result = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-queryfile",
            "query.tsq",
            "-in",
            "reply.tsr",
            "-CAfile",
            str(pki_dir / "root-ca.pem"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr

    refused = b"".join(tsa_wsgi_app(pki)({"REQUEST_METHOD": "GET"}, start_response))
    assert answer["status"].startswith("405") and refused


# ---------------------------------------------------------------------------------------------- sealing


def test_sealed_contract_verifies_valid_with_a_trusted_timestamp(sealed: SealResult, pki: Pki) -> None:
    assert sealed.anchor_found and sealed.page == 2 and sealed.field_name == "BankSeal"
    assert "陵源农商银行电子合同专用章" in sealed.signer_subject
    assert abs(sealed.signed_at - datetime.now(UTC)) < timedelta(minutes=5)

    report = verify_pdf(sealed.pdf, pki)
    assert report.status == "valid", report.to_dict()
    [signature] = report.signatures
    assert signature.signer_organization == "陵源农商银行"
    assert signature.signer_common_name == "陵源农商银行电子合同专用章"
    assert signature.timestamp_time == sealed.signed_at
    assert signature.timestamp_valid and signature.timestamp_trusted
    assert signature.intact and signature.valid and signature.trusted and signature.docmdp_ok
    assert signature.coverage == "entire_revision" and signature.modification_level == "lta_updates"  # B-LT DSS
    assert json.loads(json.dumps(report.to_dict()))["signatures"][0]["signer_organization"] == "陵源农商银行"


def test_seal_is_visible_over_the_anchor(sealed: SealResult, tmp_path: Path) -> None:
    (tmp_path / "sealed.pdf").write_bytes(sealed.pdf)
    dpi = 72  # one pixel per point
    subprocess.run(
        ["pdftoppm", "-f", "2", "-l", "2", "-r", str(dpi), "-png", "-singlefile", "sealed.pdf", "page"],
        cwd=tmp_path,
        check=True,
    )
    page = Image.open(tmp_path / "page.png").convert("RGB")
    left, bottom, right, top = sealed.box
    assert right - left == SEAL_POINTS

    def red_pixels(box: tuple[int, int, int, int]) -> int:
        crop = page.crop(box)
        return sum(1 for r, g, b in crop.get_flattened_data() if r > 180 and g < 120 and b < 120)

    seal_area = (left, page.height - top, right, page.height - bottom)  # PDF y grows upwards, pixels downwards
    assert red_pixels(seal_area) > 1000  # ~12% of the box at 72 dpi: ring, star and lettering
    assert red_pixels((0, 0, page.width, 100)) == 0  # nothing red at the top of the page
    window = ["-x", str(left), "-y", str(page.height - top), "-W", str(SEAL_POINTS), "-H", str(SEAL_POINTS)]
    text = subprocess.run(
        ["pdftotext", "-f", "2", "-l", "2", *window, "sealed.pdf", "-"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "盖章" in text  # the seal sits on the anchor


def test_missing_anchor_falls_back_to_bottom_right_of_last_page(
    sealer: Sealer, contract_pdfs: dict[str, bytes], pki: Pki
) -> None:
    result = sealer.seal(contract_pdfs["plain"], bank_code=QINGHE.code, bank_name=QINGHE.name)
    assert not result.anchor_found and result.page == 2
    _left, bottom, right, _top = result.box
    assert right > 595 / 2 and bottom < 842 / 4  # A4 page, lower right quarter
    assert verify_pdf(result.pdf, pki).status == "valid"


def test_signed_or_broken_input_is_refused(sealer: Sealer, sealed: SealResult) -> None:
    with pytest.raises(SealingError, match="already signed"):
        sealer.seal(sealed.pdf, bank_code=QINGHE.code, bank_name=QINGHE.name)
    with pytest.raises(SealingError, match="not a readable PDF"):
        sealer.seal(b"%PDF-1.7 nothing else", bank_code=QINGHE.code, bank_name=QINGHE.name)


def test_sealing_is_thread_safe(sealer: Sealer, contract_pdfs: dict[str, bytes], pki: Pki) -> None:
    banks = [LINGYUAN, QINGHE] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda bank: sealer.seal(contract_pdfs["anchored"], bank_code=bank.code, bank_name=bank.name), banks
            )
        )
    for bank, result in zip(banks, results, strict=True):
        report = verify_pdf(result.pdf, pki)
        assert report.status == "valid" and report.signatures[0].signer_organization == bank.name


def test_key_file_bank_from_configuration_seals_and_verifies(
    pki: Pki, pki_dir: Path, contract_pdfs: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key = serialization.load_pem_private_key((pki_dir / "root-ca.key.pem").read_bytes(), password=None)
    root = x509.load_pem_x509_certificate((pki_dir / "root-ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "白石农商银行"),
            x509.NameAttribute(NameOID.COMMON_NAME, "白石农商银行电子合同专用章"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    passphrase = "unit-test passphrase"
    (tmp_path / "seal.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    (tmp_path / "seal.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config = {
        "banks": {
            "bank-baishi": {
                "kind": "file",
                "key": "seal.key",
                "cert": "seal.pem",
                "chain": [str(pki_dir / "root-ca.pem")],
                "passphrase_env": "CREDITFLOW_TEST_SEAL_PASSPHRASE",
            }
        }
    }
    (tmp_path / "seal.json").write_text(json.dumps(config))
    configured = Pki.load(pki_dir, SealConfig.read(tmp_path / "seal.json"))
    with pytest.raises(SealConfigError, match="CREDITFLOW_TEST_SEAL_PASSPHRASE"):
        configured.seal_signer("bank-baishi")
    monkeypatch.setenv("CREDITFLOW_TEST_SEAL_PASSPHRASE", passphrase)

    result = Sealer(configured, LocalTimeStamper.for_pki(configured)).seal(
        contract_pdfs["anchored"], bank_code="bank-baishi", bank_name="白石农商银行"
    )
    report = verify_pdf(result.pdf, [pki.root])
    assert report.status == "valid", report.to_dict()
    assert report.signatures[0].signer_organization == "白石农商银行"
    assert configured.seal_signer("bank-baishi") is configured.seal_signer("bank-baishi")  # loaded once


# ---------------------------------------------------------------------------------------------- verification


def test_one_changed_byte_is_tampered(sealed: SealResult, pki: Pki) -> None:
    data = bytearray(sealed.pdf)
    position = data.find(b"stream\n") + 20  # inside the first page content, in the signed byte range
    assert position > 20
    data[position] ^= 0x01
    report = verify_pdf(bytes(data), pki)
    assert report.status == "tampered" and not report.signatures[0].intact


def test_appended_incremental_edit_is_tampered(sealed: SealResult, pki: Pki) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(sealed.pdf))
    font = writer.add_object(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Font"),
                generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
                generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
            }
        )
    )
    # a white box over the amount and a new figure painted on top, appended as a new revision
    paint = b"q 1 1 1 rg 150 600 300 18 re f Q BT /FX9 11 Tf 160 604 Td (RMB 900,000.00) Tj ET"
    resources = generic.DictionaryObject(
        {generic.NameObject("/Font"): generic.DictionaryObject({generic.NameObject("/FX9"): font})}
    )
    writer.add_stream_to_page(0, writer.add_object(generic.StreamObject(stream_data=paint)), resources=resources)
    edited = io.BytesIO()
    writer.write(edited)

    report = verify_pdf(edited.getvalue(), pki)
    assert report.status == "tampered", report.to_dict()
    [signature] = report.signatures
    assert signature.intact and signature.docmdp_ok is False and signature.modification_level == "other"


def test_seal_checked_against_another_root_is_untrusted(sealed: SealResult, tmp_path: Path) -> None:
    other = tmp_path / "other-pki"
    init_pki(other, [LINGYUAN], now=datetime.now(UTC))
    report = verify_pdf(sealed.pdf, [Pki.load(other).root])
    assert report.status == "untrusted"
    [signature] = report.signatures
    assert signature.intact and signature.valid and not signature.trusted and signature.timestamp_trusted is False


@pytest.mark.parametrize("upload", [b"", b"not a pdf at all", b"%PDF-1.7\n\x00\xff garbage", b"\x89PNG\r\n"])
def test_garbage_upload_is_invalid_not_an_exception(upload: bytes, pki: Pki) -> None:
    report = verify_pdf(upload, pki)
    assert report.status == "invalid" and report.signatures == ()


def test_truncated_sealed_pdf_and_unsigned_pdf(sealed: SealResult, contract_pdfs: dict[str, bytes], pki: Pki) -> None:
    assert verify_pdf(sealed.pdf[: len(sealed.pdf) // 2], pki).status == "invalid"
    assert verify_pdf(contract_pdfs["anchored"], pki).status == "unsigned"


def test_pdfsig_with_the_dev_root_in_nss_reports_valid_and_trusted(
    sealed: SealResult, pki_dir: Path, tmp_path: Path
) -> None:
    output = pdfsig(sealed.pdf, (pki_dir / "root-ca.pem").read_bytes(), tmp_path)
    assert "Signature is Valid." in output, output
    assert "Certificate is Trusted." in output, output
    assert "陵源农商银行电子合同专用章" in output


def test_a_seal_whose_certificate_has_expired_since_is_judged_as_of_its_timestamp(sealed: SealResult, pki: Pki) -> None:
    import time_machine

    assert verify_pdf(sealed.pdf, pki).status == "valid"
    # four years on, the three-year seal certificate has expired; the TSA's (ten years) has not
    with time_machine.travel(datetime.now(UTC) + timedelta(days=4 * 365), tick=False):
        report = verify_pdf(sealed.pdf, pki)
    assert report.status == "valid", report.to_dict()
    (seal,) = [s for s in report.signatures if s.kind == "signature"]
    assert "Trusted as of its timestamp" in seal.summary and seal.timestamp_time == sealed.signed_at
