"""Seconds per contract through the contract pipeline: render, DOCX → PDF/A, seal, archive.

One 薪e贷 (XEKD-XIN) personal credit contract at a time, sequentially, as the platform makes it: the
contract context from the loan data, the ``personal-credit`` template rendered with docxtpl, converted
to PDF/A-2b by LibreOffice, sealed (PAdES with an RFC 3161 timestamp from the development PKI's TSA),
then bagged with an audit trail into a signed, time-stamped BagIt archive and verified. Conversion
runs both warm (a started unoserver worker) and one-shot (a fresh ``soffice`` per call, the fallback
when the pool cannot start); the one-shot conversion, timed in the same run, is the baseline of the
ratio column. Target (issue): warm render + convert + seal ≤ 0.5 s median per contract.

    python bench/documents.py [--n 20] [--cold 3]

Everything (PKI, LibreOffice profiles, files) lives in a temporary directory removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.archive.bag import BagFile, KeyManifestSigner, auditor_readme, build_bag  # noqa: E402
from engine.archive.verification import verify_bag  # noqa: E402
from engine.documents.contract_fields import contract_context  # noqa: E402
from engine.documents.pdf import WARM, PdfConverter  # noqa: E402
from engine.documents.pki import MANIFEST, BankIdentity, Pki, SealConfig, init_pki  # noqa: E402
from engine.documents.sealing import Sealer  # noqa: E402
from engine.documents.templates import ContractTemplates  # noqa: E402
from engine.documents.timestamps import LocalTimeStamper, timestamper  # noqa: E402

T = TypeVar("T")

TEMPLATES = ROOT / "product_configs" / "contracts"
PRODUCT = ROOT / "product_configs" / "standard" / "XEKD-XIN.json"
BANK = {"code": "bank-lingyuan", "name": "陵源农商银行"}
SIGNED_ON = date(2026, 12, 1)
LPR = Decimal("3.00")
TARGET_MEDIAN_S = 0.5


def resident_id(base17: str = "37010219800101123") -> str:
    """An 18-digit resident ID with a correct GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return base17 + "10X98765432"[sum(int(c) * w for c, w in zip(base17, weights, strict=True)) % 11]


def loan_data(product: dict[str, Any]) -> dict[str, Any]:
    """The instance data a contract is made from, valid for the product (method offered, spread in range)."""
    parameters = product["parameters"]
    return {
        "applicant": {"name": "张三", "id_number": resident_id(), "mobile": "13800138000"},
        "amount": "200000.00",
        "approved_amount": "200000.00",
        "term_months": 24,
        "account": "6222021234567890128",
        "purpose": "购买农资",
        "repayment_method": parameters["repayment_methods"][-1],  # equal instalments: a 24-row schedule
        "pricing": {"rate_bp": (parameters["rate"]["min_bp"] + parameters["rate"]["max_bp"]) // 2},
    }


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """The call's result and its wall time in seconds."""
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def stats(values: list[float]) -> tuple[float, float]:
    """Median and p95 (the maximum below two samples)."""
    if len(values) < 2:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[-1]


def manifest_signer(pki_dir: Path, pki: Pki) -> tuple[KeyManifestSigner, bytes]:
    """The bank's development seal key over bag manifests, time-stamped by the PKI's TSA; and the root PEM."""
    manifest = json.loads((pki_dir / MANIFEST).read_text(encoding="utf-8"))
    entry, root_pem = manifest["banks"][BANK["code"]], (pki_dir / manifest["root"]["cert"]).read_bytes()
    key = serialization.load_pem_private_key((pki_dir / entry["key"]).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey), "seal keys are EC or RSA"
    certificate = x509.load_pem_x509_certificate((pki_dir / entry["cert"]).read_bytes())
    tsa = LocalTimeStamper.for_pki(pki)
    return KeyManifestSigner(key, certificate, [], tsa.reply, root_pem), root_pem


def audit_trail(contract_no: str) -> bytes:
    events = [
        ("instance_started", "system"),
        ("rules_evaluated", "system"),
        ("task_completed", "loan_officer"),
        ("contract_generated", "system"),
        ("contract_sealed", "system"),
    ]
    return b"".join(
        json.dumps(
            {"at": f"2026-12-01T09:{minute:02d}:00+08:00", "event": event, "actor": actor, "contract_no": contract_no},
            ensure_ascii=False,
        ).encode()
        + b"\n"
        for minute, (event, actor) in enumerate(events)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="warm contracts through the pipeline")
    parser.add_argument("--cold", type=int, default=3, help="one-shot soffice conversions (the baseline)")
    args = parser.parse_args()
    if args.n < 1 or args.cold < 1:
        parser.error("--n and --cold must be at least 1")

    product = json.loads(PRODUCT.read_text(encoding="utf-8"))
    data = loan_data(product)
    templates = ContractTemplates(TEMPLATES)
    template = product["contract_template"]

    def render(index: int) -> bytes:
        context = contract_context(
            data, bank=BANK, product=product, contract_no=f"HT{SIGNED_ON:%Y%m%d}{index:06d}", signed_on=SIGNED_ON,
            lpr=LPR,
        )  # fmt: skip
        return templates.render(template, context)

    with tempfile.TemporaryDirectory(prefix="creditflow-bench-") as tmp:
        work = Path(tmp)
        pki_dir = work / "pki"
        _, pki_seconds = timed(
            lambda: init_pki(pki_dir, [BankIdentity(BANK["code"], BANK["name"])], now=datetime.now(UTC))
        )
        pki = Pki.load(pki_dir)
        sealer = Sealer(pki, timestamper(SealConfig(), pki))
        bag_signer, root_pem = manifest_signer(pki_dir, pki)
        docx, first_render = timed(lambda: render(0))
        print(
            f"{product['code']} {product['name']}, template {template}: {len(docx):,} bytes DOCX; {os.cpu_count()} CPUs"
        )
        print(f"setup: development PKI {pki_seconds:.2f} s, first render (template load) {first_render * 1000:.0f} ms")

        # The baseline: a fresh soffice per conversion. Its first run also creates the LibreOffice profile.
        cold = PdfConverter(work / "office-cold", workers=0)
        warm = PdfConverter(work / "office-warm", workers=1)
        try:
            _, cold_first = timed(lambda: cold.convert(docx))
            cold_runs = [timed(lambda: cold.convert(docx))[1] for _ in range(args.cold)]

            _, warm_start = timed(warm.start)
            if warm.mode != WARM:
                print("WARNING: the warm converter fell back to one-shot mode; the warm figures are not warm")
            pdf, warm_first = timed(lambda: warm.convert(docx))
            sealed, seal_first = timed(lambda: sealer.seal(pdf, bank_code=BANK["code"], bank_name=BANK["name"]))
            print(
                f"setup: one-shot profile creation run {cold_first:.2f} s; warm worker start {warm_start:.2f} s;"
                f" first warm conversion {warm_first:.2f} s; first seal {seal_first * 1000:.0f} ms"
                f" (seal on page {sealed.page}, anchor {'found' if sealed.anchor_found else 'NOT found'})"
            )

            # The pipeline, sequential and warm: each contract rendered, converted and sealed in turn.
            stages: dict[str, list[float]] = {"render": [], "convert": [], "seal": [], "pipeline": []}
            sealed_pdfs: list[bytes] = []
            loop_started = time.perf_counter()
            for index in range(1, args.n + 1):
                started = time.perf_counter()
                docx_n, seconds = timed(lambda index=index: render(index))
                stages["render"].append(seconds)
                pdf_n, seconds = timed(lambda docx_n=docx_n: warm.convert(docx_n))
                stages["convert"].append(seconds)
                result, seconds = timed(
                    lambda pdf_n=pdf_n: sealer.seal(pdf_n, bank_code=BANK["code"], bank_name=BANK["name"])
                )
                stages["seal"].append(seconds)
                stages["pipeline"].append(time.perf_counter() - started)
                sealed_pdfs.append(result.pdf)
            loop_seconds = time.perf_counter() - loop_started
        finally:
            cold.close()
            warm.close()

        # The archive of each sealed contract: build the bag, then verify it as an auditor's tool would.
        builds: list[float] = []
        verifies: list[float] = []
        for index, sealed_pdf in enumerate(sealed_pdfs, start=1):
            identifier = str(uuid.uuid4())
            contract_no = f"HT{SIGNED_ON:%Y%m%d}{index:06d}"
            instance = {"id": identifier, "product": product["code"], "contract_no": contract_no, "data": data}
            files = [
                BagFile("documents/contract_sealed/借款合同.pdf", sealed_pdf),
                BagFile("audit/audit_trail.jsonl", audit_trail(contract_no)),
                BagFile("instance.json", json.dumps(instance, ensure_ascii=False, indent=2).encode()),
            ]
            bag, seconds = timed(
                lambda files=files, identifier=identifier: build_bag(
                    files,
                    name=f"loanfile-{identifier}",
                    info={"Source-Organization": BANK["name"], "External-Identifier": identifier},
                    signer=bag_signer,
                    readme=auditor_readme(identifier),
                )
            )
            builds.append(seconds)
            report, seconds = timed(lambda bag=bag: verify_bag(bag, trust_roots_pem=root_pem))
            verifies.append(seconds)
            assert report.ok, f"the bench archive does not verify: {report.summary}"

    baseline = statistics.median(cold_runs)
    rows = [
        ("render (context + docxtpl)", stages["render"]),
        ("convert one-shot (soffice per call)", cold_runs),
        ("convert warm (unoserver worker)", stages["convert"]),
        ("seal (PAdES + RFC 3161)", stages["seal"]),
        ("archive: build_bag", builds),
        ("archive: verify_bag", verifies),
        ("pipeline warm: render+convert+seal", stages["pipeline"]),
    ]
    print(f"\nper contract, sequential; ratio = median / one-shot convert median ({baseline:.3f} s)")
    print(f"{'stage':<38}{'n':>4}{'median s':>11}{'p95 s':>9}{'ratio':>9}")
    for name, values in rows:
        median, p95 = stats(values)
        print(f"{name:<38}{len(values):>4}{median:>11.3f}{p95:>9.3f}{median / baseline:>8.2f}x")

    convert_warm = statistics.median(stages["convert"])
    print(f"\nwarm conversion is {baseline / convert_warm:.1f}x faster than one-shot soffice")
    pipeline_median, pipeline_p95 = stats(stages["pipeline"])
    print(
        f"pipeline warm: {args.n / loop_seconds:.2f} contracts per second sequential"
        f" ({args.n} contracts in {loop_seconds:.2f} s), median {pipeline_median:.3f} s, p95 {pipeline_p95:.3f} s"
    )
    verdict = "met" if pipeline_median <= TARGET_MEDIAN_S else "NOT met"
    print(f"target: warm render + convert + seal ≤ {TARGET_MEDIAN_S} s median per contract: {verdict}")


if __name__ == "__main__":
    main()
