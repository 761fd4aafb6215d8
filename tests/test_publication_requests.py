"""Four-eyes publication (双人复核): one product manager submits a draft, a second one approves it, and only
the approval publishes, exactly the draft that was submitted. These tests run with the installation's
default, four-eyes control on (the other tests switch it off to publish directly)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.cli import main as cli
from engine.config import ConfigError, Settings
from engine.container import CreditFlow
from engine.errors import Conflict, Forbidden
from engine.store.models import ProductVersion, PublicationRequest, User
from tests.conftest import ApiClient, login
from tests.test_products import SYSTEM, catalog, edit_draft, principal_of  # noqa: F401 - fixture

PROBLEM = "application/problem+json"
LY = "/api/v1/products/LY-DAINONG"
REQUESTS = f"{LY}/publication-requests"


REPO = Path(__file__).resolve().parents[1]
DEFAULT = next(f.default for f in dataclasses.fields(Settings) if f.name == "four_eyes")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The installation's default: four-eyes control on."""
    return dataclasses.replace(settings, four_eyes=DEFAULT)


@pytest.fixture
def pm(catalog: CreditFlow, app: Any) -> ApiClient:  # noqa: F811 - the fixture
    """陵源's product manager (the maker), with the bank's variant of FND-DAINONG: a 7-day process limit,
    never published."""
    pm = login(app, "ly_pm")
    cloned = pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG", "overrides": process_limit(7)})
    assert cloned.status_code == 201, cloned.get_json()
    return pm


@pytest.fixture
def checker(app: Any) -> ApiClient:
    """陵源's second product manager."""
    return login(app, "ly_pm2")


def process_limit(days: int) -> dict[str, Any]:
    return {"time_limits": {"process": f"P{days}D"}}


def actions(client: ApiClient, code: str = "LY-DAINONG") -> list[tuple[str, str | None]]:
    """The product's change trail, newest first: (action, actor)."""
    items = client.get(f"/api/v1/catalog-changes?subject={code}").get_json()["items"]
    return [(c["action"], c["actor"]) for c in items]


def told(platform: CreditFlow, username: str) -> list[Any]:
    return platform.notifications.list(principal_of(platform, username), topic="product.publication").items


def versions(platform: CreditFlow) -> int:
    with platform.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(ProductVersion)) or 0


def test_four_eyes_is_on_unless_the_installation_switches_it_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert DEFAULT is True
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", "k" * 48)
    monkeypatch.delenv("CREDITFLOW_FOUR_EYES", raising=False)
    assert Settings.from_env().four_eyes is True
    for text, value in (("off", False), ("FALSE", False), ("0", False), ("on", True), (" yes ", True)):
        monkeypatch.setenv("CREDITFLOW_FOUR_EYES", text)
        assert Settings.from_env().four_eyes is value, text
    monkeypatch.setenv("CREDITFLOW_FOUR_EYES", "sometimes")
    with pytest.raises(ConfigError, match="CREDITFLOW_FOUR_EYES must be on or off"):
        Settings.from_env()


def test_nobody_publishes_alone_but_the_shipped_catalog_still_loads(
    catalog: CreditFlow,  # noqa: F811 - the fixture: loaded and published under four-eyes control
    pm: ApiClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert pm.get("/api/v1/products/FND-DAINONG").get_json()["current_version"] == 1
    refused = pm.post(f"{LY}/publish")
    assert refused.status_code == 409 and refused.content_type == PROBLEM
    assert "four-eyes" in refused.get_json()["detail"] and REQUESTS in refused.get_json()["detail"]
    assert pm.get(LY).get_json()["current_version"] is None
    with pytest.raises(Conflict):
        catalog.products.publish(SYSTEM, "FND-DAINONG")
    # the command line is no way round it; loading the shipped templates is
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("CREDITFLOW_FOUR_EYES", raising=False)
    by_hand = CliRunner().invoke(cli, ["products", "publish", "LY-DAINONG"])
    assert by_hand.exit_code == 1 and "four-eyes" in by_hand.output
    assert versions(catalog) == 2  # the two templates the fixture loaded
    monkeypatch.setenv("CREDITFLOW_FOUR_EYES", "off")
    assert CliRunner().invoke(cli, ["products", "publish", "LY-DAINONG"]).exit_code == 0


def test_one_product_manager_submits_and_another_approves_what_was_submitted(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    pm: ApiClient,
    checker: ApiClient,
) -> None:
    submitted = pm.post(REQUESTS, json={"note": "办理时限缩短为7天"})
    assert submitted.status_code == 201, submitted.get_json()
    request = submitted.get_json()
    assert {k: request[k] for k in ("product", "status", "note", "submitted_by", "decided_by")} == {
        "product": "LY-DAINONG",
        "status": "submitted",
        "note": "办理时限缩短为7天",
        "submitted_by": "ly_pm",
        "decided_by": None,
    }
    # never published: compared with the template version the variant narrows
    assert request["compared_to_version"] is None
    assert request["changes"] == [
        {"path": "/code", "old": "FND-DAINONG", "new": "LY-DAINONG"},
        {"path": "/time_limits/process", "old": "P10D", "new": "P7D"},
    ]
    # the bank's other people who can approve hear of it; the submitter, another bank and a loan officer do not
    for username in ("ly_pm2", "ly_admin"):
        (note,) = told(catalog, username)
        assert note.topic == "product.publication_submitted"
        assert note.summary == "陵源产品经理提交了产品「富农贷·带农增收企业贷」的发布申请，请复核"
        assert note.payload["request_id"] == request["id"] and note.payload["note"] == "办理时限缩短为7天"
    for username in ("ly_pm", "qh_pm", "qh_pm2", "pm", "ly_officer"):
        assert told(catalog, username) == [], username

    listed = checker.get(REQUESTS).get_json()
    assert listed["total"] == 1 and listed["items"] == [request]
    assert checker.get(f"{REQUESTS}/{request['id']}").get_json() == request
    own = pm.post(f"{REQUESTS}/{request['id']}/approve")
    assert own.status_code == 403 and "another product manager" in own.get_json()["detail"]

    approved = checker.post(f"{REQUESTS}/{request['id']}/approve")
    assert approved.status_code == 200, approved.get_json()
    body = approved.get_json()
    assert (body["status"], body["decided_by"], body["published_version"]) == ("approved", "ly_pm2", 1)
    product = pm.get(LY).get_json()
    assert product["current_version"] == 1 and product["config"]["time_limits"]["process"] == "P7D"
    (note,) = told(catalog, "ly_pm")
    assert note.topic == "product.publication_approved"
    assert note.summary == "产品「富农贷·带农增收企业贷」的发布申请已由陵源产品经理（复核）复核通过，已发布第1版"
    assert actions(pm) == [
        ("product.publication_approved", "ly_pm2"),
        ("product.published", "ly_pm2"),
        ("product.publication_submitted", "ly_pm"),
        ("product.variant_created", "ly_pm"),
    ]
    trail = pm.get("/api/v1/catalog-changes?subject=LY-DAINONG").get_json()["items"]
    assert trail[0]["version"] == 1 and trail[0]["details"]["request"] == request["id"]
    assert trail[2]["details"]["changes"] == request["changes"]
    assert pm.post(f"{REQUESTS}/{request['id']}/approve").status_code == 409  # decided: no longer open
    assert checker.post(f"{REQUESTS}/{request['id']}/reject", json={"reason": "晚了"}).status_code == 409

    # the next change is compared with the version on sale; the checker rejects it with a reason
    assert pm.put(f"{LY}/draft", json={"draft": process_limit(5)}).status_code == 200
    again = pm.post(REQUESTS, json={}).get_json()
    assert (again["compared_to_version"], again["changes"]) == (
        1,
        [{"path": "/time_limits/process", "old": "P7D", "new": "P5D"}],
    )
    reject = f"{REQUESTS}/{again['id']}/reject"
    for body, field in (({}, "reason"), ({"reason": "  "}, "reason"), ({"reason": "x" * 501}, "reason")):
        bad = checker.post(reject, json=body)
        assert bad.status_code == 422 and bad.content_type == PROBLEM, body
        assert [e["field"] for e in bad.get_json()["errors"]] == [field]
    assert pm.post(reject, json={"reason": "自己驳回"}).status_code == 403  # the submitter withdraws instead
    rejected = checker.post(reject, json={"reason": "5天不足以完成贷前调查"})
    assert rejected.status_code == 200 and rejected.get_json()["reason"] == "5天不足以完成贷前调查"
    newest = told(catalog, "ly_pm")[0]
    assert newest.topic == "product.publication_rejected"
    assert newest.summary == "产品「富农贷·带农增收企业贷」的发布申请被陵源产品经理（复核）驳回：5天不足以完成贷前调查"
    assert pm.get(LY).get_json()["current_version"] == 1

    # a request is withdrawn by its submitter only
    third = pm.post(REQUESTS, json={"note": "再议"}).get_json()
    assert checker.post(f"{REQUESTS}/{third['id']}/withdraw").status_code == 403
    withdrawn = pm.post(f"{REQUESTS}/{third['id']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.get_json()["status"] == "withdrawn"
    assert [r["status"] for r in checker.get(REQUESTS).get_json()["items"]] == ["withdrawn", "rejected", "approved"]
    assert [r["id"] for r in checker.get(f"{REQUESTS}?status=rejected").get_json()["items"]] == [again["id"]]
    assert [a for a, _ in actions(pm)[:4]] == [
        "product.publication_withdrawn",
        "product.publication_submitted",
        "product.publication_rejected",
        "product.publication_submitted",
    ]
    assert len(told(catalog, "ly_pm")) == 2  # approved, rejected: withdrawing is the submitter's own doing
    gone = told(catalog, "ly_pm2")[0]  # the checkers, told of the request, hear that it needs nobody now
    assert (gone.topic, gone.payload["request_id"]) == ("product.publication_withdrawn", third["id"])
    assert gone.summary == "陵源产品经理已撤回产品「富农贷·带农增收企业贷」的发布申请，无需复核"


def test_a_draft_changed_after_submission_is_never_published(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
    pm: ApiClient,
    checker: ApiClient,
) -> None:
    first = pm.post(REQUESTS, json={}).get_json()
    # an edit through the product's draft supersedes the open request at once
    assert pm.put(f"{LY}/draft", json={"draft": process_limit(6)}).status_code == 200
    superseded = checker.get(f"{REQUESTS}/{first['id']}").get_json()
    assert (superseded["status"], superseded["decided_by"]) == ("superseded", "ly_pm")
    late = checker.post(f"{REQUESTS}/{first['id']}/approve")
    assert late.status_code == 409 and "superseded" in late.get_json()["detail"]
    void = told(catalog, "ly_pm2")[0]
    assert (void.topic, void.payload["request_id"]) == ("product.publication_superseded", first["id"])
    assert void.summary == "陵源产品经理提交的产品「富农贷·带农增收企业贷」发布申请已作废（草稿已修改），须重新提交"
    assert [n.topic for n in told(catalog, "ly_pm")] == []  # who changed the draft knows

    # a change that went round the service is caught when the checker approves: nothing is published
    second = pm.post(REQUESTS, json={}).get_json()
    edit_draft(catalog, "LY-DAINONG", lambda draft: draft["time_limits"].update(process="P1D"))
    stale = checker.post(f"{REQUESTS}/{second['id']}/approve")
    assert stale.status_code == 409 and "changed after publication request" in stale.get_json()["detail"]
    assert checker.get(f"{REQUESTS}/{second['id']}").get_json()["status"] == "superseded"
    assert [(n.topic, n.payload["request_id"]) for n in told(catalog, "ly_pm")] == [
        ("product.publication_superseded", second["id"])  # the checker found it out: the submitter hears
    ]
    assert pm.get(LY).get_json()["current_version"] is None
    assert [a for a, _ in actions(pm)[:4]] == [
        "product.publication_superseded",
        "product.publication_submitted",
        "product.publication_superseded",
        "product.draft_changed",
    ]

    # whoever prepared the draft is no checker either, whoever submitted it; a third person approves
    assert checker.put(f"{LY}/draft", json={"draft": process_limit(8)}).status_code == 200
    third = pm.post(REQUESTS, json={}).get_json()
    preparer = checker.post(f"{REQUESTS}/{third['id']}/approve")
    assert preparer.status_code == 403 and "did not prepare" in preparer.get_json()["detail"]
    approved = login(app, "ly_admin").post(f"{REQUESTS}/{third['id']}/approve")
    assert approved.status_code == 200, approved.get_json()
    assert pm.get(LY).get_json()["config"]["time_limits"]["process"] == "P8D"


def test_a_process_deployed_after_submission_voids_the_request_instead_of_publishing_unseen(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    pm: ApiClient,
    checker: ApiClient,
) -> None:
    """The checker approves what the request shows: the config's changes and what it runs on."""
    first = pm.post(REQUESTS, json={}).get_json()
    publishes = first["publishes"]
    assert publishes["process"] == "a4_standard_offline:1"
    assert publishes["decisions"] == {} and {"approval", "face-signing"} <= set(publishes["forms"])  # binds no rules
    model = (REPO / "bpmn" / "a4_standard_offline.bpmn").read_text("utf-8")
    changed = model.replace('name="标准线下贷款"', 'name="标准线下贷款（修订）"', 1)
    catalog.definitions.deploy(SYSTEM, [("a4_standard_offline.bpmn", changed.encode())])  # the province's
    late = checker.post(f"{REQUESTS}/{first['id']}/approve")
    assert late.status_code == 409 and "would publish on changed (process, version_sha256)" in late.get_json()["detail"]
    assert checker.get(f"{REQUESTS}/{first['id']}").get_json()["status"] == "superseded"
    assert pm.get(LY).get_json()["current_version"] is None  # nothing published
    (note,) = told(catalog, "ly_pm")
    assert note.payload["changed"] == ["process", "version_sha256"]
    assert note.summary.endswith("发布申请已作废（所依据的流程、规则或表单已更新），须重新提交")
    assert actions(pm)[0] == ("product.publication_superseded", "ly_pm2")

    again = pm.post(REQUESTS, json={}).get_json()
    assert again["publishes"]["process"] == "a4_standard_offline:2"
    approved = checker.post(f"{REQUESTS}/{again['id']}/approve")
    assert approved.status_code == 200, approved.get_json()
    assert pm.get(LY).get_json()["current_version"] == 1


def test_one_open_request_per_product_and_only_a_draft_that_would_publish(pm: ApiClient, checker: ApiClient) -> None:
    first = pm.post(REQUESTS, json={}).get_json()
    second = checker.post(REQUESTS, json={"note": "我也提交"})
    assert second.status_code == 409 and second.content_type == PROBLEM
    assert f"({first['id']}, submitted by ly_pm at " in second.get_json()["detail"]
    assert second.get_json()["errors"] == [
        {"field": "code", "message": f"has the open publication request {first['id']}"}
    ]
    too_long = pm.post(REQUESTS, json={"note": "长" * 501})
    assert too_long.status_code == 422 and too_long.get_json()["errors"][0]["field"] == "note"
    unknown = pm.post(REQUESTS, json={"draft": {}})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "draft"
    assert checker.post(f"{REQUESTS}/{first['id']}/approve").status_code == 200

    # a draft publishing would refuse is refused at submission with the same problems; nothing is written
    assert pm.put(f"{LY}/draft", json={"draft": {"parameters": {"amount": {"max": "9000000.00"}}}}).status_code == 200
    refused = pm.post(REQUESTS, json={})
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["errors"] == [
        {"field": "parameters.amount.max", "message": "cannot go above the template's 5000000.00"}
    ]
    # and one that is what is on sale already has nothing to publish
    assert pm.put(f"{LY}/draft", json={"draft": process_limit(7)}).status_code == 200
    same = pm.post(REQUESTS, json={})
    assert same.status_code == 409 and "nothing to publish" in same.get_json()["detail"]
    assert pm.get(REQUESTS).get_json()["total"] == 1
    assert pm.get(f"{REQUESTS}?status=maybe").get_json()["errors"][0]["field"] == "status"
    assert pm.get(f"{REQUESTS}/{first['id']}x").status_code == 404


def test_approval_publishes_only_what_still_passes_and_leaves_nothing_half_written(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    pm: ApiClient,
    checker: ApiClient,
) -> None:
    named = {"bindings": {"assignment": {"co_investigator": {"candidate_users": ["ly_officer2"]}}}, **process_limit(7)}
    assert pm.put(f"{LY}/draft", json={"draft": named}).status_code == 200
    request = pm.post(REQUESTS, json={}).get_json()
    trail = actions(pm)
    catalog.organization.deactivate_user(SYSTEM, "ly_officer2")
    invalid = checker.post(f"{REQUESTS}/{request['id']}/approve")
    assert invalid.status_code == 422 and invalid.content_type == PROBLEM
    assert invalid.get_json()["errors"] == [
        {
            "field": "bindings.assignment.co_investigator.candidate_users.0",
            "message": "user 'ly_officer2' is deactivated",
        }
    ]
    catalog.organization.activate_user(SYSTEM, "ly_officer2")
    assert pm.post(f"{LY}/retire", json={"reason": "暂停办理"}).status_code == 200
    withdrawn = checker.post(f"{REQUESTS}/{request['id']}/approve")
    assert withdrawn.status_code == 409 and "withdrawn from sale" in withdrawn.get_json()["detail"]
    # still open, nothing published, nothing recorded but the retirement, nobody told of a decision
    assert checker.get(f"{REQUESTS}/{request['id']}").get_json()["status"] == "submitted"
    assert pm.get(LY).get_json()["current_version"] is None
    assert actions(pm) == [("product.retired", "ly_pm"), *trail]
    assert told(catalog, "ly_pm") == []
    refused = pm.post(REQUESTS, json={})  # a withdrawn product takes no new request either
    assert refused.status_code == 409 and "withdrawn from sale" in refused.get_json()["detail"]
    assert pm.post(f"{LY}/reinstate").status_code == 200
    assert checker.post(f"{REQUESTS}/{request['id']}/approve").get_json()["published_version"] == 1


def test_another_bank_s_requests_answer_like_missing_ones(app: Any, pm: ApiClient) -> None:
    request = pm.post(REQUESTS, json={}).get_json()
    qh = login(app, "qh_admin")  # every permission: only the bank stands in the way
    assert qh.post("/api/v1/products/FND-DAINONG/clone", json={"code": "QH-DAINONG"}).status_code == 201
    mine = request["id"]
    # 陵源's request under 陵源's code, and under 清河's own product: like a request and a product that do not exist
    pairs = (
        (f"{REQUESTS}/{mine}", "/api/v1/products/NO-SUCH/publication-requests/999999", "LY-DAINONG", "NO-SUCH"),
        (f"/api/v1/products/QH-DAINONG/publication-requests/{mine}", None, "QH-DAINONG", "QH-DAINONG"),
    )
    for url, absent_url, code, absent_code in pairs:
        absent_url = absent_url or f"/api/v1/products/{absent_code}/publication-requests/999999"
        for suffix, body in (("", None), ("/approve", None), ("/reject", {"reason": "不行"}), ("/withdraw", None)):
            found = qh.post(url + suffix, json=body or {}) if suffix else qh.get(url)
            absent = qh.post(absent_url + suffix, json=body or {}) if suffix else qh.get(absent_url)
            assert found.status_code == absent.status_code == 404, (url + suffix, found.get_json())
            detail = found.get_json()["detail"].replace(f"request {mine} ", "request <id> ").replace(code, "<code>")
            assert detail == absent.get_json()["detail"].replace("999999", "<id>").replace(absent_code, "<code>")
    assert qh.get(REQUESTS).status_code == 404
    assert qh.get("/api/v1/products/QH-DAINONG/publication-requests").get_json()["total"] == 0
    # the province reads its banks' requests but decides none of them
    province = login(app, "pm")
    assert province.get(REQUESTS).get_json()["items"][0]["id"] == request["id"]
    assert province.post(f"{REQUESTS}/{request['id']}/approve").status_code == 404
    assert pm.get(REQUESTS).get_json()["items"][0]["status"] == "submitted"


def test_the_province_s_templates_go_through_two_of_its_product_managers(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    seeded: CreditFlow,
) -> None:
    pm, pm2, bank = principal_of(catalog, "pm"), principal_of(catalog, "pm2"), principal_of(catalog, "ly_pm")
    draft = catalog.products.get(pm, "XEKD-XIN").product.draft
    catalog.products.set_draft(
        pm, "XEKD-XIN", {**draft, "rule_parameters": {**draft["rule_parameters"], "max_age": 58}}
    )
    request = catalog.publication_requests.submit(pm, "XEKD-XIN", "年龄上限下调").request
    assert request.tenant_id == pm.tenant_id
    # a bank neither sees the province's requests nor decides them
    assert catalog.publication_requests.list(bank, "XEKD-XIN") == ([], 0)
    with pytest.raises(Forbidden):
        catalog.publication_requests.approve(bank, "XEKD-XIN", request.id)
    # dual control is between people: neither the system nor an integration account takes part
    with pytest.raises(Forbidden):
        catalog.publication_requests.submit(SYSTEM, "FND-DAINONG")
    with pytest.raises(Forbidden):
        catalog.publication_requests.approve(dataclasses.replace(pm2, is_service=True), "XEKD-XIN", request.id)
    approved = catalog.publication_requests.approve(pm2, "XEKD-XIN", request.id)
    assert (approved.request.published_version, approved.decided_by) == (2, "pm2")
    with catalog.db.transaction() as session:
        version = session.scalars(select(ProductVersion).where(ProductVersion.version == 2)).one()
        assert version.config["rule_parameters"]["max_age"] == 58 and version.published_by_id == pm2.user_id
        stored = session.get(PublicationRequest, request.id)
        assert (stored.status, stored.decided_by_id) == ("approved", pm2.user_id)
        checker = session.scalars(select(User.display_name).where(User.username == "pm2")).one()
    (note,) = told(catalog, "pm")
    assert note.payload["decided_by_name"] == checker and note.payload["version"] == 2


def test_a_checker_finds_what_waits_for_them_across_products(app: Any, pm: ApiClient, checker: ApiClient) -> None:
    WORKLIST = "/api/v1/publication-requests"
    assert pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG-2"}).status_code == 201
    first = pm.post(REQUESTS, json={"note": "流程时限7天"}).get_json()
    second = pm.post("/api/v1/products/LY-DAINONG-2/publication-requests", json={}).get_json()
    waiting = checker.get(f"{WORKLIST}?status=submitted").get_json()
    assert [(r["id"], r["product"]) for r in waiting["items"]] == [
        (second["id"], "LY-DAINONG-2"),
        (first["id"], "LY-DAINONG"),
    ]
    assert waiting["total"] == 2
    assert checker.post(f"{REQUESTS}/{first['id']}/approve").status_code == 200
    assert [r["id"] for r in checker.get(f"{WORKLIST}?status=submitted").get_json()["items"]] == [second["id"]]
    assert [r["status"] for r in checker.get(WORKLIST).get_json()["items"]] == ["submitted", "approved"]
    other = login(app, "qh_pm2")  # another bank sees none of 陵源's
    assert other.get(WORKLIST).get_json() == {"items": [], "total": 0}
    refused = checker.get(f"{WORKLIST}?status=pending")
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "status"
