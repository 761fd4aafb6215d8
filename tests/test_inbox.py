"""The inbox: who a task is offered to, segregation of duties, views, filters, keyset pages, counts,
saved filters, and the inbox actions with their audit trail."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.clock import FrozenClock
from engine.container import CreditFlow
from engine.inbox.queries import InboxQuery
from engine.jobs.scheduler import run_pass
from engine.services.principal import Principal
from engine.store.models import HumanTask, InstanceDuty, OrgUnit, Product, User, UserRole
from tests.conftest import ApiClient, bank_card, deploy, login
from tests.test_product_runs import form_data
from tests.test_products import applicant, catalog, local_application, principal_of  # noqa: F401 - fixture

SYSTEM = Principal.system()


@pytest.fixture
def inbox_app(app: Any) -> Any:
    deploy(app.extensions["creditflow"], "inbox.bpmn")
    return app


def user_id(platform: CreditFlow, username: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def unit_id(platform: CreditFlow, code: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(OrgUnit.id).where(OrgUnit.code == code)).one()


def grant(platform: CreditFlow, username: str, role: str, unit: str) -> None:
    with platform.db.transaction(write=True) as session:
        session.add(UserRole(user_id=user_id(platform, username), role=role, org_unit_id=unit_id(platform, unit)))


def start(client: ApiClient, *, unit: str | None = None, name: str = "张三", key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "definition_key": "inbox_flow",
        "business_key": key,
        "data": {"applicant": {"name": name, "id_number": "110101199003071234"}},
    }
    if unit is not None:
        body["org_unit"] = unit
    response = client.post("/api/v1/process-instances", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def open_task(app: Any, instance: dict[str, Any], step: str) -> dict[str, Any]:
    """The open task at ``step``, as the bank's administrator sees it."""
    query = f"view=all&instance_id={instance['id']}&step={step}"
    found = login(app, "ly_admin").get(f"/api/v1/tasks?{query}").get_json()["items"]
    assert len(found) == 1, found
    return found[0]


def inbox(client: ApiClient, view: str = "inbox", **query: Any) -> list[str]:
    params = "&".join(f"{k}={v}" for k, v in {"view": view, **query}.items())
    response = client.get(f"/api/v1/tasks?{params}")
    assert response.status_code == 200, response.get_json()
    return [t["id"] for t in response.get_json()["items"]]


def complete(client: ApiClient, task: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# -- assignment ---------------------------------------------------------------------------------------


def test_a_task_is_offered_to_its_role_in_the_application_s_unit_or_the_nearest_unit_above(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    bank_admin, grid_officer, officer = (login(inbox_app, u) for u in ("ly_admin", "ly_grid_officer", "ly_officer"))

    in_grid = start(bank_admin, unit="ly-grid-01")
    (task,) = in_grid["tasks"]
    assert (task["role"], task["org_unit_id"], task["assignee_id"]) == (
        "loan_officer",
        unit_id(platform, "ly-grid-01"),
        None,
    )
    assert task["id"] in inbox(grid_officer, "candidate") and task["id"] not in inbox(officer)

    # the sub-branch has no loan officer of its own: its branch's officers are offered the task
    in_sub_branch = start(bank_admin, unit="ly-dongjie")
    assert in_sub_branch["tasks"][0]["org_unit_id"] == unit_id(platform, "ly-chengguan")
    assert in_sub_branch["tasks"][0]["id"] in inbox(officer, "candidate")

    # head-office roles are offered at the head office whatever branch the application is from
    complete(grid_officer, task)
    review = open_task(inbox_app, in_grid, "review")
    assert (review["role"], review["org_unit_id"]) == ("reviewer", unit_id(platform, "ly-hq"))
    assert review["id"] in inbox(login(inbox_app, "ly_reviewer"), "candidate")
    assert review["id"] in inbox(login(inbox_app, "ly_reviewer2"), "candidate")
    assert review["id"] not in inbox(login(inbox_app, "qh_reviewer"), "candidate")


def test_the_officer_who_takes_an_application_gets_its_officer_work(inbox_app: Any) -> None:
    officer = login(inbox_app, "ly_officer")
    started = start(officer)
    (task,) = started["tasks"]
    assert task["assignee_id"] == user_id(inbox_app.extensions["creditflow"], "ly_officer")
    assert inbox(officer, "mine") == [task["id"]]
    assert task["id"] not in inbox(login(inbox_app, "ly_officer2"))


def test_explicit_candidate_users_and_groups_are_offered_the_task(inbox_app: Any) -> None:
    officer, reviewer, approver = (login(inbox_app, u) for u in ("ly_officer", "ly_reviewer", "ly_approver"))
    started = start(officer)
    complete(officer, started["tasks"][0])
    complete(reviewer, open_task(inbox_app, started, "review"))
    complete(approver, open_task(inbox_app, started, "approve"))
    committee = open_task(inbox_app, started, "committee")
    assert committee["priority"] == 80
    for member in ("ly_committee1", "ly_committee2", "ly_risk"):  # the group, and a named user
        assert committee["id"] in inbox(login(inbox_app, member), "candidate"), member
    assert committee["id"] not in inbox(login(inbox_app, "ly_senior_approver"), "candidate")
    assert login(inbox_app, "ly_senior_approver").post(f"/api/v1/tasks/{committee['id']}/claim").status_code == 403
    assert login(inbox_app, "ly_risk").post(f"/api/v1/tasks/{committee['id']}/claim").status_code == 200


def test_segregation_of_duties_investigator_cannot_review_reviewer_cannot_approve(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    grant(platform, "ly_officer", "reviewer", "ly-hq")  # one person holding both roles
    grant(platform, "ly_reviewer", "approver", "ly-hq")
    officer, reviewer = login(inbox_app, "ly_officer"), login(inbox_app, "ly_reviewer")
    started = start(officer)
    complete(officer, started["tasks"][0])
    review = open_task(inbox_app, started, "review")
    assert review["id"] not in inbox(officer, "candidate")  # not even offered
    refused = officer.post(f"/api/v1/tasks/{review['id']}/claim")
    assert refused.status_code == 403 and "审贷分离" in refused.get_json()["detail"]
    assert officer.post(f"/api/v1/tasks/{review['id']}/complete", json={"data": {}}).status_code == 403

    complete(reviewer, review)
    approve = open_task(inbox_app, started, "approve")
    assert approve["id"] not in inbox(reviewer, "candidate")
    assert reviewer.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {}}).status_code == 403
    # a supervisor cannot hand it to them either
    risk = login(inbox_app, "ly_risk")
    barred = risk.post(f"/api/v1/tasks/{approve['id']}/assign", json={"user_id": user_id(platform, "ly_reviewer")})
    assert barred.status_code == 422 and barred.get_json()["errors"][0]["field"] == "user_id"
    complete(login(inbox_app, "ly_approver"), approve)


def test_a_product_can_send_a_lane_to_the_head_office_with_candidate_groups_and_priority(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    seeded: CreditFlow,
) -> None:
    default = local_application(catalog, {})
    co = next(t for t in default.tasks if t.bpmn_id == "co_investigation")
    assert (co.role, co.org_unit_id, co.priority) == ("co_investigator", unit_id(catalog, "ly-chengguan"), 50)
    with catalog.db.transaction(write=True) as session:  # a second product code for the second clone
        session.execute(update(HumanTask).values(status="cancelled"))
    config = {"co_investigator": {"scope": "head_office", "candidate_groups": ["ly-credit-committee"], "priority": 90}}
    bank = principal_of(catalog, "ly_pm")
    catalog.products.clone(
        bank, "FND-DAINONG", code="LY-DAINONG-HQ", name="陵源总行协办贷", overrides={"bindings": {"assignment": config}}
    )
    catalog.products.publish(bank, "LY-DAINONG-HQ")
    view = catalog.products.apply(
        principal_of(catalog, "ly_officer"),
        "LY-DAINONG-HQ",
        applicant=applicant(),
        data={"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"},
    )
    co = next(t for t in view.tasks if t.bpmn_id == "co_investigation")
    assert (co.role, co.org_unit_id, co.priority) == ("co_investigator", unit_id(catalog, "ly-hq"), 90)
    member = principal_of(catalog, "ly_committee1")
    assert [v.task.id for v in catalog.tasks.list(member, InboxQuery(view="candidate")).items] == [co.id]
    officer = principal_of(catalog, "ly_officer")
    by_product = catalog.tasks.list(officer, InboxQuery(view="mine", product="LY-DAINONG-HQ")).items
    assert [v.task.bpmn_id for v in by_product] == ["main_investigation"]
    assert catalog.tasks.list(officer, InboxQuery(view="mine", product="LY-DAINONG")).total == 0  # cancelled


# -- views, filters, pages, counts ---------------------------------------------------------------------


def test_views_filters_keyset_pages_and_counts(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    clock = platform.clock
    bank_admin, officer = login(inbox_app, "ly_admin"), login(inbox_app, "ly_officer")
    names = ["张三", "张四", "李五", "王六", "赵七", "张八", "钱九"]
    started = []
    for n, name in enumerate(names):
        started.append(start(bank_admin, unit="ly-chengguan" if n < 5 else "ly-xiguan", name=name, key=f"APP-{n}"))
        clock.advance(timedelta(minutes=1))
    tasks = [s["tasks"][0]["id"] for s in started]
    now = clock.now()
    with platform.db.transaction(write=True) as session:  # due times as step limits would set them
        for n, task_id in enumerate(tasks):
            due = None if n == 3 else now + timedelta(hours=(n * 5) % 7 - 3)
            values = {"due_at": due, "warn_at": due - timedelta(hours=1) if due else None}
            values["escalate_at"] = due + timedelta(hours=1) if due else None
            session.execute(update(HumanTask).where(HumanTask.id == task_id).values(**values))
        due_of = {t.id: t.due_at for t in session.scalars(select(HumanTask).where(HumanTask.id.in_(tasks)))}

    # keyset pages of 2 through the candidate view of a 城关 officer: due order, NULLs last, no repeats
    seen, cursor = [], None
    while True:
        query = "view=candidate&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = officer.get(f"/api/v1/tasks?{query}").get_json()
        assert page["total"] == 5
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    chengguan = tasks[:5]
    expected = sorted(chengguan, key=lambda t: (due_of[t] is None, due_of[t] or now, t))
    assert seen == expected

    # created order, priority order
    assert inbox(officer, "candidate", sort="created") == chengguan
    assert len(inbox(officer, "candidate", sort="priority")) == 5

    # filters
    assert inbox(officer, "candidate", business_key="APP-2") == [tasks[2]]
    assert set(inbox(officer, "candidate", applicant="张")) == {tasks[0], tasks[1]}
    assert inbox(officer, "candidate", step="review") == []
    red = {t for t in chengguan if due_of[t] is not None and due_of[t] + timedelta(hours=1) <= now}
    assert set(inbox(officer, "candidate", level="red")) == red
    assert set(inbox(officer, "candidate", level="none")) == {
        t for t in chengguan if due_of[t] is None or due_of[t] - timedelta(hours=1) > now
    }
    before = (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert set(inbox(officer, "candidate", due_before=before)) == {
        t for t in chengguan if due_of[t] is not None and due_of[t] < now + timedelta(minutes=1)
    }
    branch_head = login(inbox_app, "ly_branch_head")
    assert set(inbox(branch_head, "team")) == set(chengguan)  # 城关's work, not 西关's
    assert set(inbox(bank_admin, "all", org_unit="ly-xiguan")) == set(tasks[5:])

    counts = officer.get("/api/v1/tasks/counts").get_json()["counts"]
    assert counts == {"inbox": 5, "mine": 0, "candidate": 5, "covering": 0, "delegated": 0}  # no team or all view
    assert officer.get("/api/v1/tasks?view=team").status_code == 403
    assert officer.get("/api/v1/tasks?view=all").status_code == 403
    assert branch_head.get("/api/v1/tasks/counts").get_json()["counts"]["team"] == 5

    # the ID number is masked in inbox rows; the full number appears nowhere in the list
    listed = officer.get("/api/v1/tasks?view=candidate")
    assert listed.get_json()["items"][0]["applicant_id_masked"] == "110101********1234"
    assert b"110101199003071234" not in listed.data

    # bad input is a 422 naming the field, never a 500
    for bad, field in [
        ("view=everything", "view"),
        ("cursor=not-a-cursor", "cursor"),
        ("sort=name", "sort"),
        ("level=purple", "level"),
        ("due_before=tomorrow", "due_before"),
        ("limit=0", "limit"),
    ]:
        refused = officer.get(f"/api/v1/tasks?{bad}")
        assert refused.status_code == 422, bad
        assert refused.content_type == "application/problem+json"
        assert field in str(refused.get_json()), bad


def test_saved_filters_belong_to_their_user(inbox_app: Any) -> None:
    bank_admin, officer = login(inbox_app, "ly_admin"), login(inbox_app, "ly_officer")
    first = start(bank_admin, unit="ly-chengguan", name="张三")
    start(bank_admin, unit="ly-chengguan", name="李四")
    saved = officer.post(
        "/api/v1/tasks/filters", json={"name": "姓张的", "query": {"view": "candidate", "applicant": "张"}}
    )
    assert saved.status_code == 201
    filter_id = saved.get_json()["id"]
    assert inbox(officer, "candidate", filter=filter_id) == [first["tasks"][0]["id"]]
    assert [f["name"] for f in officer.get("/api/v1/tasks/filters").get_json()["items"]] == ["姓张的"]
    other = login(inbox_app, "ly_officer2")
    assert other.get(f"/api/v1/tasks?filter={filter_id}").status_code == 404
    assert other.delete(f"/api/v1/tasks/filters/{filter_id}").status_code == 404
    assert officer.post("/api/v1/tasks/filters", json={"name": "x", "query": {"view": "nope"}}).status_code == 422
    bad_date = officer.post("/api/v1/tasks/filters", json={"name": "x", "query": {"due_before": "x"}})
    assert bad_date.status_code == 422 and bad_date.get_json()["errors"][0]["field"] == "query.due_before"
    assert officer.delete(f"/api/v1/tasks/filters/{filter_id}").status_code == 204


# -- actions ------------------------------------------------------------------------------------------


def history(platform: CreditFlow, instance_id: str) -> list[Any]:
    return platform.instances.history(SYSTEM, instance_id)


def test_claim_unclaim_assign_delegate_resolve_each_checked_and_audited(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    officer = login(inbox_app, "ly_officer")
    reviewer, reviewer2, risk = (login(inbox_app, u) for u in ("ly_reviewer", "ly_reviewer2", "ly_risk"))
    started = start(officer)
    complete(officer, started["tasks"][0])
    review = open_task(inbox_app, started, "review")
    url = f"/api/v1/tasks/{review['id']}"

    assert reviewer.post(f"{url}/claim").get_json()["assignee_id"] == user_id(platform, "ly_reviewer")
    assert reviewer2.post(f"{url}/claim").status_code == 409
    assert reviewer2.post(f"{url}/unclaim").status_code == 403
    assert reviewer2.post(f"{url}/complete", json={"data": {}}).status_code == 409
    assert officer.post(f"{url}/assign", json={"user_id": user_id(platform, "ly_reviewer2")}).status_code == 403
    assert reviewer.post(f"{url}/unclaim").get_json()["assignee_id"] is None

    # a supervisor (the head office's risk manager) assigns to someone the task is offered to
    wrong = risk.post(f"{url}/assign", json={"user_id": user_id(platform, "ly_disburser")})
    assert wrong.status_code == 422
    assigned = risk.post(f"{url}/assign", json={"user_id": user_id(platform, "ly_reviewer2")})
    assert assigned.get_json()["assignee_id"] == user_id(platform, "ly_reviewer2")

    # delegate and resolve back: the owner keeps the task and completes it; only to someone who works tasks
    to_pm = reviewer2.post(f"{url}/delegate", json={"user_id": user_id(platform, "ly_pm")})
    assert to_pm.status_code == 422 and to_pm.get_json()["errors"][0]["field"] == "user_id"
    # ... and whom it is offered to: a delegated review went to a disburser, an investigation to a reviewer
    to_disburser = reviewer2.post(f"{url}/delegate", json={"user_id": user_id(platform, "ly_disburser")})
    assert to_disburser.status_code == 422
    assert [e["message"] for e in to_disburser.get_json()["errors"]] == ["not a candidate for this task"]
    delegated = reviewer2.post(f"{url}/delegate", json={"user_id": user_id(platform, "ly_reviewer")}).get_json()
    assert (delegated["assignee_id"], delegated["owner_id"], delegated["delegation"]) == (
        user_id(platform, "ly_reviewer"),
        user_id(platform, "ly_reviewer2"),
        "pending",
    )
    assert review["id"] in inbox(reviewer, "mine")
    assert inbox(reviewer2, "mine") == [] and inbox(reviewer2, "delegated") == [review["id"]]  # still theirs
    assert reviewer2.get("/api/v1/tasks/counts").get_json()["counts"]["delegated"] == 1
    assert reviewer.post(f"{url}/complete", json={"data": {}}).status_code == 409
    assert reviewer2.post(f"{url}/resolve", json={}).status_code == 403
    resolved = reviewer.post(f"{url}/resolve", json={"comment": "已核实流水"}).get_json()
    assert (resolved["assignee_id"], resolved["delegation"]) == (user_id(platform, "ly_reviewer2"), "resolved")
    with platform.db.transaction() as session:  # the delegate did the review: it bars them as the owner is barred
        duties = set(
            session.execute(
                select(InstanceDuty.user_id, InstanceDuty.duty).where(InstanceDuty.instance_id == started["id"])
            )
        )
    assert (user_id(platform, "ly_reviewer"), "review") in duties
    assert inbox(reviewer2, "delegated") == [] and review["id"] in inbox(reviewer2, "mine")
    notes = reviewer2.get(f"{url}/comments").get_json()["items"]
    assert [(c["body"], c["author_id"]) for c in notes] == [("已核实流水", user_id(platform, "ly_reviewer"))]
    complete(reviewer2, review)

    events = [(e.event_type, e.actor_id) for e in history(platform, started["id"]) if e.task_id == review["id"]]
    assert events == [
        ("task_created", None),
        ("task_claimed", user_id(platform, "ly_reviewer")),
        ("task_unclaimed", user_id(platform, "ly_reviewer")),
        ("task_assigned", user_id(platform, "ly_risk")),
        ("task_delegated", user_id(platform, "ly_reviewer2")),
        ("task_resolved", user_id(platform, "ly_reviewer")),
        ("task_completed", user_id(platform, "ly_reviewer2")),
    ]
    assert platform.instances.verify_audit(SYSTEM, started["id"]).ok


def test_return_to_an_earlier_step_goes_back_to_whoever_did_it(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    officer, reviewer, approver = (login(inbox_app, u) for u in ("ly_officer", "ly_reviewer", "ly_approver"))
    started = start(officer)
    complete(officer, started["tasks"][0])
    review = open_task(inbox_app, started, "review")
    complete(reviewer, review)
    approve = open_task(inbox_app, started, "approve")
    url = f"/api/v1/tasks/{approve['id']}/return"
    assert approver.post(url, json={"step": "committee", "reason": "x"}).status_code == 422
    assert approver.post(url, json={"step": "review"}).status_code == 422  # a reason is required
    blank = approver.post(url, json={"step": "review", "reason": "  \n "})
    assert blank.status_code == 422 and blank.get_json()["errors"] == [{"field": "reason", "message": "blank"}]
    returned = approver.post(url, json={"step": "review", "reason": "补充经营流水"})
    assert returned.status_code == 200, returned.get_json()
    (again,) = returned.get_json()["tasks"]
    assert again["bpmn_id"] == "review" and again["assignee_id"] == user_id(platform, "ly_reviewer")
    assert again["id"] in inbox(reviewer, "mine")
    (event,) = [e for e in history(platform, started["id"]) if e.event_type == "task_returned"]
    assert event.actor_id == user_id(platform, "ly_approver") and event.payload["reason"] == "补充经营流水"
    # the step it went back to reads why, with the application's other comments
    comments = reviewer.get(f"/api/v1/tasks/{again['id']}/comments").get_json()["items"]
    assert [c["body"] for c in comments] == ["退回至「审查」：补充经营流水"]
    complete(reviewer, again)
    complete(approver, open_task(inbox_app, started, "approve"))
    assert platform.instances.verify_audit(SYSTEM, started["id"]).ok


def test_a_returned_step_opens_with_what_was_entered_says_why_and_comes_back_to_whoever_returned_it(
    app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
    clock: FrozenClock,
) -> None:
    view = local_application(catalog, {})
    version = view.instance.product_version_id
    officer, co, reviewer, approver = (
        login(app, u) for u in ("ly_officer", "ly_officer2", "ly_reviewer", "ly_approver")
    )
    for client, step in ((officer, "main_investigation"), (co, "co_investigation"), (reviewer, "review")):
        clock.advance(timedelta(hours=1))  # the steps listed to return to, latest first
        task = next(t for t in catalog.tasks.list(SYSTEM, InboxQuery(view="all")).items if t.task.bpmn_id == step)
        entered = form_data(catalog, version, task.task)
        done = client.post(f"/api/v1/tasks/{task.task.id}/complete", json={"data": entered})
        assert done.status_code == 200, done.get_json()
    (approval,) = done.get_json()["tasks"]
    assert approval["assignee_id"] is None  # offered to the approvers' pool
    detail = approver.get(f"/api/v1/tasks/{approval['id']}").get_json()
    assert [s["bpmn_id"] for s in detail["return_steps"]] == ["review", "co_investigation", "main_investigation"]
    assert detail["return_steps"][0]["completed_by_id"] == user_id(catalog, "ly_reviewer")
    url = f"/api/v1/tasks/{approval['id']}/return"
    assert approver.post(url, json={"step": "approval", "reason": "x"}).status_code == 422  # not done yet

    returned = approver.post(url, json={"step": "review", "reason": "补充近六个月经营流水"})
    assert returned.status_code == 200, returned.get_json()
    (again,) = returned.get_json()["tasks"]
    # the reviewer's inbox shows it as a return, with the product and amount of the application
    rows = reviewer.get("/api/v1/tasks?view=mine&returned=true").get_json()["items"]
    assert [r["id"] for r in rows] == [again["id"]]
    (row,) = rows
    assert (row["returned_by_id"], row["returned_from"], row["return_reason"]) == (
        user_id(catalog, "ly_approver"),
        "approval",
        "补充近六个月经营流水",
    )
    with catalog.db.transaction() as session:
        name = session.scalars(select(Product.name).where(Product.code == "LY-DAINONG")).one()
    assert (row["product_code"], row["product_name"], row["amount"]) == ("LY-DAINONG", name, "800000.00")
    assert inbox(reviewer, "mine", returned="false") == []
    (told,) = reviewer.get("/api/v1/notifications").get_json()["items"]
    assert (told["topic"], told["summary"]) == ("task.returned", "「审查」被退回：王小二（补充近六个月经营流水）")
    # it opens with what the reviewer entered the first time
    reopened = reviewer.get(f"/api/v1/tasks/{again['id']}").get_json()
    fields_ = reopened["form_definition"]["schema"]["properties"]
    assert {k: v for k, v in reopened["data"].items() if k in fields_} == entered
    # done again, it comes straight back to the approver who returned it, not to the pool
    redone = reviewer.post(
        f"/api/v1/tasks/{again['id']}/complete", json={"data": {**entered, "comment": "已补充流水，经营稳定。"}}
    )
    assert redone.status_code == 200, redone.get_json()
    (back,) = redone.get_json()["tasks"]
    assert back["bpmn_id"] == "approval" and back["assignee_id"] == user_id(catalog, "ly_approver")
    assert back["returned_by_id"] is None  # a new round, not a return
    assert back["id"] in inbox(approver, "mine")
    # the application list shows the product and amount too
    (listed,) = [
        i for i in officer.get("/api/v1/process-instances").get_json()["items"] if i["id"] == again["instance_id"]
    ]
    assert (listed["product_code"], listed["amount"]) == ("LY-DAINONG", "800000.00")


def test_an_id_number_typed_into_a_return_reason_is_masked_wherever_it_is_shown(inbox_app: Any) -> None:
    officer, reviewer, approver = (login(inbox_app, u) for u in ("ly_officer", "ly_reviewer", "ly_approver"))
    started = start(officer)
    complete(officer, started["tasks"][0])
    complete(reviewer, open_task(inbox_app, started, "review"))
    approve = open_task(inbox_app, started, "approve")
    number = "320102198001011238"  # a guarantor's, say: not the applicant's (staff read that in full)
    returned = approver.post(
        f"/api/v1/tasks/{approve['id']}/return", json={"step": "review", "reason": f"担保人{number}不符"}
    )
    assert returned.status_code == 200, returned.get_json()
    assert number.encode() not in returned.data
    (row,) = reviewer.get("/api/v1/tasks?view=mine").get_json()["items"]
    assert row["return_reason"] == "担保人320102********1238不符"
    notifications = reviewer.get("/api/v1/notifications")
    assert notifications.status_code == 200 and number.encode() not in notifications.data
    assert "担保人320102********1238不符" in notifications.get_json()["items"][0]["summary"]


def test_comments_and_attachments_are_kept_on_the_application(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    officer, reviewer = login(inbox_app, "ly_officer"), login(inbox_app, "ly_reviewer")
    started = start(officer)
    task = started["tasks"][0]
    commented = officer.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "客户经营稳定"})
    assert commented.status_code == 201
    assert officer.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": ""}).status_code == 422
    assert officer.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": " \t "}).status_code == 422
    # an ID number typed into a comment is masked where comments are listed (the archive keeps it)
    typed = officer.post(f"/api/v1/tasks/{task['id']}/comments", json={"body": "配偶身份证110101199003071234"})
    assert typed.get_json()["body"] == "配偶身份证110101********1234"
    listed = officer.get(f"/api/v1/tasks/{task['id']}/comments")
    assert b"110101199003071234" not in listed.data
    from io import BytesIO

    upload = officer.post(
        f"/api/v1/tasks/{task['id']}/attachments",
        data={"file": (BytesIO(b"%PDF-1.4 site photo"), "../现场照片.pdf")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201, upload.get_json()
    attachment = upload.get_json()
    assert attachment["filename"] == "现场照片.pdf" and attachment["size"] == 19
    assert officer.post(f"/api/v1/tasks/{task['id']}/attachments", data={}).status_code == 422
    complete(officer, task)

    review = open_task(inbox_app, started, "review")  # the next step sees what the first wrote
    assert [c["body"] for c in reviewer.get(f"/api/v1/tasks/{review['id']}/comments").get_json()["items"]] == [
        "客户经营稳定",
        "配偶身份证110101********1234",
    ]
    files = reviewer.get(f"/api/v1/tasks/{review['id']}/attachments").get_json()["items"]
    assert [f["id"] for f in files] == [attachment["id"]]
    download = reviewer.get(f"/api/v1/attachments/{attachment['id']}")
    assert download.status_code == 200 and download.data == b"%PDF-1.4 site photo"
    assert login(inbox_app, "qh_reviewer").get(f"/api/v1/attachments/{attachment['id']}").status_code == 404
    kinds = {e.event_type: e for e in history(platform, started["id"])}
    assert kinds["attachment_added"].payload["sha256"] == attachment["sha256"]
    assert kinds["comment_added"].actor_id == user_id(platform, "ly_officer")

    # the archived loan file holds them too (the customer withdrew: a cancelled application is archived as well)
    cancel = login(inbox_app, "ly_admin").post(f"/api/v1/process-instances/{started['id']}/cancel", json={})
    assert cancel.status_code == 200
    run_pass(platform)
    with zipfile.ZipFile(io.BytesIO(reviewer.get(f"/api/v1/archives/{started['id']}/content").data)) as bag:
        files = {name.split("/", 1)[1]: bag.read(name) for name in bag.namelist()}
    assert files["data/attachments/001-现场照片.pdf"] == b"%PDF-1.4 site photo"
    archived = [c["body"] for c in json.loads(files["data/comments.json"])]
    assert archived == ["客户经营稳定", "配偶身份证110101199003071234"]
    # who the ids are, for an auditor with no database to ask: the officer who commented, the admin who cancelled
    people = {p["id"]: p for p in json.loads(files["data/people.json"])}
    officer_id, admin_id = user_id(platform, "ly_officer"), user_id(platform, "ly_admin")
    assert {officer_id, admin_id} <= set(people)
    assert people[officer_id]["username"] == "ly_officer"
    (role,) = people[officer_id]["roles"]
    assert (role["role"], role["title"], role["unit"]) == ("loan_officer", "客户经理", "ly-chengguan")
    (listed,) = json.loads(files["data/instance.json"])["attachments"]
    assert listed["path"] == "attachments/001-现场照片.pdf" and listed["sha256"] == attachment["sha256"]
    assert reviewer.post(f"/api/v1/archives/{started['id']}/verify").get_json()["ok"] is True


def test_bulk_claim_and_bulk_assign_report_each_task(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    bank_admin = login(inbox_app, "ly_admin")
    officer, officer2, branch_head = (login(inbox_app, u) for u in ("ly_officer", "ly_officer2", "ly_branch_head"))
    tasks = [start(bank_admin, unit="ly-chengguan")["tasks"][0]["id"] for _ in range(3)]
    assert officer2.post(f"/api/v1/tasks/{tasks[1]}/claim").status_code == 200
    results = officer.post("/api/v1/tasks/bulk/claim", json={"task_ids": [*tasks, "no-such-task"]}).get_json()
    assert [r["status"] for r in results["results"]] == [200, 409, 200, 404]
    assert set(inbox(officer, "mine")) == {tasks[0], tasks[2]}

    assert officer.post("/api/v1/tasks/bulk/assign", json={"task_ids": tasks, "user_id": 1}).status_code == 403
    moved = branch_head.post(
        "/api/v1/tasks/bulk/assign", json={"task_ids": tasks, "user_id": user_id(platform, "ly_officer2")}
    ).get_json()
    assert [r["status"] for r in moved["results"]] == [200, 200, 200]
    assert set(inbox(officer2, "mine")) == set(tasks)
    assert officer.post("/api/v1/tasks/bulk/claim", json={"task_ids": []}).status_code == 422
    too_many = officer.post("/api/v1/tasks/bulk/claim", json={"task_ids": [f"t{n}" for n in range(101)]})
    assert too_many.status_code == 422 and "task_ids" in str(too_many.get_json())


def test_the_province_reads_its_banks_tasks_but_does_not_act_on_them(inbox_app: Any) -> None:
    officer, province = login(inbox_app, "ly_officer"), login(inbox_app, "prov_risk")
    started = start(officer)
    task = started["tasks"][0]
    assert province.get(f"/api/v1/tasks/{task['id']}").status_code == 200
    assert task["id"] in inbox(province, "all")
    for action in ("claim", "unclaim", "complete"):
        assert province.post(f"/api/v1/tasks/{task['id']}/{action}", json={"data": {}}).status_code == 403, action
    assert login(inbox_app, "qh_admin").get(f"/api/v1/tasks/{task['id']}").status_code == 404


def test_completing_an_unclaimed_task_offered_to_you_claims_it(inbox_app: Any) -> None:
    platform = inbox_app.extensions["creditflow"]
    started = start(login(inbox_app, "ly_admin"), unit="ly-chengguan")
    done = complete(login(inbox_app, "ly_officer2"), started["tasks"][0])
    assert done["tasks"][0]["bpmn_id"] == "review"
    with platform.db.transaction() as session:
        row = session.get(HumanTask, started["tasks"][0]["id"])
        assert row.completed_by_id == row.assignee_id == user_id(platform, "ly_officer2")
    assert inbox(login(inbox_app, "ly_officer2"), "mine", status="completed") == [started["tasks"][0]["id"]]
