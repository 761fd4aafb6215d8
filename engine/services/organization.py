"""Organisation administration: units, users, role grants and candidate groups of each tenant.

Reading needs ``org.read`` and follows the principal's tenant scope; changing needs ``org.admin``
and follows the same scope, because the province operates the platform for its banks. Something
outside the scope is answered exactly like something missing (404 for what the URL names, 422 for
what the body names), so a bank cannot probe another bank's users or units.

Each operation is one transaction: validation problems are collected and raised before anything is
written, every change is recorded in the organisation's change trail (``engine.org.changes``) in that
transaction, and logged at INFO after it is committed.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict, InvalidInput, NotFound
from engine.org.changes import (
    GROUP_CREATED,
    GROUP_MEMBER_ADDED,
    GROUP_MEMBER_REMOVED,
    ROLE_GRANTED,
    ROLE_REVOKED,
    UNIT_CREATED,
    UNIT_UPDATED,
    USER_ACTIVATED,
    USER_CREATED,
    USER_DEACTIVATED,
    USER_PASSWORD_RESET,
    USER_SESSIONS_REVOKED,
    USER_UNLOCKED,
    USER_UPDATED,
    record_org_change,
    record_org_update,
)
from engine.org.roles import ORG_ADMIN, ORG_READ, ROLES
from engine.org.units import unit_ids, unit_path
from engine.runtime.workflow_state import plain_json
from engine.services.auth import generate_password, hash_password, password_problem
from engine.services.principal import Principal
from engine.store.change_trail import json_diff
from engine.store.models import ApiKey, OrgUnit, Tenant, User, UserGroup, UserGroupMember, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

# the kinds of unit each kind may sit under; a head office is the root of its tenant's tree
PARENT_KINDS: dict[str, frozenset[str]] = {
    "head_office": frozenset(),
    "branch": frozenset({"head_office"}),
    "sub_branch": frozenset({"branch"}),
    "grid": frozenset({"branch", "sub_branch"}),
}
UNIT_KINDS = tuple(PARENT_KINDS)
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")

UserRef = int | str  # an id (the API's URLs) or a username (the command line)
GroupRef = int | str  # an id, or a code within a tenant

Problems = list[dict[str, str]]
Details = dict[str, Any]  # what a change records besides the old and new values the trail compares

# what the trail compares of a user before and after a change (roles and groups are recorded as granted)
_USER_STATE = (
    "display_name",
    "org_unit_code",
    "is_active",
    "failed_logins",
    "locked_until",
    "tokens_valid_after",
    "temporary_password_expires_at",
)


@dataclass(frozen=True)
class UnitView:
    id: int
    tenant: str
    code: str
    name: str
    kind: str
    parent_code: str | None
    path: str
    depth: int  # 0 for the head office


@dataclass(frozen=True)
class HeldRole:
    role: str
    org_unit_code: str | None  # None: anywhere in the tenant


@dataclass(frozen=True)
class UserView:
    """A user as administrators see it; deliberately without the password hash."""

    id: int
    tenant: str
    username: str
    display_name: str
    org_unit_code: str | None
    is_active: bool
    is_service: bool
    failed_logins: int | None  # None for a reader who is no administrator: a colleague's login trouble
    locked_until: datetime | None
    tokens_valid_after: datetime | None
    temporary_password_expires_at: datetime | None  # set after a reset, until the user changes it
    created_at: datetime
    roles: list[HeldRole]
    groups: list[str]


@dataclass(frozen=True)
class GroupView:
    id: int
    tenant: str
    code: str
    name: str
    members: list[str]  # usernames


class OrganizationService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    # -- org units -----------------------------------------------------------------------------

    def list_units(self, principal: Principal, tenant_code: str | None = None) -> list[UnitView]:
        """Every visible unit in tree order: each unit right before its subtree, tenant by tenant."""
        principal.require(ORG_READ)
        with self.platform.db.transaction() as session:
            stmt = select(OrgUnit, Tenant.code).join(Tenant, Tenant.id == OrgUnit.tenant_id)
            rows = session.execute(_in_tenant(session, principal, stmt, OrgUnit.tenant_id, tenant_code)).all()
        codes = {unit.id: unit.code for unit, _ in rows}
        rows.sort(key=lambda row: (row[0].tenant_id, unit_ids(row[0].path)))
        return [_unit_view(unit, tenant, codes.get(unit.parent_id)) for unit, tenant in rows]

    def create_unit(
        self,
        principal: Principal,
        tenant_code: str | None,
        code: str,
        name: str,
        kind: str,
        parent_code: str | None = None,
    ) -> UnitView:
        """``tenant_code`` None: the principal's own tenant."""
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            tenant = _tenant(session, principal, tenant_code)
            _lock_tree(session, tenant.id)
            parent = _unit_by_code(session, tenant.id, parent_code)
            problems = _code_problems("code", code) + _text_problems("name", name)
            problems += _placement_problems(kind, parent_code, parent)
            if problems:
                raise InvalidInput("the org unit cannot be created", problems)
            if kind == "head_office":
                head = session.scalars(
                    select(OrgUnit.code).where(OrgUnit.tenant_id == tenant.id, OrgUnit.kind == "head_office")
                ).first()
                if head is not None:
                    raise Conflict(
                        f"{tenant.code} already has its head office {head}",
                        [{"field": "kind", "message": "a tenant has one head office"}],
                    )
            if _unit_by_code(session, tenant.id, code) is not None:
                raise Conflict(f"{tenant.code} already has a unit {code}", [{"field": "code", "message": "taken"}])
            unit = OrgUnit(
                tenant_id=tenant.id,
                parent_id=parent.id if parent else None,
                code=code,
                name=name.strip(),
                kind=kind,
                path="",
                created_at=self.platform.clock.now(),
            )
            session.add(unit)
            session.flush()  # the path ends with the unit's own id
            unit.path = unit_path(parent.path if parent else None, unit.id)
            view = _unit_view(unit, tenant.code, parent.code if parent else None)
            record_org_change(
                session,
                principal,
                unit.created_at,
                tenant_id=tenant.id,
                action=UNIT_CREATED,
                subject=code,
                details={"name": unit.name, "kind": kind, "parent_code": parent_code},
            )
        log.info("org unit %s/%s (%s) created under %s by %s", tenant.code, code, kind, parent_code, principal.username)
        return view

    def rename_unit(self, principal: Principal, unit_id: int, name: str) -> UnitView:
        return self.update_unit(principal, unit_id, name=name)

    def move_unit(self, principal: Principal, unit_id: int, parent_code: str) -> UnitView:
        return self.update_unit(principal, unit_id, parent_code=parent_code)

    def update_unit(
        self, principal: Principal, unit_id: int, *, name: str | None = None, parent_code: str | None = None
    ) -> UnitView:
        """Rename and/or re-parent in one transaction; a move rewrites the path of the whole subtree."""
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            unit = session.get(OrgUnit, unit_id)
            if unit is None or not principal.sees(unit.tenant_id):
                raise NotFound(f"org unit {unit_id} does not exist")
            if parent_code is not None:
                _lock_tree(session, unit.tenant_id)
                session.refresh(unit)  # the path as of the lock
            problems = _text_problems("name", name) if name is not None else []
            parent = _unit_by_code(session, unit.tenant_id, parent_code)
            if parent is not None and parent.path.startswith(unit.path):
                problems.append({"field": "parent_code", "message": "a unit cannot move into its own subtree"})
            elif parent_code is not None:
                problems += _placement_problems(unit.kind, parent_code, parent)
            if problems:
                raise InvalidInput(f"org unit {unit.code} cannot be changed", problems)
            before = _unit_state(session, unit)
            if name is not None:
                unit.name = name.strip()
            old_path = unit.path
            if parent is not None and parent.id != unit.parent_id:
                _move(session, unit, parent)
            after = _unit_state(session, unit)
            view = _unit_view(unit, _tenant_code(session, unit.tenant_id), after["parent_code"])
            record_org_update(
                session,
                principal,
                self.platform.clock.now(),
                tenant_id=unit.tenant_id,
                action=UNIT_UPDATED,
                subject=unit.code,
                before=before,
                after=after,
            )
        if name is not None:
            log.info("org unit %s renamed to %r by %s", unit.code, unit.name, principal.username)
        if old_path != unit.path:
            log.info("org unit %s moved under %s by %s", unit.code, parent_code, principal.username)
        return view

    # -- users ---------------------------------------------------------------------------------

    def list_users(
        self,
        principal: Principal,
        tenant_code: str | None = None,
        org_unit_code: str | None = None,
        role: str | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[UserView], int]:
        """One page of users (by tenant, then username) and the total; ``role``: holds it anywhere."""
        principal.require(ORG_READ)
        with self.platform.db.transaction() as session:
            stmt = _in_tenant(session, principal, select(User), User.tenant_id, tenant_code)
            if org_unit_code is not None:
                stmt = stmt.join(OrgUnit, OrgUnit.id == User.org_unit_id).where(OrgUnit.code == org_unit_code)
            if role is not None:
                stmt = stmt.where(User.id.in_(select(UserRole.user_id).where(UserRole.role == role)))
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            page = list(session.scalars(stmt.order_by(User.tenant_id, User.username).limit(limit).offset(offset)))
            return _shown_to(principal, _user_views(session, page)), total

    def get_user(self, principal: Principal, user: UserRef) -> UserView:
        principal.require(ORG_READ)
        with self.platform.db.transaction() as session:
            return _shown_to(principal, _user_views(session, [_user(session, principal, user)]))[0]

    def create_user(
        self,
        principal: Principal,
        tenant_code: str | None,
        username: str,
        display_name: str,
        password: str | None = None,
        org_unit_code: str | None = None,
        is_service: bool = False,
    ) -> tuple[UserView, str | None]:
        """Return the user and, when a person's password was generated, that password (shown only once).

        A service account signs in with API keys only, so it gets an unusable random password.
        """
        principal.require(ORG_ADMIN)
        problems = _text_problems("display_name", display_name)
        if not _USERNAME.fullmatch(username):
            problems.append({"field": "username", "message": "letters, digits and _ . @ -, at most 100"})
        if password is not None and is_service:
            problems.append({"field": "password", "message": "a service account signs in with API keys only"})
        elif password is not None and (problem := password_problem(password)) is not None:
            problems.append({"field": "password", "message": problem})
        secret = password or generate_password()
        password_hash = hash_password(secret)  # slow on purpose: outside the write transaction
        with self.platform.db.transaction(write=True) as session:
            tenant = _tenant(session, principal, tenant_code)
            unit = _unit_by_code(session, tenant.id, org_unit_code)
            if org_unit_code is not None and unit is None:
                problems.append(_no_unit(tenant, org_unit_code))
            if problems:
                raise InvalidInput("the user cannot be created", problems)
            if session.scalars(select(User.id).where(User.username == username)).first() is not None:
                raise Conflict(f"username {username} is taken", [{"field": "username", "message": "taken"}])
            row = User(
                tenant_id=tenant.id,
                org_unit_id=unit.id if unit else None,
                username=username,
                display_name=display_name.strip(),
                password_hash=password_hash,
                is_active=True,
                is_service=is_service,
                failed_logins=0,
                created_at=self.platform.clock.now(),
            )
            session.add(row)
            session.flush()
            view = _user_views(session, [row])[0]
            record_org_change(
                session,
                principal,
                row.created_at,
                tenant_id=tenant.id,
                action=USER_CREATED,
                subject=username,
                details={"display_name": view.display_name, "org_unit_code": org_unit_code, "is_service": is_service},
            )
        log.info(
            "user %s (%s) created in %s by %s",
            username,
            "service" if is_service else "person",
            tenant.code,
            principal.username,
        )
        return view, None if password is not None or is_service else secret

    def update_user(
        self,
        principal: Principal,
        user: UserRef,
        display_name: str | None = None,
        org_unit_code: str | None = None,
    ) -> UserView:
        """Change the display name and/or the home unit (where the user's applications belong)."""

        def change(session: Session, row: User) -> Details:
            problems = _text_problems("display_name", display_name) if display_name is not None else []
            unit = _unit_by_code(session, row.tenant_id, org_unit_code)
            if org_unit_code is not None and unit is None:
                problems.append(_no_unit(session.get(Tenant, row.tenant_id), org_unit_code))
            if problems:
                raise InvalidInput(f"user {row.username} cannot be changed", problems)
            if display_name is not None:
                row.display_name = display_name.strip()
            if unit is not None:
                row.org_unit_id = unit.id
            return {}

        return self._change_user(principal, user, USER_UPDATED, "updated", change)

    def deactivate_user(self, principal: Principal, user: UserRef) -> UserView:
        """A deactivated user can neither sign in nor use a token or API key issued before, ever again.

        In the same transaction every session ends (as with ``revoke_sessions``) and every API key
        of the user is revoked, so activating the account later brings back neither: the user
        signs in anew, an integration gets new keys.
        """

        def change(session: Session, row: User) -> Details:
            if row.id == principal.user_id:
                raise Conflict("you cannot deactivate your own account")
            now = self.platform.clock.now()
            row.is_active = False
            row.tokens_valid_after = now
            live = ApiKey.user_id == row.id, ApiKey.revoked_at.is_(None)
            revoked = list(session.scalars(select(ApiKey.id).where(*live).order_by(ApiKey.id)))
            session.execute(update(ApiKey).where(*live).values(revoked_at=now))
            return {"api_keys_revoked": revoked} if revoked else {}

        return self._change_user(principal, user, USER_DEACTIVATED, "deactivated", change)

    def activate_user(self, principal: Principal, user: UserRef) -> UserView:
        def change(_session: Session, row: User) -> Details:
            row.is_active = True
            return {}

        return self._change_user(principal, user, USER_ACTIVATED, "activated", change)

    def unlock_user(self, principal: Principal, user: UserRef) -> UserView:
        """Lift a lock-out after failed logins before it runs out."""

        def change(_session: Session, row: User) -> Details:
            row.failed_logins, row.locked_until = 0, None
            return {}

        return self._change_user(principal, user, USER_UNLOCKED, "unlocked", change)

    def revoke_sessions(self, principal: Principal, user: UserRef) -> UserView:
        """Sign the user out everywhere: every token issued before now becomes void."""

        def change(_session: Session, row: User) -> Details:
            row.tokens_valid_after = self.platform.clock.now()
            return {}

        return self._change_user(principal, user, USER_SESSIONS_REVOKED, "signed out everywhere", change)

    def reset_password(self, principal: Principal, user: UserRef) -> tuple[UserView, str]:
        """A forgotten password: the user gets a generated temporary one (returned here, once, for the
        administrator to hand over; stored only as a hash), to be changed at the next sign-in."""
        password = generate_password()
        return self.set_password(principal, user, password), password

    def set_password(self, principal: Principal, user: UserRef, password: str, *, temporary: bool = True) -> UserView:
        """Give a user a password: the account is unlocked and every session ends, as someone else may
        know the old password. A temporary one works for ``temporary_password_hours`` and only to change
        it; a permanent one (the operators' break-glass ``users set-password --permanent``) is the user's.

        Not for a service account (API keys only), nor one's own: an administrator who knows their
        password changes it themselves (``auth/password``), the old one proving it is them.
        """
        principal.require(ORG_ADMIN)
        if (problem := password_problem(password)) is not None:
            raise InvalidInput(f"the password must have {problem}", [{"field": "password", "message": problem}])
        password_hash = hash_password(password)  # slow on purpose: outside the write transaction
        now = self.platform.clock.now()
        hours = self.platform.settings.temporary_password_hours
        expires = now + timedelta(hours=hours) if temporary else None

        def change(_session: Session, row: User) -> Details:
            if row.is_service:
                raise Conflict(f"{row.username} is a service account: it signs in with API keys, not a password")
            if row.id == principal.user_id:
                raise Conflict("change your own password with POST /api/v1/auth/password")
            row.password_hash = password_hash
            row.temporary_password_expires_at = expires
            row.failed_logins, row.locked_until = 0, None
            row.tokens_valid_after = now
            return {"temporary": temporary}

        what = f"given a temporary password (until {expires.isoformat()})" if expires else "given a password"
        return self._change_user(principal, user, USER_PASSWORD_RESET, what, change)

    # -- role grants ---------------------------------------------------------------------------

    def grant(self, principal: Principal, user: UserRef, role: str, org_unit_code: str | None = None) -> UserView:
        """Grant ``role`` in a unit of the user's tenant (``org_unit_code`` None: the whole tenant)."""

        def change(session: Session, row: User) -> Details:
            unit_id = _grant_unit(session, row, role, org_unit_code)
            if _held(session, row.id, role, unit_id) is not None:
                raise Conflict(
                    f"{row.username} already holds {role} in {org_unit_code or 'the whole tenant'}",
                    [{"field": "role", "message": "already granted"}],
                )
            session.add(UserRole(user_id=row.id, role=role, org_unit_id=unit_id))
            return {"role": role, "org_unit_code": org_unit_code}

        what = f"granted {role} in {org_unit_code or 'the tenant'}"
        return self._change_user(principal, user, ROLE_GRANTED, what, change)

    def revoke(self, principal: Principal, user: UserRef, role: str, org_unit_code: str | None = None) -> UserView:
        def change(session: Session, row: User) -> Details:
            held = _held(session, row.id, role, _grant_unit(session, row, role, org_unit_code))
            if held is None:
                raise NotFound(f"{row.username} does not hold {role} in {org_unit_code or 'the whole tenant'}")
            session.delete(held)
            return {"role": role, "org_unit_code": org_unit_code}

        what = f"lost {role} in {org_unit_code or 'the tenant'}"
        return self._change_user(principal, user, ROLE_REVOKED, what, change)

    # -- groups --------------------------------------------------------------------------------

    def list_groups(self, principal: Principal, tenant_code: str | None = None) -> list[GroupView]:
        principal.require(ORG_READ)
        with self.platform.db.transaction() as session:
            stmt = _in_tenant(session, principal, select(UserGroup), UserGroup.tenant_id, tenant_code)
            return _group_views(session, list(session.scalars(stmt.order_by(UserGroup.tenant_id, UserGroup.code))))

    def create_group(self, principal: Principal, tenant_code: str | None, code: str, name: str) -> GroupView:
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            tenant = _tenant(session, principal, tenant_code)
            problems = _code_problems("code", code) + _text_problems("name", name)
            if problems:
                raise InvalidInput("the group cannot be created", problems)
            taken = session.scalars(
                select(UserGroup.id).where(UserGroup.tenant_id == tenant.id, UserGroup.code == code)
            ).first()
            if taken is not None:
                raise Conflict(f"{tenant.code} already has a group {code}", [{"field": "code", "message": "taken"}])
            group = UserGroup(tenant_id=tenant.id, code=code, name=name.strip(), created_at=self.platform.clock.now())
            session.add(group)
            session.flush()
            view = _group_views(session, [group])[0]
            record_org_change(
                session,
                principal,
                group.created_at,
                tenant_id=tenant.id,
                action=GROUP_CREATED,
                subject=code,
                details={"name": group.name},
            )
        log.info("group %s/%s created by %s", tenant.code, code, principal.username)
        return view

    def add_member(
        self, principal: Principal, group: GroupRef, user: UserRef, tenant_code: str | None = None
    ) -> GroupView:
        """``tenant_code`` only matters when ``group`` is a code (None: the principal's own tenant)."""

        def change(session: Session, row: UserGroup, member: User) -> None:
            if session.get(UserGroupMember, (row.id, member.id)) is not None:
                raise Conflict(f"{member.username} is already in group {row.code}")
            session.add(UserGroupMember(group_id=row.id, user_id=member.id))

        return self._change_members(principal, group, user, tenant_code, GROUP_MEMBER_ADDED, "joined", change)

    def remove_member(
        self, principal: Principal, group: GroupRef, user: UserRef, tenant_code: str | None = None
    ) -> GroupView:
        def change(session: Session, row: UserGroup, member: User) -> None:
            membership = session.get(UserGroupMember, (row.id, member.id))
            if membership is None:
                raise NotFound(f"{member.username} is not in group {row.code}")
            session.delete(membership)

        return self._change_members(principal, group, user, tenant_code, GROUP_MEMBER_REMOVED, "left", change)

    # -- shared --------------------------------------------------------------------------------

    def _change_user(
        self,
        principal: Principal,
        user: UserRef,
        action: str,
        what: str,
        change: Callable[[Session, User], Details],
    ) -> UserView:
        """Apply ``change`` and record its details with the old and new values of what it changed of the
        user; a change that changes nothing (activating an active user) records nothing."""
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            row = _user(session, principal, user)
            before = _user_views(session, [row])[0]
            details = change(session, row)
            view = _user_views(session, [row])[0]
            if changes := json_diff(_user_state(before), _user_state(view)):
                details = {**details, "changes": changes}
            if details:
                record_org_change(
                    session,
                    principal,
                    self.platform.clock.now(),
                    tenant_id=row.tenant_id,
                    action=action,
                    subject=row.username,
                    details=details,
                )
        log.info("user %s %s by %s", view.username, what, principal.username)
        return view

    def _change_members(
        self,
        principal: Principal,
        group: GroupRef,
        user: UserRef,
        tenant_code: str | None,
        action: str,
        what: str,
        change: Callable[[Session, UserGroup, User], None],
    ) -> GroupView:
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            row = _group(session, principal, group, tenant_code)
            member = _user(session, principal, user)
            if member.tenant_id != row.tenant_id:
                raise InvalidInput(
                    f"{member.username} and group {row.code} belong to different tenants",
                    [{"field": "user", "message": "must be of the group's tenant"}],
                )
            change(session, row, member)
            view = _group_views(session, [row])[0]
            record_org_change(
                session,
                principal,
                self.platform.clock.now(),
                tenant_id=row.tenant_id,
                action=action,
                subject=member.username,
                details={"group": row.code},
            )
        log.info("user %s %s group %s by %s", member.username, what, row.code, principal.username)
        return view


# -- lookups: anything outside the principal's scope is reported exactly like a missing row -----


def _tenant(session: Session, principal: Principal, code: str | None) -> Tenant:
    if code is None:
        if principal.tenant_id is None:
            raise InvalidInput("say which tenant", [{"field": "tenant", "message": "required for the system"}])
        tenant = session.get(Tenant, principal.tenant_id)
    else:
        tenant = session.scalars(select(Tenant).where(Tenant.code == code)).first()
    if tenant is None or not principal.sees(tenant.id):
        raise InvalidInput(f"no tenant {code!r}", [{"field": "tenant", "message": "unknown tenant"}])
    return tenant


def _tenant_code(session: Session, tenant_id: int) -> str:
    return session.scalars(select(Tenant.code).where(Tenant.id == tenant_id)).one()


def _in_tenant(session: Session, principal: Principal, stmt: Any, column: Any, tenant_code: str | None) -> Any:
    """Restrict a list query to one tenant, or to everything the principal sees."""
    if tenant_code is None:
        return principal.scope(stmt, column)
    return stmt.where(column == _tenant(session, principal, tenant_code).id)


def _unit_by_code(session: Session, tenant_id: int, code: str | None) -> OrgUnit | None:
    if code is None:
        return None
    return session.scalars(select(OrgUnit).where(OrgUnit.tenant_id == tenant_id, OrgUnit.code == code)).first()


def _user(session: Session, principal: Principal, ref: UserRef) -> User:
    if isinstance(ref, int):
        user = session.get(User, ref)
    else:
        user = session.scalars(select(User).where(User.username == ref)).first()
    if user is None or not principal.sees(user.tenant_id):
        raise NotFound(f"user {ref} does not exist")
    return user


def _group(session: Session, principal: Principal, ref: GroupRef, tenant_code: str | None) -> UserGroup:
    if isinstance(ref, int):
        group = session.get(UserGroup, ref)
    else:
        tenant = _tenant(session, principal, tenant_code)
        group = session.scalars(
            select(UserGroup).where(UserGroup.tenant_id == tenant.id, UserGroup.code == ref)
        ).first()
    if group is None or not principal.sees(group.tenant_id):
        raise NotFound(f"group {ref} does not exist")
    return group


def _grant_unit(session: Session, user: User, role: str, org_unit_code: str | None) -> int | None:
    """The id of the unit a grant is for; the role must exist and the unit be in the user's tenant."""
    problems: Problems = []
    if role not in ROLES:
        problems.append({"field": "role", "message": f"unknown role; one of {', '.join(sorted(ROLES))}"})
    unit = _unit_by_code(session, user.tenant_id, org_unit_code)
    if org_unit_code is not None and unit is None:
        problems.append(_no_unit(session.get(Tenant, user.tenant_id), org_unit_code))
    if problems:
        raise InvalidInput("not a valid role grant", problems)
    return unit.id if unit else None


def _held(session: Session, user_id: int, role: str, unit_id: int | None) -> UserRole | None:
    # comparing with None renders IS NULL, which the unique constraint cannot enforce by itself
    return session.scalars(
        select(UserRole).where(UserRole.user_id == user_id, UserRole.role == role, UserRole.org_unit_id == unit_id)
    ).first()


def _lock_tree(session: Session, tenant_id: int) -> None:
    """Serialise changes to one tenant's tree, so that concurrent moves cannot build a cycle or leave stale
    paths, nor two head offices appear (PostgreSQL; SQLite write transactions are serialised already)."""
    session.get(Tenant, tenant_id, with_for_update=True, populate_existing=True)


def _unit_state(session: Session, unit: OrgUnit) -> dict[str, str | None]:
    """What the trail compares of a unit before and after an update."""
    parent = session.get(OrgUnit, unit.parent_id) if unit.parent_id is not None else None
    return {"name": unit.name, "parent_code": parent.code if parent else None}


def _user_state(view: UserView) -> dict[str, Any]:
    return plain_json({name: getattr(view, name) for name in _USER_STATE})


def _move(session: Session, unit: OrgUnit, parent: OrgUnit) -> None:
    old, new = unit.path, unit_path(parent.path, unit.id)
    subtree = select(OrgUnit).where(OrgUnit.tenant_id == unit.tenant_id, OrgUnit.path.startswith(old))
    for row in session.scalars(subtree):
        row.path = new + row.path[len(old) :]
    unit.parent_id = parent.id


# -- validation ---------------------------------------------------------------------------------


def _code_problems(field: str, code: str) -> Problems:
    if _CODE.fullmatch(code):
        return []
    return [{"field": field, "message": "letters, digits and _ . -, starting with a letter or digit, at most 64"}]


def _text_problems(field: str, text: str, limit: int = 200) -> Problems:
    if 0 < len(text.strip()) <= limit:
        return []
    return [{"field": field, "message": f"1 to {limit} characters"}]


def _placement_problems(kind: str, parent_code: str | None, parent: OrgUnit | None) -> Problems:
    """Where a unit of ``kind`` may hang: head office → branch → sub-branch → grid."""
    allowed = PARENT_KINDS.get(kind)
    if allowed is None:
        return [{"field": "kind", "message": f"one of {', '.join(UNIT_KINDS)}"}]
    if parent_code is None:
        return [] if not allowed else [{"field": "parent_code", "message": f"a {kind} needs a parent unit"}]
    if parent is None:
        return [{"field": "parent_code", "message": f"no unit {parent_code} in this tenant"}]
    if parent.kind not in allowed:
        expected = " or ".join(sorted(allowed)) if allowed else "nothing: it is the root"
        return [{"field": "parent_code", "message": f"a {kind} goes under {expected}, not under a {parent.kind}"}]
    return []


def _no_unit(tenant: Tenant | None, code: str) -> dict[str, str]:
    return {"field": "org_unit_code", "message": f"no unit {code} in {tenant.code if tenant else 'this tenant'}"}


# -- views --------------------------------------------------------------------------------------


def _unit_view(unit: OrgUnit, tenant_code: str, parent_code: str | None) -> UnitView:
    return UnitView(
        id=unit.id,
        tenant=tenant_code,
        code=unit.code,
        name=unit.name,
        kind=unit.kind,
        parent_code=parent_code,
        path=unit.path,
        depth=unit.path.count("/") - 2,
    )


def _codes(session: Session, model: type[Tenant] | type[OrgUnit], ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {row_id: code for row_id, code in session.execute(select(model.id, model.code).where(model.id.in_(ids)))}


def _shown_to(principal: Principal, views: list[UserView]) -> list[UserView]:
    """Failed logins, locks, session ends and password resets are for administrators, who unlock, revoke
    and reset."""
    if principal.can(ORG_ADMIN):
        return views
    hidden = dict.fromkeys(("failed_logins", "locked_until", "tokens_valid_after", "temporary_password_expires_at"))
    return [replace(view, **hidden) for view in views]


def _user_views(session: Session, users: list[User]) -> list[UserView]:
    """Views of a page of users with their tenants, units, roles and groups in four queries."""
    ids = [u.id for u in users]
    tenants = _codes(session, Tenant, {u.tenant_id for u in users})
    units = _codes(session, OrgUnit, {u.org_unit_id for u in users if u.org_unit_id is not None})
    roles: dict[int, list[HeldRole]] = defaultdict(list)
    for user_id, role, code in session.execute(
        select(UserRole.user_id, UserRole.role, OrgUnit.code)
        .outerjoin(OrgUnit, OrgUnit.id == UserRole.org_unit_id)
        .where(UserRole.user_id.in_(ids))
        .order_by(UserRole.role, OrgUnit.code)
    ):
        roles[user_id].append(HeldRole(role, code))
    groups: dict[int, list[str]] = defaultdict(list)
    for user_id, code in session.execute(
        select(UserGroupMember.user_id, UserGroup.code)
        .join(UserGroup, UserGroup.id == UserGroupMember.group_id)
        .where(UserGroupMember.user_id.in_(ids))
        .order_by(UserGroup.code)
    ):
        groups[user_id].append(code)
    return [
        UserView(
            id=u.id,
            tenant=tenants[u.tenant_id],
            username=u.username,
            display_name=u.display_name,
            org_unit_code=units.get(u.org_unit_id) if u.org_unit_id is not None else None,
            is_active=u.is_active,
            is_service=u.is_service,
            failed_logins=u.failed_logins,
            locked_until=u.locked_until,
            tokens_valid_after=u.tokens_valid_after,
            temporary_password_expires_at=u.temporary_password_expires_at,
            created_at=u.created_at,
            roles=roles[u.id],
            groups=groups[u.id],
        )
        for u in users
    ]


def _group_views(session: Session, groups: list[UserGroup]) -> list[GroupView]:
    tenants = _codes(session, Tenant, {g.tenant_id for g in groups})
    members: dict[int, list[str]] = defaultdict(list)
    for group_id, username in session.execute(
        select(UserGroupMember.group_id, User.username)
        .join(User, User.id == UserGroupMember.user_id)
        .where(UserGroupMember.group_id.in_([g.id for g in groups]))
        .order_by(User.username)
    ):
        members[group_id].append(username)
    return [GroupView(g.id, tenants[g.tenant_id], g.code, g.name, members[g.id]) for g in groups]
