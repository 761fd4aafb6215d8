"""Change trails (变更留痕): who changed what, when, and from what to what, for a regulator or internal audit.

The catalog (``engine.catalog.changes``) and the organisation with its configuration
(``engine.org.changes``) each keep one. A service records a change here in its own transaction: a
change that fails leaves no record, and none happens without one. Records are append-only (database
triggers) and hash-chained per owner (a bank, or none for what the province shares with every bank)
with the same links as an instance's audit trail; each trail's head table keeps each chain's newest
link, so an edited, deleted or cut-off record is detected. One implementation serves every trail: a
``Trail`` names the tables it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.errors import Conflict
from engine.masking import mask_sensitive
from engine.runtime.workflow_state import plain_json
from engine.store.hash_chain import GENESIS, Link, canonical_json, chain_problems, link_hash
from engine.store.models import ChangeHead, ChangeRecord

NO_TENANT_CHAIN = 0  # the head's key for the tenant-less chain: what the province shares with every bank

_ABSENT = object()


@dataclass(frozen=True)
class Trail:
    """One change trail: the table of its records, the table of its chains' heads, and the permission
    that reads it."""

    model: type[ChangeRecord]
    head: type[ChangeHead]
    read_permission: str

    @property
    def name(self) -> str:
        return str(self.model.__tablename__)  # type: ignore[attr-defined]


def json_diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Where two JSON documents differ: ``{"path", "old", "new"}`` per place, with an RFC 6901 JSON
    pointer, and without ``old`` (``new``) where the value was (is) absent.

    Objects are compared key by key; lists and other values whole, as a merge patch replaces them;
    an object on one side only is reported whole. Values compare as JSON (``1`` is not ``true``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[dict[str, Any]] = []
        for key in sorted(old.keys() | new.keys()):
            found += json_diff(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}/{_escape(key)}")
        return found
    if old is not _ABSENT and new is not _ABSENT and canonical_json(old) == canonical_json(new):
        return []
    entry: dict[str, Any] = {"path": path}
    if old is not _ABSENT:
        entry["old"] = old
    if new is not _ABSENT:
        entry["new"] = new
    return [entry]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def record_change(
    session: Session,
    trail: Trail,
    *,
    tenant_id: int | None,
    actor_id: int | None,
    at: datetime,
    action: str,
    subject: str,
    version: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> ChangeRecord:
    """Append a change to its owner's chain in the caller's transaction (ID and card numbers masked).

    The chain's head row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's writers are serialized by
    ``BEGIN IMMEDIATE``), so concurrent changes of one owner queue; two first changes of an owner
    racing to create its head end in a 409 for one of them."""
    session.flush()  # the change itself first: its own errors are its own, not the trail's
    head = session.get(trail.head, _chain(tenant_id), with_for_update=True)
    if head is None:
        head = trail.head(chain=_chain(tenant_id), seq=0, hash=GENESIS)
        session.add(head)
    change = trail.model(
        tenant_id=tenant_id,
        seq=head.seq + 1,
        actor_id=actor_id,
        at=at,
        action=action,
        subject=subject,
        version=version,
        details=mask_sensitive(plain_json(dict(details or {}))),
        prev_hash=head.hash,
    )
    change.hash = link_hash(change.prev_hash, _body(change))
    head.seq, head.hash = change.seq, change.hash
    session.add(change)
    try:
        session.flush()
    except IntegrityError:  # another transaction created this owner's head first (FOR UPDATE found no row)
        raise Conflict("another change of the same owner was recorded at the same moment; try again") from None
    return change


@dataclass(frozen=True)
class ChainReport:
    tenant_id: int | None
    ok: bool
    changes: int
    problems: list[str]


def verify_changes(session: Session, trail: Trail, tenant_id: int | None) -> ChainReport:
    """Recompute one owner's chain from its first change and compare it with the head."""
    rows = session.scalars(select(trail.model).where(_owned_by(trail, tenant_id)).order_by(trail.model.seq))
    links = (
        Link(row.seq, row.prev_hash, row.hash, link_hash(row.prev_hash, _body(row)), f"{row.action} {row.subject}")
        for row in rows
    )
    head = session.get(trail.head, _chain(tenant_id))
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS)
    count, problems = chain_problems(links, seq, digest, "change", "its head records")
    return ChainReport(tenant_id, not problems, count, problems)


def chains(session: Session, trail: Trail) -> list[int | None]:
    """Every owner with a chain (None: the tenant-less one), also one whose changes were all deleted."""
    owners = set(session.scalars(select(trail.model.tenant_id).distinct()))
    owners |= {None if key == NO_TENANT_CHAIN else key for key in session.scalars(select(trail.head.chain))}
    return sorted(owners, key=lambda owner: -1 if owner is None else owner)


def _owned_by(trail: Trail, tenant_id: int | None) -> ColumnElement[bool]:
    column = trail.model.tenant_id
    return column.is_(None) if tenant_id is None else column == tenant_id


def _chain(tenant_id: int | None) -> int:
    return NO_TENANT_CHAIN if tenant_id is None else tenant_id


def _body(change: ChangeRecord) -> dict[str, Any]:
    """What a change's hash covers: everything but its id (a database counter) and its own links."""
    return {
        "tenant_id": change.tenant_id,
        "seq": change.seq,
        "actor_id": change.actor_id,
        "at": change.at.astimezone(UTC).isoformat(),
        "action": change.action,
        "subject": change.subject,
        "version": change.version,
        "details": change.details,
    }
