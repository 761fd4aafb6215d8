"""Who is acting: passed into every service call so that scope and audit never rely on globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import Forbidden
from engine.org.roles import ALL_PERMISSIONS


@dataclass(frozen=True)
class Grant:
    """A role held in an org unit (``org_unit_id`` None: anywhere in the tenant)."""

    role: str
    org_unit_id: int | None
    org_path: str | None = None  # the unit's path, for supervisors' subtree (team) queries


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    username: str
    tenant_id: int | None
    roles: frozenset[str] = field(default_factory=frozenset)
    # Tenants whose rows this principal may see besides shared (tenant-less) ones: its own, and for
    # the province also its banks'. Empty means just ``tenant_id``; the system principal sees all.
    scope_tenants: frozenset[int] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    grants: tuple[Grant, ...] = ()
    group_ids: frozenset[int] = field(default_factory=frozenset)
    org_unit_id: int | None = None  # home unit: where the user's applications belong by default
    # the units below a supervising grant (支行行长: the branch's sub-branches and grids), resolved once
    # per request so inbox queries filter on ids rather than on path patterns
    supervised_unit_ids: frozenset[int] = field(default_factory=frozenset)
    is_service: bool = False  # an integration account (API keys): it submits and reads, a person decides
    # signed in with a temporary password (an administrator's reset): no permissions until it is changed
    password_change_required: bool = False

    @classmethod
    def system(cls) -> Principal:
        """The engine itself (CLI, scheduler): not a person, so no user id in the audit trail."""
        return cls(
            user_id=None, username="system", tenant_id=None, roles=frozenset({"system"}), permissions=ALL_PERMISSIONS
        )

    @property
    def is_system(self) -> bool:
        return self.tenant_id is None

    @property
    def _visible(self) -> frozenset[int]:
        return self.scope_tenants or frozenset({self.tenant_id} if self.tenant_id is not None else ())

    def sees(self, tenant_id: int | None) -> bool:
        """Tenant scope: another tenant's row is answered exactly like a missing one."""
        return self.tenant_id is None or tenant_id is None or tenant_id in self._visible

    def acts_in(self, tenant_id: int | None) -> bool:
        """Acting (not just reading) is only ever within the own tenant: the province reads its banks'
        work but does not do it."""
        return self.tenant_id is None or tenant_id == self.tenant_id

    def scope(self, stmt: Any, tenant_column: Any) -> Any:
        """The same rule as ``sees``, as a WHERE clause for list queries."""
        if self.tenant_id is None:
            return stmt
        return stmt.where(tenant_column.in_(sorted(self._visible)) | tenant_column.is_(None))

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"this needs the permission {permission!r}, which none of your roles has")
