"""The escalation log: the levels clocks reached, as the scheduler recorded them, read back over a period in
the monitor's scope, filtered, paged and exported; bad input and a caller without the permission.

The escalations are real: a 陵源 application whose investigation step has a 4-hour limit, and scheduler
passes run at moments past each threshold.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.container import CreditFlow
from engine.jobs.scheduler import run_pass
from tests.conftest import login
from tests.test_escalation import LIMITS, investigation
from tests.test_monitor import csv_rows
from tests.test_products import catalog, local_application  # noqa: F401 - fixture

LOG = "/api/v1/escalations"
PERIOD = {"from": "2026-11-30", "to": "2026-12-06"}


def escalated(platform: CreditFlow) -> tuple[Any, Any]:
    """An application whose step went yellow, orange and red (its process clock is days from yellow)."""
    view = local_application(platform, LIMITS)
    task = investigation(view)
    run_pass(platform, task.escalate_at + timedelta(hours=1))
    return view, task


def page(app: Any, username: str, **query: str) -> dict[str, Any]:
    response = login(app, username).get(LOG, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_each_level_a_step_reached_is_listed_newest_first_with_who_was_told(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
) -> None:
    view, task = escalated(catalog)
    log = page(app, "ly_branch_head", **PERIOD)
    assert log["total"] == 3 and (log["from"], log["to"]) == ("2026-11-30", "2026-12-06")
    assert [(e["level"], e["level_name"]) for e in log["items"]] == [
        ("red", "严重超时"),
        ("orange", "超时"),
        ("yellow", "提醒"),
    ]
    red, orange, yellow = log["items"]
    assert red["reached_at"] == task.escalate_at.isoformat() and yellow["reached_at"] == task.warn_at.isoformat()
    assert {
        k: red[k]
        for k in (
            "scope",
            "instance_id",
            "task_id",
            "step",
            "bank",
            "unit",
            "unit_name",
            "product",
            "reassigned_to_role",
        )
    } == {
        "scope": "task",
        "instance_id": view.instance.id,
        "task_id": task.id,
        "step": "main_investigation",
        "bank": "bank-lingyuan",
        "unit": "ly-chengguan",
        "unit_name": "城关支行",
        "product": "LY-DAINONG",
        "reassigned_to_role": "branch_head",
    }
    assert red["step_name"] and red["product_name"] and red["applicant_name"]
    assert yellow["notified"] == ["ly_officer"] and sorted(orange["notified"]) == ["ly_branch_head", "ly_officer"]
    assert yellow["reassigned_to_role"] is None

    # filters and pages
    assert [e["level"] for e in page(app, "ly_branch_head", level="red", **PERIOD)["items"]] == ["red"]
    assert page(app, "ly_branch_head", scope="process", **PERIOD)["total"] == 0
    assert page(app, "ly_branch_head", product="XEKD-XIN", **PERIOD)["total"] == 0
    assert page(app, "ly_branch_head", branch="ly-xiguan", **PERIOD)["total"] == 0
    assert page(app, "ly_branch_head", branch="ly-hq", **PERIOD)["total"] == 3  # 城关 lies below the head office
    first, rest = page(app, "ly_branch_head", limit="2", **PERIOD), page(app, "ly_branch_head", offset="2", **PERIOD)
    assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in log["items"]]
    assert page(app, "ly_branch_head", **{"from": "2026-11-01", "to": "2026-11-30"})["total"] == 0

    # later, the application's own clock runs out too
    run_pass(catalog, view.instance.escalate_at + timedelta(hours=1))
    process = page(app, "ly_branch_head", scope="process", **{"from": "2026-11-30", "to": "2026-12-31"})
    assert [e["level"] for e in process["items"]] == ["red", "orange", "yellow"]
    assert all(e["task_id"] is None and e["step"] is None for e in process["items"])


def test_each_caller_reads_the_log_of_their_scope_only(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
) -> None:
    escalated(catalog)
    assert page(app, "admin", **PERIOD)["total"] == 3  # the province reads its banks
    assert page(app, "admin", bank="bank-qinghe", **PERIOD)["total"] == 0
    assert page(app, "ly_admin", **PERIOD)["total"] == 3
    assert page(app, "qh_admin", **PERIOD)["total"] == 0  # another bank's escalations do not exist for it
    assert page(app, "qh_admin", bank="bank-lingyuan", **PERIOD)["total"] == 0
    refused = login(app, "ly_officer").get(LOG, query_string=PERIOD)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"


def test_without_a_period_the_log_shows_the_last_week(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
) -> None:
    escalated(catalog)
    catalog.clock.advance(timedelta(days=3))
    assert page(app, "ly_branch_head")["total"] == 3
    catalog.clock.advance(timedelta(days=7))
    week = page(app, "ly_branch_head")
    assert week["total"] == 0 and week["to"] == "2026-12-11" and week["from"] == "2026-12-05"


def test_the_log_exports_the_whole_period_as_csv(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
) -> None:
    escalated(catalog)
    response = login(app, "ly_branch_head").get(LOG, query_string={"format": "csv", "limit": "1", **PERIOD})
    header, *rows = csv_rows(response)
    assert header[:3] == ["id", "scope", "level"] and len(rows) == 3  # a spreadsheet is not paged
    notified = header.index("notified")
    assert rows[1][header.index("level_name")] == "超时" and set(rows[1][notified].split(", ")) == {
        "ly_branch_head",
        "ly_officer",
    }
    # times as Excel should show them: Beijing wall-clock time, not UTC (which put 02:00 on the day before)
    listed = login(app, "ly_branch_head").get(LOG, query_string=PERIOD).get_json()["items"]
    reached = datetime.fromisoformat(listed[0]["reached_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert rows[0][header.index("reached_at")] == f"{reached:%Y-%m-%d %H:%M:%S}"


def test_bad_queries_are_a_422_naming_the_field(
    catalog: CreditFlow,  # noqa: F811 - the fixture
    app: Any,
) -> None:
    head = login(app, "ly_branch_head")
    for query, field in [
        ({"from": "2026-12-06", "to": "2026-12-01"}, "to"),
        ({"from": "2025-01-01", "to": "2026-12-01"}, "to"),
        ({"level": "none"}, "level"),
        ({"scope": "bank"}, "scope"),
        ({"limit": "0"}, "limit"),
        ({"from": "yesterday"}, "from"),
    ]:
        response = head.get(LOG, query_string=query)
        assert response.status_code == 422, (query, response.get_json())
        assert [e["field"] for e in response.get_json()["errors"]] == [field]
