"""Archiving the loan file of an ended instance, and reading the archive back.

Ending an instance (completed at any end event, or cancelled) writes an ``archive`` job in the same
transaction (``Execution._schedule_jobs``); the scheduler builds the bag: the instance's documents,
each completed task's form data, the rule results, the whole audit trail and a README for
auditors, with the tag manifest sealed by the bank (CMS) and timestamped (RFC 3161). ``opinions.json``
is the application's opinion record (``engine.services.opinions``), read from the same trail. The bag goes
to blob storage, the record and an ``archived`` audit event commit with the job's completion fence.
A failure is retried by the job table with backoff and raises an incident after the last retry;
the instance itself is untouched either way.

Every archive also has an ``archive_renew`` job, due a margin (``archive_renew_days``) before its newest
timestamp's TSA certificate expires: it appends a new timestamp over the evidence so far
(``engine/archive/renewal.py``), so the file still verifies for all the years it is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.archive.bag import BagFile, auditor_readme, build_bag, safe_name
from engine.archive.renewal import renew_bag
from engine.archive.verification import verify_bag
from engine.documents.schedule import add_months
from engine.errors import CreditFlowError, NotFound
from engine.jobs.queue import AcquiredJob, cancel, enqueue
from engine.org.roles import ROLES
from engine.services.documents import SHANGHAI, lending_tenant
from engine.services.execution import CANCELLED, GRANTED
from engine.services.instance_access import reads
from engine.services.principal import Principal
from engine.store.audit import Journal
from engine.store.models import (
    ArchivePackage,
    Attachment,
    AuditEvent,
    Comment,
    Document,
    Incident,
    OrgUnit,
    ProcessDefinition,
    ProcessInstance,
    Tenant,
    User,
    UserRole,
)

if TYPE_CHECKING:
    from engine.container import CreditFlow

ARCHIVE_RENEW = "archive_renew"  # the job kind that renews an archive's timestamp ahead of its expiry


class RenewalRefused(CreditFlowError):
    """The archive's timestamp cannot be renewed as things stand; a job retries it, then raises an incident
    (not a ``Conflict``, which the job queue takes for a race and postpones without end)."""

    status = 409
    title = "Archive not renewed"


@dataclass(frozen=True)
class ArchiveView:
    instance_id: str
    outcome: str
    name: str
    size: int
    sha256: str
    file_count: int
    timestamped_at: datetime | None
    retention_until: date
    created_at: datetime
    evidence_expires_at: datetime | None
    renewals: int
    renewed_at: datetime | None


def _view(row: ArchivePackage) -> ArchiveView:
    return ArchiveView(
        row.instance_id,
        row.outcome,
        row.name,
        row.size,
        row.sha256,
        row.file_count,
        row.timestamped_at,
        row.retention_until,
        row.created_at,
        row.evidence_expires_at,
        row.renewals,
        row.renewed_at,
    )


class SealManifestSigner:
    """Signs a bag's tag manifest with the bank's seal (whatever holds the key: file or token)."""

    def __init__(self, platform: CreditFlow, bank: dict[str, str]) -> None:
        documents = platform.documents
        self._signer = documents.seal_signer(bank)
        self._timestamp = documents.timestamp_token
        self.ca_pem = documents.root_pem

    def sign(self, data: bytes) -> bytes:
        return asyncio.run(self._signer.async_sign_general_data(data, "sha256", detached=True)).dump()

    def timestamp(self, data: bytes) -> bytes:
        return self._timestamp(data)


def archive_instance(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:
    """The ``archive`` job: bag, store and record the loan file, once."""
    service = platform.archives
    with platform.instances.annotation(Principal.system(), job.instance_id or "", skip_locked=True) as (
        session,
        journal,
        instance,
    ):
        platform.jobs.finish(session, job)
        if session.get(ArchivePackage, instance.id) is not None:
            return
        tenant = _lender(session, instance)
        outcome = service.outcome(session, instance)
        files, contract_no = service.loan_file(session, instance, outcome)
        name = f"loanfile-{instance.id}"
        info = {
            "Source-Organization": tenant.name,
            "External-Identifier": instance.id,
            "External-Description": f"CreditFlow loan file, outcome {outcome}",
            **({"Contract-Number": contract_no} if contract_no else {}),
        }
        signer = SealManifestSigner(platform, {"code": tenant.code, "name": tenant.name})
        readme = auditor_readme(instance.id, organization=tenant.name)
        bagged_on = now.astimezone(SHANGHAI).date()  # the bank's date, as on its papers
        bag = build_bag(files, name=name, info=info, signer=signer, readme=readme, bagging_date=bagged_on)
        report = verify_bag(bag, trust_roots_pem=signer.ca_pem)
        if not report.ok:  # never record an archive that would not verify
            raise RuntimeError(f"the archive of {instance.id} does not verify: {report.summary}")
        digest = hashlib.sha256(bag).hexdigest()
        blob = service.storage.put(_blob_key(tenant.code, now, name, digest), bag)
        settings = platform.settings
        granted = outcome in (GRANTED, "completed")  # a plain process's file is kept as long as a loan's
        years = settings.retention_years_approved if granted else settings.retention_years_declined
        term = (instance.data or {}).get("term_months")
        # a granted loan's file is kept for the years after the loan ends, not after it was granted
        ends_on = add_months(bagged_on, term) if granted and isinstance(term, int) and term > 0 else bagged_on
        row = ArchivePackage(
            instance_id=instance.id,
            tenant_id=instance.tenant_id,
            outcome=outcome,
            name=f"{name}.zip",
            storage_key=blob.key,
            size=blob.size,
            sha256=blob.sha256,
            file_count=len(files),
            timestamped_at=report.timestamp_time,
            retention_until=_years_after(ends_on, years),
            created_at=now,
            evidence_expires_at=report.evidence_expires_at,
            renewals=0,
        )
        session.add(row)
        service.schedule_renewal(session, row, now)
        journal.record("archived", actor=False, sha256=blob.sha256, outcome=outcome, files=len(files))


def renew_archive(platform: CreditFlow, job: AcquiredJob, now: datetime) -> None:
    """The ``archive_renew`` job: renew the archive's timestamp if it is due, else wait until it is."""
    with platform.instances.annotation(Principal.system(), job.instance_id or "", skip_locked=True) as (
        session,
        journal,
        instance,
    ):
        platform.jobs.finish(session, job)
        row = session.get(ArchivePackage, instance.id)
        if row is not None:
            platform.archives.renew(session, journal, row, now)


def _lender(session: Session, instance: ProcessInstance) -> Tenant:
    """The bank whose seal an archive carries and under whose name it is stored."""
    tenant = lending_tenant(session, instance)
    if tenant is None:
        raise LookupError(f"instance {instance.id} belongs to no bank: nobody can seal its archive")
    return tenant


def _blob_key(bank_code: str, now: datetime, name: str, digest: str) -> str:
    """Where a bag is stored: by bank and month, its digest in the name, so a renewed bag lands beside
    the earlier one instead of over it."""
    return f"archives/{bank_code}/{now:%Y/%m}/{name}-{digest[:12]}.zip"


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class ArchiveService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    @property
    def storage(self) -> Any:
        return self.platform.documents.storage

    # -- renewals -------------------------------------------------------------------------------

    def renew(
        self,
        session: Session,
        journal: Journal,
        row: ArchivePackage,
        now: datetime,
        *,
        force: bool = False,
    ) -> None:
        """Append a new timestamp to the archive when its evidence is about to expire (or at once, with
        ``force``), store the renewed bag beside the old one, and schedule the next check."""
        bag = self.storage.get(row.storage_key)
        roots = self.platform.documents.root_pem
        if row.evidence_expires_at is None:  # archived before renewals existed: read it off the bag
            row.evidence_expires_at = verify_bag(bag, trust_roots_pem=roots).evidence_expires_at
        if (
            not force
            and row.evidence_expires_at is not None
            and now < self._renewal_due(row.instance_id, row.evidence_expires_at)
        ):
            self.schedule_renewal(session, row, now)
            return
        before = verify_bag(bag, trust_roots_pem=roots)
        if not before.ok:  # a new timestamp must never vouch for evidence that no longer holds
            raise RenewalRefused(f"the archive of {row.instance_id} does not verify, not renewed: {before.summary}")
        renewed = renew_bag(bag, self.platform.documents.timestamp_token, now.astimezone(SHANGHAI).date())
        after = verify_bag(renewed, trust_roots_pem=roots)
        expires = after.evidence_expires_at
        if not after.ok or expires is None:
            raise RenewalRefused(f"the renewed archive of {row.instance_id} does not verify: {after.summary}")
        if not force and row.evidence_expires_at is not None and expires <= row.evidence_expires_at:
            raise RenewalRefused(
                f"the TSA's certificate expires {expires.isoformat()}, no later than the archive's timestamp"
                f" ({row.evidence_expires_at.isoformat()}): a renewal would not extend it; configure a TSA whose"
                " certificate is newer (tsa_url in CREDITFLOW_SEAL_CONFIG)"
            )
        digest = hashlib.sha256(renewed).hexdigest()
        tenant = _lender(session, session.get(ProcessInstance, row.instance_id))
        blob = self.storage.put(_blob_key(tenant.code, now, row.name.removesuffix(".zip"), digest), renewed)
        previous = row.sha256
        row.storage_key, row.size, row.sha256 = blob.key, blob.size, blob.sha256
        row.renewals, row.renewed_at, row.evidence_expires_at = row.renewals + 1, now, expires
        session.execute(  # what a failed renewal raised is settled by this one
            update(Incident)
            .where(Incident.kind == ARCHIVE_RENEW, Incident.instance_id == row.instance_id)
            .where(Incident.resolved_at.is_(None))
            .values(resolved_at=now)
        )
        journal.record(
            "archive_renewed",
            actor=force,
            sha256=blob.sha256,
            previous_sha256=previous,
            renewal=row.renewals,
            evidence_expires_at=expires.isoformat(),
        )
        self.schedule_renewal(session, row, now)

    def renew_now(self, principal: Principal, instance_id: str) -> ArchiveView:
        """Renew at once, e.g. before a TSA key or a hash algorithm is retired early."""
        with self.platform.instances.annotation(principal, instance_id) as (session, journal, _):
            row = self._row(session, principal, instance_id)
            self.renew(session, journal, row, self.platform.clock.now(), force=True)
            return _view(row)

    def schedule_renewal(self, session: Session, row: ArchivePackage, now: datetime) -> None:
        """One pending check per archive, due ahead of its evidence's expiry, while the file is still kept."""
        cancel(session, ARCHIVE_RENEW, instance_id=row.instance_id)
        expires = row.evidence_expires_at
        if expires is None or expires.date() > row.retention_until:
            return  # no TSA certificate to go by, or the timestamp outlasts the retention: nothing to renew
        due = max(now, self._renewal_due(row.instance_id, expires))
        enqueue(session, ARCHIVE_RENEW, due, now, tenant_id=row.tenant_id, instance_id=row.instance_id)

    def _renewal_due(self, instance_id: str, expires: datetime) -> datetime:
        """In the first half of the margin before the evidence expires, at a point fixed per archive.

        Every archive one TSA certificate stamped expires at the same instant; spread out, their renewals
        trickle through the job table instead of queueing ahead of every timer and escalation at once.
        """
        margin = timedelta(days=self.platform.settings.archive_renew_days)
        half = max(int(margin.total_seconds()) // 2, 1)
        spread = int(hashlib.sha256(instance_id.encode()).hexdigest()[:12], 16) % half
        return expires - margin + timedelta(seconds=spread)

    def outcome(self, session: Session, instance: ProcessInstance) -> str:
        """approved / rejected / aborted / withdrawn from the end event the archetype names, else the status."""
        if instance.status == CANCELLED:
            return CANCELLED
        end = session.scalars(
            select(AuditEvent.payload)
            .where(AuditEvent.instance_id == instance.id, AuditEvent.event_type == "completed")
            .order_by(AuditEvent.seq.desc())
        ).first()
        definition = session.get(ProcessDefinition, instance.definition_id)
        outcomes = self.platform.products.end_outcomes(definition.key) if definition is not None else {}
        return outcomes.get((end or {}).get("end"), instance.status)

    def loan_file(self, session: Session, instance: ProcessInstance, outcome: str) -> tuple[list[BagFile], str | None]:
        """Everything an auditor needs about one application, as bag payload files."""
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.instance_id == instance.id).order_by(AuditEvent.seq)
        ).all()
        documents = session.scalars(
            select(Document).where(Document.instance_id == instance.id).order_by(Document.created_at, Document.id)
        ).all()
        attachments = session.scalars(
            select(Attachment)
            .where(Attachment.instance_id == instance.id)
            .order_by(Attachment.created_at, Attachment.id)
        ).all()
        comments = session.scalars(select(Comment).where(Comment.instance_id == instance.id).order_by(Comment.id)).all()
        definition = session.get(ProcessDefinition, instance.definition_id)
        files = [BagFile(f"documents/{d.kind}/{d.name}", self.storage.get(d.storage_key)) for d in documents]
        uploads = {f"attachments/{i:03d}-{safe_name(a.filename)}": a for i, a in enumerate(attachments, start=1)}
        files += [BagFile(path, attachment.content) for path, attachment in uploads.items()]
        if comments:
            files.append(BagFile("comments.json", _json([_comment(comment) for comment in comments])))
        forms = [e for e in events if e.event_type == "task_completed"]
        files += [
            BagFile(f"forms/{i:03d}-{e.bpmn_id or 'task'}.json", _json(_event(e))) for i, e in enumerate(forms, start=1)
        ]
        decisions = [_event(e) for e in events if e.event_type == "rule_evaluated"]
        files.append(BagFile("decisions/rule_evaluations.json", _json(decisions)))
        # who decided what, round by round (审批意见), read from the trail below: a return's first round too
        opinions = self.platform.opinions.record(session, instance, list(events))
        files.append(BagFile("opinions.json", _json([opinion.as_json() for opinion in opinions])))
        trail = "".join(json.dumps(_event(e), ensure_ascii=False, sort_keys=True) + "\n" for e in events)
        files.append(BagFile("audit/audit_trail.jsonl", trail.encode("utf-8")))
        summary = {
            "instance_id": instance.id,
            "business_key": instance.business_key,
            "definition": {"key": definition.key, "version": definition.version} if definition else None,
            "product_version_id": instance.product_version_id,
            "status": instance.status,
            "outcome": outcome,
            "started_at": instance.created_at.isoformat(),
            "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
            "audit_head": instance.audit_head,
            "data": instance.data,
            "documents": [
                {
                    "path": f"documents/{d.kind}/{d.name}",
                    "kind": d.kind,
                    "sha256": d.sha256,
                    **d.details,
                    # a contract of an application that ended without the money moving binds nobody
                    "void": {"at": d.voided_at.isoformat(), "reason": d.void_reason} if d.voided_at else None,
                }
                for d in documents
            ],
            "attachments": [
                {
                    "path": path,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                    "task_id": a.task_id,
                    "uploaded_by_id": a.uploaded_by_id,
                    "uploaded_at": a.created_at.isoformat(),
                }
                for path, a in uploads.items()
            ],
        }
        files.append(BagFile("instance.json", _json(summary)))
        people = {instance.started_by_id, *(e.actor_id for e in events), *(c.author_id for c in comments)}
        people |= {a.uploaded_by_id for a in attachments}
        files.append(BagFile("people.json", _json(_people(session, {p for p in people if p is not None}))))
        contract_no = next((d.contract_no for d in documents if d.contract_no), None)
        return files, contract_no

    # -- reads ----------------------------------------------------------------------------------

    def get(self, principal: Principal, instance_id: str) -> ArchiveView:
        with self.platform.db.transaction() as session:
            return _view(self._row(session, principal, instance_id))

    def content(self, principal: Principal, instance_id: str) -> tuple[ArchiveView, bytes]:
        with self.platform.db.transaction() as session:
            row = self._row(session, principal, instance_id)
            return _view(row), self.storage.get(row.storage_key)

    def verify(self, principal: Principal, instance_id: str) -> dict[str, Any]:
        view, content = self.content(principal, instance_id)
        return self.verify_bytes(content) | {"instance_id": view.instance_id}

    def verify_bytes(
        self, content: bytes, roots_pem: bytes | None = None, at: datetime | None = None
    ) -> dict[str, Any]:
        """A bag's report: each check (structure, completeness, hashes, signature, timestamps) and a verdict;
        ``at`` checks the newest timestamp as of another time than now (will it still verify then?)."""
        report = verify_bag(content, trust_roots_pem=roots_pem or self.platform.documents.root_pem, at=at)
        checks = [{"name": c.name, "ok": c.ok, "reason": c.reason, **c.details} for c in report.checks]
        return {"ok": report.ok, "summary": report.summary, "bag_name": report.bag_name, "checks": checks}

    @staticmethod
    def _row(session: Session, principal: Principal, instance_id: str) -> ArchivePackage:
        row = session.get(ArchivePackage, instance_id)
        if row is None or not reads(session, principal, session.get(ProcessInstance, instance_id)):
            raise NotFound(f"no archive for process instance {instance_id}")
        return row


def _event(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.event_type,
        "at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "task_id": event.task_id,
        "bpmn_id": event.bpmn_id,
        "payload": event.payload,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _people(session: Session, user_ids: set[int]) -> list[dict[str, Any]]:
    """Who the ids in the file are, as of archiving: an auditor reading ``actor_id: 10`` thirty years
    on has no database to ask. Names, usernames and roles with their units."""
    users = session.scalars(select(User).where(User.id.in_(sorted(user_ids))).order_by(User.id)).all()
    grants: dict[int, list[dict[str, Any]]] = {}
    held = (
        select(UserRole.user_id, UserRole.role, OrgUnit.code, OrgUnit.name)
        .outerjoin(OrgUnit, OrgUnit.id == UserRole.org_unit_id)
        .where(UserRole.user_id.in_(sorted(user_ids)))
        .order_by(UserRole.user_id, UserRole.role)
    )
    for user_id, role, unit_code, unit_name in session.execute(held):
        title = ROLES[role].name if role in ROLES else role
        grants.setdefault(user_id, []).append({"role": role, "title": title, "unit": unit_code, "unit_name": unit_name})
    return [{"id": u.id, "username": u.username, "name": u.display_name, "roles": grants.get(u.id, [])} for u in users]


def _comment(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id,
        "task_id": comment.task_id,
        "author_id": comment.author_id,
        "at": comment.created_at.isoformat(),
        "body": comment.body,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
