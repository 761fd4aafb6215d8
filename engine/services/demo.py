"""Demo tenants and users for ``make run``: a province, two rural banks, and one user per role.

Idempotent: rows that exist are left alone (passwords are not reset), so running it twice
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.services.auth import hash_password
from engine.store.models import Tenant, User, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

DEFAULT_PASSWORD = "creditflow-demo"  # noqa: S105 - demo users only; the README says to change it

TENANTS = [
    ("province", "省农村信用社联合社", "province", None),
    ("bank-lingyuan", "陵源农商银行", "bank", "province"),
    ("bank-qinghe", "清河农商银行", "bank", "province"),
]

# username, display name, tenant code, roles
USERS = [
    ("admin", "系统管理员", "province", ["admin"]),
    ("pm", "省联社产品经理", "province", ["product_manager"]),
    ("ly_officer", "陵源客户经理", "bank-lingyuan", ["loan_officer"]),
    ("ly_reviewer", "陵源审查岗", "bank-lingyuan", ["reviewer"]),
    ("ly_approver", "陵源审批岗", "bank-lingyuan", ["approver"]),
    ("qh_officer", "清河客户经理", "bank-qinghe", ["loan_officer"]),
    ("qh_reviewer", "清河审查岗", "bank-qinghe", ["reviewer"]),
    ("qh_approver", "清河审批岗", "bank-qinghe", ["approver"]),
]


@dataclass
class SeedResult:
    tenants: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)


def seed_demo(platform: CreditFlow, password: str = DEFAULT_PASSWORD) -> SeedResult:
    """Create what is missing and report only what this run created."""
    result = SeedResult()
    now = platform.clock.now()
    with platform.db.transaction(write=True) as session:
        tenants = {t.code: t for t in session.scalars(select(Tenant))}
        for code, name, kind, parent in TENANTS:
            if code in tenants:
                continue
            tenant = Tenant(
                code=code, name=name, kind=kind, parent_id=tenants[parent].id if parent else None, created_at=now
            )
            session.add(tenant)
            session.flush()
            tenants[code] = tenant
            result.tenants.append({"id": tenant.id, "code": code, "name": name, "kind": kind})
        existing = set(session.scalars(select(User.username)))
        password_hash = hash_password(password)
        for username, display, tenant_code, roles in USERS:
            if username in existing:
                continue
            user = User(
                username=username,
                display_name=display,
                tenant_id=tenants[tenant_code].id,
                password_hash=password_hash,
                is_active=True,
                created_at=now,
            )
            session.add(user)
            session.flush()
            session.add_all(UserRole(user_id=user.id, role=role) for role in roles)
            result.users.append(
                {"id": user.id, "username": username, "display_name": display, "tenant": tenant_code, "roles": roles}
            )
    return result
