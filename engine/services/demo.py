"""Demo data for ``make run``: the province, two rural banks with branches and grids, and users of
every role.

Idempotent: rows that exist are left alone (passwords are not reset), so running it twice changes
nothing. The README lists what this creates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.org.units import unit_path
from engine.services.auth import hash_password
from engine.store.models import OrgUnit, Tenant, User, UserGroup, UserGroupMember, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

DEFAULT_PASSWORD = "creditflow-demo"  # noqa: S105 - demo users only; the README says to change it

TENANTS = [
    ("province", "省农村信用社联合社", "province", None),
    ("bank-lingyuan", "陵源农商银行", "bank", "province"),
    ("bank-qinghe", "清河农商银行", "bank", "province"),
]

# tenant, unit code, name, kind, parent unit code
UNITS = [
    ("province", "province-hq", "省联社本部", "head_office", None),
    ("bank-lingyuan", "ly-hq", "陵源农商银行总行", "head_office", None),
    ("bank-lingyuan", "ly-chengguan", "城关支行", "branch", "ly-hq"),
    ("bank-lingyuan", "ly-dongjie", "东街分理处", "sub_branch", "ly-chengguan"),
    ("bank-lingyuan", "ly-grid-01", "城关一网格（东关村）", "grid", "ly-chengguan"),
    ("bank-lingyuan", "ly-xiguan", "西关支行", "branch", "ly-hq"),
    ("bank-lingyuan", "ly-grid-02", "西关一网格（柳林村）", "grid", "ly-xiguan"),
    ("bank-qinghe", "qh-hq", "清河农商银行总行", "head_office", None),
    ("bank-qinghe", "qh-hebei", "河北支行", "branch", "qh-hq"),
    ("bank-qinghe", "qh-grid-01", "河北一网格（王庄村）", "grid", "qh-hebei"),
]

# username, display name, tenant, [(role, unit code or None for the whole tenant)]
USERS: list[tuple[str, str, str, list[tuple[str, str | None]]]] = [
    ("admin", "系统管理员", "province", [("admin", None)]),
    ("pm", "省联社产品经理", "province", [("product_manager", "province-hq")]),
    # a second product manager everywhere: one submits a product for publication, the other approves it (双人复核)
    ("pm2", "省联社产品经理（复核）", "province", [("product_manager", "province-hq")]),
    ("prov_risk", "省联社风险经理", "province", [("risk_manager", "province-hq")]),
]
_BANK_STAFF = [
    # suffix, display, [(role, unit suffix)]
    ("officer", "客户经理", [("loan_officer", "chengguan")]),
    ("officer2", "客户经理（协办）", [("loan_officer", "chengguan"), ("co_investigator", "chengguan")]),
    ("grid_officer", "网格客户经理", [("loan_officer", "grid")]),
    ("branch_head", "支行行长", [("branch_head", "chengguan")]),
    ("reviewer", "审查岗", [("reviewer", "hq")]),
    ("reviewer2", "审查岗（二）", [("reviewer", "hq")]),
    ("approver", "审批岗", [("approver", "hq")]),
    ("senior_approver", "分管行长", [("senior_approver", "hq")]),
    ("committee1", "贷审会委员一", [("credit_committee", "hq")]),
    ("committee2", "贷审会委员二", [("credit_committee", "hq")]),
    ("committee3", "贷审会委员三", [("credit_committee", "hq")]),
    ("disburser", "放款岗", [("disburser", "hq")]),
    ("risk", "风险经理", [("risk_manager", "hq")]),
    ("collateral", "押品管理岗", [("collateral_officer", "hq")]),
    ("village", "村委会协办员", [("village_committee", "grid")]),
    ("pm", "产品经理", [("product_manager", "hq")]),
    ("pm2", "产品经理（复核）", [("product_manager", "hq")]),
    ("admin", "系统管理员", [("admin", None)]),
]
_BANKS = [
    ("ly", "bank-lingyuan", "陵源", "ly-chengguan", "ly-grid-01"),
    ("qh", "bank-qinghe", "清河", "qh-hebei", "qh-grid-01"),
]
for _prefix, _tenant, _city, _branch, _grid in _BANKS:
    for _suffix, _display, _grants in _BANK_STAFF:
        _units = {"hq": f"{_prefix}-hq", "chengguan": _branch, "grid": _grid, None: None}
        USERS.append(
            (f"{_prefix}_{_suffix}", f"{_city}{_display}", _tenant, [(role, _units[unit]) for role, unit in _grants])
        )

# the credit committee as a candidate group: tenant, code, name, member suffix
GROUPS = [
    (tenant, f"{prefix}-credit-committee", "贷审会", [f"{prefix}_committee{n}" for n in (1, 2, 3)])
    for prefix, tenant, *_ in _BANKS
]


@dataclass
class SeedResult:
    tenants: list[dict[str, Any]] = field(default_factory=list)
    org_units: list[dict[str, Any]] = field(default_factory=list)
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
        units = _seed_units(session, tenants, result, now)
        existing = set(session.scalars(select(User.username)))
        password_hash = hash_password(password)
        for username, display, tenant_code, grants in USERS:
            if username in existing:
                continue
            home = next((units[u] for _, u in grants if u is not None), None)
            user = User(
                username=username,
                display_name=display,
                tenant_id=tenants[tenant_code].id,
                org_unit_id=home.id if home else None,
                password_hash=password_hash,
                is_active=True,
                created_at=now,
            )
            session.add(user)
            session.flush()
            session.add_all(
                UserRole(user_id=user.id, role=role, org_unit_id=units[u].id if u else None) for role, u in grants
            )
            result.users.append(
                {
                    "id": user.id,
                    "username": username,
                    "display_name": display,
                    "tenant": tenant_code,
                    "roles": [{"role": role, "org_unit": u} for role, u in grants],
                }
            )
        _seed_groups(session, tenants, now)
    return result


def _seed_units(session: Session, tenants: dict[str, Tenant], result: SeedResult, now: Any) -> dict[str, OrgUnit]:
    units = {u.code: u for u in session.scalars(select(OrgUnit))}
    for tenant_code, code, name, kind, parent_code in UNITS:
        if code in units:
            continue
        parent = units[parent_code] if parent_code else None
        unit = OrgUnit(
            tenant_id=tenants[tenant_code].id,
            parent_id=parent.id if parent else None,
            code=code,
            name=name,
            kind=kind,
            path="",
            created_at=now,
        )
        session.add(unit)
        session.flush()
        unit.path = unit_path(parent.path if parent else None, unit.id)
        units[code] = unit
        result.org_units.append({"id": unit.id, "code": code, "name": name, "kind": kind, "tenant": tenant_code})
    return units


def _seed_groups(session: Session, tenants: dict[str, Tenant], now: Any) -> None:
    users = {u.username: u.id for u in session.scalars(select(User))}
    for tenant_code, code, name, members in GROUPS:
        tenant_id = tenants[tenant_code].id
        group = session.scalars(
            select(UserGroup).where(UserGroup.tenant_id == tenant_id, UserGroup.code == code)
        ).first()
        if group is not None:
            continue
        group = UserGroup(tenant_id=tenant_id, code=code, name=name, created_at=now)
        session.add(group)
        session.flush()
        session.add_all(UserGroupMember(group_id=group.id, user_id=users[m]) for m in members)
