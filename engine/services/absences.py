"""Out-of-office substitutes (休假代理): a person going on leave, training or a trip names who covers
their work meanwhile; a supervisor or an administrator can do it for them.

Without it, work assigned to someone away waits until it escalates. The rules of who then works
what are in ``engine.inbox.absences``; this service keeps the absences honest: the substitute is an
active colleague of the same bank who works tasks and holds the absent person's task roles where
they hold them or above (an approver is covered by an approver, a branch's loan officer by one of
that branch or of the head office), is not away themselves in that period, and nobody covers for
someone while away (no chains). Setting and ending one is in the organisation's change trail, and
the substitute hears of it in the notification centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Forbidden, InvalidInput, NotFound
from engine.inbox.queries import supervised_units
from engine.notify.outbox import publish
from engine.org.changes import USER_ABSENCE_ENDED, USER_ABSENCE_SET, record_org_change, record_org_update
from engine.org.roles import ORG_ADMIN, ROLES, TASKS_ASSIGN, TASKS_WORK
from engine.services.auth import load_principal
from engine.services.documents import SHANGHAI
from engine.services.principal import Principal
from engine.store.models import OrgUnit, User, UserAbsence, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

LONGEST = timedelta(days=90)  # longer than a quarter is not a leave but a vacancy: reassign the roles
SUBSTITUTE_TOPIC = "absence.substitute"
UserRef = int | str  # an id (the API's URLs and bodies) or a username


@dataclass(frozen=True)
class AbsenceView:
    username: str
    substitute: str
    substitute_name: str
    starts_at: datetime
    ends_at: datetime
    note: str
    in_force: bool
    set_by: str | None
    set_at: datetime


@dataclass(frozen=True)
class AbsenceRequest:
    starts_at: datetime
    ends_at: datetime
    substitute: UserRef
    note: str = ""


class AbsenceService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def get(self, principal: Principal, user: UserRef | None = None) -> AbsenceView | None:
        """The user's absence (the caller's own without ``user``); None: none set."""
        with self.platform.db.transaction() as session:
            row = self._absence(session, self._person(session, principal, user))
            return self._view(session, row) if row is not None else None

    def set(self, principal: Principal, request: AbsenceRequest, user: UserRef | None = None) -> AbsenceView:
        """Set (or replace) the user's absence; the caller's own without ``user``."""
        now = self.platform.clock.now()
        with self.platform.db.transaction(write=True) as session:
            absent = self._person(session, principal, user)
            substitute = self._substitute(session, absent, request, now)
            row = self._absence(session, absent)
            before = _state(session, row) if row is not None else {}
            if row is None:
                row = UserAbsence(tenant_id=absent.tenant_id, user_id=absent.id)
                session.add(row)
            row.substitute_id, row.starts_at, row.ends_at = substitute.id, request.starts_at, request.ends_at
            row.note, row.set_by_id, row.set_at = request.note.strip(), principal.user_id, now
            session.flush()
            after = _state(session, row)
            record_org_update(
                session,
                principal,
                now,
                tenant_id=absent.tenant_id,
                action=USER_ABSENCE_SET,
                subject=absent.username,
                before=before,
                after=after,
            )
            if before != after:  # the substitute hears of it (again when the period changes)
                publish(
                    session,
                    now,
                    tenant_id=absent.tenant_id,
                    topic=SUBSTITUTE_TOPIC,
                    recipients=[substitute.id],
                    payload={
                        "absent": absent.username,
                        "absent_name": absent.display_name,
                        "period": _shown(row),
                        **_period(row),
                    },
                )
            return self._view(session, row)

    def end(self, principal: Principal, user: UserRef | None = None) -> None:
        """End the user's absence now (back early, or a planned one called off)."""
        now = self.platform.clock.now()
        with self.platform.db.transaction(write=True) as session:
            absent = self._person(session, principal, user)
            row = self._absence(session, absent)
            if row is None:
                raise NotFound(f"{absent.username} has no absence set")
            details = _state(session, row)
            session.delete(row)
            record_org_change(
                session,
                principal,
                now,
                tenant_id=absent.tenant_id,
                action=USER_ABSENCE_ENDED,
                subject=absent.username,
                details=details,
            )

    # -- rules ---------------------------------------------------------------------------------

    def _person(self, session: Session, principal: Principal, ref: UserRef | None) -> User:
        """The absent person: the caller, or one the caller oversees (another bank's: 404)."""
        if ref is None:
            found = session.get(User, principal.user_id) if principal.user_id is not None else None
            if found is None or principal.is_service:
                raise Forbidden("an absence belongs to a person who works tasks")
            return found
        found = _user(session, ref)
        if found is None or not principal.sees(found.tenant_id):
            raise NotFound(f"user {ref} does not exist")
        if not principal.acts_in(found.tenant_id):
            raise Forbidden("the province reads its banks' staff but sets no absences for them")
        if principal.is_system or principal.can(ORG_ADMIN):
            return found
        units = supervised_units(principal, User.org_unit_id) if principal.can(TASKS_ASSIGN) else None
        if units is None or session.scalar(select(User.id).where(User.id == found.id, units)) is None:
            raise Forbidden("only a supervisor of the user's unit or an administrator sets their absence")
        return found

    def _substitute(self, session: Session, absent: User, request: AbsenceRequest, now: datetime) -> User:
        problems = _period_problems(request, now)
        if problems:
            raise InvalidInput("the absence's period is not valid", problems)
        found = _user(session, request.substitute)
        if found is None or found.tenant_id != absent.tenant_id or not found.is_active or found.is_service:
            raise _bad_substitute(f"no active colleague {request.substitute} in this bank", "unknown")
        if found.id == absent.id:
            raise _bad_substitute("nobody substitutes for themselves", "the absent user themself")
        if not load_principal(session, found).can(TASKS_WORK):
            raise _bad_substitute(f"{found.username} works no tasks", "holds no role that works tasks")
        missing = _uncovered_grants(session, absent.id, found.id)
        if missing:
            names = "、".join(f"{ROLES[role].name}（{unit or '全行'}）" for role, unit in missing)
            raise _bad_substitute(f"{found.username} does not hold {names}", f"does not hold {names}")
        overlapping = select(UserAbsence).where(
            UserAbsence.starts_at < request.ends_at, UserAbsence.ends_at > request.starts_at
        )
        if session.scalars(overlapping.where(UserAbsence.user_id == found.id)).first() is not None:
            raise _bad_substitute(f"{found.username} is away in that period too", "away in that period (no chains)")
        covering = session.scalars(overlapping.where(UserAbsence.substitute_id == absent.id)).first()
        if covering is not None:
            other = session.get(User, covering.user_id)
            raise InvalidInput(
                f"{absent.username} covers for {other.username} in that period",
                [{"field": "starts_at", "message": f"covers for {other.username} then: name another substitute first"}],
            )
        return found

    @staticmethod
    def _absence(session: Session, user: User) -> UserAbsence | None:
        return session.scalars(select(UserAbsence).where(UserAbsence.user_id == user.id)).first()

    def _view(self, session: Session, row: UserAbsence) -> AbsenceView:
        who, substitute = session.get(User, row.user_id), session.get(User, row.substitute_id)
        by = session.get(User, row.set_by_id) if row.set_by_id is not None else None
        now = self.platform.clock.now()
        return AbsenceView(
            username=who.username,
            substitute=substitute.username,
            substitute_name=substitute.display_name,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            note=row.note,
            in_force=row.starts_at <= now < row.ends_at,
            set_by=by.username if by is not None else None,
            set_at=row.set_at,
        )


def _user(session: Session, ref: UserRef) -> User | None:
    if isinstance(ref, int):
        return session.get(User, ref)
    return session.scalars(select(User).where(User.username == ref)).first()


def _uncovered_grants(session: Session, absent_id: int, substitute_id: int) -> list[tuple[str, str | None]]:
    """The absent person's task roles (role, unit name; None: the whole bank) that the substitute does
    not hold there or above: covering shows the substitute the absent person's customers, so a loan
    officer of one branch is no substitute for one of another, nor a grid's officer for the branch's."""

    def work_grants(user_id: int) -> list[tuple[str, str | None, str | None]]:
        rows = session.execute(
            select(UserRole.role, OrgUnit.path, OrgUnit.name)
            .outerjoin(OrgUnit, OrgUnit.id == UserRole.org_unit_id)
            .where(UserRole.user_id == user_id)
            .order_by(UserRole.role, OrgUnit.path)
        )
        return [(role, path, name) for role, path, name in rows if role in ROLES and ROLES[role].duty is not None]

    held = work_grants(substitute_id)
    return [
        (role, name)
        for role, path, name in work_grants(absent_id)
        if not any(r == role and (p is None or (path or "").startswith(p)) for r, p, _ in held)
    ]


def _period_problems(request: AbsenceRequest, now: datetime) -> list[dict[str, str]]:
    if request.ends_at <= request.starts_at:
        return [{"field": "ends_at", "message": "must be after starts_at"}]
    if request.ends_at - request.starts_at > LONGEST:
        return [{"field": "ends_at", "message": f"at most {LONGEST.days} days after starts_at"}]
    if request.ends_at <= now:
        return [{"field": "ends_at", "message": "already past"}]
    return []


def _bad_substitute(detail: str, message: str) -> InvalidInput:
    return InvalidInput(detail, [{"field": "substitute", "message": message}])


def _period(row: UserAbsence) -> dict[str, str]:
    return {"starts_at": row.starts_at.isoformat(), "ends_at": row.ends_at.isoformat()}


def _shown(row: UserAbsence) -> str:
    """The period as the bank's staff read it (Beijing time)."""
    starts, ends = (t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") for t in (row.starts_at, row.ends_at))
    return f"{starts}至{ends}"


def _state(session: Session, row: UserAbsence) -> dict[str, Any]:
    """What the change trail keeps of an absence."""
    substitute = session.get(User, row.substitute_id)
    return {"substitute": substitute.username, **_period(row), "note": row.note}
