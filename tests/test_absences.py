"""Out-of-office substitutes (休假代理): the substitute works what is assigned to a colleague on leave,
new personal work goes to them, segregation of duties still holds, and when the leave ends the
colleague has their work back. The clock is moved, never slept on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from engine.services.absences import AbsenceRequest
from engine.services.principal import Principal
from tests.conftest import ApiClient, deploy, login
from tests.test_inbox import complete, grant, history, inbox, open_task, start, user_id

ME = "/api/v1/auth/me/absence"
SYSTEM = Principal.system()


@pytest.fixture
def flow(app: Any) -> Any:
    """The app with the inbox test flow (investigate, review, approve, committee, disburse)."""
    deploy(app.extensions["creditflow"], "inbox.bpmn")
    return app


def period(app: Any, starts_in: timedelta, lasts: timedelta) -> dict[str, str]:
    now = app.extensions["creditflow"].clock.now()
    return {"starts_at": (now + starts_in).isoformat(), "ends_at": (now + starts_in + lasts).isoformat()}


def at_approval(app: Any) -> dict[str, Any]:
    """An application investigated by ly_officer, reviewed by ly_reviewer, waiting for approval."""
    officer = login(app, "ly_officer")
    started = start(officer)
    complete(officer, started["tasks"][0])
    complete(login(app, "ly_reviewer"), open_task(app, started, "review"))
    return open_task(app, started, "approve")


def assign(app: Any, task: dict[str, Any], username: str) -> dict[str, Any]:
    response = login(app, "ly_risk").post(
        f"/api/v1/tasks/{task['id']}/assign", json={"user_id": user_id(app.extensions["creditflow"], username)}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def go_on_leave(client: ApiClient, app: Any, substitute: str) -> dict[str, Any]:
    response = client.put(ME, json={**period(app, timedelta(hours=1), timedelta(days=5)), "substitute": substitute})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_substitute_completes_what_is_assigned_to_the_absent_approver_who_has_the_rest_back_after(
    flow: Any,
) -> None:
    platform = flow.extensions["creditflow"]
    grant(platform, "ly_senior_approver", "approver", "ly-hq")  # an approver covers for an approver
    approver, substitute = login(flow, "ly_approver"), login(flow, "ly_senior_approver")
    first, second = (assign(flow, at_approval(flow), "ly_approver") for _ in range(2))

    shown = go_on_leave(approver, flow, "ly_senior_approver")
    assert (shown["substitute"], shown["substitute_name"]) == ("ly_senior_approver", "陵源分管行长")
    assert shown["in_force"] is False
    assert approver.get(ME).get_json()["ends_at"] == shown["ends_at"]
    # not yet in force: the substitute neither sees nor works the approver's tasks
    assert inbox(substitute, "covering") == []
    assert substitute.post(f"/api/v1/tasks/{first['id']}/complete", json={"data": {}}).status_code == 409

    platform.clock.advance(timedelta(hours=2))
    assert approver.get(ME).get_json()["in_force"] is True
    assert sorted(inbox(substitute, "covering")) == sorted([first["id"], second["id"]])
    rows = substitute.get("/api/v1/tasks?view=inbox").get_json()["items"]
    assert {r["id"]: r["covering_for"] for r in rows} == {first["id"]: "ly_approver", second["id"]: "ly_approver"}
    assert substitute.get(f"/api/v1/tasks/{first['id']}").status_code == 200
    complete(substitute, first)
    done = [e for e in history(platform, first["instance_id"]) if e.event_type == "task_completed"][-1]
    assert done.task_id == first["id"] and done.actor_id == user_id(platform, "ly_senior_approver")
    # the task stays the approver's own: they may still work it themselves
    assert second["id"] in inbox(approver, "mine")

    platform.clock.advance(timedelta(days=5))  # back from leave (and signed in again)
    approver, substitute = login(flow, "ly_approver"), login(flow, "ly_senior_approver")
    assert inbox(substitute, "covering") == [] and inbox(approver, "mine") == [second["id"]]
    assert substitute.post(f"/api/v1/tasks/{second['id']}/complete", json={"data": {}}).status_code == 409
    complete(approver, second)


def test_new_personal_work_goes_to_the_substitute_while_the_owner_is_away_and_stays_there(flow: Any) -> None:
    platform = flow.extensions["creditflow"]
    reviewer, reviewer2 = login(flow, "ly_reviewer"), login(flow, "ly_reviewer2")
    approve = at_approval(flow)
    go_on_leave(reviewer, flow, "ly_reviewer2")
    platform.clock.advance(timedelta(hours=2))
    # the approver returns the review: it would go back to ly_reviewer, who is away
    returned = login(flow, "ly_approver").post(
        f"/api/v1/tasks/{approve['id']}/return", json={"step": "review", "reason": "补充流水"}
    )
    (again,) = returned.get_json()["tasks"]
    assert again["assignee_id"] == user_id(platform, "ly_reviewer2")
    # a supervisor assigning to someone away hands it to the substitute
    other = login(flow, "ly_officer")
    started = start(other)
    complete(other, started["tasks"][0])
    review = assign(flow, open_task(flow, started, "review"), "ly_reviewer")
    assert review["assignee_id"] == user_id(platform, "ly_reviewer2")
    platform.clock.advance(timedelta(days=6))  # what was given to the substitute stays with them
    reviewer2 = login(flow, "ly_reviewer2")
    assert sorted(inbox(reviewer2, "mine")) == sorted([again["id"], review["id"]])


def test_segregation_of_duties_binds_the_substitute(flow: Any) -> None:
    platform = flow.extensions["creditflow"]
    grant(platform, "ly_reviewer", "approver", "ly-hq")  # the reviewer may approve, but not what they reviewed
    approver, conflicted = login(flow, "ly_approver"), login(flow, "ly_reviewer")
    approve = assign(flow, at_approval(flow), "ly_approver")
    go_on_leave(approver, flow, "ly_reviewer")
    platform.clock.advance(timedelta(hours=2))
    assert approve["id"] not in inbox(conflicted, "covering") and approve["id"] not in inbox(conflicted)
    refused = conflicted.post(f"/api/v1/tasks/{approve['id']}/complete", json={"data": {}})
    assert refused.status_code == 403 and "审贷分离" in refused.get_json()["detail"]
    # assigning it again while the approver is away keeps it with the approver, not the barred substitute
    assert assign(flow, approve, "ly_approver")["assignee_id"] == user_id(platform, "ly_approver")
    # it stays where supervisors see it, and the pool's other approvers can be given it
    assert approve["id"] in inbox(login(flow, "ly_risk"), "team")


def test_setting_and_ending_an_absence_is_in_the_trail_and_tells_the_substitute(flow: Any) -> None:
    approver = login(flow, "ly_approver")
    grant(flow.extensions["creditflow"], "ly_senior_approver", "approver", "ly-hq")
    body = {**period(flow, timedelta(0), timedelta(days=3)), "substitute": "ly_senior_approver", "note": "年假"}
    assert approver.put(ME, json=body).status_code == 200
    assert approver.put(ME, json=body).status_code == 200  # the same again changes nothing
    (told,) = login(flow, "ly_senior_approver").get("/api/v1/notifications").get_json()["items"]
    assert told["topic"] == "absence.substitute"
    assert told["summary"] == "陵源审批岗休假期间（2026-12-01 09:00至2026-12-04 09:00）由您代理其待办任务"
    assert approver.delete(ME).status_code == 204
    assert approver.get(ME).status_code == 404 and approver.delete(ME).status_code == 404
    trail = login(flow, "ly_admin").get("/api/v1/org-changes?subject=ly_approver").get_json()["items"]
    assert [(c["action"], c["actor"]) for c in trail] == [
        ("user.absence_ended", "ly_approver"),
        ("user.absence_set", "ly_approver"),
    ]
    assert trail[0]["details"]["substitute"] == "ly_senior_approver" and trail[0]["details"]["note"] == "年假"


def test_bad_absences_are_refused_naming_the_field_and_leave_nothing(flow: Any) -> None:
    platform = flow.extensions["creditflow"]
    grant(platform, "ly_senior_approver", "approver", "ly-hq")
    approver = login(flow, "ly_approver")
    week = period(flow, timedelta(hours=1), timedelta(days=7))
    cases = [
        ({**week, "substitute": "ly_approver"}, "substitute"),  # themself
        ({**week, "substitute": "qh_approver"}, "substitute"),  # another bank
        ({**week, "substitute": "nobody"}, "substitute"),
        ({**week, "substitute": 999999}, "substitute"),
        ({**week, "substitute": "ly_reviewer"}, "substitute"),  # holds no approver role
        ({**week, "substitute": "ly_pm"}, "substitute"),  # works no tasks
        ({**week, "substitute": True}, "substitute"),
        ({**period(flow, timedelta(days=1), -timedelta(hours=1)), "substitute": 1}, "ends_at"),
        ({**period(flow, timedelta(0), timedelta(days=91)), "substitute": "ly_senior_approver"}, "ends_at"),
        ({**period(flow, -timedelta(days=3), timedelta(days=1)), "substitute": "ly_senior_approver"}, "ends_at"),
        ({"starts_at": "2026-12-05T09:00:00", "ends_at": week["ends_at"], "substitute": "x"}, "starts_at"),
        ({"ends_at": week["ends_at"], "substitute": "ly_senior_approver"}, "starts_at"),
    ]
    for body, field in cases:
        response = approver.put(ME, json=body)
        assert response.status_code == 422, (body, response.get_json())
        assert response.content_type == "application/problem+json"
        assert field in [e["field"] for e in response.get_json()["errors"]], (body, response.get_json())
    assert approver.get(ME).status_code == 404  # nothing half-written

    # a substitute holds the roles where the absent one does, or above: a grid's loan officer does not
    # cover the branch's (whose customers they do not serve); the branch's covers the grid's
    narrower = login(flow, "ly_officer").put(ME, json={**week, "substitute": "ly_grid_officer"})
    assert narrower.status_code == 422 and narrower.get_json()["errors"] == [
        {"field": "substitute", "message": "does not hold 客户经理（城关支行）"}
    ]
    assert login(flow, "ly_grid_officer").put(ME, json={**week, "substitute": "ly_officer"}).status_code == 200

    # no chains: the substitute is away in that period, or the absent one covers for someone then
    grant(platform, "ly_senior_approver", "reviewer", "ly-hq")
    reviewer = login(flow, "ly_reviewer")
    go_on_leave(login(flow, "ly_reviewer2"), flow, "ly_reviewer")  # ly_reviewer covers
    away = reviewer.put(ME, json={**week, "substitute": "ly_reviewer2"})
    assert away.status_code == 422 and away.get_json()["errors"][0]["field"] == "substitute"
    covers = reviewer.put(ME, json={**week, "substitute": "ly_senior_approver"})
    assert covers.status_code == 422 and covers.get_json()["errors"][0]["field"] == "starts_at"
    later = period(flow, timedelta(days=10), timedelta(days=2))  # after that leave: fine
    assert reviewer.put(ME, json={**later, "substitute": "ly_reviewer2"}).status_code == 200


def test_supervisors_and_administrators_set_absences_within_their_scope(flow: Any) -> None:
    platform = flow.extensions["creditflow"]
    officer = user_id(platform, "ly_officer")
    body = {**period(flow, timedelta(0), timedelta(days=2)), "substitute": "ly_officer2"}
    url = f"/api/v1/admin/users/{officer}/absence"
    # the officer's branch head and the bank's administrator may; a branch head of another branch may not
    set_by_head = login(flow, "ly_branch_head").put(url, json=body)
    assert set_by_head.status_code == 200 and set_by_head.get_json()["set_by"] == "ly_branch_head"
    assert login(flow, "ly_admin").get(url).get_json()["substitute"] == "ly_officer2"
    reviewer = user_id(platform, "ly_reviewer")
    outside = login(flow, "ly_branch_head").put(
        f"/api/v1/admin/users/{reviewer}/absence", json={**body, "substitute": "ly_reviewer2"}
    )
    assert outside.status_code == 403
    # another bank's user answers like a missing one, and an officer has no say over a colleague's leave
    qh = login(flow, "qh_admin")
    assert qh.get(url).status_code == 404 and qh.delete(url).status_code == 404
    missing = qh.get("/api/v1/admin/users/999999/absence").get_json()
    assert qh.get(url).get_json()["detail"].replace(str(officer), "999999") == missing["detail"]
    assert login(flow, "ly_officer2").put(url, json=body).status_code == 403
    assert login(flow, "ly_pm").put(ME, json=body).status_code == 403  # works no tasks, has no absence
    assert login(flow, "admin").put(url, json=body).status_code == 403  # the province reads, sets none
    assert login(flow, "ly_admin").delete(url).status_code == 204
    assert login(flow, "ly_officer").get(ME).status_code == 404


def test_the_service_takes_a_username_or_an_id(flow: Any) -> None:
    platform = flow.extensions["creditflow"]
    now = platform.clock.now()
    request = AbsenceRequest(now, now + timedelta(days=1), user_id(platform, "ly_officer2"), "培训")
    view = platform.absences.set(SYSTEM, request, "ly_officer")
    assert (view.username, view.substitute, view.in_force, view.set_by) == ("ly_officer", "ly_officer2", True, None)
    assert platform.absences.get(SYSTEM, user_id(platform, "ly_officer")) == view
