"""An administrator's password reset and the operators' break-glass ``users set-password``: a temporary
password that opens nothing but its own change, expires, is recorded in the change trail without the
secret, and appears in no log line."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import subprocess
import sys
import termios
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api.security import PASSWORD_CHANGE_ENDPOINTS
from engine.cli import main as cli
from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.services.auth import INVALID_LOGIN, TEMPORARY_PASSWORD_EXPIRED, password_problem
from engine.store.models import OrgChange, User
from tests.conftest import PASSWORD, ApiClient, login
from tests.test_accounts import NEW_PASSWORD, add_user, attempt, user_row
from tests.test_authorization import endpoints
from tests.test_org_changes import changes, count, row_text, stored

ADMIN = "/api/v1/admin"
ME = "/api/v1/auth/me"
CHANGE = "/api/v1/auth/password"
PROBLEM = "application/problem+json"
CHANGE_REQUIRED = "urn:creditflow:problem:password-change-required"
GENERATED = re.compile(r"[A-HJ-NP-Za-km-z2-9]{5}(-[A-HJ-NP-Za-km-z2-9]{5}){3}")


def reset(admin: ApiClient, platform: CreditFlow, username: str) -> Any:
    return admin.post(f"{ADMIN}/users/{user_row(platform, username).id}/reset-password")


def reset_ok(admin: ApiClient, platform: CreditFlow, username: str) -> dict[str, Any]:
    response = reset(admin, platform, username)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def token_of(app: Any, username: str, password: str) -> dict[str, Any]:
    response = attempt(app, username, password)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def session_of(app: Any, token: dict[str, Any]) -> ApiClient:
    return ApiClient(app.test_client(), token["access_token"])


def assert_change_required(response: Any) -> None:
    assert response.status_code == 403 and response.mimetype == PROBLEM, response.get_json()
    body = response.get_json()
    assert (body["type"], body["title"]) == (CHANGE_REQUIRED, "Password change required")
    assert "POST /api/v1/auth/password" in body["detail"]


# -- the administrator's reset, through the API ------------------------------------------------


def test_a_reset_unlocks_ends_the_sessions_and_the_user_must_change_the_password(
    seeded: CreditFlow, app: Any, clock: FrozenClock
) -> None:
    old_session = login(app, "ly_officer")
    for n in range(5):
        attempt(app, "ly_officer", f"wrong guess {n}")
    assert user_row(seeded, "ly_officer").locked_until is not None
    clock.advance(timedelta(seconds=1))

    admin = login(app, "ly_admin")
    response = reset(admin, seeded, "ly_officer")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    temporary = body["temporary_password"]
    assert GENERATED.fullmatch(temporary) and password_problem(temporary) is None
    assert body["temporary_password_expires_at"] == (clock.now() + timedelta(hours=72)).isoformat()
    assert (body["failed_logins"], body["locked_until"], body["tokens_valid_after"]) == (
        0,
        None,
        clock.now().isoformat(),
    )
    assert reset_ok(admin, seeded, "ly_reviewer")["temporary_password"] != temporary  # generated afresh each time

    assert old_session.get(ME).status_code == 401  # whoever knew the old password is signed out
    assert attempt(app, "ly_officer", PASSWORD).get_json()["detail"] == INVALID_LOGIN
    assert user_row(seeded, "ly_officer").password_hash.startswith("$argon2")  # a hash, never the password

    token = token_of(app, "ly_officer", temporary)
    assert token["password_change_required"] is True
    restricted = session_of(app, token)
    me = restricted.get(ME).get_json()
    assert me["password_change_required"] is True and me["permissions"] == []
    assert me["temporary_password_expires_at"] == body["temporary_password_expires_at"]
    assert me["roles"] == [{"role": "loan_officer", "org_unit_id": user_row(seeded, "ly_officer").org_unit_id}]
    assert_change_required(restricted.get("/api/v1/tasks"))

    changed = restricted.post(CHANGE, json={"old_password": temporary, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["password_change_required"] is False
    assert restricted.get(ME).status_code == 401  # the temporary session ended with the change
    fresh = session_of(app, changed.get_json())
    assert fresh.get("/api/v1/tasks").status_code == 200
    own = fresh.get(ME).get_json()
    assert own["password_change_required"] is False and own["temporary_password_expires_at"] is None
    assert "tasks.work" in own["permissions"]
    assert attempt(app, "ly_officer", temporary).status_code == 401  # one use only
    assert token_of(app, "ly_officer", NEW_PASSWORD)["password_change_required"] is False
    assert admin.get(f"{ADMIN}/users/{me['id']}").get_json()["temporary_password_expires_at"] is None


@pytest.fixture
def ly_admin2(seeded: CreditFlow) -> None:
    """A second administrator of 陵源, whose password the first one resets."""
    add_user(seeded, "ly_admin2", "bank-lingyuan", "admin", "ly-hq")


@pytest.mark.usefixtures("ly_admin2")
def test_a_temporary_password_session_may_do_nothing_but_change_it(seeded: CreditFlow, app: Any) -> None:
    temporary = reset_ok(login(app, "ly_admin"), seeded, "ly_admin2")["temporary_password"]
    restricted = session_of(app, token_of(app, "ly_admin2", temporary))
    walked = [e for e in endpoints(app) if e.endpoint not in PASSWORD_CHANGE_ENDPOINTS]
    assert len(walked) > 80  # every endpoint of the API, from its URL map
    for endpoint in walked:
        response = getattr(restricted, endpoint.method.lower())(endpoint.url(dict.fromkeys(endpoint.params, 1)))
        assert_change_required(response)
    assert restricted.get(ME).status_code == 200
    assert restricted.post("/api/v1/auth/logout").status_code == 204
    assert restricted.get(ME).status_code == 401


def test_a_temporary_password_expires(seeded: CreditFlow, app: Any, clock: FrozenClock) -> None:
    admin = login(app, "ly_admin")
    temporary = reset_ok(admin, seeded, "ly_officer")["temporary_password"]
    clock.advance(timedelta(hours=seeded.settings.temporary_password_hours) - timedelta(seconds=1))
    restricted = session_of(app, token_of(app, "ly_officer", temporary))
    assert restricted.get(ME).status_code == 200

    clock.advance(timedelta(seconds=1))
    expired = restricted.get(ME)
    assert expired.status_code == 401 and expired.get_json()["detail"] == TEMPORARY_PASSWORD_EXPIRED
    refused = restricted.post(CHANGE, json={"old_password": temporary, "new_password": NEW_PASSWORD})
    assert refused.status_code == 401
    assert attempt(app, "ly_officer", temporary).get_json()["detail"] == TEMPORARY_PASSWORD_EXPIRED
    assert user_row(seeded, "ly_officer").failed_logins == 0  # the right (expired) password is no guess

    clock.advance(timedelta(seconds=1))
    again = reset_ok(login(app, "ly_admin"), seeded, "ly_officer")["temporary_password"]
    assert token_of(app, "ly_officer", again)["password_change_required"] is True


def test_the_temporary_password_lifetime_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(tmp_path))
    assert Settings.from_env().temporary_password_hours == 72
    monkeypatch.setenv("CREDITFLOW_TEMPORARY_PASSWORD_HOURS", "24")
    assert Settings.from_env().temporary_password_hours == 24


@pytest.mark.usefixtures("ly_admin2")
def test_a_reset_is_scoped_like_the_other_user_administration(seeded: CreditFlow, app: Any) -> None:
    add_user(seeded, "ly_core", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    lingyuan = login(app, "ly_admin")
    before = user_row(seeded, "qh_officer").password_hash, count(seeded)

    missing = lingyuan.post(f"{ADMIN}/users/999999/reset-password")
    other_bank = reset(lingyuan, seeded, "qh_officer")
    assert missing.status_code == other_bank.status_code == 404 and other_bank.mimetype == PROBLEM
    assert other_bank.get_json()["title"] == missing.get_json()["title"]
    assert "temporary_password" not in other_bank.get_json()
    for colleague in ("ly_officer", "ly_risk"):  # reading the organisation is not administering it
        refused = reset(login(app, colleague), seeded, "ly_reviewer")
        assert refused.status_code == 403 and "org.admin" in refused.get_json()["detail"]
    own = reset(lingyuan, seeded, "ly_admin")
    assert own.status_code == 409 and "auth/password" in own.get_json()["detail"]
    service = reset(lingyuan, seeded, "ly_core")
    assert service.status_code == 409 and "API keys" in service.get_json()["detail"]
    assert (user_row(seeded, "qh_officer").password_hash, count(seeded)) == before  # nothing written

    assert reset(login(app, "ly_admin2"), seeded, "ly_admin").status_code == 200  # a fellow administrator may
    province = login(app, "admin")  # the province administers its banks' users
    temporary = reset_ok(province, seeded, "qh_officer")["temporary_password"]
    assert token_of(app, "qh_officer", temporary)["password_change_required"] is True


def test_a_reset_is_in_the_change_trail_without_the_password(seeded: CreditFlow, app: Any, clock: FrozenClock) -> None:
    for n in range(2):
        attempt(app, "ly_officer", f"wrong guess {n}")
    admin = login(app, "ly_admin")
    clock.advance(timedelta(minutes=1))
    temporary = reset_ok(admin, seeded, "ly_officer")["temporary_password"]

    expires = (clock.now() + timedelta(hours=72)).isoformat()
    (entry,) = changes(login(app, "ly_risk"), "?action=user.password_reset")
    assert (entry["subject"], entry["actor"], entry["tenant"]) == ("ly_officer", "ly_admin", "bank-lingyuan")
    assert entry["details"] == {
        "temporary": True,
        "changes": [
            {"path": "/failed_logins", "old": 2, "new": 0},
            {"path": "/temporary_password_expires_at", "old": None, "new": expires},
            {"path": "/tokens_valid_after", "old": None, "new": clock.now().isoformat()},
        ],
    }
    assert not any(temporary in row_text(change) for change in stored(seeded))


# -- the operators' break glass, on the command line -------------------------------------------


def set_password(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = "") -> Any:
    """``creditflow users set-password`` with standard input that is no terminal (a script's pipe)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    return CliRunner().invoke(cli, ["users", "set-password", *args], input=stdin)


def test_operators_set_a_password_from_standard_input(
    seeded: CreditFlow, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = "break-glass passphrase"
    result = set_password(settings, monkeypatch, "admin", stdin=f"{chosen}\n")
    assert result.exit_code == 0, result.output
    assert "admin" in result.output and "changed at the next sign-in" in result.output and chosen not in result.output
    assert seeded.auth.issue_token("admin", chosen).password_change_required is True
    expires = user_row(seeded, "admin").temporary_password_expires_at
    assert expires is not None and f"before {expires.isoformat()}" in result.output
    shown = CliRunner().invoke(cli, ["users", "show", "admin"]).output
    assert f"temporary password (to be changed) until: {expires.isoformat()}" in shown

    permanent = set_password(settings, monkeypatch, "admin", "--permanent", stdin=f"{NEW_PASSWORD}\n")
    assert permanent.exit_code == 0, permanent.output
    assert seeded.auth.issue_token("admin", NEW_PASSWORD).password_change_required is False
    assert user_row(seeded, "admin").temporary_password_expires_at is None

    generated = set_password(settings, monkeypatch, "ly_admin", "--generate", stdin="ignored\n")
    assert generated.exit_code == 0, generated.output
    password = re.search(r"shown only this once\): (\S+)", generated.output).group(1)
    assert GENERATED.fullmatch(password)
    assert seeded.auth.issue_token("ly_admin", password).password_change_required is True

    (entry, *_) = changes_of(seeded, "ly_admin")
    assert (entry.actor_id, entry.details["temporary"]) == (None, True)  # the command line: no actor
    assert [c.details["temporary"] for c in changes_of(seeded, "admin")] == [False, True]


def changes_of(platform: CreditFlow, subject: str) -> list[OrgChange]:
    """The password resets of ``subject``, newest first."""
    with platform.db.transaction() as session:
        stmt = select(OrgChange).where(OrgChange.subject == subject, OrgChange.action == "user.password_reset")
        return list(session.scalars(stmt.order_by(OrgChange.id.desc())))


@pytest.mark.parametrize(
    ("args", "stdin", "names"),
    [
        (("ly_officer",), "short\n", "password"),
        (("ly_officer",), "", "password"),  # nothing piped in
        (("nobody",), "a long enough passphrase\n", "nobody"),
        (("ly_core",), "a long enough passphrase\n", "API keys"),
    ],
)
def test_set_password_refuses_what_it_cannot_set(
    seeded: CreditFlow,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    stdin: str,
    names: str,
) -> None:
    add_user(seeded, "ly_core", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    before = count(seeded)
    result = set_password(settings, monkeypatch, *args, stdin=stdin)
    assert result.exit_code == 1 and names in result.output
    assert count(seeded) == before
    assert seeded.auth.issue_token("ly_officer", PASSWORD).password_change_required is False


def test_set_password_on_a_terminal_reads_it_twice_without_echo(seeded: CreditFlow, settings: Settings) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CREDITFLOW_SECRET_KEY": settings.secret_key,
        "CREDITFLOW_DATA_DIR": str(settings.data_dir),
    }
    primary, secondary = os.openpty()
    chosen = "typed at the console"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "users", "set-password", "admin"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        start_new_session=True,  # its own session, whose controlling terminal is the pty (getpass opens /dev/tty)
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(secondary)
    shown = b""
    try:
        for prompt in (b"New password: ", b"Repeat for confirmation: "):
            while prompt not in shown:
                shown += os.read(primary, 1024)
            os.write(primary, f"{chosen}\n".encode())
            shown = shown.replace(prompt, b"", 1)
        assert proc.wait(timeout=60) == 0
        while chunk := _read_rest(primary):
            shown += chunk
    finally:
        os.close(primary)
    assert chosen.encode() not in shown
    assert b"changed at the next sign-in" in shown
    assert seeded.auth.issue_token("admin", chosen).password_change_required is True


def _read_rest(fd: int) -> bytes:
    """What the terminal still holds; a closed pty raises EIO on Linux once drained."""
    try:
        return os.read(fd, 1024)
    except OSError:
        return b""


# -- secrets stay out of the logs ---------------------------------------------------------------


def test_no_password_of_a_reset_reaches_the_logs(
    seeded: CreditFlow, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api import create_app

    caplog.set_level(logging.DEBUG)
    app = create_app(seeded)
    temporary = reset_ok(login(app, "ly_admin"), seeded, "ly_officer")["temporary_password"]
    restricted = session_of(app, token_of(app, "ly_officer", temporary))
    assert restricted.post(CHANGE, json={"old_password": temporary, "new_password": NEW_PASSWORD}).status_code == 200
    chosen = "break-glass passphrase"
    assert set_password(settings, monkeypatch, "ly_reviewer", stdin=f"{chosen}\n").exit_code == 0
    generated = set_password(settings, monkeypatch, "ly_approver", "--generate").output
    printed = re.search(r"shown only this once\): (\S+)", generated).group(1)

    messages = [r.getMessage() for r in caplog.records]
    assert any("ly_officer given a temporary password" in m and "by ly_admin" in m for m in messages)
    assert any("ly_reviewer given a temporary password" in m and "by system" in m for m in messages)
    for secret in (temporary, NEW_PASSWORD, chosen, printed):
        assert secret not in caplog.text
        assert not any(secret in repr(vars(r)) for r in caplog.records)
    with seeded.db.transaction() as session:
        hashes = set(session.scalars(select(User.password_hash)))
    assert not hashes & {temporary, NEW_PASSWORD, chosen, printed}
