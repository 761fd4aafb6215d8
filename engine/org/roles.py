"""The role catalogue: what each role may do, where its work is offered, and the duty it performs.

Permissions are coarse verbs checked on every endpoint; where a task is offered and who may act on
it is decided by the inbox from the role's ``scope`` and ``duty``. Lane codes in the archetypes are
role codes, except the few mapped in ``LANE_ROLES`` (the A1 grey-zone review is a risk manager's).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- permissions -------------------------------------------------------------------------------
DEFINITIONS_READ = "definitions.read"
DEFINITIONS_DEPLOY = "definitions.deploy"
INSTANCES_READ = "instances.read"
INSTANCES_START = "instances.start"
INSTANCES_MANAGE = "instances.manage"  # cancel, retry, deliver a message from an outside party
TASKS_READ = "tasks.read"
TASKS_WORK = "tasks.work"  # claim, complete, delegate, return, comment, attach
TASKS_ASSIGN = "tasks.assign"  # a supervisor hands work to someone (also in bulk)
TASKS_OVERRIDE = "tasks.override"  # act on any task of the own tenant, e.g. to unblock stuck work
PRODUCTS_READ = "products.read"
PRODUCTS_WRITE = "products.write"  # clone, edit drafts, rebase
PRODUCTS_PUBLISH = "products.publish"
# the catalog's change trail (变更留痕): product managers, risk managers and administrators, not every
# worker (audit.read and products.read are every worker's)
CATALOG_CHANGES_READ = "catalog.changes.read"
APPLICATIONS_CREATE = "applications.create"
ORG_READ = "org.read"
ORG_ADMIN = "org.admin"  # units, users, role grants, groups, API keys
# the organisation's change trail (权限与配置变更留痕): who handed out which role, unlocked whom, changed the
# working hours; administrators and risk managers (who answer for segregation of duties), not every reader
ORG_CHANGES_READ = "org.changes.read"
CALENDAR_ADMIN = "calendar.admin"
RATES_ADMIN = "rates.admin"  # enter the LPR announcements contracts are priced on (the province's)
AUDIT_READ = "audit.read"
MONITOR_READ = "monitor.read"  # the overdue monitor: counts, on-time rates, CSV export
INCIDENTS_MANAGE = "incidents.manage"  # see and retry failed background jobs
WEBHOOKS_ADMIN = "webhooks.admin"

ALL_PERMISSIONS = frozenset(
    {
        DEFINITIONS_READ,
        DEFINITIONS_DEPLOY,
        INSTANCES_READ,
        INSTANCES_START,
        INSTANCES_MANAGE,
        TASKS_READ,
        TASKS_WORK,
        TASKS_ASSIGN,
        TASKS_OVERRIDE,
        PRODUCTS_READ,
        PRODUCTS_WRITE,
        PRODUCTS_PUBLISH,
        CATALOG_CHANGES_READ,
        APPLICATIONS_CREATE,
        ORG_READ,
        ORG_ADMIN,
        ORG_CHANGES_READ,
        CALENDAR_ADMIN,
        RATES_ADMIN,
        AUDIT_READ,
        MONITOR_READ,
        INCIDENTS_MANAGE,
        WEBHOOKS_ADMIN,
    }
)

_WORKER = frozenset({INSTANCES_READ, TASKS_READ, TASKS_WORK, PRODUCTS_READ, AUDIT_READ, ORG_READ})

# scope: where a task of this role is offered.
#   "application": the nearest unit holding the role, from the application's branch or grid upwards
#   "head_office": the bank's head office pool
HEAD_OFFICE, APPLICATION = "head_office", "application"


@dataclass(frozen=True)
class Role:
    code: str
    name: str  # shown to users, Chinese
    permissions: frozenset[str]
    duty: str | None = None  # the duty its tasks perform, for segregation of duties
    scope: str = APPLICATION
    supervises: bool = False  # sees and assigns the work of the units below its own (team view)
    escalates_to: str | None = None  # whose pool overdue work goes to (red) and who hears of it (orange)


ROLES: dict[str, Role] = {
    r.code: r
    for r in (
        Role(
            "loan_officer",
            "客户经理",
            _WORKER | {INSTANCES_START, APPLICATIONS_CREATE},
            duty="investigate",
            escalates_to="branch_head",
        ),
        Role("co_investigator", "协办客户经理", _WORKER, duty="co_investigate", escalates_to="branch_head"),
        Role("reviewer", "审查岗", _WORKER, duty="review", scope=HEAD_OFFICE, escalates_to="risk_manager"),
        Role("approver", "审批岗", _WORKER, duty="approve", scope=HEAD_OFFICE, escalates_to="senior_approver"),
        Role(
            "senior_approver",
            "分管行长",
            _WORKER | {TASKS_ASSIGN, MONITOR_READ},
            duty="senior_approve",
            scope=HEAD_OFFICE,
            supervises=True,
        ),
        Role("credit_committee", "贷审会委员", _WORKER, duty="vote", scope=HEAD_OFFICE, escalates_to="senior_approver"),
        Role(
            "branch_head",
            "支行行长",
            _WORKER | {TASKS_ASSIGN, INSTANCES_START, APPLICATIONS_CREATE, MONITOR_READ},
            duty="approve",
            supervises=True,
            escalates_to="senior_approver",
        ),
        Role(
            "disburser",
            "放款岗",
            _WORKER | {INSTANCES_MANAGE},
            duty="disburse",
            scope=HEAD_OFFICE,
            escalates_to="senior_approver",
        ),
        Role(
            "risk_manager",
            "风险经理",
            _WORKER | {TASKS_ASSIGN, INSTANCES_MANAGE, MONITOR_READ, CATALOG_CHANGES_READ, ORG_CHANGES_READ},
            duty="review",
            scope=HEAD_OFFICE,
            supervises=True,
            escalates_to="senior_approver",
        ),
        Role(
            "collateral_officer",
            "押品管理岗",
            _WORKER,
            duty="collateral",
            scope=HEAD_OFFICE,
            escalates_to="risk_manager",
        ),
        Role("village_committee", "村委会协办员", _WORKER, duty="village_evaluation", escalates_to="branch_head"),
        Role(
            "product_manager",
            "产品经理",
            frozenset(
                {
                    PRODUCTS_READ,
                    PRODUCTS_WRITE,
                    PRODUCTS_PUBLISH,
                    CATALOG_CHANGES_READ,
                    DEFINITIONS_READ,
                    DEFINITIONS_DEPLOY,
                    ORG_READ,
                }
            ),
        ),
        Role("admin", "系统管理员", ALL_PERMISSIONS, supervises=True),
    )
}

# lanes whose role is not the lane's own code
LANE_ROLES = {"manual_reviewer": "risk_manager"}

# Segregation of duties (审贷分离, 审贷与放贷分离, two officers): a user who performed the key duty on
# an application may not perform any of the listed duties on the same application. The relation is
# made symmetric below, so an investigator cannot review and a reviewer cannot investigate after a
# return. "vote" conflicts with itself: one member, one vote.
_CONFLICTS = {
    "investigate": {"co_investigate", "review", "approve", "senior_approve", "vote"},
    "co_investigate": {"review", "approve", "senior_approve", "vote"},
    "review": {"approve", "senior_approve", "vote"},
    "approve": {"senior_approve", "disburse"},
    "senior_approve": {"disburse"},
    "vote": {"vote", "disburse"},
}
CONFLICTS: dict[str, frozenset[str]] = {}
for _duty, _others in _CONFLICTS.items():
    for _other in _others:
        CONFLICTS[_duty] = CONFLICTS.get(_duty, frozenset()) | {_other}
        CONFLICTS[_other] = CONFLICTS.get(_other, frozenset()) | {_duty}


def role_for_lane(lane: str | None) -> str | None:
    return LANE_ROLES.get(lane, lane) if lane else None


def permissions_of(roles: frozenset[str] | set[str]) -> frozenset[str]:
    found: set[str] = set()
    for code in roles:
        role = ROLES.get(code)
        if role is not None:
            found |= role.permissions
    return frozenset(found)


def conflicting(duty: str | None) -> frozenset[str]:
    """The duties whose performers may not take on ``duty`` on the same application."""
    return CONFLICTS.get(duty, frozenset()) if duty else frozenset()
