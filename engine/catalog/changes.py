"""The catalog's change trail (变更留痕): who changed which product or process, when, and from what to what.

A regulator or a bank's internal audit asks who raised a product's maximum amount, when, and what it
was before. Every service that changes the catalog records the change here, in its own transaction:
a change that fails leaves no record, and none happens without one. Records are append-only
(database triggers) and hash-chained per owner (a bank, or the province for its templates and the
shared processes) with the same links as an instance's audit trail; ``catalog_change_head`` keeps
each chain's newest link, so an edited, deleted or cut-off record is detected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.masking import mask_sensitive
from engine.runtime.workflow_state import plain_json
from engine.store.hash_chain import GENESIS, Link, canonical_json, chain_problems, link_hash
from engine.store.models import CatalogChange, CatalogChangeHead

PRODUCT_CREATED = "product.created"  # a province template first loaded from its file
PRODUCT_DRAFT_CHANGED = "product.draft_changed"
PRODUCT_PUBLISHED = "product.published"
PRODUCT_VARIANT_CREATED = "product.variant_created"  # a bank cloned a template
PRODUCT_REBASED = "product.rebased"  # a bank's product moved onto a newer template version
PRODUCT_RETIRED = "product.retired"  # withdrawn from sale (下架)
PRODUCT_REINSTATED = "product.reinstated"
DEFINITION_DEPLOYED = "definition.deployed"
ACTIONS = (
    PRODUCT_CREATED,
    PRODUCT_DRAFT_CHANGED,
    PRODUCT_PUBLISHED,
    PRODUCT_VARIANT_CREATED,
    PRODUCT_REBASED,
    PRODUCT_RETIRED,
    PRODUCT_REINSTATED,
    DEFINITION_DEPLOYED,
)
NO_TENANT_CHAIN = 0  # the head's key for the tenant-less chain: the province's templates and the shared processes

_ABSENT = object()


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


def pointer(path: tuple[str, ...]) -> str:
    """A path of object keys (``engine.catalog.merge_patch.leaves``) as a JSON pointer."""
    return "".join(f"/{_escape(key)}" for key in path)


def record_change(
    session: Session,
    *,
    tenant_id: int | None,
    actor_id: int | None,
    at: datetime,
    action: str,
    subject: str,
    version: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> CatalogChange:
    """Append a change to its owner's chain in the caller's transaction (ID and card numbers masked).

    The chain's head row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's writers are serialized by
    ``BEGIN IMMEDIATE``), so concurrent changes of one owner queue; two first changes of an owner
    racing to create its head end in a 409 for one of them."""
    head = session.get(CatalogChangeHead, _chain(tenant_id), with_for_update=True)
    if head is None:
        head = CatalogChangeHead(chain=_chain(tenant_id), seq=0, hash=GENESIS)
        session.add(head)
    change = CatalogChange(
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
    session.flush()
    return change


@dataclass(frozen=True)
class ChainReport:
    tenant_id: int | None
    ok: bool
    changes: int
    problems: list[str]


def verify_changes(session: Session, tenant_id: int | None) -> ChainReport:
    """Recompute one owner's chain from its first change and compare it with the head."""
    rows = session.scalars(select(CatalogChange).where(owned_by(tenant_id)).order_by(CatalogChange.seq))
    links = (
        Link(row.seq, row.prev_hash, row.hash, link_hash(row.prev_hash, _body(row)), f"{row.action} {row.subject}")
        for row in rows
    )
    head = session.get(CatalogChangeHead, _chain(tenant_id))
    seq, digest = (head.seq, head.hash) if head is not None else (0, GENESIS)
    count, problems = chain_problems(links, seq, digest, "change", "its head records")
    return ChainReport(tenant_id, not problems, count, problems)


def chains(session: Session) -> list[int | None]:
    """Every owner with a chain (None: the tenant-less one), also one whose changes were all deleted."""
    owners = set(session.scalars(select(CatalogChange.tenant_id).distinct()))
    owners |= {None if key == NO_TENANT_CHAIN else key for key in session.scalars(select(CatalogChangeHead.chain))}
    return sorted(owners, key=lambda owner: -1 if owner is None else owner)


def owned_by(tenant_id: int | None) -> ColumnElement[bool]:
    return CatalogChange.tenant_id.is_(None) if tenant_id is None else CatalogChange.tenant_id == tenant_id


def _chain(tenant_id: int | None) -> int:
    return NO_TENANT_CHAIN if tenant_id is None else tenant_id


def _body(change: CatalogChange) -> dict[str, Any]:
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
