"""The documents of an instance: the contract generated at signing, its PDF, the sealed PDF.

The two platform connectors ``contract.generate`` and ``contract.seal`` run inside the instance's
step (``current_execution``): the bytes go to blob storage, the document rows and the audit events
are written in the step's transaction, so a failed step leaves no document row behind (at most an
unreferenced blob). Reads follow the instance's visibility: another tenant's document is a 404.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from asn1crypto import pem
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.archive.storage import BlobStorage, storage_from_settings
from engine.documents.contract_fields import FIELD_SOURCES, contract_context, unfillable_tags
from engine.documents.pdf import INSTALL_COMMAND, PdfConverter, missing_tools, shared_converter
from engine.documents.pki import BankIdentity, Pki, SealConfig, init_pki
from engine.documents.sealing import Sealer
from engine.documents.templates import ContractTemplates
from engine.documents.timestamps import timestamp_token, timestamper
from engine.documents.verification import verify_pdf
from engine.errors import InvalidInput, NotFound
from engine.inbox.assignment import administrators
from engine.notify.outbox import publish
from engine.runtime.connectors import ConnectorError, ConnectorRegistry
from engine.services.execution import Execution, current_execution
from engine.services.instance_access import reads
from engine.services.principal import Principal
from engine.store.models import (
    CONTRACT_DOCX,
    CONTRACT_PDF,
    CONTRACT_SEALED,
    Document,
    OutboxMessage,
    ProcessInstance,
    Product,
    ProductVersion,
    Tenant,
)

if TYPE_CHECKING:
    from SpiffWorkflow.task import Task

    from engine.container import CreditFlow

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF = "application/pdf"
LPR_STALE = "lpr.stale"  # the topic administrators hear when contracts are priced on an outdated LPR table
KINDS = (CONTRACT_DOCX, CONTRACT_PDF, CONTRACT_SEALED)  # the order a step makes them in
MAX_VERIFY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class DocumentView:
    id: str
    instance_id: str
    kind: str
    name: str
    media_type: str
    size: int
    sha256: str
    contract_no: str | None
    template: str | None
    source_id: str | None
    details: dict[str, Any]
    created_at: datetime
    voided_at: datetime | None
    void_reason: str | None


def _view(row: Document) -> DocumentView:
    return DocumentView(
        row.id,
        row.instance_id,
        row.kind,
        row.name,
        row.media_type,
        row.size,
        row.sha256,
        row.contract_no,
        row.template,
        row.source_id,
        dict(row.details or {}),
        row.created_at,
        row.voided_at,
        row.void_reason,
    )


class DocumentService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform
        self._lock = threading.Lock()
        self._tools: tuple[Pki, Sealer, TimeStamper] | None = None
        self._issuing = threading.Lock()

    # -- collaborators, built on first use (a platform that never signs starts no office) -------

    @cached_property
    def templates(self) -> ContractTemplates:
        return ContractTemplates(self.platform.settings.contracts_dir)

    @cached_property
    def storage(self) -> BlobStorage:
        settings = self.platform.settings
        return storage_from_settings(settings.data_dir, settings.storage_url)

    @cached_property
    def seal_config(self) -> SealConfig:
        return SealConfig.read(self.platform.settings.seal_config)

    @property
    def pki(self) -> Pki:
        return self._seal_tools()[0]

    @property
    def sealer(self) -> Sealer:
        return self._seal_tools()[1]

    def _seal_tools(self) -> tuple[Pki, Sealer, TimeStamper]:
        """The PKI, and the sealer and timestamper over it, rebuilt together when the PKI changes."""
        with self._lock:
            if self._tools is None:
                pki = Pki.load(self.platform.settings.pki_path, self.seal_config)
                stamper = timestamper(self.seal_config, pki)
                self._tools = (pki, Sealer(pki, stamper), stamper)
            return self._tools

    @property
    def root_pem(self) -> bytes:
        """The roots the platform's seals and timestamps chain to, as auditors get them."""
        return b"".join(pem.armor("CERTIFICATE", cert.dump()) for cert in self.pki.trust_roots)

    def timestamp_token(self, data: bytes) -> bytes:
        return timestamp_token(data, self._seal_tools()[2])

    def seal_signer(self, bank: dict[str, str]) -> Any:
        """The bank's seal signer. A bank that joined after ``creditflow pki init`` gets a development
        seal on first use, but only while the development PKI is in use for it (never one that the
        seal configuration names, whose key lives elsewhere)."""
        pki = self.pki
        if bank["code"] not in pki.bank_codes:
            with self._issuing:  # two web threads must not issue the same bank two keys
                if bank["code"] not in self.pki.bank_codes:
                    init_pki(pki.directory, [BankIdentity(bank["code"], bank["name"])], now=datetime.now(UTC))
                    with self._lock:
                        self._tools = None
            pki = self.pki
        return pki.seal_signer(bank["code"])

    @property
    def converter(self) -> PdfConverter:
        settings = self.platform.settings
        return shared_converter(settings.office_path, workers=settings.pdf_workers)

    def warm_up(self) -> None:
        """Start the converter in the background; on a machine that lacks a tool the operator is told
        which, and how to install it, before the first contract fails for it."""
        missing = missing_tools()
        if missing:
            log.warning("contracts cannot be made here, missing: %s; %s", ", ".join(missing), INSTALL_COMMAND)

        def start() -> None:
            try:
                self.converter.start()
            except Exception as exc:  # contracts will fail with the same reason, as incidents say
                log.warning("PDF converter not started: %s", exc)

        threading.Thread(target=start, name="pdf-warm-up", daemon=True).start()

    # -- the signing step -----------------------------------------------------------------------

    def generate(self, task: Task) -> dict[str, Any]:
        """``contract.generate``: the product's template filled from the application, as Word and PDF/A."""
        execution = current_execution()
        binding = getattr(execution.workflow, "product_binding", None)
        if binding is None or not binding.contract:
            raise ConnectorError("this process is not a product application: it has no contract template")
        instance = execution.instance
        bank = self._bank(execution.session, instance)
        signed_on = execution.now.astimezone(SHANGHAI).date()
        product = binding.contract
        contract_no = f"HT{signed_on:%Y%m%d}{instance.id[:8].upper()}"
        benchmark = product["parameters"]["rate"]["benchmark"]
        template = product["contract_template"]
        lpr = self.platform.lpr_quotes.table(execution.session)
        try:
            context = contract_context(
                task.data,
                bank=bank,
                product=product,
                contract_no=contract_no,
                signed_on=signed_on,
                lpr=lpr.rate(benchmark, signed_on),
                template_tags=self.templates.tags(template),
            )
        except (KeyError, ValueError) as exc:
            raise ConnectorError(f"the application cannot fill the contract: {exc}") from exc
        docx = self.templates.render(template, context)
        pdf = self.converter.convert(docx)
        title = f"借款合同-{contract_no}"
        word = self._store(execution, task, CONTRACT_DOCX, f"{title}.docx", DOCX, docx, contract_no, template, None)
        made = self._store(execution, task, CONTRACT_PDF, f"{title}.pdf", PDF, pdf, contract_no, template, word.id)
        quote = lpr.in_force(signed_on).effective.isoformat()
        _journal(execution, task, "contract_generated", made, template=template, lpr_effective=quote)
        if lpr.stale_on(signed_on):
            self._lpr_stale(execution, signed_on, quote)
        return {"document_id": made.id, "contract_no": contract_no, "template": template, "sha256": made.sha256}

    def _lpr_stale(self, execution: Execution, signed_on: date, quote: str) -> None:
        """A contract priced on an LPR table nobody has updated for over a month: the contract states
        the rate "in force on the signing day", so the administrators hear of it (once a day per bank)
        and the audit trail says which quote was used."""
        execution.journal.record("lpr_stale", actor=False, signed_on=signed_on.isoformat(), lpr_effective=quote)
        instance, session = execution.instance, execution.session
        today = datetime.combine(signed_on, time(), SHANGHAI)
        told = session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.topic == LPR_STALE,
                OutboxMessage.tenant_id == instance.tenant_id,
                OutboxMessage.created_at >= today,
            )
        )
        if told is None:
            message = f"the newest LPR quote is of {quote}: the province's administrators enter the announcements since"
            publish(
                session,
                execution.now,
                tenant_id=instance.tenant_id,
                topic=LPR_STALE,
                recipients=administrators(session, instance.tenant_id),
                payload={"lpr_effective": quote, "instance_id": instance.id, "message": message},
            )

    def seal(self, task: Task, document_id: str) -> dict[str, Any]:
        """``contract.seal``: the generated PDF sealed with the lending bank's electronic seal."""
        execution = current_execution()
        instance = execution.instance
        source = execution.documents.get(document_id) or execution.session.get(Document, document_id)
        if source is None or source.instance_id != instance.id or source.kind != CONTRACT_PDF:
            raise ConnectorError(f"document {document_id} is not a contract PDF of this application")
        bank = self._bank(execution.session, instance)
        self.seal_signer(bank)
        result = self.sealer.seal(self.storage.get(source.storage_key), bank_code=bank["code"], bank_name=bank["name"])
        details = {
            "signer": result.signer_subject,
            "signed_at": result.signed_at.isoformat(),
            "field": result.field_name,
        }
        sealed = self._store(
            execution,
            task,
            CONTRACT_SEALED,
            source.name.removesuffix(".pdf") + "（已签章）.pdf",
            PDF,
            result.pdf,
            source.contract_no,
            source.template,
            source.id,
            details,
        )
        _journal(execution, task, "contract_sealed", sealed, **details)
        return {"document_id": sealed.id, "sha256": sealed.sha256, **details}

    def _store(
        self,
        execution: Execution,
        task: Task,
        kind: str,
        name: str,
        media_type: str,
        content: bytes,
        contract_no: str | None,
        template: str | None,
        source_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> Document:
        instance = execution.instance
        blob = self.storage.put(f"documents/{instance.tenant_id or 0}/{_sha256(content)}", content)
        row = Document(
            id=str(uuid.uuid4()),
            tenant_id=instance.tenant_id,
            instance_id=instance.id,
            kind=kind,
            name=name,
            media_type=media_type,
            size=blob.size,
            sha256=blob.sha256,
            storage_key=blob.key,
            contract_no=contract_no,
            template=template,
            source_id=source_id,
            bpmn_id=task.task_spec.bpmn_id,
            details=details or {},
            created_at=execution.now,
        )
        execution.documents[row.id] = row
        return row

    @staticmethod
    def _bank(session: Session, instance: Any) -> dict[str, str]:
        tenant = lending_tenant(session, instance)
        if tenant is None:
            raise ConnectorError("the application belongs to no bank: there is no seal to sign with")
        return {"code": tenant.code, "name": tenant.name}

    # -- publishing -----------------------------------------------------------------------------

    def template_problems(self, config: dict[str, Any], available_paths: set[str]) -> list[dict[str, str]]:
        """Every tag of the product's contract template that its applications cannot fill."""
        name = config["contract_template"]
        if name not in self.templates.names():
            return [{"field": "contract_template", "message": f"no contract template named {name!r}"}]
        return [
            {"field": "contract_template", "message": f"template {name} tag {{{{ {tag} }}}}: {reason}"}
            for tag, reason in unfillable_tags(self.templates.tags(name), available_paths)
        ]

    def application_problems(
        self, config: dict[str, Any], start_data: dict[str, Any], start_fields: set[str]
    ) -> list[dict[str, str]]:
        """What an application must carry for its contract that only the applicant can give (the
        borrower, the purpose, the guarantors, a policy loan's programme, a renewal's old loan): asked
        for at the start, not found missing at signing. An optional section the template prints is
        needed as much as any other field: signing refuses a template section without its data, and a
        policy loan without ``policy`` was approved by four people and then could not be signed."""
        name = config["contract_template"]
        needed = sorted({path for tag in self.templates.tags(name) for path in FIELD_SOURCES.get(tag, ())})
        problems = []
        for path in needed:
            if path.split(".")[0] not in start_fields:
                continue  # a later step provides it (an appraisal, a decision)
            value: Any = start_data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value in (None, "", []):
                field = path if path.startswith("applicant.") else f"data.{path}"
                problems.append({"field": field, "message": f"the contract ({name}) needs it"})
        return problems

    # -- reads ----------------------------------------------------------------------------------

    def list(self, principal: Principal, instance_id: str) -> list[DocumentView]:
        with self.platform.db.transaction() as session:
            self._instance(session, principal, instance_id)
            rows = session.scalars(select(Document).where(Document.instance_id == instance_id))
            return sorted((_view(r) for r in rows), key=lambda d: (d.created_at, KINDS.index(d.kind), d.id))

    def get(self, principal: Principal, document_id: str) -> DocumentView:
        with self.platform.db.transaction() as session:
            return _view(self._document(session, principal, document_id))

    def content(self, principal: Principal, document_id: str) -> tuple[DocumentView, bytes]:
        with self.platform.db.transaction() as session:
            row = self._document(session, principal, document_id)
            return _view(row), self.storage.get(row.storage_key)

    def verify(self, principal: Principal, document_id: str) -> dict[str, Any]:
        """The seal report of a stored document, and whether the bank stands by it (``_judged``)."""
        view, content = self.content(principal, document_id)
        if view.media_type != PDF:
            raise InvalidInput(
                f"document {document_id} is not a PDF", [{"field": "document_id", "message": "only PDFs carry a seal"}]
            )
        return _judged(view, self.verify_bytes(content), _sha256(content) == view.sha256)

    def verify_upload(self, principal: Principal, pdf: bytes) -> dict[str, Any]:
        """The seal report of a PDF handed in (a customer's copy, say); when its bytes are those of a
        document the caller reads, that document's verdict too: a copy of a void contract still carries
        a valid seal, and the clerk checking it must learn that it binds nobody."""
        report = self.verify_bytes(pdf)
        with self.platform.db.transaction() as session:
            for row in session.scalars(select(Document).where(Document.sha256 == _sha256(pdf)).order_by(Document.id)):
                if reads(session, principal, session.get(ProcessInstance, row.instance_id)):
                    return _judged(_view(row), report, True)
        return report

    def verify_bytes(self, pdf: bytes) -> dict[str, Any]:
        """A seal report for any PDF, against the platform's roots, judged on its seals alone."""
        if len(pdf) > MAX_VERIFY_BYTES:
            problem = {"field": "file", "message": f"at most {MAX_VERIFY_BYTES} bytes"}
            raise InvalidInput("the file is too large", [problem])
        return verify_pdf(pdf, self.pki.trust_roots).to_dict()

    def _document(self, session: Session, principal: Principal, document_id: str) -> Document:
        row = session.get(Document, document_id)
        if row is None or not reads(session, principal, session.get(ProcessInstance, row.instance_id)):
            raise NotFound(f"document {document_id} does not exist")
        return row

    @staticmethod
    def _instance(session: Session, principal: Principal, instance_id: str) -> ProcessInstance:
        instance = session.get(ProcessInstance, instance_id)
        if not reads(session, principal, instance):
            raise NotFound(f"process instance {instance_id} does not exist")
        return instance


def _judged(view: DocumentView, report: dict[str, Any], intact: bool) -> dict[str, Any]:
    """A stored document's seal report with whether the bank stands by it: a void contract's seal still
    verifies (``status`` is the cryptography's verdict), but it binds nobody."""
    void = None
    if view.voided_at is not None:
        void = {"at": view.voided_at, "reason": view.void_reason}
        on = view.voided_at.astimezone(SHANGHAI).date().isoformat()
        report["summary"] += f" The contract was voided on {on} ({view.void_reason}): it binds nobody."
    binding = report["status"] == "valid" and intact and void is None
    return {"document_id": view.id, "sha256_matches": intact, **report, "binding": binding, "void": void}


def _journal(execution: Execution, task: Task, event: str, document: Document, **details: Any) -> None:
    """A document made by a step, in the audit trail with its hash: the archive can be checked against it."""
    execution.journal.record(
        event,
        task_id=str(task.id),
        bpmn_id=task.task_spec.bpmn_id,
        actor=False,
        document_id=document.id,
        contract_no=document.contract_no,
        sha256=document.sha256,
        **details,
    )


def lending_tenant(session: Session, instance: Any) -> Tenant | None:
    """Whose seal an instance's papers carry: its tenant's, or, for an application the platform
    itself started (tenant-less), the tenant that owns the product."""
    tenant_id = instance.tenant_id
    if tenant_id is None and instance.product_version_id is not None:
        version = session.get(ProductVersion, instance.product_version_id)
        tenant_id = session.get(Product, version.product_id).tenant_id if version is not None else None
    return session.get(Tenant, tenant_id) if tenant_id is not None else None


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def register_contract_connectors(registry: ConnectorRegistry, documents: DocumentService) -> None:
    """The signing step's connectors belong to the platform: every registry gets them."""
    for name, connector in (("contract.generate", documents.generate), ("contract.seal", documents.seal)):
        if name not in registry:
            registry.register(name, connector, with_task=True)
