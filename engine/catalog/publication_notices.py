"""Who hears of a publication request (双人复核) and what they are told.

The owner's other people who can approve hear of a new request, and again when it goes away without
a checker's decision (its submitter withdrew it, or the draft it pinned changed): otherwise a
checker opens a request that no longer exists. The submitter hears of every decision but their own.
Both the request's service and the product service (which supersedes requests when a draft
changes) tell through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.inbox.assignment import holders
from engine.notify.outbox import publish
from engine.org.roles import PRODUCTS_PUBLISH, ROLES
from engine.store.models import Product, PublicationRequest, User

APPROVERS = tuple(sorted(code for code, role in ROLES.items() if PRODUCTS_PUBLISH in role.permissions))


def checkers(session: Session, tenant_id: int | None) -> list[int]:
    """The owner's active people who may approve: every holder of a role that publishes products."""
    found = {user for role in APPROVERS for user in holders(session, tenant_id, role, None)}
    if not found:
        return []
    people = select(User.id).where(User.id.in_(found), User.is_service.is_(False))
    return sorted(session.scalars(people))


def tell(
    session: Session,
    now: datetime,
    topic: str,
    recipients: Iterable[int | None],
    product: Product,
    request: PublicationRequest,
    **fields: Any,
) -> None:
    """Publish ``topic`` about ``request`` to ``recipients`` (each once; None and nobody are dropped)."""
    wanted = sorted({r for r in recipients if r is not None})
    if not wanted:
        return
    names = people(session, [request.submitted_by_id, request.decided_by_id])
    submitter, checker = names.get(request.submitted_by_id), names.get(request.decided_by_id)
    payload = {
        "request_id": request.id,
        "product": product.code,
        "product_name": product.name,
        "submitted_by": submitter[0] if submitter else None,
        "submitted_by_name": submitter[1] if submitter else None,
        **({"decided_by": checker[0], "decided_by_name": checker[1]} if checker else {}),
        **fields,
    }
    publish(session, now, tenant_id=request.tenant_id, topic=topic, recipients=wanted, payload=payload)


def people(session: Session, user_ids: list[int | None]) -> dict[int, tuple[str, str]]:
    """Username and display name by user id."""
    wanted = {u for u in user_ids if u is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.username, User.display_name).where(User.id.in_(wanted)))
    return {user_id: (username, name) for user_id, username, name in rows}
