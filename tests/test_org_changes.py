"""The organisation's change trail (权限与配置变更留痕): role grants, account changes, the calendar, API keys and
webhooks are recorded with their actor and old values in the change's own transaction, never with a
secret, readable by the owning bank and the province only, and tamper-evident."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError

from engine.clock import FrozenClock
from engine.container import CreditFlow
from engine.store.models import OrgChange
from tests.conftest import ApiClient, drop_append_only_guards, login
from tests.test_accounts import attempt, create_key, integration  # noqa: F401 - fixture
from tests.test_catalog_changes import BAD_QUERIES
from tests.test_cli import invoke
from tests.test_inbox import user_id
from tests.test_notifications import create_webhook, tenant_id
from tests.test_organization import run

PROBLEM = "application/problem+json"
ADMIN = "/api/v1/admin"
HOURS = f"{ADMIN}/calendar/hours"


def changes(client: ApiClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/org-changes{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def stored(platform: CreditFlow) -> list[OrgChange]:
    with platform.db.transaction() as session:
        return list(session.scalars(select(OrgChange).order_by(OrgChange.id)))


def count(platform: CreditFlow) -> int:
    with platform.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(OrgChange)) or 0


def row_text(change: OrgChange) -> str:
    """Every column of a stored change as one text, to search for what must not be there."""
    return repr({column.key: getattr(change, column.key) for column in OrgChange.__table__.columns})


def test_a_role_grant_and_its_revocation_are_recorded_with_actor_subject_role_and_unit(
    seeded: CreditFlow, app: Any, clock: FrozenClock
) -> None:
    admin = login(app, "ly_admin")
    roles = f"{ADMIN}/users/{user_id(seeded, 'ly_officer')}/roles"
    granted_at = clock.now()
    assert admin.post(roles, json={"role": "approver", "org_unit_code": "ly-hq"}).status_code == 201
    clock.advance(timedelta(hours=2))
    assert admin.delete(f"{roles}?role=approver&org_unit_code=ly-hq").status_code == 200

    revoked, granted = changes(login(app, "ly_risk"), "?subject=ly_officer")
    who = {"actor": "ly_admin", "actor_id": user_id(seeded, "ly_admin"), "tenant": "bank-lingyuan"}
    for change, action, at in ((granted, "role.granted", granted_at), (revoked, "role.revoked", clock.now())):
        assert {k: change[k] for k in ("action", "subject", "at", *who)} == {
            "action": action,
            "subject": "ly_officer",
            "at": at.isoformat(),
            **who,
        }
        assert change["details"] == {"role": "approver", "org_unit_code": "ly-hq"}
    assert granted["tenant_id"] == revoked["tenant_id"] == tenant_id(seeded, "bank-lingyuan")


def test_an_unlock_and_a_deactivation_are_recorded_with_old_and_new_values(
    seeded: CreditFlow,
    app: Any,
    clock: FrozenClock,
    integration: str,  # noqa: F811 - fixture
) -> None:
    for n in range(5):
        assert attempt(app, "ly_officer", f"wrong guess {n}").status_code == 401
    locked_until = clock.now() + timedelta(minutes=15)
    admin = login(app, "ly_admin")
    clock.advance(timedelta(minutes=1))
    assert admin.post(f"{ADMIN}/users/{user_id(seeded, 'ly_officer')}/unlock").status_code == 200
    (unlocked,) = changes(admin, "?action=user.unlocked")
    assert unlocked["subject"] == "ly_officer" and unlocked["actor"] == "ly_admin"
    assert unlocked["details"] == {
        "changes": [
            {"path": "/failed_logins", "old": 5, "new": 0},
            {"path": "/locked_until", "old": locked_until.isoformat(), "new": None},
        ]
    }

    key = create_key(admin, integration)
    before = count(seeded)
    assert admin.post(f"{ADMIN}/users/{user_id(seeded, integration)}/activate").status_code == 200
    assert count(seeded) == before  # already active: nothing changed, nothing to account for
    assert admin.post(f"{ADMIN}/users/{user_id(seeded, integration)}/deactivate").status_code == 200
    (deactivated,) = changes(admin, f"?subject={integration}&action=user.deactivated")
    assert deactivated["details"] == {
        "api_keys_revoked": [key["id"]],
        "changes": [
            {"path": "/is_active", "old": True, "new": False},
            {"path": "/tokens_valid_after", "old": None, "new": clock.now().isoformat()},
        ],
    }


def test_calendar_days_and_working_hours_are_recorded_with_old_and_new_values(seeded: CreditFlow, app: Any) -> None:
    admin = login(app, "ly_admin")
    day = f"{ADMIN}/calendar/days/2027-01-04"
    assert admin.put(day, json={"workday": False, "note": "台风停业"}).status_code == 200
    assert admin.put(day, json={"workday": True, "note": "补班"}).status_code == 200
    assert admin.put(day, json={"workday": True, "note": "补班"}).status_code == 200  # the same again: no change
    assert admin.put(HOURS, json={"periods": [["09:00", "17:00"]]}).status_code == 200
    assert admin.put(HOURS, json={"periods": [["08:00", "12:00"], ["14:00", "18:00"]]}).status_code == 200

    corrected, closed = changes(admin, "?subject=2027-01-04")
    assert closed["subject"] == corrected["subject"] == "2027-01-04"
    assert closed["details"] == {"changes": [{"path": "/note", "new": "台风停业"}, {"path": "/workday", "new": False}]}
    assert corrected["details"] == {
        "changes": [
            {"path": "/note", "old": "台风停业", "new": "补班"},
            {"path": "/workday", "old": False, "new": True},
        ]
    }
    changed, first = changes(admin, "?subject=working_hours")
    assert changed["action"] == first["action"] == "hours.set" and changed["tenant"] == "bank-lingyuan"
    assert first["details"] == {"changes": [{"path": "/periods", "new": [["09:00", "17:00"]]}]}
    assert changed["details"] == {
        "changes": [{"path": "/periods", "old": [["09:00", "17:00"]], "new": [["08:00", "12:00"], ["14:00", "18:00"]]}]
    }
    assert admin.put(f"{ADMIN}/calendar/days/2027-01-01", json={"workday": False, "note": "元旦"}).status_code == 200
    assert admin.put(f"{ADMIN}/calendar/years/2027").status_code == 204
    assert admin.put(f"{ADMIN}/calendar/years/2027").status_code == 204  # entered already: no change
    assert [(c["action"], c["subject"], c["details"]) for c in changes(admin, "?action=calendar.year_covered")] == [
        ("calendar.year_covered", "2027", {})
    ]


def test_an_api_key_is_recorded_by_its_prefix_never_the_key(
    seeded: CreditFlow,
    app: Any,
    integration: str,  # noqa: F811 - fixture
) -> None:
    admin = login(app, "ly_admin")
    key = create_key(admin, integration)
    assert admin.delete(f"{ADMIN}/api-keys/{key['id']}").status_code == 204
    revoked, created = changes(admin, f"?subject={key['id']}")
    assert (created["action"], revoked["action"]) == ("api_key.created", "api_key.revoked")
    assert created["details"] == {
        "username": integration,
        "name": "core banking sync",
        "prefix": key["prefix"],
        "expires_at": None,
    }
    assert revoked["details"] == {"username": integration, "name": "core banking sync", "prefix": key["prefix"]}

    secret = key["key"].split("_", 2)[2]  # cfk_<prefix>_<secret>; the secret may hold "_" itself
    for change in stored(seeded):
        text = row_text(change)
        assert key["key"] not in text and secret not in text, change.action
        assert hashlib.sha256(secret.encode()).hexdigest() not in text, change.action


def test_a_webhook_is_recorded_without_its_secret(seeded: CreditFlow, app: Any) -> None:
    admin = login(app, "ly_admin")
    secret = "a-receiver-chosen-secret-of-40-characters"
    hook = create_webhook(admin, "https://hooks.example.org/creditflow", ["escalation."], secret=secret)
    assert admin.patch(f"{ADMIN}/webhooks/{hook['id']}", json={"topics": ["loan."]}).status_code == 200
    assert admin.delete(f"{ADMIN}/webhooks/{hook['id']}").status_code == 204

    deactivated, updated, created = changes(admin, f"?subject={hook['id']}")
    assert created["action"] == "webhook.created" and created["tenant"] == "bank-lingyuan"
    assert created["details"] == {
        "url": "https://hooks.example.org/creditflow",
        "topics": ["escalation."],
        "active": True,
    }
    assert updated["action"] == "webhook.updated"
    assert updated["details"] == {"changes": [{"path": "/topics", "old": ["escalation."], "new": ["loan."]}]}
    assert deactivated["action"] == "webhook.deactivated"
    assert deactivated["details"] == {"changes": [{"path": "/active", "old": True, "new": False}]}
    assert all(secret not in row_text(change) for change in stored(seeded))


def test_a_refused_change_records_nothing(seeded: CreditFlow, app: Any) -> None:
    admin, officer, other_bank = login(app, "ly_admin"), login(app, "ly_officer"), login(app, "qh_admin")
    roles = f"{ADMIN}/users/{user_id(seeded, 'ly_officer')}/roles"
    before = count(seeded)
    refused = [
        (admin.post(roles, json={"role": "astrologer"}), 422),
        (admin.post(roles, json={"role": "loan_officer", "org_unit_code": "ly-chengguan"}), 409),  # held already
        (officer.post(roles, json={"role": "approver"}), 403),
        (other_bank.post(roles, json={"role": "approver"}), 404),
        (officer.put(HOURS, json={"periods": [["09:00", "17:00"]]}), 403),
        (admin.put(HOURS, json={"periods": [["12:00", "08:30"]]}), 422),
        (admin.post(f"{ADMIN}/api-keys", json={"username": "ly_officer", "name": "a person's key"}), 422),
        (admin.post(f"{ADMIN}/webhooks", json={"url": "ftp://example.org/hook", "topics": []}), 422),
    ]
    for response, status in refused:
        assert response.status_code == status and response.mimetype == PROBLEM, response.get_json()
    assert count(seeded) == before
    assert changes(admin) == []


def test_a_bank_reads_its_own_trail_and_the_province_every_banks(seeded: CreditFlow, app: Any) -> None:
    ly, qh, province = login(app, "ly_admin"), login(app, "qh_admin"), login(app, "admin")
    grant = {"role": "reviewer"}  # in the whole tenant
    for client, username in ((ly, "ly_officer"), (qh, "qh_officer"), (province, "pm"), (province, "ly_approver")):
        assert client.post(f"{ADMIN}/users/{user_id(seeded, username)}/roles", json=grant).status_code == 201
    assert province.put(HOURS, json={"periods": [["09:00", "17:00"]]}).status_code == 200  # every bank's hours

    assert {c["tenant"] for c in changes(ly)} == {"bank-lingyuan", None}
    assert {c["tenant"] for c in changes(qh)} == {"bank-qinghe", None}
    for reader in ("admin", "prov_risk"):
        assert {c["tenant"] for c in changes(login(app, reader))} == {"province", "bank-lingyuan", "bank-qinghe", None}
    (shared,) = changes(qh, "?action=hours.set")
    assert shared["tenant_id"] is None and shared["actor"] == "admin"
    # the province managing a bank's organisation changes the bank's: it is in the bank's trail
    (by_province,) = changes(ly, "?subject=ly_approver")
    assert (by_province["tenant"], by_province["actor"]) == ("bank-lingyuan", "admin")
    # another bank's subject or person matches nothing, exactly like one that does not exist
    theirs, absent = qh.get("/api/v1/org-changes?subject=ly_officer"), qh.get("/api/v1/org-changes?subject=nobody")
    assert theirs.status_code == absent.status_code == 200 and theirs.get_json() == absent.get_json()
    assert theirs.get_json()["items"] == []
    assert changes(qh, f"?actor={user_id(seeded, 'ly_admin')}") == []
    assert [c["subject"] for c in changes(ly, f"?actor={user_id(seeded, 'ly_admin')}")] == ["ly_officer"]


def test_only_administrators_and_risk_managers_read_the_trail(app: Any) -> None:
    anonymous = app.test_client().get("/api/v1/org-changes")
    assert anonymous.status_code == 401 and anonymous.mimetype == PROBLEM
    for username in ("ly_officer", "ly_pm", "pm", "ly_reviewer"):
        refused = login(app, username).get("/api/v1/org-changes")
        assert refused.status_code == 403 and refused.mimetype == PROBLEM, username
    for username in ("ly_admin", "ly_risk", "admin", "prov_risk"):
        assert login(app, username).get("/api/v1/org-changes").status_code == 200, username


@pytest.mark.parametrize(
    ("query", "field"),
    [*BAD_QUERIES, ("action=product.published", "action")],  # the catalog's, not this trail's
)
def test_bad_query_parameters_are_422_problems_naming_the_field(app: Any, query: str, field: str) -> None:
    response = login(app, "ly_admin").get(f"/api/v1/org-changes?{query}")
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


def test_verify_detects_an_edited_and_a_deleted_change(seeded: CreditFlow, settings: Any, monkeypatch: Any) -> None:
    granted = invoke(settings, monkeypatch, "users", "grant", "ly_officer", "reviewer", "--unit", "ly-hq")
    assert granted.exit_code == 0, granted.output
    assert run("users", "grant", "ly_officer", "approver", "--unit", "ly-hq").exit_code == 0
    assert run("users", "deactivate", "ly_officer").exit_code == 0
    assert run("calendar", "hours", "09:00-17:00").exit_code == 0
    assert run("users", "grant", "pm", "reviewer").exit_code == 0
    assert all(change.actor_id is None for change in stored(seeded))  # the command line is no person

    intact = run("org", "changes", "verify", "--tenant", "bank-lingyuan")
    assert intact.exit_code == 0 and "ok: bank-lingyuan: 3 changes, chain intact" in intact.output, intact.output
    everything = run("org", "changes", "verify")
    assert everything.exit_code == 0 and "ok: province-wide: 1 changes, chain intact" in everything.output
    unknown = run("org", "changes", "verify", "--tenant", "bank-nowhere")
    assert unknown.exit_code == 2 and "no tenant" in unknown.output

    province = run("org", "changes", "verify", "--tenant", "province")  # the province-wide chain, and its own
    assert province.exit_code == 0, province.output
    assert province.output.splitlines() == [
        "ok: province-wide: 1 changes, chain intact",
        "ok: province: 1 changes, chain intact",
    ]

    ours = OrgChange.tenant_id == tenant_id(seeded, "bank-lingyuan")
    forged = {"role": "loan_officer", "org_unit_code": "ly-hq"}
    with pytest.raises(DBAPIError), seeded.db.transaction(write=True) as session:  # the table refuses changes ...
        session.execute(update(OrgChange).where(ours, OrgChange.seq == 2).values(details=forged))
    drop_append_only_guards(seeded, "org_change")  # ... so a tamperer with DDL rights drops the guard first
    with seeded.db.transaction(write=True) as session:
        session.execute(update(OrgChange).where(ours, OrgChange.seq == 2).values(details=forged))
    edited = run("org", "changes", "verify")
    assert edited.exit_code == 1 and "TAMPERED: bank-lingyuan" in edited.output, edited.output
    assert "change 2 (role.granted ly_officer) was altered" in edited.output
    assert "ok: province-wide:" in edited.output  # the other chains are intact

    with seeded.db.transaction(write=True) as session:
        session.execute(delete(OrgChange).where(ours, OrgChange.seq == 1))
    deleted = run("org", "changes", "verify", "--tenant", "bank-lingyuan")
    assert deleted.exit_code == 1 and "change 1 is missing (next stored change is 2)" in deleted.output
