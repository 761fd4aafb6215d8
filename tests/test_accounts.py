"""Accounts and credentials through the real API and database: lockout, sessions, password change,
API keys with tenant isolation, and masking of ID numbers and credentials in logs and audit payloads."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main as cli
from engine.config import ConfigError, Settings
from engine.masking import mask_sensitive, mask_text
from engine.services.auth import INVALID_LOGIN, hash_password
from engine.store.audit import Journal
from engine.store.models import ApiKey, OrgUnit, RevokedToken, Tenant, User, UserRole
from tests.conftest import PASSWORD, ApiClient, bank_card, deploy, login, resident_id

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/auth/me"
KEYS = "/api/v1/admin/api-keys"
NEW_PASSWORD = "a much longer passphrase"


def attempt(app: Any, username: str, password: str) -> Any:
    return app.test_client().post(TOKEN, json={"username": username, "password": password})


def user_row(platform: Any, username: str) -> User:
    with platform.db.transaction() as session:
        return session.scalars(select(User).where(User.username == username)).one()


def add_user(platform: Any, username: str, tenant: str, role: str, unit: str, *, service: bool = False) -> None:
    """A user the demo data lacks (the admin API for users is not part of this module)."""
    with platform.db.transaction(write=True) as session:
        unit_id = session.scalars(select(OrgUnit.id).where(OrgUnit.code == unit)).one()
        user = User(
            username=username,
            display_name=username,
            tenant_id=session.scalars(select(Tenant.id).where(Tenant.code == tenant)).one(),
            org_unit_id=unit_id,
            password_hash=hash_password(PASSWORD),
            is_active=True,
            is_service=service,
            created_at=platform.clock.now(),
        )
        session.add(user)
        session.flush()
        session.add(UserRole(user_id=user.id, role=role, org_unit_id=unit_id))


def set_active(platform: Any, username: str, active: bool) -> None:
    with platform.db.transaction(write=True) as session:
        session.scalars(select(User).where(User.username == username)).one().is_active = active


def with_key(app: Any, key: str, header: str = "Authorization") -> ApiClient:
    client = ApiClient(app.test_client(), None)
    client.headers = {"Authorization": f"ApiKey {key}"} if header == "Authorization" else {"X-API-Key": key}
    return client


@pytest.fixture
def integration(seeded: Any) -> str:
    """A service account of bank-lingyuan working as a loan officer (it may read products)."""
    add_user(seeded, "ly_integration", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    return "ly_integration"


def create_key(api: ApiClient, username: str, **extra: Any) -> dict[str, Any]:
    response = api.post(KEYS, json={"username": username, "name": "core banking sync", **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- lockout ----------------------------------------------------------------------------------


def test_lockout_after_repeated_failures_holds_even_for_the_right_password(
    app: Any, seeded: Any, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.services.auth")
    for n in range(1, 5):
        refused = attempt(app, "ly_officer", f"wrong guess {n}")
        assert refused.status_code == 401 and refused.get_json()["detail"] == INVALID_LOGIN
    assert user_row(seeded, "ly_officer").failed_logins == 4
    fifth = attempt(app, "ly_officer", "wrong guess 5")
    assert fifth.status_code == 401 and fifth.get_json()["detail"] == INVALID_LOGIN  # the same as an unknown user
    row = user_row(seeded, "ly_officer")
    assert row.failed_logins == 5 and row.locked_until == clock.now() + timedelta(minutes=15)

    locked = attempt(app, "ly_officer", PASSWORD)
    assert locked.status_code == 401 and locked.mimetype == "application/problem+json"
    assert locked.get_json()["detail"] == INVALID_LOGIN  # the right password, but locked: nothing more is said
    clock.advance(timedelta(minutes=14, seconds=59))
    assert attempt(app, "ly_officer", PASSWORD).status_code == 401

    clock.advance(timedelta(seconds=1))  # the lock has expired: a new failure starts a fresh count
    assert "invalid" in attempt(app, "ly_officer", "wrong again").get_json()["detail"]
    assert user_row(seeded, "ly_officer").failed_logins == 1
    login(app, "ly_officer")
    row = user_row(seeded, "ly_officer")
    assert (row.failed_logins, row.locked_until) == (0, None)

    failures = [r for r in caplog.records if "wrong password" in r.getMessage()]
    assert len(failures) == 6 and {r.levelno for r in failures} == {logging.WARNING}
    assert "'ly_officer'" in failures[0].getMessage() and "5 failed in a row" in failures[4].getMessage()
    assert "wrong guess" not in caplog.text and PASSWORD not in caplog.text


def test_a_successful_login_resets_the_counter(app: Any, seeded: Any) -> None:
    for _ in range(4):
        attempt(app, "ly_officer", "wrong")
    login(app, "ly_officer")
    for _ in range(4):
        attempt(app, "ly_officer", "wrong")
    assert user_row(seeded, "ly_officer").failed_logins == 4
    login(app, "ly_officer")  # nine failures in all, never five in a row
    assert user_row(seeded, "ly_officer").failed_logins == 0


def test_a_password_hashed_under_older_parameters_is_rehashed_at_the_next_login(app: Any, seeded: Any) -> None:
    older = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    with seeded.db.transaction(write=True) as session:
        session.scalars(select(User).where(User.username == "ly_officer")).one().password_hash = older.hash(PASSWORD)
    attempt(app, "ly_officer", "wrong")
    assert "m=1024,t=2,p=1" in user_row(seeded, "ly_officer").password_hash  # only the right password re-hashes
    login(app, "ly_officer")
    upgraded = user_row(seeded, "ly_officer")
    assert "$m=8,t=1,p=1$" in upgraded.password_hash and upgraded.failed_logins == 0  # the suite's parameters
    login(app, "ly_officer")  # the new hash verifies


def test_unknown_users_are_answered_like_wrong_passwords(app: Any) -> None:
    for _ in range(6):
        unknown = attempt(app, "ghost", "nope")
        assert unknown.status_code == 401 and unknown.get_json()["detail"] == INVALID_LOGIN


def test_lockout_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", "k" * 48)
    assert (Settings.from_env().login_max_failures, Settings.from_env().lockout_minutes) == (5, 15)
    monkeypatch.setenv("CREDITFLOW_LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("CREDITFLOW_LOCKOUT_MINUTES", "60")
    settings = Settings.from_env()
    assert (settings.login_max_failures, settings.lockout_minutes) == (3, 60)
    # a setting the platform cannot run with is named, not a traceback or a silent zero
    for variable, value, message in (
        ("CREDITFLOW_LOGIN_MAX_FAILURES", "five", "CREDITFLOW_LOGIN_MAX_FAILURES must be a whole number, not 'five'"),
        ("CREDITFLOW_LOCKOUT_MINUTES", "0", "CREDITFLOW_LOCKOUT_MINUTES must be at least 1, not 0"),
        ("CREDITFLOW_SECRET_KEY", "a", "CREDITFLOW_SECRET_KEY must be at least 32 characters"),
    ):
        with monkeypatch.context() as changed:
            changed.setenv(variable, value)
            with pytest.raises(ConfigError) as refused:
                Settings.from_env()
            assert str(refused.value).startswith(message)
            cli_run = CliRunner().invoke(cli, ["db", "upgrade"])
            assert cli_run.exit_code == 2 and cli_run.output.startswith(f"error: {message}"), cli_run.output


def test_service_accounts_and_inactive_users_cannot_log_in(app: Any, seeded: Any, integration: str) -> None:
    refused = attempt(app, integration, PASSWORD)  # the right password, still refused
    assert refused.status_code == 401 and refused.get_json()["detail"] == INVALID_LOGIN

    session = login(app, "ly_officer")
    set_active(seeded, "ly_officer", False)
    assert attempt(app, "ly_officer", PASSWORD).status_code == 401
    assert session.get(ME).status_code == 401


# -- tokens -----------------------------------------------------------------------------------


def test_me_describes_the_signed_in_account(app: Any, seeded: Any) -> None:
    me = login(app, "ly_officer").get(ME)
    assert me.status_code == 200
    body = me.get_json()
    with seeded.db.transaction() as session:
        branch = session.scalars(select(OrgUnit.id).where(OrgUnit.code == "ly-chengguan")).one()
    assert body["username"] == "ly_officer" and body["display_name"] == "陵源客户经理"
    assert body["tenant"] == "bank-lingyuan" and body["org_unit_id"] == branch
    assert body["roles"] == [{"role": "loan_officer", "org_unit_id": branch}]
    assert "tasks.work" in body["permissions"] and "org.admin" not in body["permissions"]


def test_logout_signs_out_only_that_token_and_purges_expired_sign_outs(app: Any, seeded: Any, clock: Any) -> None:
    first, second = login(app, "ly_officer"), login(app, "ly_officer")
    assert first.post("/api/v1/auth/logout").status_code == 204
    gone = first.get(ME)
    assert gone.status_code == 401 and "signed out" in gone.get_json()["detail"]
    assert second.get(ME).status_code == 200

    clock.advance(timedelta(seconds=seeded.settings.token_ttl_seconds))
    third = login(app, "ly_officer")
    assert third.post("/api/v1/auth/logout", json={}).status_code == 204
    with seeded.db.transaction() as session:
        assert len(session.scalars(select(RevokedToken)).all()) == 1  # the first one expired and was purged


def test_logout_everywhere_ends_every_session(app: Any, clock: Any) -> None:
    first, second = login(app, "ly_officer"), login(app, "ly_officer")
    clock.advance(timedelta(seconds=1))
    assert first.post("/api/v1/auth/logout", json={"everywhere": True}).status_code == 204
    assert first.get(ME).status_code == 401
    ended = second.get(ME)
    assert ended.status_code == 401 and "session has ended" in ended.get_json()["detail"]
    assert login(app, "ly_officer").get(ME).status_code == 200


def test_password_change_ends_other_sessions_and_returns_a_working_token(app: Any, clock: Any) -> None:
    current, other = login(app, "ly_officer"), login(app, "ly_officer")
    clock.advance(timedelta(seconds=1))
    changed = current.post("/api/v1/auth/password", json={"old_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.get_json()
    assert current.get(ME).status_code == 401 and other.get(ME).status_code == 401
    fresh = ApiClient(app.test_client(), changed.get_json()["access_token"])
    assert fresh.get(ME).get_json()["username"] == "ly_officer"
    assert attempt(app, "ly_officer", PASSWORD).status_code == 401
    assert login(app, "ly_officer", NEW_PASSWORD).get(ME).status_code == 200


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (PASSWORD, "too short", "new_password"),
        (PASSWORD, PASSWORD, "new_password"),
        ("not the password", NEW_PASSWORD, "old_password"),
    ],
)
def test_password_change_names_the_wrong_field(app: Any, old: str, new: str, field: str) -> None:
    api = login(app, "ly_officer")
    refused = api.post("/api/v1/auth/password", json={"old_password": old, "new_password": new})
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == field
    assert api.get(ME).status_code == 200  # nothing changed, the session lives on


def test_a_token_issued_before_the_sessions_were_revoked_is_refused(app: Any, seeded: Any, clock: Any) -> None:
    api = login(app, "ly_officer")
    clock.advance(timedelta(seconds=1))
    seeded.auth.revoke_sessions(user_row(seeded, "ly_officer").id)
    assert api.get(ME).status_code == 401
    clock.advance(timedelta(milliseconds=1))
    assert login(app, "ly_officer").get(ME).status_code == 200


def test_tokens_expire(app: Any, seeded: Any, clock: Any) -> None:
    api = login(app, "ly_officer")
    clock.advance(timedelta(seconds=seeded.settings.token_ttl_seconds - 1))
    assert api.get(ME).status_code == 200
    clock.advance(timedelta(seconds=1))
    expired = api.get(ME)
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]


# -- API keys ---------------------------------------------------------------------------------


def test_api_key_is_shown_once_and_authenticates_with_either_header(
    app: Any, seeded: Any, clock: Any, integration: str
) -> None:
    admin = login(app, "ly_admin")
    created = create_key(admin, integration)
    plaintext = created["key"]
    _, prefix, secret = plaintext.split("_", 2)
    assert plaintext.startswith("cfk_") and created["prefix"] == prefix and len(secret) >= 43
    assert created["username"] == integration and created["revoked_at"] is None

    listed = admin.get(KEYS)
    assert listed.status_code == 200 and secret not in listed.get_data(as_text=True)
    assert [k["prefix"] for k in listed.get_json()["items"]] == [prefix]
    with seeded.db.transaction() as session:
        stored = session.scalars(select(ApiKey)).one()
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()

    for header in ("Authorization", "X-API-Key"):
        assert with_key(app, plaintext, header).get(ME).get_json()["username"] == integration
    key_client = with_key(app, plaintext)
    assert key_client.get("/api/v1/products").status_code == 200  # the key acts as its loan officer
    assert key_client.post(KEYS, json={"username": integration, "name": "x"}).status_code == 403
    assert key_client.post("/api/v1/auth/logout").status_code == 403  # no password session to end
    assert with_key(app, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")).get(ME).status_code == 401
    assert with_key(app, "cfk_nosuchkey_" + secret).get(ME).status_code == 401


def test_api_key_use_is_recorded_at_most_once_a_minute(app: Any, seeded: Any, clock: Any, integration: str) -> None:
    plaintext = create_key(login(app, "ly_admin"), integration)["key"]
    started = clock.now()

    def last_used() -> Any:
        with seeded.db.transaction() as session:
            return session.scalars(select(ApiKey.last_used_at)).one()

    with_key(app, plaintext).get(ME)
    clock.advance(timedelta(seconds=59))
    with_key(app, plaintext).get(ME)
    assert last_used() == started
    clock.advance(timedelta(seconds=1))
    with_key(app, plaintext).get(ME)
    assert last_used() == clock.now()


def test_revoked_and_expired_keys_and_inactive_users_are_refused(
    app: Any, seeded: Any, clock: Any, integration: str
) -> None:
    admin = login(app, "ly_admin")
    revoked = create_key(admin, integration)
    assert admin.delete(f"{KEYS}/{revoked['id']}").status_code == 204
    refused = with_key(app, revoked["key"]).get(ME)
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]
    assert admin.delete(f"{KEYS}/{revoked['id']}").status_code == 204  # again: nothing changes
    assert admin.get(KEYS).get_json()["items"][0]["revoked_at"] is not None

    past = admin.post(KEYS, json={"username": integration, "name": "x", "expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and past.get_json()["errors"][0]["field"] == "expires_at"
    expiring = create_key(admin, integration, expires_at=(clock.now() + timedelta(hours=1)).isoformat())
    assert with_key(app, expiring["key"]).get(ME).status_code == 200
    clock.advance(timedelta(hours=1))
    expired = with_key(app, expiring["key"]).get(ME)
    assert expired.status_code == 401 and "expired" in expired.get_json()["detail"]

    lasting = create_key(admin, integration)
    set_active(seeded, integration, False)
    assert with_key(app, lasting["key"], "X-API-Key").get(ME).status_code == 401


def test_deactivating_a_user_revokes_its_api_keys_for_good(app: Any, seeded: Any, clock: Any, integration: str) -> None:
    """Reactivating a service account does not bring its keys back: it needs new ones."""
    add_user(seeded, "ly_integration2", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    admin = login(app, "ly_admin")
    earlier = create_key(admin, integration)
    assert admin.delete(f"{KEYS}/{earlier['id']}").status_code == 204
    revoked_earlier = clock.now()
    lasting, other = create_key(admin, integration), create_key(admin, "ly_integration2")
    assert with_key(app, lasting["key"]).get(ME).status_code == 200

    clock.advance(timedelta(hours=1))
    user_id = user_row(seeded, integration).id
    assert admin.post(f"/api/v1/admin/users/{user_id}/deactivate").status_code == 200
    assert with_key(app, lasting["key"]).get(ME).status_code == 401
    assert admin.post(f"/api/v1/admin/users/{user_id}/activate").status_code == 200
    refused = with_key(app, lasting["key"], "X-API-Key").get(ME)
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]

    with seeded.db.transaction() as session:
        revoked_at = dict(session.execute(select(ApiKey.id, ApiKey.revoked_at)).all())
    assert revoked_at == {earlier["id"]: revoked_earlier, lasting["id"]: clock.now(), other["id"]: None}
    assert with_key(app, other["key"]).get(ME).status_code == 200  # another user's key lives on
    fresh = create_key(admin, integration)
    assert with_key(app, fresh["key"]).get(ME).get_json()["username"] == integration


def test_api_keys_of_another_tenant_look_missing(app: Any, integration: str) -> None:
    key = create_key(login(app, "ly_admin"), integration)
    other = login(app, "qh_admin")
    assert other.get(KEYS).get_json()["items"] == []
    assert other.get(KEYS, query_string={"username": integration}).status_code == 404
    assert other.get(KEYS, query_string={"username": "nobody"}).status_code == 404
    hidden, missing = other.delete(f"{KEYS}/{key['id']}"), other.delete(f"{KEYS}/999999")
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.get_json()["detail"] == f"API key {key['id']} does not exist"
    assert other.post(KEYS, json={"username": integration, "name": "x"}).status_code == 404
    assert with_key(app, key["key"]).get(ME).status_code == 200  # still alive

    officer = login(app, "ly_officer")
    assert officer.get(KEYS).status_code == 403
    assert officer.post(KEYS, json={"username": integration, "name": "x"}).status_code == 403
    assert officer.delete(f"{KEYS}/{key['id']}").status_code == 403


def test_the_province_admin_manages_its_banks_keys(app: Any, integration: str) -> None:
    bank_key = create_key(login(app, "ly_admin"), integration)
    province = login(app, "admin")
    assert [k["id"] for k in province.get(KEYS).get_json()["items"]] == [bank_key["id"]]
    own = create_key(province, integration)
    assert own["username"] == integration
    assert province.delete(f"{KEYS}/{bank_key['id']}").status_code == 204
    assert with_key(app, bank_key["key"]).get(ME).status_code == 401
    # the bank's own admin sees the key the province made for its user
    assert {k["id"] for k in login(app, "ly_admin").get(KEYS).get_json()["items"]} == {bank_key["id"], own["id"]}


# -- masking ----------------------------------------------------------------------------------


RID = resident_id()
RID_X = resident_id("11010519491231002")  # a check character of X
CARD = bank_card()


def test_masker_shortens_id_and_card_numbers_inside_text() -> None:
    assert RID_X.endswith("X")
    assert (
        mask_text(f"身份证号{RID}，卡号{CARD}。")
        == f"身份证号{RID[:6]}********{RID[-4:]}，卡号{CARD[:6]}*********{CARD[-4:]}。"
    )
    assert mask_text(f"id={RID_X}") == f"id={RID_X[:6]}********{RID_X[-4:]}"
    assert mask_text("order 12345678901234567890123") == "order 12345678901234567890123"  # too long for either
    assert mask_text(f"ref{RID}") == f"ref{RID}"  # glued to letters: not a standalone number
    assert mask_text("1234567890123") == "1234567890123"  # a millisecond timestamp


def test_masker_redacts_credentials() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    key = "cfk_AbCd1234_" + "s3cr3t-" * 6
    cases = {
        f"Authorization: Bearer {jwt_like}": "Authorization: Bearer [REDACTED]",
        f"token {jwt_like} issued": "token [REDACTED] issued",
        f"Authorization: ApiKey {key}": "Authorization: ApiKey [REDACTED]",
        f"X-API-Key: {key}": "X-API-Key: cfk_AbCd1234_[REDACTED]",
        "login?user=a&password=hunter2&next=1": "login?user=a&password=[REDACTED]&next=1",
        '{"username": "a", "password": "with spaces \\" and quote"}': '{"username": "a", "password": "[REDACTED]"}',
        "{'old_password': 'x', 'new_password': 'y'}": "{'old_password': '[REDACTED]', 'new_password': '[REDACTED]'}",
        "a bearer token is required": "a bearer token is required",
        "engine.services.auth: done": "engine.services.auth: done",
    }
    for text, expected in cases.items():
        assert mask_text(text) == expected, text


def test_audit_payloads_use_the_same_masking() -> None:
    payload = {"applicant": {"id_number": RID, "note": f"持卡{CARD}"}, "password": "x", "amount": 5, "tags": [RID_X]}
    assert mask_sensitive(payload) == {
        "applicant": {"id_number": mask_text(RID), "note": f"持卡{mask_text(CARD)}"},
        "password": "[REDACTED]",
        "amount": 5,
        "tags": [mask_text(RID_X)],
    }
    journal = Journal(actor_id=None)
    journal.record("applicant_checked", note=f"核验身份证{RID}")
    assert journal.events[0].payload == {"note": f"核验身份证{RID[:6]}********{RID[-4:]}"}


def test_logs_carry_no_id_numbers_passwords_or_tokens(seeded: Any, caplog: pytest.LogCaptureFixture) -> None:
    from api import create_app

    caplog.set_level(logging.INFO)
    app = create_app(seeded)  # installs the filter on the root handlers, pytest's capture among them
    assert attempt(app, RID, PASSWORD).status_code == 401  # someone typed an ID number as the user name
    api = login(app, "ly_officer")
    token = api.headers["Authorization"].removeprefix("Bearer ")
    assert (
        api.post("/api/v1/auth/password", json={"old_password": RID, "new_password": NEW_PASSWORD}).status_code == 422
    )
    # the workflow engine's records carry no task data in their extras, which no message filter sees
    deploy(seeded, "inbox.bpmn")
    started = api.post(
        "/api/v1/process-instances",
        json={"definition_key": "inbox_flow", "data": {"applicant": {"name": "张三", "id_number": RID}}},
    )
    assert started.status_code == 201, started.get_json()
    assert not any(RID in repr(vars(r)) for r in caplog.records)
    log = logging.getLogger("creditflow.test")
    log.warning("request %s body %s", {"Authorization": f"Bearer {token}"}, {"id_number": RID, "password": PASSWORD})
    try:
        raise ValueError(f"bureau rejected {RID} for card {CARD}")
    except ValueError:
        log.exception("connector failed")

    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{RID[:6]}********{RID[-4:]}" in m for m in messages)
    assert any("wrong password" in m and "'ly_officer'" in m for m in messages)
    for secret in (RID, PASSWORD, token, CARD):
        assert secret not in caplog.text
        assert not any(secret in m for m in messages)


def test_an_integration_account_submits_but_does_no_human_work(app: Any, seeded: Any, integration: str) -> None:
    """A channel account holding 客户经理 to submit applications was given their investigation (a
    machine in the officer's place) and could complete tasks offered to its role."""
    deploy(seeded, "inbox.bpmn")
    channel = with_key(app, create_key(login(app), integration)["key"])
    assert "tasks.work" not in channel.get(ME).get_json()["permissions"]
    started = channel.post("/api/v1/process-instances", json={"definition_key": "inbox_flow", "data": {}})
    assert started.status_code == 201, started.get_json()
    (task,) = started.get_json()["tasks"]
    assert task["assignee_id"] is None  # offered to the branch's officers
    assert channel.post(f"/api/v1/tasks/{task['id']}/claim").status_code == 403
    assert channel.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}}).status_code == 403
    assert task["id"] in {t["id"] for t in login(app, "ly_officer").get("/api/v1/tasks").get_json()["items"]}
