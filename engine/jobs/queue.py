"""The job table: acquisition with leases, the completion fence, retries with backoff, incidents.

A node acquires due jobs by writing its lease in one short transaction (``FOR UPDATE SKIP LOCKED``
on PostgreSQL, so nodes never queue behind each other; ``BEGIN IMMEDIATE`` on SQLite). A handler
does the job's work in its own business transaction and calls ``finish`` inside it: the job row is
deleted only if it still carries this acquisition's version, so a node whose lease expired and
was taken over cannot commit the same work twice. A failure gives the job back with a backoff
and one retry fewer; after the last one an incident records it until someone retries it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, select, true, update
from sqlalchemy.orm import Session

from engine.errors import Busy, Conflict
from engine.masking import mask_text
from engine.store.models import Incident, Job

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
RETRIES = 5
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30))
DONE, BUSY, LOST, FAILED = "done", "busy", "lost", "failed"


# Built once: the hot path of every job (enqueue, the completion fence) runs Core statements on the table,
# not ORM-enabled ones, whose per-call construction and ORM bulk path cost more than the round trip.
_ENQUEUE = insert(Job.__table__)
_FINISH = delete(Job.__table__).where(
    Job.__table__.c.id == bindparam("job_id"),
    Job.__table__.c.version == bindparam("job_version"),
    Job.__table__.c.lock_owner == bindparam("job_owner"),
)


class LeaseLost(Exception):
    """The job is no longer ours (deleted, or acquired again after our lease expired): roll back."""


@dataclass(frozen=True)
class Lane:
    """Which job kinds a scheduler loop runs: ``kinds`` only, or (``skip``) every kind but those. A
    slow webhook receiver must not hold up timers, escalations and archiving behind it."""

    kinds: tuple[str, ...] = ()
    skip: bool = False

    def clause(self) -> Any:
        if not self.kinds:
            return true()
        return Job.kind.not_in(self.kinds) if self.skip else Job.kind.in_(self.kinds)


ALL = Lane()


@dataclass(frozen=True)
class AcquiredJob:
    id: int
    kind: str
    version: int
    owner: str
    tenant_id: int | None
    instance_id: str | None
    task_id: str | None
    payload: dict[str, Any]
    due_at: datetime
    attempts: int
    retries_left: int
    lease_expires: datetime | None = None  # when this acquisition's lease runs out


Handler = Callable[["CreditFlow", AcquiredJob, datetime], None]  # (platform, job, the pass's now)


def node_name() -> str:
    """Unique per process and thread, so two workers on one host never share a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def enqueue(
    session: Session,
    kind: str,
    due_at: datetime,
    now: datetime,
    *,
    tenant_id: int | None = None,
    instance_id: str | None = None,
    task_id: str | None = None,
    payload: dict[str, Any] | None = None,
    retries: int = RETRIES,
) -> None:
    """Add a job in the caller's transaction: it exists exactly when what caused it commits."""
    session.execute(
        _ENQUEUE,
        {
            "kind": kind,
            "tenant_id": tenant_id,
            "instance_id": instance_id,
            "task_id": task_id,
            "payload": payload or {},
            "due_at": due_at,
            "retries_left": retries,
            "attempts": 0,
            "version": 0,
            "created_at": now,
        },
    )


def cancel(session: Session, kind: str, *, instance_id: str | None = None, task_ids: list[str] | None = None) -> None:
    """Drop pending jobs whose reason went away (a task closed, a timer no longer waited for).

    A node that already acquired one of them finds it gone at ``finish`` and rolls back.
    """
    stmt = delete(Job).where(Job.kind == kind)
    if task_ids is not None:
        stmt = stmt.where(Job.task_id.in_(task_ids))
    elif instance_id is not None:
        stmt = stmt.where(Job.instance_id == instance_id, Job.task_id.is_(None))
    else:
        raise ValueError("cancel needs an instance or tasks")
    session.execute(stmt)


class JobQueue:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform
        self.handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def acquire(self, owner: str, now: datetime, limit: int, lane: Lane = ALL) -> list[AcquiredJob]:
        """Lease up to ``limit`` due jobs of ``lane`` to ``owner`` in one short transaction."""
        due = (
            select(Job.id)
            .where(
                Job.due_at <= now,
                Job.retries_left > 0,
                (Job.lock_expires_at.is_(None)) | (Job.lock_expires_at < now),
                lane.clause(),
            )
            .order_by(Job.due_at, Job.id)
            .limit(limit)
        )
        if not self.platform.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        with self.platform.db.transaction(write=True) as session:
            rows = session.execute(
                update(Job)
                .where(Job.id.in_(due.scalar_subquery()))
                .values(
                    lock_owner=owner,
                    lock_expires_at=now + LEASE,
                    version=Job.version + 1,
                    attempts=Job.attempts + 1,
                )
                .returning(
                    Job.id,
                    Job.kind,
                    Job.version,
                    Job.tenant_id,
                    Job.instance_id,
                    Job.task_id,
                    Job.payload,
                    Job.due_at,
                    Job.attempts,
                    Job.retries_left,
                )
                .execution_options(synchronize_session=False)
            ).all()
        jobs = [AcquiredJob(r.id, r.kind, r.version, owner, *r[3:], lease_expires=now + LEASE) for r in rows]
        return sorted(jobs, key=lambda j: (j.due_at, j.id))

    def finish(self, session: Session, job: AcquiredJob) -> None:
        """The fence: delete the job in the handler's own transaction, or raise LeaseLost."""
        result = session.execute(_FINISH, {"job_id": job.id, "job_version": job.version, "job_owner": job.owner})
        if result.rowcount != 1:
            raise LeaseLost(f"job {job.id} ({job.kind}) is no longer held by {job.owner}")

    def run(self, job: AcquiredJob, now: datetime) -> str:
        """Run one acquired job: DONE, BUSY (its instance is held elsewhere: still due, no retry
        spent), LOST (the lease went to another node) or FAILED (retried later with backoff)."""
        handler = self.handlers.get(job.kind)
        if not self._still_ours(job):
            log.warning("job %s (%s): its lease ran out before it ran and another node took it", job.id, job.kind)
            return LOST
        try:
            if handler is None:
                raise LookupError(f"no handler for jobs of kind {job.kind!r}")
            handler(self.platform, job, now)
            return DONE
        except LeaseLost as exc:
            log.info("%s", exc)
            return LOST
        except (Conflict, Busy) as exc:  # held or just changed by another node: not a failure
            log.debug("job %s postponed: %s", job.id, exc)
            self._give_back(job, now, error=None, spend_retry=False)
            return BUSY
        except Exception as exc:  # a job's failure must never stop the pass
            message = mask_text(f"{type(exc).__name__}: {exc}")
            log.warning("job %s (%s) failed on attempt %s: %s", job.id, job.kind, job.attempts, message)
            self._give_back(job, now + BACKOFF[min(job.attempts, len(BACKOFF)) - 1], error=message, spend_retry=True)
            return FAILED

    def release(self, jobs: list[AcquiredJob]) -> int:
        """Hand back jobs this node acquired but will not start (it is stopping): due as they were, no
        attempt spent, and free for another node at once instead of when the lease runs out."""
        if not jobs:
            return 0
        with self.platform.db.transaction(write=True) as session:
            released = sum(
                session.execute(
                    update(Job)
                    .where(*_held(job))
                    .values(lock_owner=None, lock_expires_at=None, attempts=Job.attempts - 1)
                    .execution_options(synchronize_session=False)
                ).rowcount
                for job in jobs
            )
        log.info("handed back %d job(s) acquired but not started: %s", released, ", ".join(str(j.id) for j in jobs))
        return released

    def _still_ours(self, job: AcquiredJob) -> bool:
        """Renew the lease of a job that waited long in its batch, or find it taken over.

        The fence stops a second commit, not a second webhook POST or seal: a batch that outlived its
        lease had its last jobs taken over by another node and then ran them again itself.
        """
        now = self.platform.clock.now()
        if job.lease_expires is None or now < job.lease_expires - LEASE / 2:
            return True
        with self.platform.db.transaction(write=True) as session:
            renewed = session.execute(
                update(Job)
                .where(*_held(job))
                .values(lock_expires_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
        return renewed.rowcount == 1

    def _give_back(self, job: AcquiredJob, due_at: datetime, *, error: str | None, spend_retry: bool) -> None:
        now = self.platform.clock.now()
        with self.platform.db.transaction(write=True) as session:
            values: dict[str, Any] = {"lock_owner": None, "lock_expires_at": None, "due_at": due_at}
            if spend_retry:
                values |= {"retries_left": Job.retries_left - 1, "last_error": error}
            else:
                values["attempts"] = Job.attempts - 1
            result = session.execute(
                update(Job).where(*_held(job)).values(**values).returning(Job.retries_left)
            ).first()
            if result is not None and spend_retry and result.retries_left <= 0:
                session.add(
                    Incident(
                        job_id=job.id,
                        kind=job.kind,
                        tenant_id=job.tenant_id,
                        instance_id=job.instance_id,
                        message=error or "",
                        created_at=now,
                    )
                )
                log.error("job %s (%s) failed its last retry: incident raised", job.id, job.kind)


def _held(job: AcquiredJob) -> tuple[Any, ...]:
    """The job row as this acquisition left it: any other node's acquisition since moved its version."""
    return Job.id == job.id, Job.version == job.version, Job.lock_owner == job.owner
