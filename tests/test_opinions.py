"""The opinion record (审批意见 / 流转意见): every person's decision on an application, round by round,
read from its audit trail; shown to whoever works a later step, and kept in the archived loan file."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.clock import FrozenClock
from engine.container import CreditFlow
from engine.errors import InvalidInput
from engine.forms.catalog import FormCatalog, InvalidFormDefinition
from engine.forms.opinion_fields import opinion_fields
from engine.inbox.queries import InboxQuery
from engine.jobs.scheduler import run_pass
from engine.services.principal import Principal
from tests.conftest import ApiClient, bank_card, login
from tests.test_accounts import KEYS, add_user, with_key
from tests.test_contracts import cli_env, invoke
from tests.test_inbox import user_id
from tests.test_product_runs import form_data
from tests.test_products import applicant, catalog, local_application, principal_of  # noqa: F401 - fixture

SYSTEM = Principal.system()
ID_NUMBER = "110101199003071234"  # a spouse's, typed into free text
MASKED = "110101********1234"


def tasks_at(platform: CreditFlow, instance_id: str, step: str) -> list[Any]:
    page = platform.tasks.list(SYSTEM, InboxQuery(view="all", instance_id=instance_id, step=step))
    return [item.task for item in page.items]


def work(platform: CreditFlow, client: ApiClient, instance_id: str, step: str, **entered: Any) -> dict[str, Any]:
    """``client`` completes the open task at ``step`` with its form filled in, and ``entered`` on top."""
    (task,) = tasks_at(platform, instance_id, step)
    version = platform.instances.get(SYSTEM, instance_id).instance.product_version_id
    done = client.post(f"/api/v1/tasks/{task.id}/complete", json={"data": form_data(platform, version, task) | entered})
    assert done.status_code == 200, done.get_json()
    return done.get_json()


def opinions(client: ApiClient, instance_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/process-instances/{instance_id}/opinions")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def investigated(platform: CreditFlow, app: Any, instance_id: str, clock: FrozenClock) -> None:
    """The loan officer's investigation and the co-investigator's, an hour apart."""
    for username, step in (("ly_officer", "main_investigation"), ("ly_officer2", "co_investigation")):
        clock.advance(timedelta(hours=1))
        work(platform, login(app, username), instance_id, step)


def test_a_step_returned_and_done_again_shows_both_rounds_in_order_with_both_comments(
    app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
    clock: FrozenClock,
) -> None:
    view = local_application(catalog, {})  # 800,000: within the approver's authority
    instance_id = view.instance.id
    reviewer, approver = login(app, "ly_reviewer"), login(app, "ly_approver")
    investigated(catalog, app, instance_id, clock)
    first, second = "第一轮：经营稳定，建议准入。", "第二轮：已补充近六个月流水，经营稳定。"
    clock.advance(timedelta(hours=1))
    work(catalog, reviewer, instance_id, "review", comment=first, suggested_amount="800000.00")

    # the approver working the next step reads what was decided before it
    (approval,) = tasks_at(catalog, instance_id, "approval")
    detail = approver.get(f"/api/v1/tasks/{approval.id}").get_json()
    assert [(o["step"], o["actor"]["username"]) for o in detail["opinions"]] == [
        ("main_investigation", "ly_officer"),
        ("co_investigation", "ly_officer2"),
        ("review", "ly_reviewer"),
    ]
    listed = approver.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    assert listed and all("opinions" not in row for row in listed)  # the inbox list stays lean

    clock.advance(timedelta(hours=1))
    returned = approver.post(
        f"/api/v1/tasks/{approval.id}/return", json={"step": "review", "reason": "补充近六个月经营流水"}
    )
    assert returned.status_code == 200, returned.get_json()
    clock.advance(timedelta(hours=1))
    work(catalog, reviewer, instance_id, "review", comment=second, suggested_amount="700000.00")
    clock.advance(timedelta(hours=1))
    ended = work(
        catalog, approver, instance_id, "approval", decision="approve", approved_amount="700000.00", comment="同意。"
    )
    approved_rate = ended["data"]["approved_rate_bp"]

    record = opinions(login(app, "ly_officer"), instance_id)
    assert [(o["step"], o["round"], o["kind"], o["decision"], o["decision_label"]) for o in record] == [
        ("main_investigation", 1, "decision", "approve", "建议准入"),
        ("co_investigation", 1, "decision", "agree", "同意主调查意见"),
        ("review", 1, "decision", "approve", "同意"),
        ("approval", 1, "return", "return", "退回"),
        ("review", 2, "decision", "approve", "同意"),
        ("approval", 2, "decision", "approve", "同意"),
    ]
    review_1, review_2 = record[2], record[4]
    assert (review_1["comment"], review_1["proposed_amount"]) == (first, "800000.00")
    assert (review_2["comment"], review_2["proposed_amount"]) == (second, "700000.00")
    assert review_1["step_name"] == review_2["step_name"] == "审查"
    assert review_1["actor"] == {
        "id": user_id(catalog, "ly_reviewer"),
        "username": "ly_reviewer",
        "name": "陵源审查岗",
        "role": "reviewer",
        "role_name": "审查岗",
    }
    assert review_1["at"] < review_2["opened_at"] <= review_2["at"]  # the second round opened with the return
    sent_back = record[3]
    assert (sent_back["returned_to"], sent_back["returned_to_name"], sent_back["reason"]) == (
        "review",
        "审查",
        "补充近六个月经营流水",
    )
    assert (sent_back["actor"]["username"], sent_back["actor"]["role_name"]) == ("ly_approver", "审批岗")
    granted = record[5]
    assert (granted["approved_amount"], granted["rate_bp"], granted["comment"]) == (
        "700000.00",
        approved_rate,
        "同意。",
    )
    assert granted["term_months"] is None  # the approval form decides no term: the application's stands
    assert [o["seq"] for o in record] == sorted(o["seq"] for o in record)
    assert record[0]["actor"]["role_name"] == "客户经理" and record[1]["actor"]["role"] == "co_investigator"
    # what the instance data kept: one "comment", the approver's, over both of the reviewer's
    assert ended["data"]["comment"] == "同意。"
    assert catalog.instances.verify_audit(SYSTEM, instance_id).ok


def test_an_application_sent_back_for_more_shows_each_round_even_where_nothing_changed(
    app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
    clock: FrozenClock,
) -> None:
    """退回补充: the approver's form sends the application back through both investigations. An officer
    who confirms their conclusion changes nothing in the data; the record still shows what they decided."""
    view = local_application(catalog, {})
    instance_id = view.instance.id
    officer, reviewer, approver = login(app, "ly_officer"), login(app, "ly_reviewer"), login(app, "ly_approver")
    report = "实地调查：种植大棚二十亩，经营稳定。"

    def investigated_and_reviewed() -> None:
        clock.advance(timedelta(hours=1))
        work(catalog, officer, instance_id, "main_investigation", investigation_report=report)
        work(catalog, login(app, "ly_officer2"), instance_id, "co_investigation")
        work(catalog, reviewer, instance_id, "review")

    investigated_and_reviewed()
    (approval,) = tasks_at(catalog, instance_id, "approval")
    more = {"decision": "return", "comment": "请补充担保人收入证明。"}
    sent = approver.post(f"/api/v1/tasks/{approval.id}/complete", json={"data": more})
    assert sent.status_code == 200, sent.get_json()
    assert {t["bpmn_id"] for t in sent.get_json()["tasks"]} == {"main_investigation", "co_investigation"}
    investigated_and_reviewed()
    record = opinions(officer, instance_id)
    assert [(o["step"], o["round"], o["decision"]) for o in record[:4]] == [
        ("main_investigation", 1, "approve"),
        ("co_investigation", 1, "agree"),
        ("review", 1, "approve"),
        ("approval", 1, "return"),
    ]
    assert (record[3]["kind"], record[3]["decision_label"], record[3]["comment"]) == (
        "decision",
        "退回补充",
        "请补充担保人收入证明。",
    )
    assert record[3]["returned_to"] is None  # the form's own way back, not a return (退回) to a chosen step
    redone = [o for o in record[4:] if o["step"] == "main_investigation"]
    assert [(o["round"], o["decision"], o["decision_label"], o["comment"]) for o in redone] == [
        (2, "approve", "建议准入", report)
    ]
    # the data did not change: the step's audit event says nothing changed, and what was submitted
    (again,) = [
        e
        for e in catalog.instances.history(SYSTEM, instance_id)
        if e.event_type == "task_completed" and e.seq == redone[0]["seq"]
    ]
    assert "investigation_conclusion" not in again.payload["changes"]
    assert again.payload["submitted"]["investigation_conclusion"] == "approve"


def test_a_committee_vote_shows_each_members_ballot_and_the_loan_file_keeps_the_record(
    app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    view = catalog.products.apply(
        principal_of(catalog, "ly_officer"),
        "FND-DAINONG",
        applicant=applicant(),
        data={"amount": "1500000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )  # above the product's 1,000,000: the bank's credit committee (贷审会) votes
    instance_id = view.instance.id
    investigated(catalog, app, instance_id, clock)
    work(catalog, login(app, "ly_reviewer"), instance_id, "review", suggested_amount="1500000.00")
    ballots = {task.assignee_id: task for task in tasks_at(catalog, instance_id, "committee_vote")}
    votes = [
        ("ly_committee2", {"vote": "approve", "opinion": "同意，风险可控。", "conditions": "追加配偶共同还款"}),
        ("ly_committee1", {"vote": "reject", "opinion": "反对：担保不足。"}),
        ("ly_committee3", {"vote": "reject", "opinion": "反对：负债率偏高。"}),
    ]
    for username, ballot in votes:
        clock.advance(timedelta(minutes=10))
        task = ballots[user_id(catalog, username)]
        cast = login(app, username).post(f"/api/v1/tasks/{task.id}/complete", json={"data": ballot})
        assert cast.status_code == 200, cast.get_json()
    assert (cast.get_json()["status"], cast.get_json()["outcome"]) == ("completed", "rejected")  # one in three

    record = opinions(login(app, "ly_risk"), instance_id)
    assert [o["step"] for o in record] == ["main_investigation", "co_investigation", "review", *["committee_vote"] * 3]
    cast_ballots = record[3:]
    assert [
        (o["actor"]["username"], o["decision"], o["decision_label"], o["comment"], o["conditions"])
        for o in cast_ballots
    ] == [
        ("ly_committee2", "approve", "同意", "同意，风险可控。", "追加配偶共同还款"),
        ("ly_committee1", "reject", "反对", "反对：担保不足。", None),
        ("ly_committee3", "reject", "反对", "反对：负债率偏高。", None),
    ]
    assert {(o["round"], o["step_name"], o["actor"]["role"], o["actor"]["role_name"]) for o in cast_ballots} == {
        (1, "贷审会表决", "credit_committee", "贷审会委员")
    }
    assert len({o["task_id"] for o in cast_ballots}) == 3

    # the ended application's loan file holds the same record, and still verifies
    run_pass(catalog)
    content = login(app, "ly_reviewer").get(f"/api/v1/archives/{instance_id}/content")
    assert content.status_code == 200
    with zipfile.ZipFile(io.BytesIO(content.data)) as bag:
        files = {name.split("/", 1)[1]: bag.read(name) for name in bag.namelist()}
    assert json.loads(files["data/opinions.json"]) == record
    assert "data/opinions.json" in files["manifest-sha256.txt"].decode()
    assert login(app, "ly_reviewer").post(f"/api/v1/archives/{instance_id}/verify").get_json()["ok"] is True
    cli_env(catalog.settings, monkeypatch)
    (tmp_path / "loanfile.zip").write_bytes(content.data)
    verified = invoke("archive", "verify", str(tmp_path / "loanfile.zip"))
    assert verified.exit_code == 0, verified.output


def test_the_record_is_read_like_the_application_and_masks_id_numbers(
    app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
    seeded: CreditFlow,
) -> None:
    view = local_application(catalog, {})
    instance_id = view.instance.id
    officer, colleague = login(app, "ly_officer"), login(app, "ly_officer2")
    (co,) = tasks_at(catalog, instance_id, "co_investigation")
    noted = officer.post(f"/api/v1/tasks/{co.id}/comments", json={"body": f"担保人身份证{ID_NUMBER}待核实"})
    assert noted.status_code == 201
    (main,) = tasks_at(catalog, instance_id, "main_investigation")  # the officer's: they took the application
    handed = officer.post(f"/api/v1/tasks/{main.id}/delegate", json={"user_id": user_id(catalog, "ly_officer2")})
    assert handed.status_code == 200, handed.get_json()
    back = colleague.post(f"/api/v1/tasks/{main.id}/resolve", json={"comment": "已实地核实，经营正常。"})
    assert back.status_code == 200, back.get_json()
    report = f"借款人配偶身份证{ID_NUMBER}，家庭收入稳定。"
    work(catalog, officer, instance_id, "main_investigation", investigation_report=report)

    response = officer.get(f"/api/v1/process-instances/{instance_id}/opinions")
    assert response.status_code == 200 and ID_NUMBER.encode() not in response.data
    record = response.get_json()["items"]
    assert [(o["kind"], o["step"], o["actor"]["username"], o["comment"]) for o in record] == [
        ("comment", "co_investigation", "ly_officer", f"担保人身份证{MASKED}待核实"),
        ("delegation", "main_investigation", "ly_officer2", "已实地核实，经营正常。"),
        ("decision", "main_investigation", "ly_officer", f"借款人配偶身份证{MASKED}，家庭收入稳定。"),
    ]
    assert [(o["decision"], o["round"]) for o in record] == [(None, 1), (None, 1), ("approve", 1)]
    assert record[1]["actor"]["role_name"] == "客户经理"  # the delegate acted in the step's role, which they hold
    detail = colleague.get(f"/api/v1/tasks/{co.id}")
    assert detail.status_code == 200 and ID_NUMBER.encode() not in detail.data
    assert detail.get_json()["opinions"] == record

    # another bank's staff get what they get for an application that does not exist
    missing = login(app, "qh_reviewer").get("/api/v1/process-instances/no-such-application/opinions")
    foreign = login(app, "qh_reviewer").get(f"/api/v1/process-instances/{instance_id}/opinions")
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.get_json()["title"] == missing.get_json()["title"]
    # inside the bank it is need to know (a grid's helper, another branch); the province reads its banks'
    for username, status in (("ly_village", 404), ("ly_grid_officer", 404), ("admin", 200), ("ly_pm", 403)):
        assert login(app, username).get(f"/api/v1/process-instances/{instance_id}/opinions").status_code == status
    # staff opinions are not a channel's ("勿告知客户")
    add_user(seeded, "ly_mbank", "bank-lingyuan", "loan_officer", "ly-chengguan", service=True)
    key = login(app, "ly_admin").post(KEYS, json={"username": "ly_mbank", "name": "手机银行"}).get_json()["key"]
    channel = with_key(app, key, "X-API-Key")
    assert channel.get(f"/api/v1/process-instances/{instance_id}").status_code == 200
    assert channel.get(f"/api/v1/process-instances/{instance_id}/opinions").status_code == 403

    # an administrator's cancellation is a decision too; they hold no role the steps are offered to
    cancelled = login(app, "ly_admin").post(
        f"/api/v1/process-instances/{instance_id}/cancel", json={"reason": f"客户撤回申请（{ID_NUMBER}）"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    last = opinions(officer, instance_id)[-1]
    assert (last["kind"], last["step"], last["round"], last["reason"]) == (
        "cancellation",
        None,
        None,
        f"客户撤回申请（{MASKED}）",
    )
    assert (last["actor"]["username"], last["actor"]["role"], last["actor"]["role_name"]) == (
        "ly_admin",
        "admin",
        "系统管理员",
    )


def test_every_decision_a_form_offers_has_its_label() -> None:
    forms = FormCatalog()
    decided = {name: opinion_fields(forms.get(name)) for name in forms.names()}
    for name, parts in decided.items():
        if "decision" in parts.fields:
            options = forms.get(name).schema["properties"][parts.fields["decision"]]["enum"]
            assert set(parts.labels) == set(options), name
    assert decided["committee-vote"].labels == {"approve": "同意", "reject": "反对"}
    assert decided["approval"].fields == {
        "decision": "decision",
        "approved_amount": "approved_amount",
        "rate_bp": "approved_rate_bp",
        "comment": "comment",
    }


def test_a_form_states_each_part_of_an_opinion_once_and_by_a_known_name(tmp_path: Path) -> None:
    folder = tmp_path / "forms"
    shutil.copytree(Path(__file__).resolve().parents[1] / "forms", folder)
    path = folder / "review-schema.json"
    schema = json.loads(path.read_text("utf-8"))
    schema["properties"]["comment"]["x-creditflow-opinion"] = "decision"  # the recommendation is already
    schema["properties"]["suggested_amount"]["x-creditflow-opinion"] = "amount"
    path.write_text(json.dumps(schema, ensure_ascii=False), "utf-8")
    with pytest.raises(InvalidFormDefinition) as refused:
        FormCatalog(folder)
    assert sorted(p["message"] for p in refused.value.problems) == [
        "field 'comment': x-creditflow-opinion 'decision' is already field 'recommendation'",
        "field 'suggested_amount': x-creditflow-opinion must be one of decision, comment, conditions, "
        "proposed_amount, approved_amount, term_months, rate_bp, not 'amount'",
    ]


def test_a_bank_s_form_may_add_an_opinion_part_but_not_move_one(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    seeded: CreditFlow,
) -> None:
    bank = principal_of(catalog, "ly_pm")
    moved = {"form_overrides": {"approval": {"properties": {"decision": {"x-creditflow-opinion": "comment"}}}}}
    catalog.products.clone(bank, "FND-DAINONG", code="LY-MOVED", name=None, overrides=moved)
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(bank, "LY-MOVED")
    messages = [p["message"] for p in refused.value.problems if p["field"] == "form_overrides.approval"]
    assert "decision: x-creditflow-opinion cannot change" in messages
    assert any("'comment' is already field 'decision'" in m for m in messages)

    term = {"type": "integer", "title": "批准期限（月）", "minimum": 12, "x-creditflow-opinion": "term_months"}
    added = {"form_overrides": {"approval": {"properties": {"approved_term_months": term}}}}
    catalog.products.clone(bank, "FND-DAINONG", code="LY-TERM", name=None, overrides=added)
    version = catalog.products.publish(bank, "LY-TERM")
    with catalog.db.transaction() as session:
        form = catalog.products.binding(session, version.id).forms["approval"]
    assert opinion_fields(form).fields["term_months"] == "approved_term_months"
