"""Reading and checking a change trail (变更留痕, written through ``engine.store.change_trail``).

Who reads it: holders of the trail's permission. A bank reads its own changes and the tenant-less
ones (what the province shares with every bank: templates, shared processes, the province-wide
calendar); the province reads every bank's and its own; no bank reads another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from engine.errors import InvalidInput, NotFound
from engine.services.principal import Principal
from engine.store import keyset
from engine.store.change_trail import ChainReport, Trail, chains, verify_changes
from engine.store.models import ChangeRecord, Tenant, User

if TYPE_CHECKING:
    from engine.container import CreditFlow


@dataclass(frozen=True)
class ChangeView:
    change: ChangeRecord
    actor: str | None  # the actor's username; None for the system and the command line
    tenant: str | None  # the owner's tenant code; None for what the province shares with every bank


class ChangeTrailService:
    def __init__(self, platform: CreditFlow, trail: Trail) -> None:
        self.platform = platform
        self.trail = trail
        model = trail.model
        self._newest_first = [(model.at, True, False), (model.id, True, False)]

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
        principal.require(self.trail.read_permission)
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until must be later than since", [{"field": "until", "message": "must be after since"}])
        model, order = self.trail.model, self._newest_first
        with self.platform.db.transaction() as session:
            stmt = (
                select(model, User.username, Tenant.code)
                .outerjoin(User, User.id == model.actor_id)
                .outerjoin(Tenant, Tenant.id == model.tenant_id)
            )
            stmt = principal.scope(stmt, model.tenant_id)
            for column, value in ((model.subject, subject), (model.action, action), (model.actor_id, actor)):
                if value is not None:
                    stmt = stmt.where(column == value)
            if since is not None:
                stmt = stmt.where(model.at >= since)
            if until is not None:
                stmt = stmt.where(model.at < until)
            if cursor is not None:
                stmt = stmt.where(keyset.after(order, keyset.parse_cursor(self.trail.name, order, cursor)))
            rows = session.execute(stmt.order_by(*keyset.order_by(order)).limit(limit + 1)).all()
            more, rows = len(rows) > limit, rows[:limit]
            views = [ChangeView(change, username, code) for change, username, code in rows]
            return views, keyset.cursor_of(self.trail.name, order, views[-1].change) if more else None

    def verify(self, principal: Principal, tenant: str | None = None) -> list[ChainReport]:
        """Recompute every chain the principal reads, or one tenant's (by code; the province's code
        names the tenant-less chain, and the province's own if it has one)."""
        principal.require(self.trail.read_permission)
        with self.platform.db.transaction() as session:
            owners = [owner for owner in chains(session, self.trail) if principal.sees(owner)]
            if tenant is not None:
                found = session.scalars(select(Tenant).where(Tenant.code == tenant)).first()
                if found is None or not principal.sees(found.id):
                    raise NotFound(f"no tenant {tenant!r}", [{"field": "tenant", "message": "unknown tenant"}])
                if found.kind == "province":
                    owners = [None, *(owner for owner in owners if owner == found.id)]
                else:
                    owners = [found.id]
            return [verify_changes(session, self.trail, owner) for owner in owners]
