"""Who is acting: passed into every service call so that scope and audit never rely on globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    username: str
    tenant_id: int | None
    roles: frozenset[str] = field(default_factory=frozenset)
    # Tenants whose rows this principal may see besides shared (tenant-less) ones: its own, and for
    # the province also its banks'. Empty means just ``tenant_id``; the system principal sees all.
    scope_tenants: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> Principal:
        """The engine itself (CLI, scheduler): not a person, so no user id in the audit trail."""
        return cls(user_id=None, username="system", tenant_id=None, roles=frozenset({"system"}))

    @property
    def _visible(self) -> frozenset[int]:
        return self.scope_tenants or frozenset({self.tenant_id} if self.tenant_id is not None else ())

    def sees(self, tenant_id: int | None) -> bool:
        """Tenant scope: another tenant's row is answered exactly like a missing one."""
        return self.tenant_id is None or tenant_id is None or tenant_id in self._visible

    def scope(self, stmt: Any, tenant_column: Any) -> Any:
        """The same rule as ``sees``, as a WHERE clause for list queries."""
        if self.tenant_id is None:
            return stmt
        return stmt.where(tenant_column.in_(sorted(self._visible)) | tenant_column.is_(None))
