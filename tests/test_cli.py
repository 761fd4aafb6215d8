"""The command line: set-up commands users run from the README."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main as cli
from engine.container import CreditFlow
from engine.jobs.queue import LeaseLost, enqueue
from tests.conftest import MODELS


def invoke(settings: Any, monkeypatch: Any, *args: str) -> Any:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_housekeeping_says_what_it_deleted(settings: Any, monkeypatch: Any) -> None:
    result = invoke(settings, monkeypatch, "housekeeping")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "idempotency_keys: 0",
        "notifications: 0",
        "deliveries: 0",
        "messages: 0",
        "revoked_tokens: 0",
    ]


def test_demo_seed_is_idempotent_and_reports_what_it_created(settings: Any, monkeypatch: Any) -> None:
    first = invoke(settings, monkeypatch, "demo", "seed", "--password", "s3cret-pass", "--json")
    assert first.exit_code == 0, first.output
    created = json.loads(first.output)
    assert {t["kind"] for t in created["tenants"]} == {"province", "bank"} and len(created["tenants"]) == 3
    assert "admin" in {u["username"] for u in created["users"]}
    assert "s3cret-pass" not in first.output
    second = invoke(settings, monkeypatch, "demo", "seed", "--json")
    assert json.loads(second.output) == {"tenants": [], "users": []}


def test_catalog_load_and_deploy(settings: Any, monkeypatch: Any) -> None:
    loaded = invoke(settings, monkeypatch, "catalog", "load")
    assert loaded.exit_code == 0, loaded.output
    assert "demo_loan v1" in loaded.output
    again = invoke(settings, monkeypatch, "catalog", "load")
    assert "demo_loan v1" in again.output
    assert again.output.splitlines()[-1] == "every product on sale uses the form files as they are"

    deployed = invoke(settings, monkeypatch, "definitions", "deploy", str(MODELS / "linear.bpmn"))
    assert deployed.exit_code == 0 and "deployed: linear version 1" in deployed.output
    unchanged = invoke(settings, monkeypatch, "definitions", "deploy", str(MODELS / "linear.bpmn"))
    assert "unchanged: linear version 1" in unchanged.output

    refused = invoke(settings, monkeypatch, "definitions", "deploy", str(MODELS / "lint_problems.bpmn"))
    assert refused.exit_code == 1
    assert "no lane" in refused.output and "no-such-form-schema.json" in refused.output


def test_db_upgrade_on_an_empty_sqlite_file(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["db", "upgrade"], catch_exceptions=False)
    assert result.exit_code == 0 and "is at head" in result.output
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_products_validate_passes_on_the_standard_catalog_and_fails_on_a_broken_one(
    settings: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    ok = invoke(settings, monkeypatch, "products", "validate")
    assert ok.exit_code == 0 and "95 product(s) valid" in ok.output

    from engine.catalog.config import DEFAULT_STANDARD_DIR

    broken = json.loads((DEFAULT_STANDARD_DIR / "XED.json").read_text(encoding="utf-8"))
    broken["parameters"]["amount"]["min"] = "9999999.00"
    (tmp_path / "XED.json").write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    bad = CliRunner().invoke(cli, ["products", "validate", str(tmp_path)])
    assert bad.exit_code == 1 and "parameters.amount" in bad.output


def test_products_clone_and_rebase_from_the_command_line(settings: Any, monkeypatch: Any, tmp_path: Any) -> None:
    from sqlalchemy import select

    from engine.container import CreditFlow
    from engine.services.principal import Principal
    from engine.store.models import Product

    assert invoke(settings, monkeypatch, "demo", "seed").exit_code == 0
    assert invoke(settings, monkeypatch, "catalog", "load").exit_code == 0
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"rule_parameters": {"max_age": 55}}), encoding="utf-8")
    cloned = invoke(
        settings,
        monkeypatch,
        "products",
        "clone",
        "XED",
        "LY-XED",
        "--tenant",
        "bank-lingyuan",
        "--overrides",
        str(patch),
    )
    assert cloned.exit_code == 0 and "cloned XED into LY-XED" in cloned.output

    platform = CreditFlow(settings)
    with platform.db.transaction() as session:
        draft = dict(session.scalars(select(Product.draft).where(Product.code == "XED")).one())
    platform.products.set_draft(
        Principal.system(), "XED", {**draft, "rule_parameters": {**draft["rule_parameters"], "max_age": 60}}
    )
    platform.products.publish(Principal.system(), "XED")
    platform.close()

    rebased = CliRunner().invoke(cli, ["products", "rebase", "LY-XED"])
    assert rebased.exit_code == 1
    assert "template version 1 -> 2" in rebased.output and "CONFLICT rule_parameters.max_age" in rebased.output
    diff = json.loads(invoke(settings, monkeypatch, "products", "diff", "LY-XED").output)
    assert (
        diff["base_version"] == 2
        and {"path": "rule_parameters.max_age", "template": 60, "local": 55} in diff["changes"]
    )

    # the catalog as an operator sees it
    listed = invoke(settings, monkeypatch, "products", "list").output.splitlines()
    assert listed[-1] == "96 product(s)"  # the 95 templates and 陵源's variant
    local = invoke(settings, monkeypatch, "products", "list", "--tenant", "bank-lingyuan").output.splitlines()
    assert [line.split()[:2] for line in local[:-1]] == [["LY-XED", "bank-lingyuan"]] and " draft " in local[0]
    assert any(line.split()[:2] == ["XED", "province"] and " v2 " in line for line in listed)
    newest = json.loads(invoke(settings, monkeypatch, "products", "show", "XED").output)
    assert newest["versions"] == [2, 1] and newest["published"]["version"] == 2
    assert newest["published"]["config"]["rule_parameters"]["max_age"] == 60
    first = json.loads(invoke(settings, monkeypatch, "products", "show", "XED", "--version", "1").output)
    assert first["published"]["config"]["rule_parameters"]["max_age"] != 60
    unpublished = json.loads(invoke(settings, monkeypatch, "products", "show", "LY-XED").output)
    assert unpublished["published"] is None and unpublished["draft"]["rule_parameters"] == {"max_age": 55}
    missing = invoke(settings, monkeypatch, "products", "show", "XED", "--version", "9")
    assert missing.exit_code == 1 and "has no published version 9" in missing.output
    assert invoke(settings, monkeypatch, "products", "show", "NOPE").exit_code == 1


def test_pki_init_makes_a_seal_per_tenant_once(settings: Any, monkeypatch: Any) -> None:
    assert invoke(settings, monkeypatch, "demo", "seed", "--password", "s3cret-pass").exit_code == 0
    first = invoke(settings, monkeypatch, "pki", "init", "--json")
    assert first.exit_code == 0, first.output
    made = json.loads(first.output)
    assert made["directory"] == str(settings.data_dir / "pki")
    assert {"root", "tsa", "crl", "bank-lingyuan", "bank-qinghe", "province"} <= set(made["created"])
    keys = sorted((settings.data_dir / "pki").rglob("*.key.pem"))
    assert keys and all(k.stat().st_mode & 0o077 == 0 for k in keys)  # private keys: owner only
    before = {k: k.read_bytes() for k in keys}
    second = invoke(settings, monkeypatch, "pki", "init", "--json")
    assert json.loads(second.output)["created"] == []
    assert {k: k.read_bytes() for k in keys} == before


def test_jobs_list_shows_who_holds_what_and_release_takes_a_hanging_job_back(
    settings: Any, monkeypatch: Any, platform: CreditFlow
) -> None:
    now = datetime.now(UTC)  # the command line's clock is the wall clock
    with platform.db.transaction(write=True) as session:
        enqueue(session, "timer", now, now, instance_id="i-1")
        enqueue(session, "deliver", now, now)
    (held,) = platform.jobs.acquire("node-a", now, 1)  # a node took the earliest and hangs
    listed = invoke(settings, monkeypatch, "jobs", "list").output.splitlines()
    assert [line.split()[1] for line in listed] == ["timer", "deliver"]
    (line,) = invoke(settings, monkeypatch, "jobs", "list", "--held").output.splitlines()
    assert line.split()[0] == str(held.id) and "holder=node-a" in line
    assert invoke(settings, monkeypatch, "jobs", "list", "--kind", "deliver", "--held").output == ""

    released = invoke(settings, monkeypatch, "jobs", "release", str(held.id))
    assert released.exit_code == 0 and "due now" in released.output
    assert invoke(settings, monkeypatch, "jobs", "list", "--held").output == ""
    assert invoke(settings, monkeypatch, "jobs", "release", str(held.id)).exit_code == 1  # nobody holds it
    with platform.db.transaction(write=True) as session, pytest.raises(LeaseLost):
        platform.jobs.finish(session, held)  # the hanging node can no longer finish it
    assert held.id in {job.id for job in platform.jobs.acquire("node-b", datetime.now(UTC), 2)}


def test_users_show_says_whether_and_until_when_an_account_is_locked(
    settings: Any, monkeypatch: Any, app: Any, clock: Any
) -> None:
    clock.advance(datetime.now(UTC) - clock.now())  # the API's clock at the wall clock the command line reads
    for _ in range(app.extensions["creditflow"].settings.login_max_failures):
        app.test_client().post("/api/v1/auth/token", json={"username": "ly_officer", "password": "wrong-password"})
    shown = invoke(settings, monkeypatch, "users", "show", "ly_officer").output.splitlines()
    assert shown[0].split()[:4] == ["ly_officer", "bank-lingyuan", "ly-chengguan", "locked"]
    assert "  failed logins in a row: 5" in shown and shown[3].startswith("  locked until: 20")
    assert invoke(settings, monkeypatch, "users", "unlock", "ly_officer").exit_code == 0
    shown = invoke(settings, monkeypatch, "users", "show", "ly_officer").output.splitlines()
    assert shown[0].split()[3] == "active" and "  locked until: -" in shown
    missing = invoke(settings, monkeypatch, "users", "show", "nobody")
    assert missing.exit_code == 1
