"""Who a task is offered to when it opens, and who segregation of duties bars from it.

A READY user task is offered to a role in an org unit: the lane's role (the product may map it),
in the application's own branch or grid or the nearest unit above it where someone holds the role,
or in the bank's head office for head-office roles (审查、审批、放款). Explicit candidate users and
groups (from the product config or the BPMN) are offered it too. Work of a duty someone already
did on the application goes straight back to them (the officer who took the application signs the
contract). Users who did a conflicting duty on the application are written into
``task_exclusion`` the moment the conflict arises, so inbox queries need one indexed anti-join.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from engine.inbox.absences import stand_in
from engine.org.roles import APPLICATION, HEAD_OFFICE, ROLES, conflicting, role_for_lane
from engine.org.units import unit_ids
from engine.store.fast_rows import FastRows
from engine.store.models import (
    InstanceDuty,
    OrgUnit,
    TaskCandidate,
    TaskExclusion,
    Tenant,
    User,
    UserGroup,
    UserRole,
)

DEFAULT_PRIORITY = 50


@dataclass(frozen=True)
class Offer:
    role: str | None
    org_unit_id: int | None
    duty: str | None
    priority: int = DEFAULT_PRIORITY
    candidate_users: tuple[int, ...] = ()
    candidate_groups: tuple[int, ...] = ()
    assignee: int | None = None  # a personal task (a committee member's ballot): only this user


@dataclass
class Assignment:
    """The assignment work of one instance step; rows are written after the task rows (``flush``)."""

    session: Session
    rows: FastRows
    instance: Any
    binding: Any = None
    is_new: bool = False  # nothing of this instance is in the database yet
    now: datetime | None = None  # when the step runs: whose absence is in force (None: nobody's)
    _stored: list[tuple[int, str]] | None = None  # (user, duty) done in earlier steps, oldest first
    _candidates: list[dict[str, Any]] = field(default_factory=list)
    _exclusions: set[tuple[str, int]] = field(default_factory=set)
    _duties: list[dict[str, Any]] = field(default_factory=list)

    def offer(self, lane: str | None, properties: dict[str, Any], data: dict[str, Any] | None = None) -> Offer:
        """``properties`` may name an ``assigneeVariable``: the task data field holding the username the
        task is personal to (each credit committee member votes on their own ballot)."""
        mapped = self.binding.roles.get(lane) if self.binding is not None and lane else None
        role = mapped or role_for_lane(lane) or properties.get("candidateRole")
        known = ROLES.get(role or "")
        # The duty is the lane's own, whoever the product maps it to: segregation of duties follows the
        # work (a reviewer lane mapped to loan officers still bars the officer who investigated).
        own = ROLES.get(role_for_lane(lane) or "")
        duty = own.duty if own is not None and own.duty else (known.duty if known else None)
        personal = personal_username(properties, data or {})
        if personal is not None:  # offered to nobody else: not the role's pool, not a supervisor's pick
            users = self._user_ids([personal])
            return Offer(None, None, duty, candidate_users=users, assignee=users[0] if users else None)
        config = (self.binding.assignment.get(lane) if self.binding is not None and lane else None) or {}
        scope = config.get("scope") or (known.scope if known else APPLICATION)
        users = [*config.get("candidate_users", ()), *_split(properties.get("candidateUsers"))]
        groups = [*config.get("candidate_groups", ()), *_split(properties.get("candidateGroups"))]
        return Offer(
            role=role,
            org_unit_id=self._offer_unit(role, scope),
            duty=duty,
            priority=int(config.get("priority", _priority(properties.get("priority")))),
            candidate_users=self._user_ids(users),
            candidate_groups=self._group_ids(groups),
        )

    def open(self, row: Any, offer: Offer) -> None:
        """Fill a new task row from its offer; queue its candidates and exclusions."""
        row.role, row.org_unit_id, row.duty, row.priority = offer.role, offer.org_unit_id, offer.duty, offer.priority
        self._candidates += [{"task_id": row.id, "user_id": u, "group_id": None} for u in offer.candidate_users]
        self._candidates += [{"task_id": row.id, "user_id": None, "group_id": g} for g in offer.candidate_groups]
        barred: set[int] = set()
        if offer.duty is not None:
            barred = set(self._performers(conflicting(offer.duty)))
            self._exclusions |= {(row.id, user_id) for user_id in barred}
            if row.assignee_id is None:
                row.assignee_id = offer.assignee or self._returning_performer(offer, barred)
        if row.assignee_id is not None and offer.assignee is None and self.now is not None:
            row.assignee_id = stand_in(self.session, row.assignee_id, self.now, barred)  # away: the substitute

    def performed(
        self, duty: str | None, task_id: str, user_id: int | None, open_tasks: list[Any], now: datetime
    ) -> None:
        """``user_id`` did ``duty`` on the application: remember it, and bar them from conflicting open tasks."""
        if user_id is None or duty is None:
            return
        self._duties.append(
            {"instance_id": self.instance.id, "user_id": user_id, "duty": duty, "task_id": task_id, "created_at": now}
        )
        barred = conflicting(duty)
        self._exclusions |= {(t.id, user_id) for t in open_tasks if t.duty in barred}

    def flush(self) -> None:
        if self._candidates:
            self.session.execute(insert(TaskCandidate), self._candidates)
        if self._duties:
            self.session.execute(insert(InstanceDuty), self._duties)
        if self._exclusions:
            task_ids = {t for t, _ in self._exclusions}
            existing = {
                (task_id, user_id)
                for task_id, user_id in self.session.execute(
                    select(TaskExclusion.task_id, TaskExclusion.user_id).where(TaskExclusion.task_id.in_(task_ids))
                )
            }
            missing = self._exclusions - existing
            if missing:
                self.session.execute(insert(TaskExclusion), [{"task_id": t, "user_id": u} for t, u in sorted(missing)])
        self._candidates, self._duties, self._exclusions = [], [], set()

    # -- lookups -------------------------------------------------------------------------------

    def _offer_unit(self, role: str | None, scope: str) -> int | None:
        """The unit whose holders of ``role`` are offered the task (None: no org scope at all)."""
        unit_id = getattr(self.instance, "org_unit_id", None)
        if unit_id is None or role is None:
            return None
        return offer_unit(self.session, role, unit_id, scope)

    def _performers(self, duties: frozenset[str]) -> list[int]:
        """Users who did any of ``duties`` on this application, newest first (this step's included)."""
        if not duties:
            return []
        if self._stored is None:  # read once per step, however many tasks the step opens
            self._stored = [] if self.is_new else self.rows.duties(self.session, self.instance.id)
        newest_first = [(d["user_id"], d["duty"]) for d in reversed(self._duties)] + self._stored[::-1]
        return [user_id for user_id, duty in newest_first if duty in duties]

    def _returning_performer(self, offer: Offer, barred: set[int]) -> int | None:
        """Who did this duty on the application before and still holds the role (sticky work)."""
        if offer.role is None or offer.duty is None:
            return None
        for user_id in dict.fromkeys(self._performers(frozenset({offer.duty}))):
            if user_id in barred:
                continue
            holds = self.session.scalar(
                select(UserRole.id)
                .join(User, User.id == UserRole.user_id)
                .where(UserRole.user_id == user_id, UserRole.role == offer.role, User.is_active.is_(True))
                .limit(1)
            )
            if holds is not None:
                return user_id
        return None

    def _user_ids(self, usernames: list[str]) -> tuple[int, ...]:
        if not usernames:
            return ()
        ids = self.session.scalars(
            select(User.id).where(
                User.username.in_(usernames), User.tenant_id == self.instance.tenant_id, User.is_active.is_(True)
            )
        )
        return tuple(sorted(set(ids)))

    def _group_ids(self, codes: list[str]) -> tuple[int, ...]:
        if not codes:
            return ()
        ids = self.session.scalars(
            select(UserGroup.id).where(UserGroup.code.in_(codes), UserGroup.tenant_id == self.instance.tenant_id)
        )
        return tuple(sorted(set(ids)))


PERSONAL = "assigneeVariable"


def personal_username(properties: dict[str, Any], data: dict[str, Any]) -> str | None:
    """The user a personal task belongs to (None: an ordinary task offered to a role)."""
    variable = properties.get(PERSONAL)
    return str(data[variable]) if variable and data.get(variable) is not None else None


def offer_unit(session: Session, role: str, unit_id: int, scope: str = APPLICATION) -> int:
    """Where ``role``'s work for ``unit_id`` goes: the head office, or (scope "application") the unit
    itself or the nearest unit above it where an active user holds the role (the head office if none)."""
    chain = unit_ids(session.scalar(select(OrgUnit.path).where(OrgUnit.id == unit_id)) or "")
    if not chain:
        return unit_id
    if scope == HEAD_OFFICE:
        return chain[0]
    staffed = set(
        session.scalars(
            select(UserRole.org_unit_id)
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.role == role, UserRole.org_unit_id.in_(chain), User.is_active.is_(True))
        )
    )
    return next((u for u in reversed(chain) if u in staffed), chain[0])


_user, _role = User.__table__.c, UserRole.__table__.c
_HOLDERS = (
    select(_user.id)
    .select_from(User.__table__.join(UserRole.__table__, _role.user_id == _user.id))
    .where(_role.role == bindparam("role"), _user.tenant_id == bindparam("tenant_id"), _user.is_active.is_(True))
)
_HOLDERS_AT = _HOLDERS.where((_role.org_unit_id == bindparam("unit_id")) | _role.org_unit_id.is_(None))


def holders(session: Session, tenant_id: int | None, role: str, unit_id: int | None) -> list[int]:
    """Active users holding ``role`` in ``unit_id`` (or anywhere in the tenant when no unit)."""
    if tenant_id is None:
        return []
    if unit_id is None:
        return sorted(set(session.scalars(_HOLDERS, {"role": role, "tenant_id": tenant_id})))
    return sorted(set(session.scalars(_HOLDERS_AT, {"role": role, "tenant_id": tenant_id, "unit_id": unit_id})))


def administrators(session: Session, tenant_id: int | None) -> list[int]:
    """Who is alerted when something needs an administrator: the bank's admins and the province's."""
    parent = session.scalar(select(Tenant.parent_id).where(Tenant.id == tenant_id)) if tenant_id else None
    found = holders(session, tenant_id, "admin", None) if tenant_id is not None else []
    return sorted({*found, *(holders(session, parent, "admin", None) if parent is not None else [])})


def _split(value: Any) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()] if value else []


def _priority(value: Any) -> int:
    try:
        return min(100, max(0, int(value)))
    except (TypeError, ValueError):
        return DEFAULT_PRIORITY
