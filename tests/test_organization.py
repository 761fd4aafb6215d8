"""Organisation administration: the unit tree, users, role grants, groups, tenant isolation, the CLI."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main as cli
from engine.services.principal import Principal
from engine.store.models import OrgUnit, User, UserGroup
from tests.conftest import PASSWORD, ApiClient, login
from tests.test_cli import invoke

PROBLEM = "application/problem+json"
ADMIN = "/api/v1/admin"


def row_id(platform: Any, model: Any, **where: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(model.id).filter_by(**where)).one()


def unit(platform: Any, code: str) -> OrgUnit:
    with platform.db.transaction() as session:
        return session.scalars(select(OrgUnit).where(OrgUnit.code == code)).one()


def fields_of(response: Any, status: int = 422) -> set[str]:
    """The fields a problem response names (and that it is one)."""
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    return {e["field"] for e in response.get_json().get("errors", [])}


def can_sign_in(app: Any, username: str, password: str) -> int:
    return app.test_client().post("/api/v1/auth/token", json={"username": username, "password": password}).status_code


# -- the unit tree ----------------------------------------------------------------------------


def test_units_are_listed_in_tree_order_and_placed_by_kind(seeded: Any, api: ApiClient) -> None:
    listed = api.get(f"{ADMIN}/org-units?tenant=bank-lingyuan").get_json()["items"]
    assert [(u["code"], u["depth"], u["parent_code"]) for u in listed] == [
        ("ly-hq", 0, None),
        ("ly-chengguan", 1, "ly-hq"),
        ("ly-dongjie", 2, "ly-chengguan"),
        ("ly-grid-01", 2, "ly-chengguan"),
        ("ly-xiguan", 1, "ly-hq"),
        ("ly-grid-02", 2, "ly-xiguan"),
    ]

    def create(**body: Any) -> Any:
        return api.post(f"{ADMIN}/org-units", json={"tenant": "bank-lingyuan", "name": "新单位", **body})

    branch = create(code="ly-nanguan", kind="branch", parent_code="ly-hq")
    assert branch.status_code == 201, branch.get_json()
    assert branch.get_json()["path"] == f"{unit(seeded, 'ly-hq').path}{branch.get_json()['id']}/"
    grid = create(code="ly-grid-03", kind="grid", parent_code="ly-dongjie")
    assert grid.status_code == 201 and grid.get_json()["depth"] == 3

    assert fields_of(create(code="x1", kind="sub_branch", parent_code="ly-hq")) == {"parent_code"}
    assert fields_of(create(code="x2", kind="grid", parent_code="ly-grid-01")) == {"parent_code"}
    assert fields_of(create(code="x3", kind="branch")) == {"parent_code"}
    assert fields_of(create(code="x4", kind="branch", parent_code="qh-hq")) == {"parent_code"}  # another bank's
    assert fields_of(create(code="x5", kind="head_office", parent_code="ly-hq")) == {"parent_code"}
    assert fields_of(create(code="x6", kind="region", parent_code="ly-hq")) == {"kind"}
    assert fields_of(create(code="bad code", name=" ", kind="branch", parent_code="nope")) == {
        "code",
        "name",
        "parent_code",
    }
    assert fields_of(create(code="ly-hq2", kind="head_office"), 409) == {"kind"}
    assert fields_of(create(code="ly-nanguan", kind="branch", parent_code="ly-hq"), 409) == {"code"}
    # the same code in another bank is fine: codes are unique per tenant
    qinghe = api.post(
        f"{ADMIN}/org-units",
        json={"tenant": "bank-qinghe", "code": "ly-nanguan", "name": "南关", "kind": "branch", "parent_code": "qh-hq"},
    )
    assert qinghe.status_code == 201


def test_moving_a_unit_rewrites_the_paths_of_its_whole_subtree(seeded: Any, api: ApiClient) -> None:
    system = Principal.system()
    organization = seeded.organization
    grid = organization.create_unit(system, "bank-lingyuan", "ly-grid-09", "东街网格", "grid", "ly-dongjie")
    dongjie, xiguan = unit(seeded, "ly-dongjie"), unit(seeded, "ly-xiguan")

    moved = api.patch(f"{ADMIN}/org-units/{dongjie.id}", json={"parent_code": "ly-xiguan", "name": "东街分理处（迁）"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["path"] == f"{xiguan.path}{dongjie.id}/"
    assert moved.get_json()["parent_code"] == "ly-xiguan" and moved.get_json()["name"] == "东街分理处（迁）"
    assert unit(seeded, "ly-grid-09").path == f"{xiguan.path}{dongjie.id}/{grid.id}/"
    assert unit(seeded, "ly-grid-01").path == f"{unit(seeded, 'ly-chengguan').path}{unit(seeded, 'ly-grid-01').id}/"

    organization.move_unit(system, grid.id, "ly-xiguan")  # a grid may hang under a branch too
    assert unit(seeded, "ly-grid-09").path == f"{xiguan.path}{grid.id}/"
    assert organization.rename_unit(system, grid.id, "西关二网格").name == "西关二网格"

    chengguan = unit(seeded, "ly-chengguan")
    into_own_subtree = api.patch(f"{ADMIN}/org-units/{chengguan.id}", json={"parent_code": "ly-grid-01"})
    assert fields_of(into_own_subtree) == {"parent_code"}
    assert "own subtree" in into_own_subtree.get_json()["errors"][0]["message"]
    assert fields_of(api.patch(f"{ADMIN}/org-units/{chengguan.id}", json={"parent_code": "ly-xiguan"})) == {
        "parent_code"
    }
    hq = unit(seeded, "ly-hq")
    assert fields_of(api.patch(f"{ADMIN}/org-units/{hq.id}", json={"parent_code": "ly-xiguan"})) == {"parent_code"}
    assert fields_of(api.patch(f"{ADMIN}/org-units/{hq.id}", json={})) == {"body"}
    # nothing half-written: the valid rename is not kept when the move is refused
    refused = api.patch(f"{ADMIN}/org-units/{chengguan.id}", json={"name": "改名", "parent_code": "ly-grid-02"})
    assert refused.status_code == 422
    assert unit(seeded, "ly-chengguan").name == chengguan.name
    assert api.patch(f"{ADMIN}/org-units/999999", json={"name": "x"}).status_code == 404


# -- users ------------------------------------------------------------------------------------


def test_a_created_user_signs_in_with_the_generated_password(
    app: Any, api: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.services.organization")
    created = api.post(
        f"{ADMIN}/users",
        json={
            "tenant": "bank-lingyuan",
            "username": "ly_new",
            "display_name": "新客户经理",
            "org_unit_code": "ly-grid-01",
        },
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    password = body["generated_password"]
    assert len(password) >= 12 and "password_hash" not in body
    assert body["org_unit_code"] == "ly-grid-01" and body["is_active"] and body["roles"] == []
    assert login(app, "ly_new", password)
    fetched = api.get(f"{ADMIN}/users/{body['id']}").get_json()
    assert "generated_password" not in fetched and "password_hash" not in fetched
    assert "ly_new" in caplog.text and password not in caplog.text

    chosen = "a long enough passphrase"
    own = api.post(
        f"{ADMIN}/users",
        json={"tenant": "bank-lingyuan", "username": "ly_own", "display_name": "自选", "password": chosen},
    )
    assert own.status_code == 201 and own.get_json()["generated_password"] is None
    assert login(app, "ly_own", chosen) and chosen not in caplog.text

    service = api.post(
        f"{ADMIN}/users",
        json={"tenant": "bank-lingyuan", "username": "core-banking", "display_name": "核心系统", "is_service": True},
    )
    assert service.status_code == 201 and service.get_json()["generated_password"] is None
    assert service.get_json()["is_service"]


def test_user_input_problems_name_their_fields(api: ApiClient) -> None:
    def create(**body: Any) -> Any:
        return api.post(f"{ADMIN}/users", json={"tenant": "bank-lingyuan", "display_name": "某人", **body})

    assert fields_of(create(username="ly_short", password="too-short")) == {"password"}
    assert fields_of(create(username="bot", is_service=True, password="a long enough passphrase")) == {"password"}
    assert fields_of(create(username="has space", display_name="", org_unit_code="qh-hq")) == {
        "username",
        "display_name",
        "org_unit_code",
    }
    assert fields_of(create(username="x", tenant="bank-nowhere")) == {"tenant"}
    assert fields_of(create(username="ly_officer"), 409) == {"username"}


def test_updating_a_user_changes_name_and_home_unit(seeded: Any, api: ApiClient) -> None:
    officer = row_id(seeded, User, username="ly_officer")
    updated = api.patch(
        f"{ADMIN}/users/{officer}", json={"display_name": "陵源客户经理甲", "org_unit_code": "ly-xiguan"}
    )
    assert updated.status_code == 200
    assert (updated.get_json()["display_name"], updated.get_json()["org_unit_code"]) == ("陵源客户经理甲", "ly-xiguan")
    assert fields_of(api.patch(f"{ADMIN}/users/{officer}", json={"org_unit_code": "qh-hebei"})) == {"org_unit_code"}
    assert api.get(f"{ADMIN}/users/{officer}").get_json()["org_unit_code"] == "ly-xiguan"


def test_grants_and_revokes_show_on_the_user(seeded: Any, api: ApiClient) -> None:
    officer = row_id(seeded, User, username="ly_officer")
    roles = f"{ADMIN}/users/{officer}/roles"
    granted = api.post(roles, json={"role": "reviewer", "org_unit_code": "ly-hq"})
    assert granted.status_code == 201
    assert {"role": "reviewer", "org_unit_code": "ly-hq"} in api.get(f"{ADMIN}/users/{officer}").get_json()["roles"]
    assert fields_of(api.post(roles, json={"role": "reviewer", "org_unit_code": "ly-hq"}), 409) == {"role"}
    assert api.post(roles, json={"role": "co_investigator"}).status_code == 201  # the whole tenant
    assert fields_of(api.post(roles, json={"role": "co_investigator"}), 409) == {"role"}
    assert fields_of(api.post(roles, json={"role": "astrologer"})) == {"role"}
    assert fields_of(api.post(roles, json={"role": "reviewer", "org_unit_code": "qh-hq"})) == {"org_unit_code"}
    with_role = api.get(f"{ADMIN}/users?tenant=bank-lingyuan&role=reviewer").get_json()
    assert "ly_officer" in {u["username"] for u in with_role["items"]} and with_role["total"] == 3

    revoked = api.delete(f"{roles}?role=reviewer&org_unit_code=ly-hq")
    assert revoked.status_code == 200
    assert api.delete(roles, json={"role": "co_investigator"}).status_code == 200  # as a JSON body
    assert api.get(f"{ADMIN}/users/{officer}").get_json()["roles"] == [
        {"role": "loan_officer", "org_unit_code": "ly-chengguan"}
    ]
    assert fields_of(api.delete(f"{roles}?role=reviewer&org_unit_code=ly-hq"), 404) == set()


def test_a_deactivated_user_cannot_sign_in_until_activated(seeded: Any, app: Any, api: ApiClient) -> None:
    officer = row_id(seeded, User, username="ly_officer")
    session_before = login(app, "ly_officer")
    assert api.post(f"{ADMIN}/users/{officer}/deactivate").get_json()["is_active"] is False
    assert can_sign_in(app, "ly_officer", PASSWORD) == 401
    assert session_before.get(f"{ADMIN}/org-units").status_code == 401
    assert api.post(f"{ADMIN}/users/{officer}/activate").get_json()["is_active"] is True
    assert can_sign_in(app, "ly_officer", PASSWORD) == 200
    own = row_id(seeded, User, username="admin")
    assert api.post(f"{ADMIN}/users/{own}/deactivate").status_code == 409


def test_deactivation_ends_every_session_for_good(seeded: Any, app: Any, api: ApiClient, clock: Any) -> None:
    """Reactivating the account does not bring back a session that was open when it was deactivated."""
    officer = row_id(seeded, User, username="ly_officer")
    session_before = login(app, "ly_officer")
    clock.advance(timedelta(seconds=1))
    deactivated = api.post(f"{ADMIN}/users/{officer}/deactivate").get_json()
    assert deactivated["is_active"] is False and deactivated["tokens_valid_after"] == clock.now().isoformat()
    with seeded.db.transaction() as session:
        assert session.get(User, officer).tokens_valid_after == clock.now()  # committed with the deactivation
    assert session_before.get(f"{ADMIN}/org-units").status_code == 401

    clock.advance(timedelta(minutes=5))
    assert api.post(f"{ADMIN}/users/{officer}/activate").get_json()["is_active"] is True
    ended = session_before.get(f"{ADMIN}/org-units")
    assert ended.status_code == 401 and "session has ended" in ended.get_json()["detail"]
    assert login(app, "ly_officer").get(f"{ADMIN}/org-units").status_code == 200


def test_unlock_clears_the_lock_and_revoking_sessions_stamps_the_time(
    seeded: Any, app: Any, api: ApiClient, clock: Any
) -> None:
    with seeded.db.transaction(write=True) as session:
        user = session.scalars(select(User).where(User.username == "ly_officer")).one()
        user.failed_logins, user.locked_until = 5, clock.now() + timedelta(minutes=30)
    shown = api.get(f"{ADMIN}/users/{user.id}").get_json()
    assert shown["failed_logins"] == 5 and shown["locked_until"] is not None  # the administrator sees why
    colleague = login(app, "ly_reviewer").get(f"{ADMIN}/users/{user.id}").get_json()
    assert (colleague["failed_logins"], colleague["locked_until"]) == (None, None)  # a colleague does not
    unlocked = api.post(f"{ADMIN}/users/{user.id}/unlock").get_json()
    assert (unlocked["failed_logins"], unlocked["locked_until"]) == (0, None)
    with seeded.db.transaction() as session:
        stored = session.get(User, user.id)
        assert (stored.failed_logins, stored.locked_until) == (0, None)
    revoked = api.post(f"{ADMIN}/users/{user.id}/revoke-sessions").get_json()
    assert revoked["tokens_valid_after"] == clock.now().isoformat()


# -- groups and the role catalogue ------------------------------------------------------------


def test_groups_take_members_of_their_own_tenant_only(seeded: Any, api: ApiClient) -> None:
    created = api.post(f"{ADMIN}/groups", json={"tenant": "bank-lingyuan", "code": "ly-risk-board", "name": "风控小组"})
    assert created.status_code == 201 and created.get_json()["members"] == []
    group = created.get_json()["id"]
    assert fields_of(
        api.post(f"{ADMIN}/groups", json={"tenant": "bank-lingyuan", "code": "ly-risk-board", "name": "x"}), 409
    ) == {"code"}
    risk, other_bank = row_id(seeded, User, username="ly_risk"), row_id(seeded, User, username="qh_risk")
    members = f"{ADMIN}/groups/{group}/members"
    assert api.post(f"{members}/{risk}").get_json()["members"] == ["ly_risk"]
    assert api.post(f"{members}/{risk}").status_code == 409
    assert fields_of(api.post(f"{members}/{other_bank}")) == {"user"}
    listed = {g["code"]: g for g in api.get(f"{ADMIN}/groups?tenant=bank-lingyuan").get_json()["items"]}
    assert listed["ly-risk-board"]["members"] == ["ly_risk"] and len(listed["ly-credit-committee"]["members"]) == 3
    assert api.get(f"{ADMIN}/users/{risk}").get_json()["groups"] == ["ly-risk-board"]
    assert api.delete(f"{members}/{risk}").get_json()["members"] == []
    assert api.delete(f"{members}/{risk}").status_code == 404


def test_the_role_catalogue_is_listed(app: Any) -> None:
    roles = {r["code"]: r for r in login(app, "ly_officer").get(f"{ADMIN}/roles").get_json()["items"]}
    officer = roles["loan_officer"]
    assert (officer["name"], officer["scope"], officer["duty"]) == ("客户经理", "application", "investigate")
    assert "applications.create" in officer["permissions"] and roles["reviewer"]["scope"] == "head_office"
    assert "org.admin" in roles["admin"]["permissions"]


# -- who may do what --------------------------------------------------------------------------


def test_a_bank_admin_neither_sees_nor_touches_another_bank(seeded: Any, app: Any) -> None:
    lingyuan = login(app, "ly_admin")
    qh_user, qh_unit = row_id(seeded, User, username="qh_officer"), row_id(seeded, OrgUnit, code="qh-hebei")
    qh_group = row_id(seeded, UserGroup, code="qh-credit-committee")
    ly_user = row_id(seeded, User, username="ly_officer")
    missing = lingyuan.get(f"{ADMIN}/users/999999")
    for response in [
        lingyuan.get(f"{ADMIN}/users/{qh_user}"),
        lingyuan.patch(f"{ADMIN}/users/{qh_user}", json={"display_name": "x"}),
        lingyuan.post(f"{ADMIN}/users/{qh_user}/deactivate"),
        lingyuan.post(f"{ADMIN}/users/{qh_user}/roles", json={"role": "reviewer"}),
        lingyuan.patch(f"{ADMIN}/org-units/{qh_unit}", json={"name": "x"}),
        lingyuan.post(f"{ADMIN}/groups/{qh_group}/members/{ly_user}"),
        lingyuan.delete(f"{ADMIN}/groups/{qh_group}/members/{qh_user}"),
    ]:
        assert response.status_code == 404 and response.mimetype == PROBLEM
        assert response.get_json()["title"] == missing.get_json()["title"]

    new_unit = {"code": "qh-x", "name": "x", "kind": "branch", "parent_code": "qh-hq"}
    into_qinghe = lingyuan.post(f"{ADMIN}/org-units", json={"tenant": "bank-qinghe", **new_unit})
    into_nowhere = lingyuan.post(f"{ADMIN}/org-units", json={"tenant": "bank-nowhere", **new_unit})
    assert (
        fields_of(into_qinghe) == {"tenant"} and into_qinghe.get_json()["errors"] == into_nowhere.get_json()["errors"]
    )
    assert fields_of(lingyuan.get(f"{ADMIN}/users?tenant=bank-qinghe")) == {"tenant"}
    assert {u["tenant"] for u in lingyuan.get(f"{ADMIN}/users?limit=200").get_json()["items"]} == {"bank-lingyuan"}
    assert {u["tenant"] for u in lingyuan.get(f"{ADMIN}/org-units").get_json()["items"]} == {"bank-lingyuan"}
    assert {g["tenant"] for g in lingyuan.get(f"{ADMIN}/groups").get_json()["items"]} == {"bank-lingyuan"}
    # without a tenant a bank admin works in its own bank
    own = lingyuan.post(f"{ADMIN}/org-units", json={**new_unit, "code": "ly-x", "parent_code": "ly-hq"})
    assert own.status_code == 201 and own.get_json()["tenant"] == "bank-lingyuan"

    province = login(app, "admin")
    assert province.post(f"{ADMIN}/org-units", json={"tenant": "bank-qinghe", **new_unit}).status_code == 201
    assert (
        province.post(f"{ADMIN}/users/{qh_user}/roles", json={"role": "reviewer", "org_unit_code": "qh-hq"}).status_code
        == 201
    )
    assert {u["tenant"] for u in province.get(f"{ADMIN}/org-units").get_json()["items"]} == {
        "province",
        "bank-lingyuan",
        "bank-qinghe",
    }
    assert login(app, "qh_admin").get(f"{ADMIN}/users/{qh_user}").status_code == 200


def test_a_loan_officer_reads_the_organisation_but_cannot_administer_it(seeded: Any, app: Any) -> None:
    officer = login(app, "ly_officer")
    assert officer.get(f"{ADMIN}/org-units").status_code == 200
    assert officer.get(f"{ADMIN}/users").status_code == 200
    user = row_id(seeded, User, username="ly_officer")
    for response in [
        officer.post(f"{ADMIN}/org-units", json={"code": "x", "name": "x", "kind": "branch", "parent_code": "ly-hq"}),
        officer.patch(f"{ADMIN}/org-units/{row_id(seeded, OrgUnit, code='ly-hq')}", json={"name": "x"}),
        officer.post(f"{ADMIN}/users", json={"username": "x", "display_name": "x"}),
        officer.patch(f"{ADMIN}/users/{user}", json={"display_name": "x"}),
        officer.post(f"{ADMIN}/users/{user}/roles", json={"role": "admin"}),
        officer.delete(f"{ADMIN}/users/{user}/roles?role=loan_officer&org_unit_code=ly-chengguan"),
        officer.post(f"{ADMIN}/users/{user}/unlock"),
        officer.post(f"{ADMIN}/groups", json={"code": "x", "name": "x"}),
    ]:
        assert response.status_code == 403 and response.mimetype == PROBLEM


# -- the command line -------------------------------------------------------------------------


def run(*args: str, stdin: str | None = None) -> Any:
    """The command line against the database the previous ``invoke`` pointed it at."""
    return CliRunner().invoke(cli, list(args), input=stdin)


def test_organisation_from_the_command_line(seeded: Any, settings: Any, monkeypatch: Any) -> None:
    unit_args = ["--tenant", "bank-qinghe", "--code", "qh-nanhe", "--name", "南河支行", "--kind", "branch"]
    added = invoke(settings, monkeypatch, "org", "add-unit", *unit_args, "--parent", "qh-hq")
    assert added.exit_code == 0, added.output
    tree = run("org", "units", "--tenant", "bank-qinghe").output.splitlines()
    assert [line.split()[1] for line in tree] == ["qh-hq", "qh-hebei", "qh-grid-01", "qh-nanhe"]
    refused = run("org", "add-unit", "--tenant", "bank-qinghe", "--code", "q", "--name", "q", "--kind", "grid")
    assert refused.exit_code == 1 and "parent_code" in refused.output

    add_user = ["users", "add", "--tenant", "bank-qinghe"]
    created = run(*add_user, "--username", "qh_new", "--name", "新员工", "--unit", "qh-nanhe")
    assert created.exit_code == 0, created.output
    password = re.search(r"shown only this once\): (\S+)", created.output).group(1)
    assert seeded.auth.issue_token("qh_new", password)
    passphrase = "a long enough passphrase"
    chosen = run(*add_user, "--username", "qh_chosen", "--name", "自选", "--password-stdin", stdin=f"{passphrase}\n")
    assert chosen.exit_code == 0 and "shown only" not in chosen.output
    assert seeded.auth.issue_token("qh_chosen", passphrase)
    short = run(*add_user, "--username", "qh_s", "--name", "短", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "password" in short.output

    granted = run("users", "grant", "qh_new", "loan_officer", "--unit", "qh-nanhe")
    assert granted.exit_code == 0 and "loan_officer@qh-nanhe" in granted.output
    assert run("users", "grant", "qh_new", "astrologer").exit_code == 1
    listed = run("users", "list", "--tenant", "bank-qinghe").output
    assert "qh_new" in listed and "ly_officer" not in listed
    revoked = run("users", "revoke", "qh_new", "loan_officer", "--unit", "qh-nanhe")
    assert revoked.exit_code == 0 and "no roles" in revoked.output

    assert "inactive" in run("users", "deactivate", "qh_new").output
    assert run("users", "activate", "qh_new").exit_code == 0
    assert run("users", "unlock", "qh_new").exit_code == 0
    assert run("users", "unlock", "nobody").exit_code == 1

    group = run("groups", "add", "--tenant", "bank-qinghe", "--code", "qh-board", "--name", "小组")
    assert group.exit_code == 0, group.output
    member = run("groups", "add-member", "qh-board", "qh_new", "--tenant", "bank-qinghe")
    assert member.exit_code == 0 and "qh_new" in member.output
    assert run("groups", "add-member", "qh-board", "ly_officer", "--tenant", "bank-qinghe").exit_code == 1
