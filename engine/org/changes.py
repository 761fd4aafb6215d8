"""The organisation's change trail (权限与配置变更留痕): who changed a tenant's organisation or configuration.

Internal audit and the regulator ask who granted an officer the approver role at a bank and when,
who unlocked an account, who named whom to cover for an officer on leave, who changed the working
hours the time limits are computed in, who created an API key or a webhook: segregation of duties
(审贷分离) is only as good as the record of who handed out the roles. The services of the
organisation, absences, the calendar, API keys and webhooks record each
change in this trail (``engine.store.change_trail``) in the change's own transaction; never a
password, a key or a secret. The owner is the tenant whose organisation or configuration changed;
none for the province-wide calendar and working hours, which every bank runs on. Administrators and
risk managers read it (``org.changes.read``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.org.roles import ORG_CHANGES_READ
from engine.runtime.workflow_state import plain_json
from engine.services.principal import Principal
from engine.store.change_trail import Trail, json_diff, record_change
from engine.store.models import OrgChange, OrgChangeHead

ORG_TRAIL = Trail(OrgChange, OrgChangeHead, ORG_CHANGES_READ)

# subject: the unit code
UNIT_CREATED = "unit.created"
UNIT_UPDATED = "unit.updated"  # renamed and/or moved
# subject: the username
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DEACTIVATED = "user.deactivated"
USER_ACTIVATED = "user.activated"
USER_UNLOCKED = "user.unlocked"
USER_SESSIONS_REVOKED = "user.sessions_revoked"
USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name; details: whether temporary
USER_ABSENCE_SET = "user.absence_set"  # leave with a substitute (休假代理), set or changed
USER_ABSENCE_ENDED = "user.absence_ended"
ROLE_GRANTED = "role.granted"
ROLE_REVOKED = "role.revoked"
GROUP_MEMBER_ADDED = "group.member_added"
GROUP_MEMBER_REMOVED = "group.member_removed"
# subject: the group code
GROUP_CREATED = "group.created"
# subject: the day (ISO 8601), the year, or WORKING_HOURS
CALENDAR_DAY_SET = "calendar.day_set"
CALENDAR_YEAR_COVERED = "calendar.year_covered"
HOURS_SET = "hours.set"
# subject: the quote's effective day (ISO 8601); the province's, for every bank
LPR_QUOTE_SET = "lpr.quote_set"
# subject: the key's or the webhook's id
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
WEBHOOK_CREATED = "webhook.created"
WEBHOOK_UPDATED = "webhook.updated"
WEBHOOK_DEACTIVATED = "webhook.deactivated"
ACTIONS = (
    UNIT_CREATED,
    UNIT_UPDATED,
    USER_CREATED,
    USER_UPDATED,
    USER_DEACTIVATED,
    USER_ACTIVATED,
    USER_UNLOCKED,
    USER_SESSIONS_REVOKED,
    USER_PASSWORD_RESET,
    USER_ABSENCE_SET,
    USER_ABSENCE_ENDED,
    ROLE_GRANTED,
    ROLE_REVOKED,
    GROUP_CREATED,
    GROUP_MEMBER_ADDED,
    GROUP_MEMBER_REMOVED,
    CALENDAR_DAY_SET,
    CALENDAR_YEAR_COVERED,
    HOURS_SET,
    LPR_QUOTE_SET,
    API_KEY_CREATED,
    API_KEY_REVOKED,
    WEBHOOK_CREATED,
    WEBHOOK_UPDATED,
    WEBHOOK_DEACTIVATED,
)
WORKING_HOURS = "working_hours"


def record_org_change(
    session: Session,
    principal: Principal,
    at: datetime,
    *,
    tenant_id: int | None,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """The change's entry, by the principal (no actor for the system and the command line)."""
    record_change(
        session,
        ORG_TRAIL,
        tenant_id=tenant_id,
        actor_id=principal.user_id,
        at=at,
        action=action,
        subject=subject,
        details=details,
    )


def record_org_update(
    session: Session,
    principal: Principal,
    at: datetime,
    *,
    tenant_id: int | None,
    action: str,
    subject: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    """An update's entry: the old and new value of each thing it changed (``before`` empty: it was
    created); none when it changed nothing, as setting what is set already is no change to account for."""
    if changes := json_diff(plain_json(before), plain_json(after)):
        record_org_change(
            session, principal, at, tenant_id=tenant_id, action=action, subject=subject, details={"changes": changes}
        )
