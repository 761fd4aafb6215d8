"""Need to know inside a bank: who reads an application, its history, documents and attachments.

A branch's staff read their branch's applications and those of the units below it; the head office
and bank-wide roles read the whole bank; whoever has or had a task on an application reads it; a
grid volunteer or another branch's officer does not.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest

from engine.services.principal import Principal
from tests.conftest import PASSWORD, ApiClient, deploy, login

SYSTEM = Principal.system()


@pytest.fixture
def bank_app(app: Any) -> Any:
    """陵源 with a loan officer at its second branch, 西关支行."""
    platform = app.extensions["creditflow"]
    deploy(platform, "inbox.bpmn")
    platform.organization.create_user(SYSTEM, "bank-lingyuan", "xg_officer", "西关客户经理", PASSWORD, "ly-xiguan")
    platform.organization.grant(SYSTEM, "xg_officer", "loan_officer", "ly-xiguan")
    return app


def start(client: ApiClient) -> dict[str, Any]:
    body = {"definition_key": "inbox_flow", "data": {"applicant": {"name": "张三", "id_number": "110101199003071234"}}}
    response = client.post("/api/v1/process-instances", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def listed(client: ApiClient) -> set[str]:
    return {item["id"] for item in client.get("/api/v1/process-instances?limit=200").get_json()["items"]}


def test_an_application_is_read_by_its_branch_the_head_office_and_whoever_works_it(bank_app: Any) -> None:
    officer = login(bank_app, "ly_officer")  # 城关支行
    started = start(officer)
    task = started["tasks"][0]
    upload = officer.post(
        f"/api/v1/tasks/{task['id']}/attachments",
        data={"file": (BytesIO(b"%PDF-1.4 income"), "收入证明.pdf")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201
    paths = (
        f"/api/v1/process-instances/{started['id']}",
        f"/api/v1/process-instances/{started['id']}/history",
        f"/api/v1/process-instances/{started['id']}/documents",
        f"/api/v1/attachments/{upload.get_json()['id']}",
    )
    readers = ("ly_officer", "ly_branch_head", "ly_reviewer", "ly_admin", "admin")  # branch, head office, province
    for username in readers:
        client = login(bank_app, username)
        assert [client.get(path).status_code for path in paths] == [200] * 4, username
        assert started["id"] in listed(client), username
    task_paths = (f"/api/v1/tasks/{task['id']}", f"/api/v1/tasks/{task['id']}/comments")
    for username in ("xg_officer", "ly_village", "ly_grid_officer"):  # another branch; a grid below the branch
        client = login(bank_app, username)
        assert [client.get(path).status_code for path in paths] == [404] * 4, username
        assert started["id"] not in listed(client), username
        # nor through its task: the task's data is the application's
        assert [client.get(path).status_code for path in task_paths] == [404, 404], username
        assert client.post(task_paths[1], json={"body": "看看"}).status_code == 404, username
    assert login(bank_app, "ly_reviewer").get(task_paths[0]).status_code == 200

    # a task delegated across branches lets the delegate read the application it belongs to
    delegated = officer.post(f"/api/v1/tasks/{task['id']}/claim")
    assert delegated.status_code == 200, delegated.get_json()
    platform = bank_app.extensions["creditflow"]
    xg = platform.organization.get_user(SYSTEM, "xg_officer").id
    assert officer.post(f"/api/v1/tasks/{task['id']}/delegate", json={"user_id": xg}).status_code == 200
    delegate = login(bank_app, "xg_officer")
    assert delegate.get(paths[0]).status_code == 200
    # ... and still reads it once the task went back: the work they did is theirs to look at (a 404 before)
    assert delegate.post(f"/api/v1/tasks/{task['id']}/resolve", json={"comment": "已实地核实"}).status_code == 200
    assert delegate.get(paths[0]).status_code == 200


def test_a_branch_heads_all_view_holds_only_the_tasks_of_applications_they_read(bank_app: Any) -> None:
    platform = bank_app.extensions["creditflow"]
    platform.organization.create_user(SYSTEM, "bank-lingyuan", "xg_head", "西关支行行长", PASSWORD, "ly-xiguan")
    platform.organization.grant(SYSTEM, "xg_head", "branch_head", "ly-xiguan")
    chengguan = start(login(bank_app, "ly_officer"))["tasks"][0]["id"]
    xiguan = start(login(bank_app, "xg_officer"))["tasks"][0]["id"]

    def all_view(username: str) -> set[str]:
        client = login(bank_app, username)
        listed = {item["id"] for item in client.get("/api/v1/tasks?view=all&limit=200").get_json()["items"]}
        assert client.get("/api/v1/tasks/counts").get_json()["counts"]["all"] == len(listed), username
        return listed

    assert all_view("xg_head") == {xiguan}  # not 城关's applicant and amount
    assert all_view("ly_branch_head") == {chengguan}
    assert all_view("ly_admin") == all_view("ly_risk") == {chengguan, xiguan}  # the head office reads the bank


def test_an_officer_files_applications_in_their_own_units_only(bank_app: Any) -> None:
    """Filed at the head office or another branch, an officer's application left their branch head,
    who supervises them, blind to it."""
    officer = login(bank_app, "ly_officer")  # 城关支行
    for unit in ("ly-hq", "ly-xiguan"):
        body = {"definition_key": "inbox_flow", "org_unit": unit, "data": {}}
        refused = officer.post("/api/v1/process-instances", json=body)
        assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "org_unit", unit
    below = officer.post("/api/v1/process-instances", json={"definition_key": "inbox_flow", "org_unit": "ly-dongjie"})
    assert below.status_code == 201  # 东街分理处, under 城关支行
    admin = login(bank_app, "ly_admin")  # bank-wide: files anywhere in the bank
    anywhere = admin.post("/api/v1/process-instances", json={"definition_key": "inbox_flow", "org_unit": "ly-xiguan"})
    assert anywhere.status_code == 201
