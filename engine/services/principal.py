"""Who is acting: passed into every service call so that scope and audit never rely on globals."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    username: str
    tenant_id: int | None
    roles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls) -> Principal:
        """The engine itself (CLI, scheduler): not a person, so no user id in the audit trail."""
        return cls(user_id=None, username="system", tenant_id=None, roles=frozenset({"system"}))
