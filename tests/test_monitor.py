"""The overdue monitor: open tasks by level per bank, branch, product and step; on-time rates per step over a
period; tenant and branch scope; CSV export; bad input and missing permission.

The data is real: applications started through the API as demo users, step thresholds written onto the
task rows as the scheduler would have computed them, the frozen clock moved on, and tasks completed before
and after their due time.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from engine.container import CreditFlow
from engine.services.principal import Principal
from engine.store.models import HumanTask, OrgUnit, ProcessInstance
from tests.conftest import ApiClient, bank_card, deploy, login, resident_id
from tests.test_inbox import complete, open_task, start
from tests.test_products import applicant, catalog, local_application, principal_of  # noqa: F401 - fixture

SYSTEM = Principal.system()

OVERDUE = "/api/v1/monitor/overdue"
ON_TIME = "/api/v1/monitor/on-time"
APPLICATIONS = "/api/v1/monitor/applications"
HOUR = timedelta(hours=1)
NO_LEVELS = {"none": 0, "yellow": 0, "orange": 0, "red": 0}
LATER = timedelta(hours=3, minutes=30)  # when the open work below shows every colour


@pytest.fixture
def monitor_app(catalog: CreditFlow, app: Any) -> Any:  # noqa: F811 - the fixture
    deploy(catalog, "inbox.bpmn")
    return app


def thresholds(platform: CreditFlow, task_id: str, due: datetime, *, warn: timedelta, red: timedelta) -> None:
    """Yellow ``warn`` before ``due`` and red ``red`` after it, as a step limit would have set them."""
    with platform.db.transaction(write=True) as session:
        session.execute(
            update(HumanTask)
            .where(HumanTask.id == task_id)
            .values(warn_at=due - warn, due_at=due, escalate_at=due + red)
        )


def get(client: ApiClient, url: str, **params: str) -> dict[str, Any]:
    response = client.get(url, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def rows(client: ApiClient, group_by: str, **filters: str) -> list[dict[str, Any]]:
    """The overdue rows without the bank column unless it tells branches apart."""
    items = get(client, OVERDUE, group_by=group_by, **filters)["items"]
    return [{k: v for k, v in row.items() if k != "bank" or group_by == "branch"} for row in items]


def counts(key: str | None, name: str | None, **levels: int) -> dict[str, Any]:
    return {"key": key, "name": name, **NO_LEVELS, **levels, "total": sum(levels.values())}


def csv_rows(response: Any) -> list[list[str]]:
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert response.headers["Content-Disposition"].endswith(".csv")
    assert response.data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))


@pytest.fixture
def open_work(monitor_app: Any) -> None:
    """Open tasks of both banks. ``LATER`` 城关 has one task of each colour (and its product application's two
    within their limit), 西关's is red, and so is 清河's."""
    platform = monitor_app.extensions["creditflow"]
    bank_admin = login(monitor_app, "ly_admin")
    t0 = platform.clock.now()
    tasks = {
        "no_limit": start(bank_admin, unit="ly-chengguan")["tasks"][0]["id"],
        "yellow": start(bank_admin, unit="ly-grid-01")["tasks"][0]["id"],  # a grid of 城关
        "orange": start(bank_admin, unit="ly-dongjie")["tasks"][0]["id"],  # a sub-branch of 城关
        "red": start(bank_admin, unit="ly-xiguan")["tasks"][0]["id"],  # no officer there: offered at the head office
        "qh_red": start(login(monitor_app, "qh_admin"), unit="qh-hebei")["tasks"][0]["id"],
    }
    product = local_application(platform, {})  # 陵源's officer in 城关: main and co-investigation
    for task in product.tasks:
        thresholds(platform, task.id, t0 + 8 * HOUR, warn=2 * HOUR, red=4 * HOUR)
    thresholds(platform, tasks["yellow"], t0 + 4 * HOUR, warn=HOUR, red=2 * HOUR)
    thresholds(platform, tasks["orange"], t0 + 2 * HOUR, warn=HOUR, red=3 * HOUR)
    for red in ("red", "qh_red"):
        thresholds(platform, tasks[red], t0 + 2 * HOUR, warn=HOUR, red=HOUR)


def test_open_tasks_are_counted_by_level_bank_branch_product_and_step(monitor_app: Any, open_work: None) -> None:
    platform = monitor_app.extensions["creditflow"]
    bank_admin, province = login(monitor_app, "ly_admin"), login(monitor_app, "admin")
    assert rows(bank_admin, "level")[0] == counts("none", "正常", none=6)
    assert [row["total"] for row in rows(bank_admin, "level")[1:]] == [0, 0, 0]

    platform.clock.advance(LATER)
    report = get(bank_admin, OVERDUE)
    assert report["group_by"] == "level" and report["as_of"] == platform.clock.now().isoformat()
    assert report["items"] == [
        {**counts("none", "正常", none=3), "bank": None},
        {**counts("yellow", "提醒", yellow=1), "bank": None},
        {**counts("orange", "超时", orange=1), "bank": None},
        {**counts("red", "严重超时", red=1), "bank": None},
    ]
    assert rows(province, "bank") == [
        counts("bank-lingyuan", "陵源农商银行", none=3, yellow=1, orange=1, red=1),
        counts("bank-qinghe", "清河农商银行", red=1),
    ]
    # the application's branch: a grid's and a sub-branch's work counts for 城关, most overdue branch first
    assert rows(bank_admin, "branch") == [
        {**counts("ly-xiguan", "西关支行", red=1), "bank": "bank-lingyuan"},
        {**counts("ly-chengguan", "城关支行", none=3, yellow=1, orange=1), "bank": "bank-lingyuan"},
    ]
    assert rows(bank_admin, "product") == [
        counts(None, None, none=1, yellow=1, orange=1, red=1),  # applications started without a product
        counts("LY-DAINONG", "富农贷·带农增收企业贷", none=2),
    ]
    assert rows(bank_admin, "step") == [
        counts("investigate", "贷前调查", none=1, yellow=1, orange=1, red=1),
        counts("co_investigation", "协办调查", none=1),
        counts("main_investigation", "主调查", none=1),
    ]

    # filters narrow what is counted; the grouping stays
    assert rows(bank_admin, "level", branch="ly-chengguan")[0]["none"] == 3
    assert rows(bank_admin, "bank", product="LY-DAINONG") == [counts("bank-lingyuan", "陵源农商银行", none=2)]
    assert rows(bank_admin, "branch", step="investigate", level="red") == [
        {**counts("ly-xiguan", "西关支行", red=1), "bank": "bank-lingyuan"}
    ]
    assert rows(province, "step", level="red") == [counts("investigate", "贷前调查", red=2)]
    assert rows(province, "bank", bank="bank-qinghe") == [counts("bank-qinghe", "清河农商银行", red=1)]
    assert rows(bank_admin, "bank", bank="bank-qinghe") == []  # another bank's code finds nothing


def test_each_caller_counts_only_the_work_in_their_scope(monitor_app: Any, open_work: None) -> None:
    monitor_app.extensions["creditflow"].clock.advance(LATER)
    everything = [
        counts("bank-lingyuan", "陵源农商银行", none=3, yellow=1, orange=1, red=1),
        counts("bank-qinghe", "清河农商银行", red=1),
    ]
    assert rows(login(monitor_app, "admin"), "bank") == everything
    assert rows(login(monitor_app, "prov_risk"), "bank") == everything  # a province supervisor reads every bank
    assert rows(login(monitor_app, "qh_admin"), "bank") == everything[1:]
    assert rows(login(monitor_app, "qh_senior_approver"), "bank") == everything[1:]
    assert rows(login(monitor_app, "ly_risk"), "bank") == everything[:1]  # a head-office supervisor: the bank
    # a branch head counts the work offered in their branch and below, not 西关's nor the head office's
    assert rows(login(monitor_app, "ly_branch_head"), "branch") == [
        {**counts("ly-chengguan", "城关支行", none=3, yellow=1, orange=1), "bank": "bank-lingyuan"}
    ]
    for username in ("ly_officer", "ly_reviewer", "ly_pm"):
        refused = login(monitor_app, username).get(OVERDUE)
        assert refused.status_code == 403 and refused.content_type == "application/problem+json", username
        assert login(monitor_app, username).get(f"{ON_TIME}?from=2026-12-01&to=2026-12-01").status_code == 403


def test_on_time_rates_per_step_over_a_period_of_shanghai_days(monitor_app: Any) -> None:
    platform = monitor_app.extensions["creditflow"]
    clock, t0 = platform.clock, platform.clock.now()  # Tuesday 2026-12-01 09:00 in Shanghai
    bank_admin, officer, reviewer = (login(monitor_app, u) for u in ("ly_admin", "ly_officer", "ly_reviewer"))
    started = [start(bank_admin, unit="ly-chengguan") for _ in range(4)]
    other_bank = start(login(monitor_app, "qh_admin"), unit="qh-hebei")
    first, second, third, no_limit = (s["tasks"][0] for s in started)
    for task in (first, second, third, other_bank["tasks"][0]):
        thresholds(platform, task["id"], t0 + 2 * HOUR, warn=HOUR, red=HOUR)

    clock.advance(HOUR)
    complete(officer, first)  # an hour early
    complete(login(monitor_app, "qh_officer"), other_bank["tasks"][0])
    first_review = open_task(monitor_app, started[0], "review")
    thresholds(platform, first_review["id"], t0 + 4 * HOUR, warn=HOUR, red=HOUR)
    clock.advance(HOUR)
    complete(officer, second)  # exactly at its due time: on time
    second_review = open_task(monitor_app, started[1], "review")
    thresholds(platform, second_review["id"], t0 + 20 * HOUR, warn=HOUR, red=HOUR)
    clock.advance(HOUR)
    complete(officer, third)  # an hour late
    complete(officer, no_limit)  # no due time: neither on time nor late
    clock.advance(2 * HOUR)
    complete(reviewer, first_review)  # an hour late
    clock.advance(12 * HOUR)  # 18:00 UTC on 1 December, but 02:00 on 2 December in Shanghai
    bank_admin, reviewer = login(monitor_app, "ly_admin"), login(monitor_app, "ly_reviewer")  # new day, new tokens
    complete(reviewer, second_review)

    def rates(client: ApiClient, start_day: str, end_day: str, **filters: str) -> list[tuple[Any, ...]]:
        report = get(client, ON_TIME, **{"from": start_day, "to": end_day, **filters})
        assert (report["from"], report["to"]) == (start_day, end_day)
        return [(r["step"], r["name"], r["completed"], r["on_time"], r["overdue"], r["rate"]) for r in report["items"]]

    review_late = ("review", "审查", 1, 0, 1, 0.0)
    assert rates(bank_admin, "2026-12-01", "2026-12-01") == [review_late, ("investigate", "贷前调查", 3, 2, 1, 0.6667)]
    assert rates(bank_admin, "2026-12-02", "2026-12-02") == [("review", "审查", 1, 1, 0, 1.0)]
    assert rates(bank_admin, "2026-12-01", "2026-12-02")[0] == ("review", "审查", 2, 1, 1, 0.5)
    assert rates(bank_admin, "2026-11-01", "2026-11-30") == []
    assert rates(bank_admin, "2026-12-01", "2026-12-01", product="LY-DAINONG") == []
    assert rates(bank_admin, "2026-12-01", "2026-12-01", branch="ly-chengguan")[1][2:] == (3, 2, 1, 0.6667)

    province = login(monitor_app, "admin")
    assert rates(province, "2026-12-01", "2026-12-01")[1] == ("investigate", "贷前调查", 4, 3, 1, 0.75)
    assert rates(province, "2026-12-01", "2026-12-01", bank="bank-qinghe") == [
        ("investigate", "贷前调查", 1, 1, 0, 1.0)
    ]
    assert rates(login(monitor_app, "qh_admin"), "2026-12-01", "2026-12-02") == [
        ("investigate", "贷前调查", 1, 1, 0, 1.0)
    ]
    # the branch head's team does the investigation; the review is the head office's work
    assert rates(login(monitor_app, "ly_branch_head"), "2026-12-01", "2026-12-02") == [
        ("investigate", "贷前调查", 3, 2, 1, 0.6667)
    ]

    exported = csv_rows(bank_admin.get(f"{ON_TIME}?from=2026-12-01&to=2026-12-02&format=csv"))
    assert exported == [
        ["step", "name", "completed", "on_time", "overdue", "rate"],
        ["review", "审查", "2", "1", "1", "0.5"],
        ["investigate", "贷前调查", "3", "2", "1", "0.6667"],
    ]


def test_open_applications_are_counted_by_the_level_of_their_process_clock(
    monitor_app: Any,
    catalog: CreditFlow,  # noqa: F811 - the fixture
) -> None:
    """An application's clock runs on while no step of it is late (it waits for the customer's signature,
    say): the task counts miss it, the application counts do not."""
    t0 = catalog.clock.now()
    late = local_application(catalog, {})  # 城关; its two investigation steps have no step limits set
    officer = principal_of(catalog, "ly_officer")
    data = {"amount": "600000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
    borrowers = [{**applicant(), "id_number": resident_id(f"3701021980010{n}123")} for n in (2, 3)]
    due = catalog.products.apply(officer, "LY-DAINONG", applicant=borrowers[0], data=data, org_unit="ly-dongjie")
    ended = catalog.products.apply(officer, "LY-DAINONG", applicant=borrowers[1], data=data)
    catalog.instances.cancel(SYSTEM, ended.instance.id, "客户撤回申请")
    for view, limit in ((late, 2 * HOUR), (due, 3 * HOUR), (ended, 2 * HOUR)):
        with catalog.db.transaction(write=True) as session:
            session.execute(
                update(ProcessInstance)
                .where(ProcessInstance.id == view.instance.id)
                .values(warn_at=t0 + limit - HOUR, due_at=t0 + limit, escalate_at=t0 + limit + HOUR)
            )
    catalog.clock.advance(LATER)
    bank_admin = login(monitor_app, "ly_admin")
    assert rows(bank_admin, "level")[0] == counts("none", "正常", none=4)  # every step within its limit
    applications = get(bank_admin, APPLICATIONS)
    assert applications["as_of"] == catalog.clock.now().isoformat()
    assert [(row["key"], row["total"]) for row in applications["items"]] == [
        ("none", 0),
        ("yellow", 0),
        ("orange", 1),
        ("red", 1),
    ]
    by_branch = get(bank_admin, APPLICATIONS, group_by="branch")["items"]
    assert by_branch == [{**counts("ly-chengguan", "城关支行", orange=1, red=1), "bank": "bank-lingyuan"}]
    by_product = get(login(monitor_app, "admin"), APPLICATIONS, group_by="product", level="red")["items"]
    assert by_product == [{**counts("LY-DAINONG", "富农贷·带农增收企业贷", red=1), "bank": None}]
    assert get(bank_admin, APPLICATIONS, branch="ly-dongjie", level="orange")["items"][2]["orange"] == 1
    assert get(login(monitor_app, "qh_admin"), APPLICATIONS, group_by="bank")["items"] == []
    assert get(login(monitor_app, "ly_branch_head"), APPLICATIONS)["items"][3]["red"] == 1
    # the list of applications drills down to the late ones
    listed = get(bank_admin, "/api/v1/process-instances", level="red", product="LY-DAINONG")["items"]
    assert [(i["id"], i["level"]) for i in listed] == [(late.instance.id, "red")]
    assert get(bank_admin, "/api/v1/process-instances", product="LY-DAINONG-X")["items"] == []
    # a closed application's clock stopped when it closed: the cancelled one is not red now
    assert get(bank_admin, f"/api/v1/process-instances/{ended.instance.id}")["level"] == "none"
    spreadsheet = csv_rows(bank_admin.get(f"{APPLICATIONS}?group_by=bank&format=csv"))
    assert spreadsheet[1] == ["bank-lingyuan", "陵源农商银行", "0", "0", "1", "1", "2"]
    refused = login(monitor_app, "ly_officer").get(APPLICATIONS)
    assert refused.status_code == 403 and refused.content_type == "application/problem+json"


def test_the_overdue_counts_export_as_csv_for_excel(monitor_app: Any, open_work: None) -> None:
    platform = monitor_app.extensions["creditflow"]
    platform.clock.advance(LATER)
    with platform.db.transaction(write=True) as session:  # a name Excel would otherwise run as a formula
        session.execute(update(OrgUnit).where(OrgUnit.code == "ly-xiguan").values(name="=1+2西关"))
    province = login(monitor_app, "admin")
    by_branch = province.get(f"{OVERDUE}?group_by=branch", headers={"Accept": "text/csv"})
    assert csv_rows(by_branch) == [
        ["key", "name", "bank", "none", "yellow", "orange", "red", "total"],
        ["ly-xiguan", "'=1+2西关", "bank-lingyuan", "0", "0", "0", "1", "1"],
        ["qh-hebei", "河北支行", "bank-qinghe", "0", "0", "0", "1", "1"],
        ["ly-chengguan", "城关支行", "bank-lingyuan", "3", "1", "1", "0", "5"],
    ]
    assert "overdue-by-branch-" in by_branch.headers["Content-Disposition"]
    by_level = csv_rows(province.get(f"{OVERDUE}?format=csv", headers={"Accept": "text/csv"}))
    assert by_level[0] == ["key", "name", "none", "yellow", "orange", "red", "total"]
    assert [row[:2] for row in by_level[1:]] == [
        ["none", "正常"],
        ["yellow", "提醒"],
        ["orange", "超时"],
        ["red", "严重超时"],
    ]
    # format wins over Accept, and browsers' Accept (*/*) still get JSON
    assert province.get(f"{OVERDUE}?format=json", headers={"Accept": "text/csv"}).is_json
    assert province.get(OVERDUE, headers={"Accept": "*/*"}).is_json


def test_bad_query_values_are_a_422_naming_the_field(monitor_app: Any) -> None:
    bank_admin = login(monitor_app, "ly_admin")
    for url, field in [
        (f"{OVERDUE}?group_by=colour", "group_by"),
        (f"{OVERDUE}?level=purple", "level"),
        (f"{OVERDUE}?format=xlsx", "format"),
        (f"{APPLICATIONS}?group_by=step", "group_by"),  # an application waits at no one step
        (f"{APPLICATIONS}?step=review", "step"),
        (f"{ON_TIME}?to=2026-12-01", "from"),
        (f"{ON_TIME}?from=2026-13-01&to=2026-12-01", "from"),
        (f"{ON_TIME}?from=2026-12-02&to=2026-12-01", "to"),
        (f"{ON_TIME}?from=2025-01-01&to=2026-01-02", "to"),  # 367 days
    ]:
        refused = bank_admin.get(url)
        assert refused.status_code == 422, (url, refused.get_json())
        assert refused.content_type == "application/problem+json"
        assert [error["field"] for error in refused.get_json()["errors"]] == [field], url
    assert get(bank_admin, ON_TIME, **{"from": "2025-01-01", "to": "2026-01-01"})["items"] == []  # 366 days
