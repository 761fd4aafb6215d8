"""Reading and checking the catalog's change trail (变更留痕, written by ``engine.catalog.changes``).

Who reads it: product managers, risk managers and administrators (``catalog.changes.read``). A bank
reads its own changes and the province's (its products derive from the templates, and run the
shared processes); the province reads every bank's; no bank reads another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from engine.catalog.changes import ChainReport, chains, verify_changes
from engine.errors import InvalidInput, NotFound
from engine.org.roles import CATALOG_CHANGES_READ
from engine.services.principal import Principal
from engine.store import keyset
from engine.store.models import CatalogChange, Tenant, User

if TYPE_CHECKING:
    from engine.container import CreditFlow

NEWEST_FIRST = [(CatalogChange.at, True, False), (CatalogChange.id, True, False)]
CURSOR = "catalog_changes"


@dataclass(frozen=True)
class ChangeView:
    change: CatalogChange
    actor: str | None  # the actor's username; None for the system and the command line
    tenant: str | None  # the owner's tenant code; None for the province's templates and shared processes


class CatalogChangeService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(
        self,
        principal: Principal,
        *,
        subject: str | None = None,
        action: str | None = None,
        actor: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ChangeView], str | None]:
        """Newest first, from ``since`` (included) to ``until`` (excluded); with ``cursor`` (a page's
        ``next_cursor``) the page after that one. Another bank's subject or user matches nothing, exactly
        like one that does not exist."""
        principal.require(CATALOG_CHANGES_READ)
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until must be later than since", [{"field": "until", "message": "must be after since"}])
        with self.platform.db.transaction() as session:
            stmt = (
                select(CatalogChange, User.username, Tenant.code)
                .outerjoin(User, User.id == CatalogChange.actor_id)
                .outerjoin(Tenant, Tenant.id == CatalogChange.tenant_id)
            )
            stmt = principal.scope(stmt, CatalogChange.tenant_id)
            for column, value in (
                (CatalogChange.subject, subject),
                (CatalogChange.action, action),
                (CatalogChange.actor_id, actor),
            ):
                if value is not None:
                    stmt = stmt.where(column == value)
            if since is not None:
                stmt = stmt.where(CatalogChange.at >= since)
            if until is not None:
                stmt = stmt.where(CatalogChange.at < until)
            if cursor is not None:
                stmt = stmt.where(keyset.after(NEWEST_FIRST, keyset.parse_cursor(CURSOR, NEWEST_FIRST, cursor)))
            rows = session.execute(stmt.order_by(*keyset.order_by(NEWEST_FIRST)).limit(limit + 1)).all()
            more, rows = len(rows) > limit, rows[:limit]
            views = [ChangeView(change, username, code) for change, username, code in rows]
            return views, keyset.cursor_of(CURSOR, NEWEST_FIRST, views[-1].change) if more else None

    def verify(self, principal: Principal, tenant: str | None = None) -> list[ChainReport]:
        """Recompute every chain the principal reads, or one tenant's (by code; the province's code
        names the chain of its templates and the shared processes)."""
        principal.require(CATALOG_CHANGES_READ)
        with self.platform.db.transaction() as session:
            if tenant is None:
                owners = [owner for owner in chains(session) if principal.sees(owner)]
            else:
                found = session.scalars(select(Tenant).where(Tenant.code == tenant)).first()
                if found is None or not principal.sees(found.id):
                    raise NotFound(f"no tenant {tenant!r}", [{"field": "tenant", "message": "unknown tenant"}])
                owners = [None if found.kind == "province" else found.id]
            return [verify_changes(session, owner) for owner in owners]
