"""The catalog's change trail (变更留痕): every change of a product or process is recorded with its actor and
what it was before, in the change's own transaction, readable by its owner only, and tamper-evident."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError

from engine.cli import main as cli
from engine.clock import FrozenClock
from engine.container import CreditFlow
from engine.masking import mask_number
from engine.store.change_trail import json_diff
from engine.store.models import CatalogChange
from tests.conftest import ApiClient, drop_append_only_guards, login, resident_id
from tests.test_definition_ownership import LINEAR, changed, upload
from tests.test_inbox import user_id
from tests.test_products import CODES, SYSTEM, catalog, principal_of  # noqa: F401 - fixture

PROBLEM = "application/problem+json"


def trail(client: ApiClient, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/catalog-changes{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def count(platform: CreditFlow) -> int:
    with platform.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(CatalogChange)) or 0


def test_json_diff_names_each_changed_place_with_its_old_and_new_value() -> None:
    old = {"a": {"b": 1, "c": [1, 2], "gone": "x"}, "odd/key~": True, "same": {"k": 1}}
    new = {"a": {"b": 2, "c": [1, 2, 3], "added": {"d": 1}}, "odd/key~": 1, "same": {"k": 1}}
    assert json_diff(old, new) == [
        {"path": "/a/added", "new": {"d": 1}},
        {"path": "/a/b", "old": 1, "new": 2},
        {"path": "/a/c", "old": [1, 2], "new": [1, 2, 3]},
        {"path": "/a/gone", "old": "x"},
        {"path": "/odd~1key~0", "old": True, "new": 1},  # JSON's true is not 1
    ]
    assert json_diff(new, copy.deepcopy(new)) == []


@pytest.mark.usefixtures("catalog")
def test_a_banks_clone_edit_and_publish_are_recorded_with_their_actor_and_old_values(
    seeded: CreditFlow, app: Any
) -> None:
    pm = login(app, "ly_pm")
    overrides = {"parameters": {"amount": {"max": "150000.00"}}, "rule_parameters": {"max_amount": 150000}}
    cloned = pm.post("/api/v1/products/XEKD-XIN/clone", json={"code": "LY-XEKD-XIN", "overrides": overrides})
    assert cloned.status_code == 201, cloned.get_json()
    raised = {**overrides, "parameters": {"amount": {"max": "180000.00"}}}
    edited = pm.put("/api/v1/products/LY-XEKD-XIN/draft", json={"draft": raised})
    assert edited.status_code == 200, edited.get_json()
    published = pm.post("/api/v1/products/LY-XEKD-XIN/publish")
    assert published.status_code == 200, published.get_json()

    newest, edit, variant = trail(pm, "?subject=LY-XEKD-XIN")
    who = {"actor": "ly_pm", "actor_id": user_id(seeded, "ly_pm"), "tenant": "bank-lingyuan"}
    assert {k: variant[k] for k in ("action", *who)} == {"action": "product.variant_created", **who}
    assert variant["details"]["template"] == "XEKD-XIN" and variant["details"]["template_version"] == 1
    assert variant["details"]["changes"] == [  # against the template's values
        {"path": "/code", "old": "XEKD-XIN", "new": "LY-XEKD-XIN"},
        {"path": "/parameters/amount/max", "old": "200000.00", "new": "150000.00"},
        {"path": "/rule_parameters/max_amount", "old": 200000, "new": 150000},
    ]
    assert {k: edit[k] for k in ("action", *who)} == {"action": "product.draft_changed", **who}
    assert edit["details"] == {"changes": [{"path": "/parameters/amount/max", "old": "150000.00", "new": "180000.00"}]}
    assert {k: newest[k] for k in ("action", "version", *who)} == {
        "action": "product.published",
        "version": 1,
        **who,
    }
    frozen = {f["name"]: f["sha256"] for f in pm.get("/api/v1/products/LY-XEKD-XIN").get_json()["forms"]}
    assert frozen == {
        "archetype/start_data": frozen["archetype/start_data"],
        **{n: seeded.forms.get(n).sha256 for n in ("connector-exception", "manual-review")},
    }
    assert newest["details"] == {"sha256": published.get_json()["sha256"], "template_version": 1, "forms": frozen}
    # the same draft again and the same version again change nothing, and record nothing
    assert pm.put("/api/v1/products/LY-XEKD-XIN/draft", json={"draft": edited.get_json()["draft"]}).status_code == 200
    assert pm.post("/api/v1/products/LY-XEKD-XIN/publish").get_json()["version"] == 1
    assert len(trail(pm, "?subject=LY-XEKD-XIN")) == 3


@pytest.mark.usefixtures("catalog")
def test_a_province_template_edit_is_recorded_for_every_bank_to_read_with_id_numbers_masked(app: Any) -> None:
    province = login(app, "pm")
    draft = province.get("/api/v1/products/XEKD-XIN").get_json()["draft"]
    number = resident_id()
    draft["parameters"]["amount"]["max"] = "300000.00"
    draft["description"] = f"示例：借款人 {number}"
    assert province.put("/api/v1/products/XEKD-XIN/draft", json={"draft": draft}).status_code == 200

    for reader in ("ly_pm", "qh_pm", "pm", "ly_risk", "prov_risk", "admin"):
        (change,) = trail(login(app, reader), "?subject=XEKD-XIN&action=product.draft_changed")
        assert change["tenant_id"] is None and change["actor"] == "pm", reader
    changes = {c["path"]: c for c in change["details"]["changes"]}
    assert changes["/parameters/amount/max"] == {
        "path": "/parameters/amount/max",
        "old": "200000.00",
        "new": "300000.00",
    }
    assert mask_number(number) in changes["/description"]["new"] and number not in str(change)


@pytest.mark.usefixtures("catalog")
def test_a_change_that_fails_records_nothing(seeded: CreditFlow, app: Any) -> None:
    pm = login(app, "ly_pm")
    assert pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG"}).status_code == 201
    before = count(seeded)
    renamed = pm.put("/api/v1/products/LY-DAINONG/draft", json={"draft": {"code": "LY-OTHER"}})
    assert renamed.status_code == 422 and renamed.get_json()["errors"][0]["field"] == "code"
    assert count(seeded) == before
    widened = pm.put("/api/v1/products/LY-DAINONG/draft", json={"draft": {"parameters": {"amount": {"max": "9e9"}}}})
    assert widened.status_code == 200 and count(seeded) == before + 1  # a draft may be wrong; publishing refuses it
    refused = pm.post("/api/v1/products/LY-DAINONG/publish")
    assert refused.status_code == 422, refused.get_json()
    assert count(seeded) == before + 1
    assert trail(pm, "?subject=LY-DAINONG&action=product.published") == []


def test_a_deploy_is_recorded_and_an_identical_one_is_not(app: Any) -> None:
    platform = app.extensions["creditflow"]
    pm = login(app, "ly_pm")
    own = changed(LINEAR, key="ly_flow")
    first = upload(pm, own)
    assert first.status_code == 201, first.get_json()
    (deployed,) = trail(pm, "?subject=ly_flow")
    definition = first.get_json()["definitions"][0]
    assert deployed["action"] == "definition.deployed" and deployed["tenant"] == "bank-lingyuan"
    assert deployed["version"] == 1 and deployed["actor"] == "ly_pm"
    forms = {name: platform.forms.get(name).sha256 for name in ("review", "approval")}  # the forms it froze
    assert deployed["details"] == {"sha256": definition["sha256"], "files": ["flow.bpmn"], "forms": forms}

    before = count(platform)
    assert upload(pm, own).status_code == 200  # identical: the existing version
    assert count(platform) == before
    second = upload(pm, changed(own))
    assert second.status_code == 201 and [c["version"] for c in trail(pm, "?subject=ly_flow")] == [2, 1]
    assert upload(pm, b"<not-bpmn/>").status_code == 422 and count(platform) == before + 1


@pytest.mark.usefixtures("catalog")
def test_loading_the_catalog_and_rebasing_are_recorded_and_a_reload_records_nothing(
    seeded: CreditFlow, tmp_path: Path
) -> None:
    everything = seeded.catalog_changes.list(SYSTEM, limit=200)[0]
    loaded = {(v.change.action, v.change.subject) for v in everything}
    assert {("product.created", code) for code in CODES} | {("product.published", code) for code in CODES} <= loaded
    assert ("definition.deployed", "a1_instant_online") in loaded
    assert all(v.change.actor_id is None and v.change.tenant_id is None for v in everything)

    subset = tmp_path / "standard"  # the catalog fixture's two templates
    seeded.products.load_standard(SYSTEM, subset)
    assert len(seeded.catalog_changes.list(SYSTEM, limit=200)[0]) == len(everything)

    bank = principal_of(seeded, "ly_pm")
    seeded.products.clone(bank, "XEKD-XIN", code="LY-XEKD-XIN", name=None, overrides={})
    template = subset / "XEKD-XIN.json"
    template.write_text(template.read_text(encoding="utf-8").replace('"max": 36', '"max": 24'), encoding="utf-8")
    seeded.products.load_standard(SYSTEM, subset)
    (edit,) = seeded.catalog_changes.list(SYSTEM, subject="XEKD-XIN", action="product.draft_changed")[0]
    assert edit.change.details == {"changes": [{"path": "/parameters/term_months/max", "old": 36, "new": 24}]}

    seeded.products.rebase(bank, "LY-XEKD-XIN")
    (rebased,) = seeded.catalog_changes.list(bank, subject="LY-XEKD-XIN", action="product.rebased")[0]
    assert rebased.change.details == {
        "from_version": 1,
        "to_version": 2,
        "changes": [{"path": "/parameters/term_months/max", "old": 36, "new": 24}],
    }
    assert rebased.change.tenant_id == bank.tenant_id and rebased.change.actor_id == bank.user_id


@pytest.mark.usefixtures("catalog")
def test_a_bank_reads_its_own_and_the_provinces_changes_never_another_banks(seeded: CreditFlow, app: Any) -> None:
    ly, qh = login(app, "ly_pm"), login(app, "qh_pm")
    assert ly.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG"}).status_code == 201
    assert qh.post("/api/v1/products/FND-DAINONG/clone", json={"code": "QH-DAINONG"}).status_code == 201

    assert {c["tenant"] for c in trail(ly)} == {"bank-lingyuan", None}
    assert {c["tenant"] for c in trail(qh)} == {"bank-qinghe", None}
    assert {c["tenant"] for c in trail(login(app, "prov_risk"))} == {"bank-lingyuan", "bank-qinghe", None}
    # another bank's product or person matches nothing, exactly like one that does not exist
    theirs = qh.get("/api/v1/catalog-changes?subject=LY-DAINONG")
    absent = qh.get("/api/v1/catalog-changes?subject=NO-SUCH-PRODUCT")
    assert theirs.status_code == absent.status_code == 200 and theirs.get_json() == absent.get_json()
    assert theirs.get_json()["items"] == []
    assert trail(qh, f"?actor={user_id(seeded, 'ly_pm')}") == []
    assert [c["subject"] for c in trail(ly, f"?actor={user_id(seeded, 'ly_pm')}")] == ["LY-DAINONG"]


@pytest.mark.usefixtures("catalog")
def test_only_product_managers_risk_managers_and_administrators_read_the_trail(app: Any) -> None:
    anonymous = app.test_client().get("/api/v1/catalog-changes")
    assert anonymous.status_code == 401 and anonymous.mimetype == PROBLEM
    for username in ("ly_officer", "ly_reviewer", "ly_village"):
        refused = login(app, username).get("/api/v1/catalog-changes")
        assert refused.status_code == 403 and refused.mimetype == PROBLEM, username
    for username in ("ly_pm", "ly_risk", "ly_admin", "pm", "prov_risk", "admin"):
        assert trail(login(app, username)), username


@pytest.mark.usefixtures("catalog")
def test_pages_go_newest_first_and_hold_still_while_changes_arrive(app: Any, clock: FrozenClock) -> None:
    pm = login(app, "ly_pm")
    start = clock.now()
    for minute, code in enumerate(("LY-A", "LY-B", "LY-C", "LY-D", "LY-E"), 1):
        clock.advance(timedelta(minutes=1))
        assert pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": code}).status_code == 201, minute
    since, until = (quote((start + timedelta(minutes=m)).isoformat()) for m in (2, 5))
    window = f"&since={since}&until={until}"
    assert [c["subject"] for c in trail(pm, f"?action=product.variant_created{window}")] == ["LY-D", "LY-C", "LY-B"]

    seen: list[str] = []
    page = pm.get("/api/v1/catalog-changes?action=product.variant_created&limit=2").get_json()
    clock.advance(timedelta(minutes=1))
    assert pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-F"}).status_code == 201  # arrives mid-way
    while True:
        seen += [c["subject"] for c in page["items"]]
        if page["next_cursor"] is None:
            break
        page = pm.get(f"/api/v1/catalog-changes?action=product.variant_created&limit=2&cursor={page['next_cursor']}")
        page = page.get_json()
    assert seen == ["LY-E", "LY-D", "LY-C", "LY-B", "LY-A"]


BAD_QUERIES = [  # (query, the field its 422 names), for every change trail's list
    ("since=yesterday", "since"),
    ("since=2026-12-01T08:00:00", "since"),  # no time zone: which 08:00?
    ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "until"),
    ("action=product.deleted", "action"),
    ("actor=abc", "actor"),
    ("actor=0", "actor"),
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("cursor=not-a-cursor", "cursor"),
    ("subject=" + "x" * 256, "subject"),
    ("tenant=bank-qinghe", "tenant"),
]


@pytest.mark.parametrize(("query", "field"), BAD_QUERIES)
def test_bad_query_parameters_are_422_problems_naming_the_field(app: Any, query: str, field: str) -> None:
    response = login(app, "ly_pm").get(f"/api/v1/catalog-changes?{query}")
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


@pytest.mark.usefixtures("catalog")
def test_verify_detects_an_edited_a_deleted_and_a_cut_off_change(
    seeded: CreditFlow, settings: Any, monkeypatch: Any
) -> None:
    bank = principal_of(seeded, "ly_pm")
    seeded.products.clone(bank, "FND-DAINONG", code="LY-DAINONG", name=None, overrides={})
    for days in (7, 8, 9):
        seeded.products.set_draft(bank, "LY-DAINONG", {"time_limits": {"process": f"P{days}D"}})
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    runner = CliRunner()

    intact = runner.invoke(cli, ["catalog", "changes", "verify", "--tenant", "bank-lingyuan"])
    assert intact.exit_code == 0 and "ok: bank-lingyuan: 4 changes, chain intact" in intact.output, intact.output
    everything = runner.invoke(cli, ["catalog", "changes", "verify"])
    assert everything.exit_code == 0 and "ok: province:" in everything.output, everything.output
    unknown = runner.invoke(cli, ["catalog", "changes", "verify", "--tenant", "bank-nowhere"])
    assert unknown.exit_code == 2 and "no tenant" in unknown.output

    ours = CatalogChange.tenant_id == bank.tenant_id
    with pytest.raises(DBAPIError), seeded.db.transaction(write=True) as session:  # the table refuses changes ...
        session.execute(update(CatalogChange).where(ours, CatalogChange.seq == 2).values(details={"changes": []}))
    drop_append_only_guards(seeded, "catalog_change")  # ... so a tamperer with DDL rights drops the guard first
    with seeded.db.transaction(write=True) as session:
        session.execute(update(CatalogChange).where(ours, CatalogChange.seq == 2).values(details={"changes": []}))
    edited = runner.invoke(cli, ["catalog", "changes", "verify"])
    assert edited.exit_code == 1 and "TAMPERED: bank-lingyuan" in edited.output, edited.output
    assert "change 2 (product.draft_changed LY-DAINONG) was altered" in edited.output
    assert "ok: province:" in edited.output  # the other chains are intact

    with seeded.db.transaction(write=True) as session:
        session.execute(delete(CatalogChange).where(ours, CatalogChange.seq == 3))
    (deleted,) = seeded.catalog_changes.verify(SYSTEM, "bank-lingyuan")
    assert not deleted.ok and any("change 3 is missing" in p for p in deleted.problems)

    with seeded.db.transaction(write=True) as session:
        session.execute(delete(CatalogChange).where(ours, CatalogChange.seq == 4))
    (cut,) = seeded.catalog_changes.verify(SYSTEM, "bank-lingyuan")
    assert cut.changes == 2 and "the trail ends at change 2 but its head records change 4" in cut.problems
