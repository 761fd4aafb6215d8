"""Authorization matrix: every endpoint against anonymous callers, a wrong role and another bank.

The endpoints come from the app's URL map, so a new endpoint is covered (or fails here for want of
a declared permission, a path parameter this file cannot fill, or a request body) without anyone
remembering to add it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import select

from api.security import AUTHENTICATED, PUBLIC_ENDPOINTS
from engine.container import CreditFlow
from engine.notify.outbox import publish
from engine.org.roles import permissions_of
from engine.services.auth import hash_password
from engine.store.models import ArchivePackage, Document, Incident, Notification, OrgUnit, User, UserGroup
from tests.conftest import PASSWORD, ApiClient, deploy, login
from tests.test_products import catalog  # noqa: F401 - fixture


@dataclass(frozen=True)
class Endpoint:
    method: str
    rule: str
    endpoint: str
    permission: str | None

    def url(self, params: dict[str, Any]) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(params[m.group(1)]), self.rule)

    @property
    def params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.rule)


def endpoints(app: Any) -> list[Endpoint]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append(Endpoint(method, rule.rule, rule.endpoint, getattr(view, "required_permission", None)))
    return sorted(found, key=lambda e: (e.rule, e.method))


def call(client: ApiClient, endpoint: Endpoint, params: dict[str, Any], body: Any = None) -> Any:
    url = endpoint.url(params)
    if endpoint.endpoint == "tasks.attach":
        return client.post(url, data={"file": (BytesIO(b"x"), "a.txt")}, content_type="multipart/form-data")
    method = endpoint.method.lower()
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, json=body if body is not None else {})


@pytest.fixture
def world(catalog: CreditFlow, app: Any) -> dict[str, Any]:  # noqa: F811 - the fixture
    """One of each resource, all of 陵源农商银行, plus ids that exist nowhere."""
    platform = catalog
    deploy(platform, "inbox.bpmn")
    with platform.db.transaction(write=True) as session:
        tenant_id = session.scalars(select(User.tenant_id).where(User.username == "ly_officer")).one()
        # a colleague without any role (lacks even the permissions every role has), and an integration's
        # service account, which API keys are for
        for username, name, service in (("ly_nobody", "无角色", False), ("ly_core_banking", "核心系统接口", True)):
            session.add(
                User(
                    tenant_id=tenant_id,
                    username=username,
                    display_name=name,
                    password_hash=hash_password(PASSWORD),
                    is_active=True,
                    is_service=service,
                    created_at=platform.clock.now(),
                )
            )
    officer, pm, bank_admin = (login(app, u) for u in ("ly_officer", "ly_pm", "ly_admin"))
    assert pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-X"}).status_code == 201
    submitted = pm.post("/api/v1/products/LY-X/publication-requests", json={})
    assert submitted.status_code == 201, submitted.get_json()
    started = officer.post(
        "/api/v1/process-instances",
        json={
            "definition_key": "inbox_flow",
            "data": {"applicant": {"name": "陵源客户", "id_number": "110101199003071234"}},
        },
    ).get_json()
    task_id = started["tasks"][0]["id"]
    attachment = officer.post(
        f"/api/v1/tasks/{task_id}/attachments",
        data={"file": (BytesIO(b"secret file"), "a.pdf")},
        content_type="multipart/form-data",
    ).get_json()
    saved = officer.post("/api/v1/tasks/filters", json={"name": "mine", "query": {"view": "mine"}}).get_json()
    key = bank_admin.post("/api/v1/admin/api-keys", json={"username": "ly_core_banking", "name": "core"}).get_json()
    person = bank_admin.post("/api/v1/admin/api-keys", json={"username": "ly_officer", "name": "core"})
    assert person.status_code == 422 and person.get_json()["errors"][0]["field"] == "username"
    hook = bank_admin.post("/api/v1/admin/webhooks", json={"url": "https://ly.example/hook", "topics": []}).get_json()
    with platform.db.transaction(write=True) as session:
        now = platform.clock.now()
        incident = Incident(job_id=0, kind="deliver", tenant_id=tenant_id, message="陵源客户", created_at=now)
        session.add(incident)
        session.flush()
        incident_id = incident.id
        blob = platform.documents.storage.put("documents/test/contract", "%PDF-1.7 contract of 陵源客户".encode())
        document_id = str(uuid.uuid4())
        fields = {"tenant_id": tenant_id, "instance_id": started["id"], "size": blob.size, "sha256": blob.sha256}
        session.add(
            Document(
                id=document_id,
                kind="contract_pdf",
                name="c.pdf",
                media_type="application/pdf",
                **fields,
                storage_key=blob.key,
                created_at=now,
            )
        )
        session.add(
            ArchivePackage(
                outcome="cancelled",
                name="a.zip",
                storage_key=blob.key,
                file_count=1,
                retention_until=now.date(),
                created_at=now,
                **fields,
            )
        )
    with platform.db.transaction() as session:
        unit = session.scalars(select(OrgUnit.id).where(OrgUnit.code == "ly-chengguan")).one()
        group = session.scalars(select(UserGroup.id).where(UserGroup.code == "ly-credit-committee")).one()
        user = session.scalars(select(User.id).where(User.username == "ly_officer")).one()
        qh_user = session.scalars(select(User.id).where(User.username == "qh_officer")).one()
    with platform.db.transaction(write=True) as session:  # a notification in 陵源's officer's list
        told = publish(session, now, tenant_id=tenant_id, topic="task.assigned", recipients=[user], payload={})
        notification = session.scalars(select(Notification.id).where(Notification.message_id == told)).one()
    ours = {
        "instance_id": started["id"],
        "task_id": task_id,
        "attachment_id": attachment["id"],
        "filter_id": saved["id"],
        "key_id": key["id"],
        "webhook_id": hook["id"],
        "incident_id": incident_id,
        "document_id": document_id,
        "notification_id": notification,
        "code": "LY-X",
        "request_id": submitted.get_json()["id"],
        "unit_id": unit,
        "group_id": group,
        "user_id": user,
        "definition_id": 1,
        "day": "2026-12-25",
        "year": 2026,
        "effective": "2026-11-20",
        "slot": "access",
    }
    missing = {
        **ours,
        "instance_id": str(uuid.uuid4()),
        "task_id": str(uuid.uuid4()),
        "attachment_id": str(uuid.uuid4()),
        "filter_id": 999999,
        "key_id": 999999,
        "webhook_id": 999999,
        "incident_id": 999999,
        "document_id": str(uuid.uuid4()),
        "notification_id": 999999,
        "code": "NO-SUCH-PRODUCT",
        "request_id": 999999,
        "unit_id": 999999,
        "group_id": 999999,
        "user_id": 999999,
    }
    return {"ours": ours, "missing": missing, "qh_user": qh_user, "secrets": [started["id"], task_id, "陵源客户"]}


ABSENCE = {"starts_at": "2026-12-02T09:00:00+08:00", "ends_at": "2026-12-04T17:30:00+08:00", "substitute": "x"}

# Bodies that pass validation, so that a cross-tenant call reaches the service's tenant check.
BODIES: dict[str, Any] = {
    "tasks.complete": {"data": {}},
    "tasks.assign": {"user_id": 1},
    "tasks.delegate": {"user_id": 1},
    "tasks.return_task": {"step": "investigate", "reason": "补充材料"},
    "tasks.add_comment": {"body": "意见"},
    "tasks.pause": {"reason": "等待客户"},
    "instances.send_message": {"name": "reply"},
    "products.clone": {"code": "QH-X"},
    "products.set_draft": {"draft": {"name": "改名"}},
    "products.retire": {"reason": "停办"},
    "products.trial": {"input": {}},
    "publication_requests.reject": {"reason": "退回"},
    "products.apply": {"applicant": {"name": "x"}, "data": {}},
    "organization.update_unit": {"name": "改名"},
    "organization.update_user": {"display_name": "改名"},
    "organization.grant": {"role": "reviewer"},
    "organization.revoke": {"role": "loan_officer"},
    "lpr-quotes.enter_quote": {"LPR_1Y": "3.05", "LPR_5Y": "3.55"},
    "auth.set_my_absence": ABSENCE,
    "organization.set_absence": ABSENCE,
}

# Path parameters that name something shared by every tenant (or the caller's own settings), not a
# bank's resource: the cross-tenant check does not apply to them.
SHARED = {"definition_id", "day", "year", "effective", "slot"}


def test_every_endpoint_declares_a_permission(app: Any) -> None:
    missing = [f"{e.method} {e.rule}" for e in endpoints(app) if e.permission is None]
    assert missing == []


def test_anonymous_callers_get_401_everywhere(app: Any, world: dict[str, Any]) -> None:
    client = ApiClient(app.test_client(), None)
    wrong = []
    for endpoint in endpoints(app):
        response = call(client, endpoint, world["ours"], BODIES.get(endpoint.endpoint))
        if response.status_code != 401 or response.content_type != "application/problem+json":
            wrong.append((endpoint.method, endpoint.rule, response.status_code))
        assert not any(s.encode() in response.data for s in world["secrets"])
    assert wrong == []


def test_a_role_without_the_permission_gets_403_everywhere(app: Any, world: dict[str, Any]) -> None:
    staff = {"ly_pm": {"product_manager"}, "ly_village": {"village_committee"}, "ly_nobody": set()}
    clients = {name: login(app, name) for name in staff}
    wrong, checked = [], 0
    for endpoint in endpoints(app):
        if endpoint.permission == AUTHENTICATED:
            continue  # the caller's own session and account: every signed-in user
        name = next(n for n, roles in staff.items() if endpoint.permission not in permissions_of(roles))
        response = call(clients[name], endpoint, world["ours"], BODIES.get(endpoint.endpoint))
        checked += 1
        if response.status_code != 403:
            wrong.append((endpoint.method, endpoint.rule, name, response.status_code))
        assert not any(s.encode() in response.data for s in world["secrets"])
    assert wrong == [] and checked > 60


def _normalised(response: Any, ids: list[Any]) -> tuple[int, Any]:
    text = response.get_data(as_text=True)
    for value in ids:
        text = text.replace(str(value), "<id>")
    return response.status_code, text


def test_another_bank_s_resource_answers_exactly_like_a_missing_one(app: Any, world: dict[str, Any]) -> None:
    other = login(app, "qh_admin")  # holds every permission: only the tenant stands in the way
    ours, missing = world["ours"], world["missing"]
    wrong, checked = [], 0
    for endpoint in endpoints(app):
        owned = [p for p in endpoint.params if p not in SHARED]
        if not owned:
            continue
        body = BODIES.get(endpoint.endpoint)
        if endpoint.endpoint in ("tasks.assign", "tasks.delegate"):
            body = {"user_id": world["qh_user"]}
        theirs = call(other, endpoint, ours, body)
        absent = call(other, endpoint, missing, body)
        ids = [ours[p] for p in owned] + [missing[p] for p in owned]
        checked += 1
        if theirs.status_code != 404 or _normalised(theirs, ids) != _normalised(absent, ids):
            wrong.append((endpoint.method, endpoint.rule, theirs.status_code, absent.status_code))
        assert "陵源客户".encode() not in theirs.data  # (the ids are the caller's own, echoed)
    assert wrong == [] and checked > 30


def test_lists_of_another_bank_show_none_of_its_rows(app: Any, world: dict[str, Any]) -> None:
    other = login(app, "qh_admin")
    lists = [
        "/api/v1/process-instances",
        "/api/v1/tasks?view=all",
        "/api/v1/tasks/counts",
        "/api/v1/products",
        "/api/v1/admin/users",
        "/api/v1/admin/org-units",
        "/api/v1/admin/groups",
        "/api/v1/admin/api-keys",
        "/api/v1/admin/webhooks",
        "/api/v1/incidents",
        "/api/v1/catalog-changes",
        "/api/v1/publication-requests",
        "/api/v1/org-changes",
        "/api/v1/notifications",
        "/api/v1/monitor/applications?group_by=branch",
        "/api/v1/monitor/overdue?group_by=branch",
    ]
    for url in lists:
        response = other.get(url)
        assert response.status_code == 200, (url, response.get_json())
        for secret in (*world["secrets"], "ly_officer", "ly-chengguan", "LY-X"):
            assert secret.encode() not in response.data, (url, secret)
    counts = other.get("/api/v1/tasks/counts").get_json()["counts"]
    assert counts["all"] == 0
    # the province reads across its banks
    province = login(app, "admin")
    assert world["ours"]["task_id"].encode() in province.get("/api/v1/tasks?view=all").data
    assert b"LY-X" in province.get("/api/v1/products").data
    assert b"LY-X" in province.get("/api/v1/catalog-changes").data


def test_the_province_changes_none_of_its_banks_applications(app: Any, world: dict[str, Any]) -> None:
    instance_id = world["ours"]["instance_id"]
    for username in ("admin", "prov_risk"):
        province = login(app, username)
        for action, body in (("cancel", {}), ("retry", {"data": {"amount": 1234567}}), ("messages", {"name": "x"})):
            response = province.post(f"/api/v1/process-instances/{instance_id}/{action}", json=body)
            assert response.status_code == 403, (username, action, response.get_json())
        assert province.get(f"/api/v1/process-instances/{instance_id}").get_json()["status"] == "running"
