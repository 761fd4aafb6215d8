"""The signing step and the loan file archive, end to end: a bank officer's application on a real
product is approved, its contract generated from the product's Word template, converted by the
warm LibreOffice, sealed with the bank's seal and timestamped; when the instance ends the
scheduler archives the loan file as a signed BagIt bag. Nothing is replaced by a double: the PDF
is checked with poppler, the seal with pyHanko and pdfsig's NSS, the bag with sha256sum and openssl.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import time_machine
from lxml import etree
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from engine.archive.bag import CMD_SEALED_AT, CMD_SIGNATURE
from engine.catalog.config import DEFAULT_STANDARD_DIR
from engine.cli import main as cli
from engine.config import Settings
from engine.container import CreditFlow
from engine.documents.pki import Pki, init_pki
from engine.documents.timestamps import tsa_wsgi_app
from engine.errors import InvalidInput
from engine.jobs.scheduler import run_pass
from engine.services.principal import Principal
from engine.store.models import ArchivePackage, Document, Incident, Job, OutboxMessage, ProcessInstance, User
from tests.conftest import BLACKLISTED_ID, ApiClient, Clocks, login, pdfsig
from tests.test_product_runs import CATALOG, application

SYSTEM = Principal.system()
PRODUCT = "XEKD-XIN"  # 薪e贷: the instant archetype, approved and signed without a human step


@pytest.fixture
def bank(seeded: CreditFlow, tmp_path: Path) -> CreditFlow:
    files = sorted(seeded.settings.bpmn_dir.glob("*.bpmn"))
    seeded.definitions.deploy(SYSTEM, [(f.name, f.read_bytes()) for f in files])
    publish(seeded, tmp_path, json.loads((DEFAULT_STANDARD_DIR / f"{PRODUCT}.json").read_text("utf-8")))
    return seeded


def publish(platform: CreditFlow, tmp_path: Path, config: dict[str, Any]) -> None:
    folder = tmp_path / f"standard-{config['code']}"
    folder.mkdir()
    (folder / f"{config['code']}.json").write_text(json.dumps(config, ensure_ascii=False), "utf-8")
    platform.products.load_standard(SYSTEM, folder)


def api_app(platform: CreditFlow) -> Any:
    from api import create_app

    app = create_app(platform)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def officer(bank: CreditFlow) -> ApiClient:
    return login(api_app(bank), "ly_officer")


def apply(officer: ApiClient, *, id_number: str | None = None, **changes: Any) -> dict[str, Any]:
    """An application, signed by its borrower once its contract is sealed (the channel's message)."""
    body = submit(officer, id_number=id_number, **changes)
    return sign(officer, body) if body["status"] == "running" and "sealed_contract" in body["data"] else body


def submit(officer: ApiClient, *, id_number: str | None = None, **changes: Any) -> dict[str, Any]:
    """An application as submitted: a clean one is approved and sealed, and waits for the borrower."""
    applicant, data = application(CATALOG[PRODUCT], **changes)
    applicant |= {"id_number": id_number} if id_number else {}
    response = officer.post(f"/api/v1/products/{PRODUCT}/applications", json={"applicant": applicant, "data": data})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def sign(officer: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    """The channel reports the borrower's e-signature (``instances.manage``: here the bank's administrator)."""
    channel = login(officer.client.application, "ly_admin")
    signature = {
        "contract_sha256": body["data"]["sealed_contract"]["sha256"],
        "signed_at": "2026-12-01T09:30:00+08:00",
        "channel": "mobile_banking",
        "evidence_no": f"ZJBQ-{body['id'][:8]}",
    }
    signed = channel.post(
        f"/api/v1/process-instances/{body['id']}/messages", json={"name": "contract_signed", "payload": signature}
    )
    assert signed.status_code == 200, signed.get_json()
    return signed.get_json()


def test_the_readme_example_application_is_approved_and_signed(bank: CreditFlow, officer: ApiClient) -> None:
    """The quick start posts docs/examples/xekd-xin-application.json, and then the borrower's signature
    on the sealed contract: it must pass every check."""
    example = json.loads((Path(__file__).parents[1] / "docs" / "examples" / "xekd-xin-application.json").read_text())
    response = officer.post(f"/api/v1/products/{PRODUCT}/applications", json=example)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["status"], body["tasks"], body["outcome"]) == ("running", [], None)  # sealed, not yet signed
    assert (
        body["data"]["sealed_contract"]["sha256"]
        == bank.documents.get(SYSTEM, body["data"]["sealed_contract"]["document_id"]).sha256
    )
    signed = sign(officer, body)
    assert (signed["status"], signed["outcome"]) == ("completed", "approved")


def test_a_channel_reads_where_its_application_stands_not_the_banks_reasoning(
    bank: CreditFlow, officer: ApiClient
) -> None:
    """The channel's key read the raw rule hits (which list named a suspected fraudster), the thresholds
    to stay under, the credit report and a risk manager's "勿告知客户"."""
    from tests.test_accounts import KEYS, add_user, with_key

    add_user(bank, "ly_mbank", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    app = officer.client.application
    key = login(app, "ly_admin").post(KEYS, json={"username": "ly_mbank", "name": "手机银行"}).get_json()["key"]
    channel = with_key(app, key, "X-API-Key")
    applicant, data = application(CATALOG[PRODUCT])
    started = channel.post(f"/api/v1/products/{PRODUCT}/applications", json={"applicant": applicant, "data": data})
    assert started.status_code == 201, started.get_json()
    body = channel.get(f"/api/v1/process-instances/{started.get_json()['id']}").get_json()
    staff = officer.get(f"/api/v1/process-instances/{body['id']}").get_json()
    internal = {"access", "scorecard", "pricing", "bureau", "blacklist_hit", "score"}
    assert internal <= set(staff["data"]) and not internal & set(body["data"])
    assert {"applicant", "amount", "approved_amount", "contract", "sealed_contract"} <= set(body["data"])
    assert channel.get(f"/api/v1/process-instances/{body['id']}/history").status_code == 403
    assert officer.get(f"/api/v1/process-instances/{body['id']}/history").status_code == 200


@pytest.fixture
def signed(bank: CreditFlow, officer: ApiClient) -> Iterator[dict[str, Any]]:
    body = apply(officer)
    assert body["status"] == "completed", body
    documents = officer.get(f"/api/v1/process-instances/{body['id']}/documents").get_json()["items"]
    yield {"instance": body, "documents": {d["kind"]: d for d in documents}}


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "contract.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout


def test_the_signing_step_makes_a_sealed_pdfa_contract_from_the_products_template(
    bank: CreditFlow, officer: ApiClient, signed: dict[str, Any], tmp_path: Path
) -> None:
    documents, data = signed["documents"], signed["instance"]["data"]
    assert set(documents) == {"contract_docx", "contract_pdf", "contract_sealed"}
    sealed = documents["contract_sealed"]
    assert sealed["source_id"] == documents["contract_pdf"]["id"] == data["contract"]["document_id"]
    assert sealed["template"] == CATALOG[PRODUCT]["contract_template"]
    assert "陵源农商银行电子合同专用章" in sealed["details"]["signer"]

    response = officer.get(f"/api/v1/documents/{sealed['id']}/content")
    assert response.status_code == 200 and response.headers["Digest"] == f"sha-256={sealed['sha256']}"
    pdf = response.data
    assert b"pdfaid:part>2<" in pdf or b'pdfaid:part="2"' in pdf  # PDF/A-2 survives the seal
    # and stays PDF/A-2b: PDF 1.7 (it was made 2.0 for the ECDSA key), one producer in Info and XMP
    reader = PdfFileReader(io.BytesIO(pdf))
    assert pdf.startswith(b"%PDF-1.") and str(reader.root.get("/Version", "/1.7")) in ("/1.4", "/1.5", "/1.6", "/1.7")
    xmp = etree.fromstring(reader.root["/Metadata"].get_object().data)
    producer = xmp.xpath("string(//pdf:Producer | //@pdf:Producer)", namespaces={"pdf": "http://ns.adobe.com/pdf/1.3/"})
    assert producer and str(reader.trailer_view["/Info"]["/Producer"]) == producer
    text = pdf_text(pdf, tmp_path)
    for expected in (data["applicant"]["name"], "陵源农商银行", data["contract"]["contract_no"], "元整"):
        assert expected in text, expected
    assert data["applicant"]["id_number"] not in json.dumps(officer.get(f"/api/v1/documents/{sealed['id']}").get_json())

    subprocess.run(
        ["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(tmp_path / "contract.pdf"), str(tmp_path / "page")],
        check=True,
    )
    page = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    dark = sum(page.histogram()[:128])
    assert dark > page.width * page.height * 0.01  # text on the page, not a blank sheet

    report = officer.post(f"/api/v1/documents/{sealed['id']}/verify").get_json()
    assert report["status"] == "valid" and report["sha256_matches"] is True
    # the loan was paid out: its contract binds, and stays so once the application has ended
    assert (report["binding"], report["void"]) == (True, None)
    assert [(d["voided_at"], d["void_reason"]) for d in documents.values()] == [(None, None)] * 3
    assert not [
        e for e in bank.instances.history(SYSTEM, signed["instance"]["id"]) if e.event_type == "contract_voided"
    ]
    (seal,) = [s for s in report["signatures"] if s["kind"] == "signature"]
    assert seal["signer_organization"] == "陵源农商银行" and seal["intact"] and seal["trusted"]
    assert seal["timestamp_valid"] is True


def test_a_changed_byte_is_reported_as_tampered_by_the_api_and_the_cli(
    bank: CreditFlow, officer: ApiClient, signed: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    pdf = officer.get(f"/api/v1/documents/{signed['documents']['contract_sealed']['id']}/content").data
    at = pdf.index(b"/Contents <") - 2000  # inside the signed byte range, in the page content
    changed = pdf[:at] + bytes([pdf[at] ^ 0x01]) + pdf[at + 1 :]

    assert verify_copy(officer, pdf)["status"] == "valid"
    assert verify_copy(officer, pdf)["binding"] is True  # the stored contract of a paid loan
    assert verify_copy(officer, changed)["status"] == "tampered"
    assert verify_copy(officer, b"%PDF-1.7 not really")["status"] == "invalid"

    cli_env(bank.settings, monkeypatch)
    for content, code in ((pdf, 0), (changed, 1)):
        path = tmp_path / f"check-{code}.pdf"
        path.write_bytes(content)
        result = invoke("documents", "verify", str(path))
        assert result.exit_code == code, result.output
    assert "tampered" in result.output.lower()
    monkeypatch.setenv("CREDITFLOW_PKI_DIR", str(tmp_path / "no-pki-here"))  # a contract checked elsewhere
    lost = invoke("documents", "verify", str(tmp_path / "check-0.pdf"))
    assert lost.exit_code == 2 and lost.output.startswith("error: no seal PKI in"), lost.output


def test_the_seal_verifies_with_poppler_pdfsig_given_the_ca(
    bank: CreditFlow, officer: ApiClient, signed: dict[str, Any], tmp_path: Path
) -> None:
    pdf = officer.get(f"/api/v1/documents/{signed['documents']['contract_sealed']['id']}/content").data
    output = pdfsig(pdf, bank.documents.root_pem, tmp_path)
    assert "Signature is Valid." in output and "Certificate is Trusted." in output, output
    assert "陵源农商银行电子合同专用章" in output


def test_another_banks_staff_cannot_see_the_documents(bank: CreditFlow, signed: dict[str, Any]) -> None:
    other = login(api_app(bank), "qh_admin")
    instance_id, sealed = signed["instance"]["id"], signed["documents"]["contract_sealed"]["id"]
    assert other.get(f"/api/v1/process-instances/{instance_id}/documents").status_code == 404
    assert other.get(f"/api/v1/documents/{sealed}/content").status_code == 404
    assert other.post(f"/api/v1/documents/{sealed}/verify").status_code == 404


def test_an_ended_instance_is_archived_as_a_signed_bag_that_auditors_can_check(
    bank: CreditFlow, officer: ApiClient, signed: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    instance_id = signed["instance"]["id"]
    auditor = officer  # loan officers may read the audit trail of their bank
    assert auditor.get(f"/api/v1/archives/{instance_id}").status_code == 404  # not yet: the scheduler does it
    run_pass(bank)
    record = auditor.get(f"/api/v1/archives/{instance_id}").get_json()
    today, term = bank.clock.now().date(), signed["instance"]["data"]["term_months"]
    assert record["outcome"] == "approved" and term == 12
    # kept for 30 years after the loan ends (its 12 months from today), not after it was granted
    assert record["retention_until"] == today.replace(year=today.year + 31).isoformat()
    assert record["timestamped_at"] is not None
    history = [e.event_type for e in bank.instances.history(SYSTEM, instance_id)]
    assert history[-1] == "archived"

    content = auditor.get(f"/api/v1/archives/{instance_id}/content").data
    names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    root = names[0].split("/")[0]
    assert f"{root}/data/audit/audit_trail.jsonl" in names and f"{root}/data/decisions/rule_evaluations.json" in names
    sealed_name = signed["documents"]["contract_sealed"]["name"]
    assert f"{root}/data/documents/contract_sealed/{sealed_name}" in names
    assert [d["void"] for d in archived_instance(content)["documents"]] == [None] * 3  # a paid loan's contract
    assert auditor.post(f"/api/v1/archives/{instance_id}/verify").get_json()["ok"] is True

    bag = tmp_path / "bag"
    zipfile.ZipFile(io.BytesIO(content)).extractall(bag)
    folder = bag / root
    checks = (
        "sha256sum -c --quiet tagmanifest-sha256.txt && sha256sum -c --quiet manifest-sha256.txt",
        "test -z \"$(comm -3 <(cut -d' ' -f3- manifest-sha256.txt | sort) <(find data -type f | sort))\"",
        f"{CMD_SEALED_AT} && {CMD_SIGNATURE}",
        "openssl ts -verify -data tagmanifest-sha256.txt -in tagmanifest-sha256.txt.tsr -CAfile ca.pem",
    )
    for command in checks:
        result = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    cli_env(bank.settings, monkeypatch)
    (tmp_path / "bag.zip").write_bytes(content)
    assert invoke("archive", "verify", str(tmp_path / "bag.zip")).exit_code == 0
    (folder / "data" / "extra.txt").write_text("slipped in later")  # sha256sum -c alone would not notice
    shutil.make_archive(str(tmp_path / "extra"), "zip", bag)
    result = invoke("archive", "verify", str(tmp_path / "extra.zip"))
    assert result.exit_code == 1 and "extra.txt" in result.output


def archived_instance(bag: bytes) -> dict[str, Any]:
    """The loan file's ``data/instance.json``: the application's record, with its documents."""
    archive = zipfile.ZipFile(io.BytesIO(bag))
    (name,) = [n for n in archive.namelist() if n.endswith("/data/instance.json")]
    return json.loads(archive.read(name))


LAPSED = "withdrawn: 逾期未签约"  # the online archetypes' end after seven days without the borrower's signature


def test_a_sealed_contract_the_borrower_never_signs_is_void_once_the_wait_lapses(
    bank: CreditFlow, officer: ApiClient, monkeypatch: Any
) -> None:
    submitted = datetime.now(UTC)  # the wall clock seals (the development seal is valid from the test run on)
    body = submit(officer)
    instance_id, sealed_id = body["id"], body["data"]["sealed_contract"]["document_id"]
    assert body["status"] == "running" and "disbursement" not in body["data"]
    waiting = officer.post(f"/api/v1/documents/{sealed_id}/verify").get_json()
    assert (waiting["status"], waiting["binding"], waiting["void"]) == ("valid", True, None)  # the bank's offer stands

    with bank.db.transaction() as session:
        lapsed_at = session.get(ProcessInstance, instance_id).next_timer_at  # the signature wait's seven days
    assert lapsed_at is not None and timedelta(days=7) <= lapsed_at - submitted < timedelta(days=7, minutes=1)
    with time_machine.travel(datetime.now(UTC), tick=False) as wall:
        Clocks(bank.clock, wall).run_pass(bank, lapsed_at)  # the boundary timer ends it; the same pass archives it
    staff = login(api_app(bank), "ly_officer")  # a week on: the morning's token has expired
    instance = staff.get(f"/api/v1/process-instances/{instance_id}").get_json()
    assert (instance["status"], instance["outcome"]) == ("completed", "withdrawn")
    assert "disbursement" not in instance["data"]

    documents = staff.get(f"/api/v1/process-instances/{instance_id}/documents").get_json()["items"]
    assert [d["kind"] for d in documents] == ["contract_docx", "contract_pdf", "contract_sealed"]
    assert {(datetime.fromisoformat(d["voided_at"]), d["void_reason"]) for d in documents} == {(lapsed_at, LAPSED)}
    assert staff.get(f"/api/v1/documents/{sealed_id}").get_json()["void_reason"] == LAPSED

    report = staff.post(f"/api/v1/documents/{sealed_id}/verify").get_json()
    assert report["status"] == "valid" and report["sha256_matches"] is True  # the seal itself is as good as ever
    assert report["binding"] is False and "binds nobody" in report["summary"]
    assert (datetime.fromisoformat(report["void"]["at"]), report["void"]["reason"]) == (lapsed_at, LAPSED)

    voided = [e for e in bank.instances.history(SYSTEM, instance_id) if e.event_type == "contract_voided"]
    assert {e.payload["document_id"]: (e.payload["contract_no"], e.payload["reason"]) for e in voided} == {
        d["id"]: (d["contract_no"], LAPSED) for d in documents
    }
    cli_env(bank.settings, monkeypatch)
    result = invoke("audit", "verify", instance_id)
    assert result.exit_code == 0, result.output

    content = staff.get(f"/api/v1/archives/{instance_id}/content").data
    archived = {d["sha256"]: d["void"] for d in archived_instance(content)["documents"]}
    assert archived == {d["sha256"]: {"at": lapsed_at.isoformat(), "reason": LAPSED} for d in documents}
    assert staff.post(f"/api/v1/archives/{instance_id}/verify").get_json()["ok"] is True


def test_a_staff_cancel_after_sealing_voids_the_contract(
    bank: CreditFlow, officer: ApiClient, monkeypatch: Any, tmp_path: Path
) -> None:
    body = submit(officer)
    admin = login(api_app(bank), "ly_admin")  # instances.manage
    cancelled = admin.post(f"/api/v1/process-instances/{body['id']}/cancel", json={"reason": "客户来电撤回申请"})
    assert cancelled.status_code == 200 and cancelled.get_json()["outcome"] == "cancelled", cancelled.get_json()

    documents = officer.get(f"/api/v1/process-instances/{body['id']}/documents").get_json()["items"]
    now = bank.clock.now()
    assert [(datetime.fromisoformat(d["voided_at"]), d["void_reason"]) for d in documents] == [(now, "cancelled")] * 3
    report = officer.post(f"/api/v1/documents/{body['data']['sealed_contract']['document_id']}/verify").get_json()
    assert (report["status"], report["binding"], report["void"]["reason"]) == ("valid", False, "cancelled")
    trail = [e.event_type for e in bank.instances.history(SYSTEM, body["id"])]
    assert trail[-4:] == ["cancelled", "contract_voided", "contract_voided", "contract_voided"]
    assert bank.instances.verify_audit(SYSTEM, body["id"]).ok

    # a copy handed in (the customer's, say) is found by its bytes and reported void too
    copy = officer.get(f"/api/v1/documents/{body['data']['sealed_contract']['document_id']}/content").data
    checked = verify_copy(officer, copy)
    assert (checked["status"], checked["binding"], checked["void"]["reason"]) == ("valid", False, "cancelled")
    assert checked["document_id"] == body["data"]["sealed_contract"]["document_id"]
    # another bank's clerk learns about the seal, nothing about this bank's contract
    elsewhere = verify_copy(login(api_app(bank), "qh_officer"), copy)
    assert elsewhere["status"] == "valid" and {"binding", "void", "document_id"}.isdisjoint(elsewhere)
    cli_env(bank.settings, monkeypatch)
    path = tmp_path / "copy.pdf"
    path.write_bytes(copy)
    result = invoke("documents", "verify", str(path))
    assert result.exit_code == 1 and "binds nobody" in result.output, result.output


def verify_copy(client: ApiClient, content: bytes) -> dict[str, Any]:
    files = {"file": (io.BytesIO(content), "contract.pdf")}
    response = client.post("/api/v1/documents/verify", data=files, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_an_archive_is_renewed_ahead_of_its_timestamps_expiry_and_keeps_verifying(
    bank: CreditFlow, officer: ApiClient, signed: dict[str, Any], clock: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    instance_id = signed["instance"]["id"]
    run_pass(bank)
    record = officer.get(f"/api/v1/archives/{instance_id}").get_json()
    expires = datetime.fromisoformat(record["evidence_expires_at"])  # the development TSA's certificate: 10 years
    assert record["renewals"] == 0 and record["renewed_at"] is None
    assert timedelta(days=3600) < expires - clock.now() < timedelta(days=3660)
    (job,) = renewal_jobs(bank, instance_id)
    assert renewal_window(expires, job.due_at, bank)
    run_pass(bank)
    assert [(j.id, j.due_at) for j in renewal_jobs(bank, instance_id)] == [(job.id, job.due_at)]  # not due for years
    # Left alone, the file would stop verifying the day the TSA certificate expires
    cli_env(bank.settings, monkeypatch)
    bag = tmp_path / "bag.zip"
    bag.write_bytes(officer.get(f"/api/v1/archives/{instance_id}/content").data)
    assert invoke("archive", "verify", str(bag), "--at", f"{expires - timedelta(days=1):%Y-%m-%d}").exit_code == 0
    expired = invoke("archive", "verify", str(bag), "--at", f"{expires + timedelta(days=1):%Y-%m-%d}")
    assert expired.exit_code == 1 and "expired on" in expired.output

    # Due, but the TSA is still the one whose certificate expires with the archive's timestamp: renewing
    # would not extend anything, so the job fails its retries and the incident says what to configure.
    clock.advance(job.due_at - clock.now())
    for _ in range(8):
        run_pass(bank)
        clock.advance(timedelta(hours=1))
    with bank.db.transaction() as session:
        (incident,) = session.scalars(select(Incident).where(Incident.instance_id == instance_id)).all()
        assert incident.kind == "archive_renew" and "configure a TSA" in incident.message
        old = session.get(ArchivePackage, instance_id)
        assert old.renewals == 0 and old.sha256 == record["sha256"]

    # An operator renews it at once (a TSA key retired early, say): the renewed bag verifies and the old one stays.
    result = invoke("archive", "renew", instance_id)
    assert result.exit_code == 0 and f"renewal 1 of {instance_id}" in result.output, result.output
    officer = login(api_app(bank), "ly_officer")  # nine years on: the morning's token has long expired
    renewed = officer.get(f"/api/v1/archives/{instance_id}").get_json()
    assert renewed["renewals"] == 1 and renewed["renewed_at"] is not None and renewed["sha256"] != record["sha256"]
    report = officer.post(f"/api/v1/archives/{instance_id}/verify").get_json()
    renewals = next(check for check in report["checks"] if check["name"] == "timestamp_renewals")
    assert report["ok"] is True and renewals["count"] == 1
    content = officer.get(f"/api/v1/archives/{instance_id}/content").data
    assert any(
        name.endswith("/timestamp-renewals/0001-manifest-sha256.txt.tsr")
        for name in zipfile.ZipFile(io.BytesIO(content)).namelist()
    )
    assert bank.archives.storage.get(old.storage_key)[:4] == b"PK\x03\x04"  # the earlier bag is kept
    history = bank.instances.history(SYSTEM, instance_id)
    assert history[-1].event_type == "archive_renewed" and history[-1].payload["previous_sha256"] == record["sha256"]
    assert invoke("audit", "verify", instance_id).exit_code == 0
    assert len(renewal_jobs(bank, instance_id)) == 1  # the next check replaces the failed job
    with bank.db.transaction() as session:
        assert session.get(Incident, incident.id).resolved_at is not None  # settled by the renewal


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's stderr."""


@pytest.fixture
def newer_tsa(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TSA over HTTP under a root of its own, whose certificate was issued after the development one's:
    a bank whose TSA renewed its certificate, as production configures it (``tsa_url`` and ``tsa_roots``)."""
    directory = tmp_path / "newer-tsa"
    init_pki(directory, [], now=datetime.now(UTC) + timedelta(minutes=30))
    server = make_server("127.0.0.1", 0, tsa_wsgi_app(Pki.load(directory)), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", directory / "root-ca.pem"
    finally:
        server.shutdown()
        server.server_close()


def test_a_due_renewal_by_a_tsa_with_a_newer_certificate_extends_the_archive(
    bank: CreditFlow, signed: dict[str, Any], clock: Any, newer_tsa: tuple[str, Path], tmp_path: Path
) -> None:
    instance_id = signed["instance"]["id"]
    run_pass(bank)
    (job,) = renewal_jobs(bank, instance_id)
    with bank.db.transaction() as session:
        archived = session.get(ArchivePackage, instance_id)
    url, root = newer_tsa
    config = tmp_path / "seal.json"
    config.write_text(json.dumps({"tsa_url": url, "tsa_roots": [str(root)]}))
    renewing = CreditFlow(replace(bank.settings, seal_config=config), clock=clock, database=bank.db)

    clock.advance(job.due_at - clock.now())
    assert run_pass(renewing).done == 1
    with bank.db.transaction() as session:
        row = session.get(ArchivePackage, instance_id)
        assert session.scalars(select(Incident).where(Incident.instance_id == instance_id)).all() == []
    assert row.renewals == 1 and row.renewed_at == clock.now()
    assert row.evidence_expires_at > archived.evidence_expires_at + timedelta(minutes=29)
    (following,) = renewal_jobs(bank, instance_id)
    assert renewal_window(row.evidence_expires_at, following.due_at, bank)

    content = renewing.archives.storage.get(row.storage_key)
    report = renewing.archives.verify_bytes(content)
    renewal = next(check for check in report["checks"] if check["name"] == "timestamp_renewals")
    assert report["ok"] is True and "CreditFlow Development TSA" in renewal["renewals"][0]["tsa"]
    assert bank.archives.verify_bytes(content)["ok"] is False  # without the new TSA's root it cannot be trusted


def test_renewals_of_the_archives_one_tsa_certificate_stamped_are_spread_out(platform: CreditFlow) -> None:
    expires = datetime(2036, 11, 29, tzinfo=UTC)
    dues = [platform.archives._renewal_due(f"instance-{n}", expires) for n in range(200)]
    assert all(renewal_window(expires, due, platform) for due in dues)
    assert max(dues) - min(dues) > timedelta(days=170)  # over half a year, not all in one scheduler pass
    assert platform.archives._renewal_due("instance-7", expires) == dues[7]  # the same point every time


def renewal_window(expires: datetime, due: datetime, platform: CreditFlow) -> bool:
    """Renewals fall in the first half of the margin before expiry (spread, so they do not all come at once)."""
    margin = timedelta(days=platform.settings.archive_renew_days)
    return expires - margin <= due <= expires - margin / 2


def renewal_jobs(platform: CreditFlow, instance_id: str) -> list[Job]:
    with platform.db.transaction() as session:
        return list(session.scalars(select(Job).where(Job.instance_id == instance_id, Job.kind == "archive_renew")))


def test_a_products_process_is_started_only_as_an_application_of_a_product(officer: ApiClient) -> None:
    """Starting the archetype bare would skip the product's parameters, rules and data checks."""
    bare = officer.post("/api/v1/process-instances", json={"definition_key": "a1_instant_online", "data": {}})
    assert bare.status_code == 422
    assert bare.get_json()["errors"] == [
        {
            "field": "definition_key",
            "message": "this process runs credit products: apply with POST /products/{code}/applications",
        }
    ]


def test_a_rejected_application_is_archived_with_the_shorter_retention(bank: CreditFlow, officer: ApiClient) -> None:
    body = apply(officer, id_number=BLACKLISTED_ID)
    assert body["status"] == "completed" and "contract" not in body["data"]
    run_pass(bank)
    with bank.db.transaction() as session:
        record = session.get(ArchivePackage, body["id"])
        assert session.scalars(select(Document).where(Document.instance_id == body["id"])).all() == []
    today = bank.clock.now().date()
    assert record.outcome == "rejected" and record.retention_until == today.replace(year=today.year + 10)


def test_a_failed_archiving_is_retried_raises_an_incident_and_loses_nothing(
    bank: CreditFlow, officer: ApiClient, settings: Settings, clock: Any, tmp_path: Path
) -> None:
    body = apply(officer)
    # boto3 is not installed: every attempt fails the way a misconfigured store would
    broken = CreditFlow(replace(bank.settings, storage_url="s3://loan-files/archive"), clock=clock, database=bank.db)
    for _ in range(8):
        run_pass(broken)
        clock.advance(timedelta(hours=1))
    with bank.db.transaction() as session:
        (incident,) = session.scalars(select(Incident).where(Incident.instance_id == body["id"])).all()
        assert incident.kind == "archive" and "boto3" in incident.message
        assert session.get(ArchivePackage, body["id"]) is None
    admin = login(api_app(bank), "ly_admin")
    assert admin.get(f"/api/v1/process-instances/{body['id']}").get_json()["status"] == "completed"

    assert admin.post(f"/api/v1/incidents/{incident.id}/retry").status_code == 200
    run_pass(bank)  # the store is fixed: the retried job archives the file
    with bank.db.transaction() as session:
        assert session.get(ArchivePackage, body["id"]) is not None
        assert session.scalars(select(Job).where(Job.instance_id == body["id"], Job.kind == "archive")).all() == []


def test_publishing_lists_the_template_tags_the_products_data_cannot_fill(bank: CreditFlow, tmp_path: Path) -> None:
    config = json.loads((DEFAULT_STANDARD_DIR / f"{PRODUCT}.json").read_text("utf-8"))
    with pytest.raises(InvalidInput) as refused:
        publish(bank, tmp_path, {**config, "code": "XEKD-MORTGAGE", "contract_template": "mortgage"})
    messages = [p["message"] for p in refused.value.problems]
    assert all(p["field"] == "contract_template" for p in refused.value.problems)
    assert any("collateral" in m for m in messages), messages
    with pytest.raises(InvalidInput) as unknown:
        publish(bank, tmp_path, {**config, "code": "XEKD-NOTEMPLATE", "contract_template": "no-such-contract"})
    assert "no contract template named 'no-such-contract'" in unknown.value.problems[0]["message"]


def cli_env(settings: Settings, monkeypatch: Any) -> None:
    """Point the CLI at the test's database and PKI."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CREDITFLOW_PKI_DIR", str(settings.pki_path))


def invoke(*args: str) -> Any:
    from click.testing import CliRunner

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_retention_dates_cover_the_29th_of_february() -> None:
    from engine.services.archives import _years_after

    assert _years_after(date(2028, 2, 29), 30) == date(2058, 2, 28)


def test_a_guaranteed_loan_application_must_name_its_guarantors(
    bank: CreditFlow, officer: ApiClient, tmp_path: Path
) -> None:
    code = "YJD-GUANGFU"  # a guaranteed loan on the A3 archetype: its contract lists every guarantor
    config = CATALOG[code]
    assert config["contract_template"] == "personal-guaranteed"
    publish(bank, tmp_path, config)
    applicant, data = application(config)
    guarantor = data.pop("guarantors")[0]
    response = officer.post(f"/api/v1/products/{code}/applications", json={"applicant": applicant, "data": data})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"field": "data.guarantors", "message": "the contract (personal-guaranteed) needs it"}
    ]
    # someone else, each once: the borrower as their own guarantor was taken
    themselves = {**guarantor, "name": applicant["name"], "id_number": applicant["id_number"]}
    data["guarantors"] = [themselves, guarantor, guarantor]
    response = officer.post(f"/api/v1/products/{code}/applications", json={"applicant": applicant, "data": data})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {
            "field": "data.guarantors[0].id_number",
            "message": "is the borrower's: a borrower cannot guarantee their own loan",
        },
        {"field": "data.guarantors[2].id_number", "message": "names the same person as guarantors[1]"},
    ]


def test_a_verify_upload_without_a_file_or_of_another_kind_is_a_clear_4xx(officer: ApiClient) -> None:
    missing = officer.post("/api/v1/documents/verify", data={}, content_type="multipart/form-data")
    assert missing.status_code == 422 and missing.mimetype == "application/problem+json"
    assert "file" in json.dumps(missing.get_json())
    docx = officer.get("/api/v1/documents/does-not-exist/content")
    assert docx.status_code == 404 and docx.mimetype == "application/problem+json"
    garbage = {"file": (io.BytesIO(b"PK\x03\x04 not a pdf"), "contract.docx")}
    report = officer.post("/api/v1/documents/verify", data=garbage, content_type="multipart/form-data")
    assert report.status_code == 200 and report.get_json()["status"] == "invalid"


def test_a_seal_that_fails_waits_in_the_exception_task_and_a_retry_signs(bank: CreditFlow, tmp_path: Path) -> None:
    config = tmp_path / "seals.json"  # production keys configured, but the key file is not there
    config.write_text(
        json.dumps({"banks": {"bank-lingyuan": {"kind": "file", "key": "gone.key.pem", "cert": "gone.pem"}}})
    )
    broken = CreditFlow(replace(bank.settings, seal_config=config), clock=bank.clock, database=bank.db)
    body = apply(login(api_app(broken), "ly_officer"))
    assert body["status"] == "running" and [t["bpmn_id"] for t in body["tasks"]] == ["contract_exception"]
    assert "gone.key.pem" in body["data"]["contract_error"]["message"]
    kinds = [d.kind for d in bank.documents.list(SYSTEM, body["id"])]
    assert kinds == ["contract_docx", "contract_pdf"]  # generated, not sealed

    view = bank.tasks.complete(
        SYSTEM, body["tasks"][0]["id"], {"exception_action": "retry", "exception_note": "密钥已恢复"}
    )
    assert view.instance.status == "running" and view.tasks == []  # sealed: the borrower signs next
    sealed = [d for d in bank.documents.list(SYSTEM, body["id"]) if d.kind == "contract_sealed"]
    assert len(sealed) == 1 and bank.documents.verify(SYSTEM, sealed[0].id)["status"] == "valid"


def test_a_server_without_libreoffice_says_what_to_install(
    bank: CreditFlow, tmp_path: Path, monkeypatch: Any, caplog: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the Debian packages
    with caplog.at_level("WARNING", logger="engine.services.documents"):
        bank.documents.warm_up()
    (warning,) = [r.getMessage() for r in caplog.records if "contracts cannot be made here" in r.getMessage()]
    assert "soffice" in warning and "pdftotext" in warning and "apt-get install libreoffice-writer-nogui" in warning


def test_a_contract_is_priced_on_the_announcement_the_province_entered(
    bank: CreditFlow, officer: ApiClient, tmp_path: Path
) -> None:
    """The province's administrator enters November's LPR: the next contract states it as the rate in
    force on the signing day, and nobody is told the table is outdated."""
    admin = login(api_app(bank), "admin")
    entered = admin.put("/api/v1/lpr-quotes/2026-11-20", json={"LPR_1Y": "3.05", "LPR_5Y": "3.55"})
    assert entered.status_code == 200, entered.get_json()
    body = apply(officer)
    trail = bank.instances.history(SYSTEM, body["id"])
    (generated,) = [e for e in trail if e.event_type == "contract_generated"]
    assert generated.payload["lpr_effective"] == "2026-11-20" and "lpr_stale" not in [e.event_type for e in trail]
    documents = officer.get(f"/api/v1/process-instances/{body['id']}/documents").get_json()["items"]
    (pdf,) = [d for d in documents if d["kind"] == "contract_pdf"]
    text = pdf_text(officer.get(f"/api/v1/documents/{pdf['id']}/content").data, tmp_path)
    assert "3.05" in text and "3.00%" not in text
    with bank.db.transaction() as session:
        assert session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "lpr.stale")).all() == []


def test_a_contract_priced_on_an_outdated_lpr_table_tells_the_administrators_once_a_day(
    bank: CreditFlow, officer: ApiClient
) -> None:
    """The newest quote in product_configs/lpr.json is of 2025-05-20; contracts signed on 2026-12-01
    state it as the rate in force. The audit trail names the quote, and the administrators hear of it."""
    first, second = apply(officer), apply(officer)
    events = [
        e for e in bank.instances.history(SYSTEM, first["id"]) if e.event_type in ("contract_generated", "lpr_stale")
    ]
    assert [e.payload["lpr_effective"] for e in events] == ["2025-05-20", "2025-05-20"]
    assert "lpr_stale" in [e.event_type for e in bank.instances.history(SYSTEM, second["id"])]
    with bank.db.transaction() as session:
        (told,) = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "lpr.stale")).all()
        admins = set(session.scalars(select(User.id).where(User.username.in_(["ly_admin", "admin"]))))
    assert told.payload["lpr_effective"] == "2025-05-20" and set(told.recipients) == admins
