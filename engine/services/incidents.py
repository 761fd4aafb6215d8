"""Incidents: background jobs that failed their last retry, for administrators to retry or close.

Scope follows what an administrator oversees: a bank's own incidents; for the province also its
banks' (it runs the platform they share) and the tenant-less ones (jobs of no bank). Anything else
answers exactly like a missing incident.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict, NotFound
from engine.org.roles import INCIDENTS_MANAGE
from engine.services.principal import Principal
from engine.store.models import Incident, Job, Tenant

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

# Fewer than a new job gets: someone is watching, and a job failing again raises a new incident soon.
RETRIES_ON_RETRY = 3


@dataclass(frozen=True)
class IncidentView:
    id: int
    job_id: int
    kind: str
    tenant_id: int | None
    instance_id: str | None
    message: str
    created_at: datetime
    resolved_at: datetime | None
    resolved_by_id: int | None


def _view(incident: Incident) -> IncidentView:
    return IncidentView(
        incident.id,
        incident.job_id,
        incident.kind,
        incident.tenant_id,
        incident.instance_id,
        incident.message,
        incident.created_at,
        incident.resolved_at,
        incident.resolved_by_id,
    )


def _oversees_platform(session: Session, principal: Principal) -> bool:
    """The system and the province see the jobs that belong to no bank."""
    if principal.tenant_id is None:
        return True
    return session.scalar(select(Tenant.kind).where(Tenant.id == principal.tenant_id)) == "province"


def _sees(session: Session, principal: Principal, tenant_id: int | None) -> bool:
    """The rule of ``list`` for one incident."""
    return principal.sees(tenant_id) and (tenant_id is not None or _oversees_platform(session, principal))


class IncidentService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(
        self, principal: Principal, *, is_open: bool | None = None, limit: int, offset: int = 0
    ) -> list[IncidentView]:
        """Newest first; ``is_open`` True: unresolved only, False: resolved only, None: both."""
        principal.require(INCIDENTS_MANAGE)
        with self.platform.db.transaction() as session:
            stmt = principal.scope(select(Incident), Incident.tenant_id)
            if not _oversees_platform(session, principal):
                stmt = stmt.where(Incident.tenant_id.is_not(None))
            if is_open is not None:
                stmt = stmt.where(Incident.resolved_at.is_(None) if is_open else Incident.resolved_at.is_not(None))
            stmt = stmt.order_by(Incident.id.desc()).limit(limit).offset(offset)
            return [_view(incident) for incident in session.scalars(stmt)]

    def retry(self, principal: Principal, incident_id: int) -> IncidentView:
        """Give the job retries again, due now, and close the incident: a new failure raises a new one."""
        with self.platform.db.transaction(write=True) as session:
            incident = self._close(session, principal, incident_id)
            requeued = session.execute(
                update(Job)
                .where(Job.id == incident.job_id)
                .values(
                    retries_left=RETRIES_ON_RETRY,
                    due_at=self.platform.clock.now(),
                    lock_owner=None,
                    lock_expires_at=None,
                    last_error=None,
                )
            )
            if requeued.rowcount != 1:
                raise Conflict(f"the job of incident {incident_id} no longer exists; resolve the incident instead")
            view = _view(incident)
        log.info("incident %s (%s job %s) retried by %r", incident_id, view.kind, view.job_id, principal.username)
        return view

    def resolve(self, principal: Principal, incident_id: int) -> IncidentView:
        """Close the incident without running the job again (its work was done some other way)."""
        with self.platform.db.transaction(write=True) as session:
            view = _view(self._close(session, principal, incident_id))
        log.info("incident %s (%s job %s) resolved by %r", incident_id, view.kind, view.job_id, principal.username)
        return view

    def _close(self, session: Session, principal: Principal, incident_id: int) -> Incident:
        """Mark an open incident resolved by the principal; the condition makes a concurrent second one a 409."""
        principal.require(INCIDENTS_MANAGE)
        incident = session.get(Incident, incident_id)
        if incident is None or not _sees(session, principal, incident.tenant_id):
            raise NotFound(f"incident {incident_id} does not exist")
        now = self.platform.clock.now()
        closed = session.execute(
            update(Incident)
            .where(Incident.id == incident_id, Incident.resolved_at.is_(None))
            .values(resolved_at=now, resolved_by_id=principal.user_id)
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:
            raise Conflict(f"incident {incident_id} is already resolved")
        session.refresh(incident)
        return incident
