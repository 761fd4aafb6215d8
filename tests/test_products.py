"""Products: publishing immutable versions from the standard catalog, fail-closed rules, applications."""

from __future__ import annotations

import copy
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from engine.catalog.config import DEFAULT_STANDARD_DIR
from engine.cli import main as cli
from engine.container import CreditFlow
from engine.errors import Conflict, Forbidden, InvalidInput, InvalidModel, NotFound
from engine.services.auth import load_principal
from engine.services.catalog import load_catalog
from engine.services.principal import Principal
from engine.store.models import HumanTask, OutboxMessage, ProcessInstance, Product, RuleDecision, User
from tests.conftest import ApiClient, bank_card, login, resident_id

SYSTEM = Principal.system()
CODES = ("XEKD-XIN", "FND-DAINONG")  # an A1 instant product with all three decisions, an A4 one without


@pytest.fixture
def catalog(platform: CreditFlow, tmp_path: Path) -> CreditFlow:
    """The archetypes deployed and two standard products published (all 95 take a while; see test_catalog)."""
    subset = tmp_path / "standard"
    subset.mkdir()
    for code in CODES:
        shutil.copy(DEFAULT_STANDARD_DIR / f"{code}.json", subset)
    files = sorted(platform.settings.bpmn_dir.glob("*.bpmn"))
    platform.definitions.deploy(SYSTEM, [(f.name, f.read_bytes()) for f in files])
    platform.products.load_standard(SYSTEM, subset, progress=lambda _m: None)
    return platform


def edit_draft(platform: CreditFlow, code: str, change: Any) -> None:
    with platform.db.transaction(write=True) as session:
        product = session.scalars(select(Product).where(Product.code == code)).one()
        draft = copy.deepcopy(product.draft)
        change(draft)
        product.draft = draft


def test_publishing_is_content_hashed_and_versions_are_immutable(catalog: CreditFlow) -> None:
    first = catalog.products.publish(SYSTEM, "XEKD-XIN")
    assert first.version == 1 and set(first.decisions) == {"access", "scorecard", "pricing"}
    assert catalog.products.publish(SYSTEM, "XEKD-XIN").id == first.id  # nothing changed: same version

    edit_draft(catalog, "XEKD-XIN", lambda d: d["rule_parameters"].update(max_age=55))
    second = catalog.products.publish(SYSTEM, "XEKD-XIN")
    assert second.version == 2 and second.sha256 != first.sha256
    assert second.decisions["access"] != first.decisions["access"]  # the parameter went into the rules
    assert second.decisions["pricing"] == first.decisions["pricing"]
    assert [v.version for v in catalog.products.versions(SYSTEM, "XEKD-XIN")] == [2, 1]
    with catalog.db.transaction() as session:
        content = json.dumps(session.get(RuleDecision, second.decisions["access"]).content, ensure_ascii=False)
    assert "{{max_age}}" not in content and "55" in content


def test_an_application_keeps_the_version_it_started_on(catalog: CreditFlow) -> None:
    view = catalog.products.apply(
        SYSTEM,
        "FND-DAINONG",
        applicant=applicant(),
        data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )
    assert view.instance.status == "running" and view.tasks
    edit_draft(catalog, "FND-DAINONG", lambda d: d["parameters"]["term_months"].update(max=30))
    newer = catalog.products.publish(SYSTEM, "FND-DAINONG")
    assert newer.version == 2
    with catalog.db.transaction() as session:
        started_on = session.get(ProcessInstance, view.instance.id).product_version_id
    assert started_on != newer.id
    assert view.instance.data["product"] == {
        "code": "FND-DAINONG",
        "version": 1,
        "name": view.instance.data["product"]["name"],
    }


def test_applications_outside_the_product_limits_are_refused(catalog: CreditFlow) -> None:
    with pytest.raises(InvalidInput) as caught:
        catalog.products.apply(
            SYSTEM,
            "FND-DAINONG",
            applicant=applicant(),
            data={"amount": "1.00", "term_months": 999, "account": bank_card(), "purpose": "购买生产资料"},
        )
    assert {p["field"] for p in caught.value.problems} == {"data.amount", "data.term_months"}
    with catalog.db.transaction() as session:
        assert session.scalars(select(ProcessInstance)).first() is None


def test_publishing_fails_closed_on_broken_configs_and_rules(catalog: CreditFlow) -> None:
    edit_draft(catalog, "XEKD-XIN", lambda d: d["parameters"]["amount"].update(min="9000000.00"))
    with pytest.raises(InvalidInput) as caught:
        catalog.products.publish(SYSTEM, "XEKD-XIN")
    assert any(p["field"].startswith("parameters.amount") for p in caught.value.problems)

    def drop_field(draft: dict[str, Any]) -> None:
        draft["parameters"]["amount"]["min"] = "1000.00"
        del draft["data_dictionary"]["age"]

    edit_draft(catalog, "XEKD-XIN", drop_field)
    with pytest.raises(InvalidModel) as rules:
        catalog.products.publish(SYSTEM, "XEKD-XIN")
    assert any("age" in p["message"] for p in rules.value.problems)
    assert [v.version for v in catalog.products.versions(SYSTEM, "XEKD-XIN")] == [1]


def test_products_over_http(catalog: CreditFlow, app: Any, api: ApiClient) -> None:
    listing = api.get("/api/v1/products?archetype=a1_instant_online").get_json()
    assert [p["code"] for p in listing["items"]] == ["XEKD-XIN"] and listing["items"][0]["current_version"] == 1
    for short in ("A1", "a1"):  # the archetype's short code, as the catalog names it
        assert [p["code"] for p in api.get(f"/api/v1/products?archetype={short}").get_json()["items"]] == ["XEKD-XIN"]
    detail = api.get("/api/v1/products/FND-DAINONG").get_json()
    assert detail["config"]["code"] == "FND-DAINONG" and detail["system"] in {"支农", "兴商", "助企", "惠民"}
    assert api.get("/api/v1/products/NOPE").status_code == 404
    assert api.get("/api/v1/products?system=火星").status_code == 422
    body = {
        "applicant": applicant(),
        "data": {"amount": "600000.00", "term_months": 24, "account": bank_card(), "purpose": "购买生产资料"},
        "business_key": "APP-7",
    }
    province = api.post("/api/v1/products/FND-DAINONG/applications", json=body)
    assert province.status_code == 403  # the province reads its banks' applications; a bank's staff apply
    started = login(app, "ly_officer").post("/api/v1/products/FND-DAINONG/applications", json=body)
    assert started.status_code == 201, started.get_json()
    assert started.get_json()["business_key"] == "APP-7" and started.get_json()["tasks"]
    bad = api.post("/api/v1/products/FND-DAINONG/applications", json={"data": {}})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "applicant"
    versions = api.get("/api/v1/products/FND-DAINONG/versions").get_json()["items"]
    assert [v["version"] for v in versions] == [1]


def test_catalog_load_publishes_all_95_standard_products(platform: CreditFlow) -> None:
    load_catalog(platform, SYSTEM)
    views, total = platform.products.list(SYSTEM, limit=200)
    assert total == 95
    assert {v.product.system for v in views} == {"支农", "兴商", "助企", "惠民"}
    assert all(v.current is not None and v.current.version == 1 for v in views)
    load_catalog(platform, SYSTEM)  # loading again changes nothing
    again, _ = platform.products.list(SYSTEM, limit=200)
    assert [v.current.id for v in again] == [v.current.id for v in views]


def applicant() -> dict[str, str]:
    return {"name": "王小二", "id_number": resident_id(), "mobile": "13800138000"}


def principal_of(platform: CreditFlow, username: str) -> Principal:
    with platform.db.transaction() as session:
        return load_principal(session, session.scalars(select(User).where(User.username == username)).one())


def local_application(catalog: CreditFlow, overrides: dict[str, Any]) -> Any:
    """陵源's local variant of FND-DAINONG with ``overrides``, published, and one application on it."""
    bank = principal_of(catalog, "ly_officer")
    catalog.products.clone(bank, "FND-DAINONG", code="LY-DAINONG", name=None, overrides=overrides)
    catalog.products.publish(bank, "LY-DAINONG")
    return catalog.products.apply(
        bank,
        "LY-DAINONG",
        applicant=applicant(),
        data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )


def test_a_bank_clones_adjusts_publishes_and_rebases_its_local_product(catalog: CreditFlow, seeded: CreditFlow) -> None:
    bank, other_bank, province = (principal_of(catalog, u) for u in ("ly_officer", "qh_officer", "pm"))
    local = catalog.products.clone(
        bank,
        "XEKD-XIN",
        code="LY-XEKD-XIN",
        name="陵源薪e贷",
        overrides={
            "parameters": {"amount": {"max": "150000.00"}},
            "rule_parameters": {"max_age": 58, "max_amount": 150000},
        },
    )
    assert local.product.template_id is not None and local.product.name == "陵源薪e贷"
    version = catalog.products.publish(bank, "LY-XEKD-XIN")
    assert version.config["parameters"]["amount"]["max"] == "150000.00"
    assert version.config["rule_parameters"]["max_age"] == 58 and version.template_version_id is not None
    assert version.decisions["access"] != catalog.products.get(SYSTEM, "XEKD-XIN").current.decisions["access"]

    diff = catalog.products.diff(bank, "LY-XEKD-XIN")
    assert {c["path"] for c in diff["changes"]} >= {"parameters.amount.max", "rule_parameters.max_age", "name"}

    # ownership: other banks cannot see it, banks cannot publish templates, the province cannot clone
    with pytest.raises(NotFound):
        catalog.products.publish(other_bank, "LY-XEKD-XIN")
    with pytest.raises(Forbidden):
        catalog.products.publish(bank, "XEKD-XIN")
    with pytest.raises(Forbidden):
        catalog.products.clone(province, "XEKD-XIN", code="PROV-COPY", name=None, overrides={})
    assert "LY-XEKD-XIN" not in {v.product.code for v in catalog.products.list(other_bank)[0]}

    # the province publishes a new template version touching one overridden value and one other, and
    # comes round to the bank's max_age: agreeing is no conflict
    def province_change(draft: dict[str, Any]) -> None:
        draft["parameters"]["amount"]["max"] = "250000.00"
        draft["parameters"]["term_months"]["max"] = 24
        draft["rule_parameters"]["max_age"] = 58

    edit_draft(catalog, "XEKD-XIN", province_change)
    assert catalog.products.publish(province, "XEKD-XIN").version == 2
    # the bank's product managers hear of it, nobody else
    (told,) = catalog.notifications.list(principal_of(catalog, "ly_pm")).items
    assert told.topic == "product.template_published"
    assert told.summary == "省联社模板「薪e贷」发布第2版，贵行LY-XEKD-XIN基于第1版，请比对后变基"
    assert told.payload["changed"] == [
        "/parameters/amount/max",
        "/parameters/term_months/max",
        "/rule_parameters/max_age",
    ]
    assert catalog.notifications.list(principal_of(catalog, "qh_pm")).items == []
    assert catalog.notifications.list(bank).items == []  # a loan officer
    result = catalog.products.rebase(bank, "LY-XEKD-XIN")
    assert (result["from_version"], result["to_version"]) == (1, 2)
    assert [c["path"] for c in result["conflicts"]] == ["parameters.amount.max"]
    assert result["conflicts"][0]["local"] == "150000.00"
    rebased = catalog.products.publish(bank, "LY-XEKD-XIN")
    assert rebased.version == 2
    assert rebased.config["parameters"]["amount"]["max"] == "150000.00"  # the bank's value was kept
    assert rebased.config["parameters"]["term_months"]["max"] == 24  # the province's other change arrived


def test_clone_and_diff_over_http(catalog: CreditFlow, app: Any) -> None:
    from tests.conftest import login

    bank = login(app, "ly_pm")
    cloned = bank.post(
        "/api/v1/products/FND-DAINONG/clone",
        json={"code": "LY-DAINONG", "overrides": {"time_limits": {"process": "P7D"}}},
    )
    assert cloned.status_code == 201, cloned.get_json()
    assert bank.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG"}).status_code == 409
    assert bank.post("/api/v1/products/FND-DAINONG/clone", json={"code": "bad code"}).status_code == 422
    published = bank.post("/api/v1/products/LY-DAINONG/publish")
    assert published.status_code == 200 and published.get_json()["version"] == 1
    diff = bank.get("/api/v1/products/LY-DAINONG/diff").get_json()
    change = next(c for c in diff["changes"] if c["path"] == "time_limits.process")
    assert change["local"] == "P7D" and change["template"] != "P7D"
    assert [c["path"] for c in diff["changes"]] == sorted(c["path"] for c in diff["changes"])
    assert login(app, "qh_officer").get("/api/v1/products/LY-DAINONG").status_code == 404
    assert bank.post("/api/v1/products/FND-DAINONG/publish").status_code == 403


def test_a_product_withdrawn_from_sale_takes_no_new_applications_and_the_running_ones_go_on(
    catalog: CreditFlow, app: Any
) -> None:

    running = local_application(catalog, {})  # 陵源's LY-DAINONG, with one application under way
    pm, officer = login(app, "ly_pm"), login(app, "ly_officer")
    url = "/api/v1/products/LY-DAINONG"
    assert officer.post(f"{url}/retire", json={"reason": "停办"}).status_code == 403  # products.publish
    assert login(app, "qh_pm").post(f"{url}/retire", json={"reason": "停办"}).status_code == 404  # another bank's
    blank = pm.post(f"{url}/retire", json={"reason": "  "})
    assert blank.status_code == 422 and blank.get_json()["errors"] == [{"field": "reason", "message": "blank"}]
    retired = pm.post(f"{url}/retire", json={"reason": "政策到期停办"})
    assert retired.status_code == 200, retired.get_json()
    assert (retired.get_json()["retired_at"], retired.get_json()["retired_reason"]) == (
        catalog.clock.now().isoformat(),
        "政策到期停办",
    )
    assert pm.post(f"{url}/retire", json={"reason": "again"}).status_code == 409
    listed = {p["code"]: p for p in officer.get("/api/v1/products?tenant=bank-lingyuan").get_json()["items"]}
    assert listed["LY-DAINONG"]["retired_reason"] == "政策到期停办"
    on_sale = officer.get("/api/v1/products?on_sale=true&q=dainong").get_json()["items"]
    assert [p["code"] for p in on_sale] == ["FND-DAINONG"]  # the bank's own is withdrawn; case does not matter
    by_name = officer.get("/api/v1/products", query_string={"q": "薪e贷"}).get_json()["items"]
    assert [p["code"] for p in by_name] == ["XEKD-XIN"]
    withdrawn = officer.get("/api/v1/products?on_sale=false").get_json()["items"]
    assert [p["code"] for p in withdrawn] == ["LY-DAINONG"]

    data = {"amount": "600000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
    body = {"applicant": {**applicant(), "id_number": resident_id("37010219800102123")}, "data": data}
    refused = officer.post(f"{url}/applications", json=body)
    assert refused.status_code == 409 and "withdrawn from sale" in refused.get_json()["detail"], refused.get_json()
    # what is under way goes on
    task = next(t for t in running.tasks if t.bpmn_id == "main_investigation")
    assert catalog.tasks.get(principal_of(catalog, "ly_officer"), task.id).task.status == "ready"
    changes = [c.change.action for c in catalog.catalog_changes.list(SYSTEM, subject="LY-DAINONG")[0]]
    assert changes[0] == "product.retired"

    assert pm.post(f"{url}/reinstate").status_code == 200
    assert pm.post(f"{url}/reinstate").status_code == 409
    assert officer.post(f"{url}/applications", json=body).status_code == 201
    # a template the province withdraws gives no new variants; a bank's variant is the bank's to withdraw
    province = login(app, "pm")
    assert province.post("/api/v1/products/FND-DAINONG/retire", json={"reason": "产品整合"}).status_code == 200
    cloned = pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG-2"})
    assert cloned.status_code == 409 and "withdrawn from sale" in cloned.get_json()["detail"]
    second = {**body, "applicant": {**applicant(), "id_number": resident_id("37010219800103123")}}
    assert officer.post(f"{url}/applications", json=second).status_code == 201
    told = pm.get("/api/v1/notifications?topic=product").get_json()["items"]
    assert [n["summary"] for n in told] == [
        "省联社模板「富农贷·带农增收企业贷」已下架（产品整合），贵行LY-DAINONG仍在售，请决定是否下架"
    ]


def test_a_bank_adds_and_tightens_form_fields_but_cannot_loosen_them(catalog: CreditFlow, seeded: CreditFlow) -> None:
    bank = principal_of(catalog, "ly_officer")
    tightened = {
        "investigation": {
            "required": [
                "investigation_conclusion",
                "interview_done",
                "site_visit_date",
                "investigation_report",
                "village_cadre_opinion",
            ],
            "properties": {"village_cadre_opinion": {"type": "string", "title": "村两委意见", "minLength": 4}},
        }
    }
    view = local_application(catalog, {"form_overrides": tightened})
    task = next(t for t in view.tasks if t.bpmn_id == "main_investigation")
    detail = catalog.tasks.get(bank, task.id)
    assert "village_cadre_opinion" in detail.form.schema["properties"]
    with pytest.raises(InvalidInput) as caught:
        catalog.tasks.complete(
            bank,
            task.id,
            {
                "investigation_conclusion": "reject",
                "interview_done": True,
                "site_visit_date": "2026-11-30",
                "investigation_report": "经营正常，负债偏高。",
            },
        )
    assert {p["field"] for p in caught.value.problems} == {"village_cadre_opinion"}

    loosened = {"investigation": {"required": ["investigation_conclusion"]}}
    catalog.products.set_draft(bank, "LY-DAINONG", {"form_overrides": loosened})
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(bank, "LY-DAINONG")
    assert any("cannot be dropped" in p["message"] for p in refused.value.problems)

    # nor through a keyword a merge patch replaces whole, nor by breaking the form for every completion
    for override, problem in (
        ({"approval": {"allOf": [{}]}}, "allOf may gain conditions, never lose one"),  # approve without an amount
        ({"approval": {"properties": {"comment": {"$ref": "https://169.254.169.254/x.json"}}}}, "$ref"),
        ({"approval": {"properties": {"comment": {"$ref": "#"}}}}, "$ref must name a schema of the form catalog"),
        ({"approval": {"properties": {"comment": {"pattern": "^(a|a)*$"}}}}, "repeats a repeated group"),
        # the province's shared definitions travel inside the bundled form, and stay the province's
        (
            {"approval": {"$defs": {"common-defs.json": {"$defs": {"amount": {"format": None}}}}}},
            "cannot be overridden",
        ),
        ({"approval": {"$id": "other-schema.json"}}, "$id 'other-schema.json' is not allowed"),
    ):
        catalog.products.set_draft(bank, "LY-DAINONG", {"form_overrides": override})
        with pytest.raises(InvalidInput) as refused:
            catalog.products.publish(bank, "LY-DAINONG")
        assert any(problem in p["message"] for p in refused.value.problems), (override, refused.value.problems)


def test_every_problem_of_an_application_comes_in_one_answer(catalog: CreditFlow) -> None:
    """An officer fixed the amount and the ID number, and only then learnt of the mobile and the card."""
    with pytest.raises(InvalidInput) as caught:
        catalog.products.apply(
            SYSTEM,
            "FND-DAINONG",
            applicant={**applicant(), "id_number": "370102198001011230", "mobile": "123"},
            data={
                "amount": "99999999.00",
                "term_months": 12,
                "account": "6222021234567890120",
                "purpose": "购买生产资料",
            },
        )
    fields = sorted(p["field"] for p in caught.value.problems)
    assert fields == ["applicant.id_number", "applicant.mobile", "data.account", "data.amount"]


def test_the_age_rules_read_comes_from_the_id_number_and_bad_ids_are_refused(catalog: CreditFlow) -> None:
    view = catalog.products.apply(
        SYSTEM,
        "FND-DAINONG",
        applicant=applicant(),
        data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )
    assert view.instance.data["age"] == 46  # born 1980-01-01; the clock says 2026-12-01
    with pytest.raises(InvalidInput) as caught:  # what the application does not define is not taken
        data = {"amount": "800000.00", "term_months": 12, "age": 30, "committee_threshold": "99999999.00"}
        catalog.products.apply(SYSTEM, "FND-DAINONG", applicant=applicant(), data=data)
    unknown = [p["field"] for p in caught.value.problems if p.get("code") == "unknown"]
    assert unknown == ["data.age", "data.committee_threshold"]
    with pytest.raises(InvalidInput) as caught:
        catalog.products.apply(
            SYSTEM,
            "FND-DAINONG",
            applicant={**applicant(), "id_number": "370102198001011230"},
            data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
        )
    assert [p["field"] for p in caught.value.problems] == ["applicant.id_number"]


def test_products_are_filtered_by_tenant(catalog: CreditFlow, seeded: CreditFlow, app: Any, api: ApiClient) -> None:
    catalog.products.clone(
        principal_of(catalog, "ly_officer"), "FND-DAINONG", code="LY-DAINONG", name=None, overrides={}
    )
    bank = api.get("/api/v1/products?tenant=bank-lingyuan").get_json()
    assert [p["code"] for p in bank["items"]] == ["LY-DAINONG"]
    templates = api.get("/api/v1/products?tenant=province").get_json()
    assert sorted(p["code"] for p in templates["items"]) == sorted(CODES)
    unknown = api.get("/api/v1/products?tenant=nowhere")
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "tenant"


def test_an_application_missing_what_its_process_needs_is_refused(catalog: CreditFlow) -> None:
    with pytest.raises(InvalidInput) as caught:
        catalog.products.apply(
            SYSTEM,
            "FND-DAINONG",
            applicant={**applicant(), "mobile": "123"},
            data={"amount": "800000.00", "term_months": 12},
        )
    # the account the process needs, and the loan purpose its contract prints (借款用途)
    assert {p["field"] for p in caught.value.problems} == {"data.account", "applicant.mobile", "data.purpose"}


def test_a_product_maps_the_archetype_lanes_and_task_forms_to_its_own(catalog: CreditFlow, seeded: CreditFlow) -> None:
    bank = principal_of(catalog, "ly_officer")
    overrides = {
        "bindings": {"roles": {"loan_officer": "senior_approver"}, "forms": {"co_investigation": "investigation"}}
    }
    view = local_application(catalog, overrides)
    tasks = {t.bpmn_id: t for t in view.tasks}
    assert tasks["main_investigation"].lane == "loan_officer"  # the BPMN lane ...
    assert tasks["main_investigation"].role == "senior_approver"  # ... offered to the role the product maps it to
    with catalog.db.transaction() as session:  # ... and still the investigation in segregation of duties
        duty = session.scalar(select(HumanTask.duty).where(HumanTask.id == tasks["main_investigation"].id))
    assert duty == "investigate"
    assert tasks["co_investigation"].role == "co_investigator"  # not mapped: the archetype's lane
    assert tasks["co_investigation"].form == "investigation"
    assert catalog.tasks.get(bank, tasks["co_investigation"].id).form.name == "investigation"


def test_malformed_drafts_and_overrides_are_4xx_at_publish_never_500(catalog: CreditFlow, app: Any) -> None:
    from tests.conftest import login

    bank, province = login(app, "ly_pm"), login(app, "pm")
    cloned = bank.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-X", "overrides": {"name": 5}})
    assert cloned.status_code == 201
    refused = bank.post("/api/v1/products/LY-X/publish")
    assert refused.status_code == 422 and any(e["field"] == "name" for e in refused.get_json()["errors"])
    emptied = province.put("/api/v1/products/FND-DAINONG/draft", json={"draft": {}})
    assert emptied.status_code == 200
    assert province.post("/api/v1/products/FND-DAINONG/publish").status_code == 422
    assert province.put("/api/v1/products/FND-DAINONG/draft", json={"draft": []}).status_code == 422


def test_step_and_process_time_limits_are_computed_in_working_time_when_work_opens(
    catalog: CreditFlow, seeded: CreditFlow, app: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.conftest import login

    bank = principal_of(catalog, "ly_officer")
    limits = {"time_limits": {"process": "P10D", "steps": {"main_investigation": "PT4H"}}}
    catalog.products.clone(bank, "FND-DAINONG", code="LY-DAINONG", name=None, overrides=limits)
    catalog.products.publish(bank, "LY-DAINONG")
    # the clock: Tuesday 2026-12-01 09:00 in Beijing
    view = catalog.products.apply(
        bank,
        "LY-DAINONG",
        applicant=applicant(),
        data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )
    task = next(t for t in view.tasks if t.bpmn_id == "main_investigation")
    beijing = timedelta(hours=8)
    # 4 working hours from 09:00 with the 12:00-13:30 lunch break: 14:30; yellow at 80 % (3h12m): 13:42;
    # red at 150 % (6 h): 16:30
    assert task.due_at == datetime(2026, 12, 1, 14, 30, tzinfo=UTC) - beijing
    assert task.warn_at == datetime(2026, 12, 1, 13, 42, tzinfo=UTC) - beijing
    assert task.escalate_at == datetime(2026, 12, 1, 16, 30, tzinfo=UTC) - beijing
    assert view.instance.due_at == datetime(2026, 12, 15, 9, 0, tzinfo=UTC) - beijing  # 10 working days
    co = next(t for t in view.tasks if t.bpmn_id == "co_investigation")
    assert co.due_at == datetime(2026, 12, 4, 9, 0, tzinfo=UTC) - beijing  # the archetype's default: 3 working days

    api = login(app, "ly_officer")
    assert api.get(f"/api/v1/tasks/{task.id}").get_json()["level"] == "none"
    catalog.clock.advance(timedelta(hours=5, minutes=30))  # 14:30 Beijing: the limit is reached
    detail = api.get(f"/api/v1/tasks/{task.id}").get_json()
    assert detail["level"] == "orange" and detail["due_at"].startswith("2026-12-01T06:30")
    listed = api.get("/api/v1/tasks?step=main_investigation").get_json()["items"]
    assert [t["level"] for t in listed] == ["orange"]


def forty_day_application(catalog: CreditFlow) -> Any:
    """An application whose process limit is 40 working days: the province's template sets it (a bank's
    variant may only shorten the template's clocks)."""
    edit_draft(catalog, "FND-DAINONG", lambda draft: draft["time_limits"].update(process="P40D"))
    catalog.products.publish(SYSTEM, "FND-DAINONG")
    return local_application(catalog, {})


def test_a_limit_reaching_a_year_without_a_calendar_is_flagged_not_guessed(
    catalog: CreditFlow, seeded: CreditFlow
) -> None:
    bank = principal_of(catalog, "ly_officer")
    view = forty_day_application(catalog)
    assert view.instance.status == "running" and view.instance.due_at is None  # 40 working days reach 2027
    missing = [e for e in catalog.instances.history(bank, view.instance.id) if e.event_type == "calendar_missing"]
    assert missing and missing[0].payload["year"] == 2027
    with catalog.db.transaction() as session:  # and the administrators are alerted
        (alert,) = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "calendar.missing")).all()
        admins = set(session.scalars(select(User.id).where(User.username.in_(["admin", "ly_admin"]))))
    assert alert.payload["year"] == 2027 and set(alert.recipients) == admins


def test_an_unpublished_draft_changes_nothing_the_catalog_lists(catalog: CreditFlow, app: Any) -> None:
    """A province draft renamed FND-DAINONG and moved it to the instant archetype: loan officers saw both
    at once, filtered on it and read the draft, though applications still ran the published version."""
    from tests.conftest import login

    province, officer = login(app, "pm"), login(app, "ly_officer")
    draft = province.get("/api/v1/products/FND-DAINONG").get_json()["draft"]
    changed = {**draft, "name": "富农贷·草稿改名未发布", "archetype": "a1_instant_online"}
    assert province.put("/api/v1/products/FND-DAINONG/draft", json={"draft": changed}).status_code == 200
    listed = officer.get("/api/v1/products?archetype=a1_instant_online").get_json()["items"]
    assert "FND-DAINONG" not in [p["code"] for p in listed]
    seen = officer.get("/api/v1/products/FND-DAINONG").get_json()
    assert (seen["name"], seen["archetype"], seen["draft"]) == (draft["name"], "a4_standard_offline", None)
    assert province.get("/api/v1/products/FND-DAINONG").get_json()["draft"]["name"] == "富农贷·草稿改名未发布"


def test_a_local_product_names_its_template_over_http(catalog: CreditFlow, app: Any) -> None:
    from tests.conftest import login

    bank = login(app, "ly_pm")
    bank.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG"})
    local = bank.get("/api/v1/products/LY-DAINONG").get_json()
    template = bank.get("/api/v1/products/FND-DAINONG").get_json()
    assert template["template_id"] is None and local["template_id"] is not None
    assert local["tenant_id"] is not None and template["tenant_id"] is None


# -- the business calendar that time limits follow ------------------------------------------------------------


def test_entering_2027_in_the_calendar_lets_a_limit_reach_into_it(
    catalog: CreditFlow, app: Any, settings: Any, monkeypatch: Any
) -> None:
    admin = login(app, "admin")
    assert (
        admin.put("/api/v1/admin/calendar/days/2027-01-01", json={"workday": False, "note": "元旦"}).status_code == 200
    )
    assert admin.put("/api/v1/admin/calendar/years/2027").status_code == 204
    listed = admin.get("/api/v1/admin/calendar/days?year=2027").get_json()["items"]
    assert [(d["day"], d["workday"], d["note"]) for d in listed] == [("2027-01-01", False, "元旦")]

    view = forty_day_application(catalog)
    # 40 working days from Tue 2026-12-01 09:00 Beijing: 22 to 31 December, then 18 in 2027 with
    # 1 January off: Wednesday 2027-01-27 09:00
    assert view.instance.due_at == datetime(2027, 1, 27, 9, 0, tzinfo=UTC) - timedelta(hours=8)

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    done = CliRunner().invoke(
        cli, ["calendar", "set", "2027-01-04", "holiday", "--note", "示例"], catch_exceptions=False
    )
    assert done.exit_code == 0 and "2027-01-04 is a holiday" in done.output


def test_only_administrators_change_the_calendar_and_bad_input_is_4xx(catalog: CreditFlow, app: Any) -> None:
    officer = login(app, "ly_officer")
    assert officer.put("/api/v1/admin/calendar/days/2027-01-01", json={"workday": False}).status_code == 403
    assert officer.put("/api/v1/admin/calendar/years/2027").status_code == 403
    admin = login(app, "admin")
    assert admin.put("/api/v1/admin/calendar/days/2027-02-30", json={"workday": False}).status_code == 422
    assert admin.put("/api/v1/admin/calendar/days/2027-02-01", json={"workday": "maybe"}).status_code == 422
    assert admin.put("/api/v1/admin/calendar/years/1900").status_code == 422
    assert admin.get("/api/v1/admin/calendar/days").status_code == 422


# -- a local product narrows its template; bindings name what exists; applications choose what is offered -----


WIDENED = {  # 陵源's variant of XEKD-XIN, every range and list wider than the template's
    "parameters": {
        "amount": {"min": "500.00", "max": "9000000.00"},  # template 1000.00 – 200000.00
        "term_months": {"max": 60},  # template 1–36
        "rate": {"benchmark": "LPR_5Y", "min_bp": -100, "max_bp": 900},  # template LPR_1Y + 50–250
        "repayment_methods": ["flexible", "bullet"],  # template flexible, equal_installment
        "guarantee_types": ["credit", "mortgage"],  # template credit
    },
    "segments": ["salaried", "farmer"],  # template salaried
    "rule_parameters": {  # template 18–60 years, 200000 yuan, 50–250 bp; the rule's default income 2000
        "min_age": 16,
        "max_age": None,  # left out: the rule's default 65 would apply
        "max_amount": 9000000,
        "min_rate_bp": -100,
        "max_rate_bp": 900,
        "min_monthly_income": 1000,
    },
}


def test_a_local_product_may_only_narrow_its_templates_ranges_and_lists(
    catalog: CreditFlow, seeded: CreditFlow
) -> None:
    bank = principal_of(catalog, "ly_pm")
    catalog.products.clone(bank, "XEKD-XIN", code="LY-XIN", name=None, overrides=WIDENED)
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(bank, "LY-XIN")
    messages = {p["field"]: p["message"] for p in refused.value.problems}
    assert sorted(messages) == sorted(
        [
            "parameters.amount.min",
            "parameters.amount.max",
            "parameters.term_months.max",
            "parameters.rate.min_bp",
            "parameters.rate.max_bp",
            "parameters.rate.benchmark",
            "parameters.repayment_methods",
            "parameters.guarantee_types",
            "segments",
            "rule_parameters.min_age",
            "rule_parameters.max_age",
            "rule_parameters.max_amount",
            "rule_parameters.min_rate_bp",
            "rule_parameters.max_rate_bp",
            "rule_parameters.min_monthly_income",
        ]
    )
    assert len(refused.value.problems) == len(messages)  # one problem per field
    assert messages["parameters.amount.max"] == "cannot go above the template's 200000.00"
    assert messages["parameters.rate.min_bp"] == "cannot go below the template's 50"
    assert messages["parameters.rate.max_bp"] == "cannot go above the template's 250"
    assert "adds mortgage" in messages["parameters.guarantee_types"]
    assert "adds bullet" in messages["parameters.repayment_methods"]
    assert "adds farmer" in messages["segments"]
    assert messages["rule_parameters.max_age"].startswith("cannot go above the template's 60 (left out")
    assert messages["rule_parameters.min_monthly_income"] == "cannot go below the template's 2000"
    assert catalog.products.versions(bank, "LY-XIN") == []

    # the same bounds or tighter ones, and fewer choices, publish
    narrowed = {
        "parameters": {
            "amount": {"min": "1000.00", "max": "150000.00"},
            "term_months": {"min": 3, "max": 36},
            "rate": {"min_bp": 80, "max_bp": 200},
            "repayment_methods": ["equal_installment"],
        },
        "rule_parameters": {"min_age": 20, "max_age": 55, "max_amount": 150000, "min_rate_bp": 80, "max_rate_bp": 200},
    }
    catalog.products.set_draft(bank, "LY-XIN", narrowed)
    version = catalog.products.publish(bank, "LY-XIN")
    assert version.config["parameters"]["amount"]["max"] == "150000.00"
    assert version.config["parameters"]["repayment_methods"] == ["equal_installment"]


def test_widening_a_template_is_refused_over_http_and_nothing_lends_outside_it(catalog: CreditFlow, app: Any) -> None:
    bank = login(app, "ly_pm")
    overrides = {"parameters": {"amount": {"max": "9000000.00"}, "rate": {"min_bp": -100, "max_bp": 900}}}
    cloned = bank.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG", "overrides": overrides})
    assert cloned.status_code == 201
    refused = bank.post("/api/v1/products/LY-DAINONG/publish")
    assert refused.status_code == 422 and refused.content_type == "application/problem+json"
    assert {e["field"] for e in refused.get_json()["errors"]} == {
        "parameters.amount.max",
        "parameters.rate.min_bp",
        "parameters.rate.max_bp",
    }
    application = {
        "applicant": applicant(),
        "data": {"amount": "8000000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    }
    unpublished = login(app, "ly_officer").post("/api/v1/products/LY-DAINONG/applications", json=application)
    assert unpublished.status_code == 422  # never published: no application starts on the wider range
    with catalog.db.transaction() as session:
        assert session.scalars(select(ProcessInstance)).first() is None


def test_applications_must_choose_what_the_product_offers(catalog: CreditFlow, app: Any) -> None:
    # FND-DAINONG offers guarantee and mortgage, two repayment methods, to small businesses
    data = {"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
    with pytest.raises(InvalidInput) as caught:
        catalog.products.apply(
            SYSTEM,
            "FND-DAINONG",
            applicant=applicant(),
            data={**data, "guarantee_type": "credit", "repayment_method": "bullet", "segment": "farmer"},
        )
    messages = {p["field"]: p["message"] for p in caught.value.problems}
    assert messages == {
        "data.guarantee_type": "must be one the product offers: guarantee, mortgage",
        "data.repayment_method": (
            "must be one the product offers: interest_monthly_principal_at_maturity, installment_principal"
        ),
        "data.segment": "must be one the product offers: small_business",
    }
    with catalog.db.transaction() as session:
        assert session.scalars(select(ProcessInstance)).first() is None

    officer = login(app, "ly_officer")
    mortgage = {**data, "guarantee_type": "mortgage"}
    refused = officer.post(
        "/api/v1/products/FND-DAINONG/applications",
        json={"applicant": applicant(), "data": {**mortgage, "guarantee_type": "pledge"}},
    )
    assert refused.status_code == 422 and refused.content_type == "application/problem+json"
    assert [e["field"] for e in refused.get_json()["errors"]] == ["data.guarantee_type"]
    offered = {**mortgage, "repayment_method": "installment_principal", "segment": "small_business"}
    started = officer.post(
        "/api/v1/products/FND-DAINONG/applications", json={"applicant": applicant(), "data": offered}
    )
    assert started.status_code == 201, started.get_json()


BROKEN_BINDINGS = {  # 陵源's variant of FND-DAINONG (a4_standard_offline, which binds no rule)
    "bindings": {
        "decisions": {"access": "xed-access"},  # a4 has no business-rule task
        "roles": {
            "approver": "no_such_role",  # not in the role catalogue: nobody's inbox
            "no_such_lane": "approver",
            "reviewer": "product_manager",  # a role whose holders do no task work
        },
        "forms": {"no_such_task": "investigation"},
        "assignment": {
            "no_such_lane": {"priority": 90},
            "co_investigator": {
                "candidate_users": ["ly_committee1", "qh_officer", "nobody", "ly_officer2"],  # 2nd: another bank
                "candidate_groups": ["ly-credit-committee", "qh-credit-committee", "no-such-group"],
            },
        },
    },
    "time_limits": {"steps": {"no_such_step": "P1D", "review": "PT4H"}},
    "rule_parameters": {"max_agee": 60},  # no bound rule reads it
    "form_overrides": {"review": {"required": ["recommendation", "comment", "no_such_field"]}},
}


def test_publishing_refuses_bindings_the_process_or_the_bank_does_not_have(catalog: CreditFlow, app: Any) -> None:
    bank = principal_of(catalog, "ly_pm")
    catalog.organization.deactivate_user(SYSTEM, "ly_officer2")
    catalog.products.clone(bank, "FND-DAINONG", code="LY-DAINONG", name=None, overrides=BROKEN_BINDINGS)
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(bank, "LY-DAINONG")
    messages = {p["field"]: p["message"] for p in refused.value.problems}
    assert sorted(messages) == sorted(
        [
            "bindings.decisions.access",
            "bindings.roles.approver",
            "bindings.roles.no_such_lane",
            "bindings.roles.reviewer",
            "bindings.forms.no_such_task",
            "bindings.assignment.no_such_lane",
            "bindings.assignment.co_investigator.candidate_users.1",
            "bindings.assignment.co_investigator.candidate_users.2",
            "bindings.assignment.co_investigator.candidate_users.3",
            "bindings.assignment.co_investigator.candidate_groups.1",
            "bindings.assignment.co_investigator.candidate_groups.2",
            "time_limits.steps.no_such_step",
            "rule_parameters.max_agee",
            "form_overrides.review.required",
        ]
    )
    assert messages["bindings.roles.approver"].startswith("no role 'no_such_role'")
    assert "does not work on tasks" in messages["bindings.roles.reviewer"]
    assert "has no lane 'no_such_lane'" in messages["bindings.roles.no_such_lane"]
    assert "has no user task 'no_such_step'" in messages["time_limits.steps.no_such_step"]
    assert messages["bindings.assignment.co_investigator.candidate_users.1"] == "no user 'qh_officer' in bank-lingyuan"
    assert messages["bindings.assignment.co_investigator.candidate_users.3"] == "user 'ly_officer2' is deactivated"
    assert messages["bindings.assignment.co_investigator.candidate_groups.1"] == (
        "no group 'qh-credit-committee' in bank-lingyuan"
    )
    assert messages["form_overrides.review.required"] == "requires no_such_field, which the form does not have"

    over_http = login(app, "ly_pm").post("/api/v1/products/LY-DAINONG/publish")
    assert over_http.status_code == 422 and over_http.content_type == "application/problem+json"
    assert {e["field"] for e in over_http.get_json()["errors"]} == set(messages)

    # what the process and the bank do have publishes, and the application goes where it says
    fixed = {
        "bindings": {
            "roles": {"approver": "senior_approver"},
            "assignment": {
                "co_investigator": {"candidate_users": ["ly_committee1"], "candidate_groups": ["ly-credit-committee"]}
            },
        },
        "time_limits": {"steps": {"review": "PT4H"}},
        "form_overrides": {
            "review": {
                "required": ["recommendation", "comment", "guarantor_visit_done"],
                "properties": {"guarantor_visit_done": {"type": "boolean", "title": "已走访担保公司"}},
            }
        },
    }
    catalog.products.set_draft(bank, "LY-DAINONG", fixed)
    assert catalog.products.publish(bank, "LY-DAINONG").version == 1


def test_a_product_never_hands_a_credit_decision_to_a_junior_role(catalog: CreditFlow, seeded: CreditFlow) -> None:
    """A bank's product manager mapped the review, the committee and the senior sign-off to its loan
    officers and the approval to the village helpers, published alone, and one officer took a loan from
    investigation to disbursement."""
    bank = principal_of(catalog, "ly_pm")
    junior = {
        "reviewer": "loan_officer",
        "credit_committee": "loan_officer",
        "senior_approver": "loan_officer",
        "approver": "village_committee",
    }
    catalog.products.clone(bank, "FND-DAINONG", code="LY-DAINONG", name=None, overrides={"bindings": {"roles": junior}})
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(bank, "LY-DAINONG")
    messages = {p["field"]: p["message"] for p in refused.value.problems}
    assert sorted(messages) == sorted(f"bindings.roles.{lane}" for lane in junior)
    assert messages["bindings.roles.approver"] == (
        "the approver lane takes a credit decision (审批岗); 村委会协办员 may not: map it to a role at least as senior"
    )
    assert "only a committee role may vote" in messages["bindings.roles.credit_committee"]
    # a more senior decider, or another holder of the same duty, is the bank's choice
    senior = {"approver": "senior_approver", "reviewer": "risk_manager"}
    catalog.products.set_draft(bank, "LY-DAINONG", {"bindings": {"roles": senior}})
    assert catalog.products.publish(bank, "LY-DAINONG").version == 1


def test_a_template_binds_every_decision_slot_of_its_process_and_names_no_banks_people(catalog: CreditFlow) -> None:
    def break_template(draft: dict[str, Any]) -> None:
        del draft["bindings"]["decisions"]["scorecard"]  # A1 runs the scorecard slot
        draft["bindings"]["assignment"] = {"manual_reviewer": {"candidate_users": ["ly_risk"]}}
        draft["time_limits"]["steps"] = {"manual_review": "PT2H", "approval": "PT4H"}  # A1 has no approval

    edit_draft(catalog, "XEKD-XIN", break_template)
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(SYSTEM, "XEKD-XIN")
    messages = {p["field"]: p["message"] for p in refused.value.problems}
    assert sorted(messages) == [
        "bindings.assignment.manual_reviewer.candidate_users.0",
        "bindings.decisions.scorecard",
        "time_limits.steps.approval",
    ]
    assert "bind a rule to it" in messages["bindings.decisions.scorecard"]
    assert "province template names no users" in messages["bindings.assignment.manual_reviewer.candidate_users.0"]
    assert [v.version for v in catalog.products.versions(SYSTEM, "XEKD-XIN")] == [1]


def test_clone_refuses_a_code_that_can_never_publish_and_overrides_that_are_no_merge_patch(
    catalog: CreditFlow, seeded: CreditFlow, app: Any
) -> None:
    bank = principal_of(catalog, "ly_pm")
    with pytest.raises(InvalidInput) as refused:
        catalog.products.clone(bank, "FND-DAINONG", code="ly-dainong", name=None, overrides=[{"name": "x"}])  # type: ignore[arg-type]
    assert {p["field"]: p["message"] for p in refused.value.problems} == {
        "code": "'ly-dainong' is not a product code: capitals, digits and '-' (^[A-Z][A-Z0-9-]{1,31}$)",
        "overrides": "must be a JSON object (a JSON Merge Patch), not an array",
    }
    pm = login(app, "ly_pm")
    listed = pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG", "overrides": []})
    assert listed.status_code == 422 and listed.get_json()["errors"][0]["field"] == "overrides"
    with catalog.db.transaction() as session:
        assert session.scalars(select(Product.code).where(Product.tenant_id.is_not(None))).all() == []


def test_products_clone_on_the_command_line_refuses_bad_files_and_codes_in_one_line(
    catalog: CreditFlow, seeded: CreditFlow, settings: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))

    def clone(code: str, content: str) -> Any:
        patch = tmp_path / "patch.json"
        patch.write_text(content, encoding="utf-8")
        args = ["products", "clone", "FND-DAINONG", code, "--tenant", "bank-lingyuan", "--overrides", str(patch)]
        return CliRunner().invoke(cli, args)

    for code, content, reason in [
        ("LY-DAINONG", "{'parameters': 1}", "is not valid JSON: Expecting property name enclosed in double quotes"),
        ("LY-DAINONG", "", "is not valid JSON"),
        ("LY-DAINONG", '{"a": NaN}', "is not valid JSON: NaN is not valid JSON"),
        ("LY-DAINONG", '[{"parameters": {}}]', "overrides must be a JSON object (a JSON Merge Patch), not an array"),
        ("ly-dainong", "{}", "code 'ly-dainong' is not a product code"),
    ]:
        result = clone(code, content)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (content, result.output)
        lines = result.output.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], (content, lines)
    with catalog.db.transaction() as session:
        assert session.scalars(select(Product.code).where(Product.tenant_id.is_not(None))).all() == []

    done = clone("LY-DAINONG", '{"time_limits": {"process": "P7D"}}')
    assert done.exit_code == 0 and "cloned FND-DAINONG into LY-DAINONG" in done.output


def test_above_the_committee_threshold_a_bank_without_a_committee_is_told_so(catalog: CreditFlow) -> None:
    data = {"amount": "1500000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
    with pytest.raises(Conflict, match="no active credit committee member"):
        catalog.products.apply(SYSTEM, "FND-DAINONG", applicant=applicant(), data=data)
    with catalog.db.transaction() as session:
        assert session.scalars(select(ProcessInstance)).first() is None


def test_a_retry_of_an_application_changes_none_of_its_data(catalog: CreditFlow, seeded: CreditFlow) -> None:
    """Retry wrote whatever it was given into the application: a 9,000,000 approval on a 50,000 one."""
    view = local_application(catalog, {})
    with catalog.db.transaction(write=True) as session:  # a connector failed later on
        session.execute(update(ProcessInstance).where(ProcessInstance.id == view.instance.id).values(status="error"))
    risk = principal_of(catalog, "ly_risk")
    with pytest.raises(InvalidInput) as refused:
        catalog.instances.retry(risk, view.instance.id, {"approved_amount": "9000000.00"})
    assert [p["field"] for p in refused.value.problems] == ["data"]
    assert "approved_amount" not in catalog.instances.get(SYSTEM, view.instance.id).instance.data


def test_a_retried_submission_with_its_idempotency_key_starts_one_application(catalog: CreditFlow, app: Any) -> None:
    """A channel that retries after a timeout sends the same key: it gets the application the first
    attempt started (its id, its status), never a second contract and disbursement."""
    officer, colleague = login(app, "ly_officer"), login(app, "ly_officer2")
    body = {
        "applicant": applicant(),
        "business_key": "MB-20261202-0001",
        "data": {"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    }
    url, key = "/api/v1/products/FND-DAINONG/applications", {"Idempotency-Key": "mb-7f3a9c"}
    first = officer.post(url, json=body, headers=key)
    again = officer.post(url, json=body, headers=key)
    assert first.status_code == again.status_code == 201, again.get_json()
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    changed = officer.post(url, json={**body, "business_key": "MB-20261202-0002"}, headers=key)
    assert changed.status_code == 422 and changed.get_json()["errors"][0]["field"] == "Idempotency-Key"
    bad = officer.post(url, json=body, headers={"Idempotency-Key": "has spaces"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "Idempotency-Key"
    other_borrower = {**body, "applicant": {**applicant(), "id_number": resident_id("37010219800101124")}}
    answer = colleague.post(url, json=other_borrower, headers=key)  # keys are per caller
    assert answer.status_code == 201 and answer.get_json()["id"] != first.get_json()["id"]
    with catalog.db.transaction() as session:
        started = session.scalars(select(ProcessInstance.business_key).where(ProcessInstance.business_key.is_not(None)))
        assert sorted(started) == ["MB-20261202-0001", "MB-20261202-0001"]  # the officer's and the colleague's


def test_a_product_manager_tries_the_drafts_rule_decision_before_publishing_it(
    catalog: CreditFlow, app: Any, api: ApiClient
) -> None:
    """规则试算: XEKD-XIN's access rule refuses applicants over its max_age (60); the draft raises it to 65
    and the trial shows what publishing would decide, while version 1 still decides as before."""
    from tests.test_product_runs import CLEAN

    trial = "/api/v1/products/XEKD-XIN/decisions/access/trial"
    applicant = {**CLEAN, "segment": "salaried", "occupation_category": "enterprise_employee", "applied_amount": 50000}
    older = {**applicant, "age": 61}
    on_sale = api.post(trial, json={"input": older, "version": 1})
    assert on_sale.status_code == 200, on_sale.get_json()
    assert on_sale.get_json()["version"] == 1 and on_sale.get_json()["decision"].startswith("xed-access@")
    actions = {h["id"]: h["action"] for h in on_sale.get_json()["hits"]}
    assert actions["XED-A-0002"] == "reject" and on_sale.get_json()["result"]["outcome"] == "reject"
    with catalog.db.transaction() as session:
        decisions = session.scalar(select(func.count()).select_from(RuleDecision))

    draft = api.get("/api/v1/products/XEKD-XIN").get_json()["draft"]
    draft["rule_parameters"]["max_age"] = 65
    assert api.put("/api/v1/products/XEKD-XIN/draft", json={"draft": draft}).status_code == 200
    tried = api.post(trial, json={"input": older})
    assert tried.status_code == 200, tried.get_json()
    assert tried.get_json()["version"] is None
    assert [h["id"] for h in tried.get_json()["hits"]] == ["XED-A-0030"]  # near retirement: a warning only
    assert tried.get_json()["result"]["outcome"] == "approve"
    assert tried.get_json()["decision"] != on_sale.get_json()["decision"]  # other content, other key
    assert api.post(trial, json={"input": older, "version": 1}).get_json()["hits"] == on_sale.get_json()["hits"]
    with catalog.db.transaction() as session:  # a trial writes nothing
        assert session.scalar(select(func.count()).select_from(RuleDecision)) == decisions
    assert api.get("/api/v1/products/XEKD-XIN").get_json()["current_version"] == 1

    missing = {k: v for k, v in applicant.items() if k != "age"}
    for body, status, field in (
        ({"input": missing}, 422, "input.age"),
        ({"input": {**applicant, "age": "old"}}, 422, "input.age"),
        ({"input": "x"}, 422, "input"),
        ({}, 422, "input"),
        ({"input": applicant, "version": 0}, 422, "version"),
    ):
        refused = api.post(trial, json=body)
        assert refused.status_code == status and refused.content_type == "application/problem+json", body
        assert [e["field"] for e in refused.get_json()["errors"]] == [field], refused.get_json()
    assert api.post(trial, json={"input": applicant, "version": 9}).status_code == 404
    assert api.post("/api/v1/products/XEKD-XIN/decisions/nope/trial", json={"input": applicant}).status_code == 404
    assert api.post("/api/v1/products/FND-DAINONG/decisions/access/trial", json={"input": applicant}).status_code == 404
    for broken, field in (
        (
            {"bindings": {**draft["bindings"], "decisions": {"access": "../../etc/passwd"}}},
            "draft.bindings.decisions.access",
        ),
        ({"rule_parameters": "x"}, "draft.rule_parameters"),
    ):
        assert api.put("/api/v1/products/XEKD-XIN/draft", json={"draft": {**draft, **broken}}).status_code == 200
        refused = api.post(trial, json={"input": applicant})
        assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == field, refused.get_json()
    assert login(app, "ly_officer").post(trial, json={"input": applicant}).status_code == 403
    assert app.test_client().post(trial, json={"input": applicant}).status_code == 401
