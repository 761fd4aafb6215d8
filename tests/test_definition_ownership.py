"""Who owns a process id: the province's and the platform's are shared, a bank's are its own.

A bank's product manager may deploy processes, but must not be able to change the process that the
province's products and the other banks run, nor see or start another bank's.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.container import CreditFlow
from engine.errors import InvalidInput
from engine.store.models import ProcessDefinition
from tests.conftest import MODELS, ApiClient, login
from tests.test_products import catalog, principal_of  # noqa: F401 - fixture

LINEAR = (MODELS / "linear.bpmn").read_bytes()


def upload(client: ApiClient, content: bytes, name: str = "flow.bpmn") -> Any:
    return client.post(
        "/api/v1/process-definitions", data={"files": (BytesIO(content), name)}, content_type="multipart/form-data"
    )


def changed(content: bytes, key: str | None = None) -> bytes:
    """The linear model with another document name (new content), and optionally another process id."""
    edited = content.replace("审查".encode(), "审查（改）".encode())
    return edited.replace(b'id="linear"', f'id="{key}"'.encode()) if key else edited


def versions(platform: CreditFlow, key: str) -> int:
    with platform.db.transaction() as session:
        return session.scalar(select(func.count()).where(ProcessDefinition.key == key)) or 0


def test_a_bank_cannot_deploy_over_a_shared_process(app: Any) -> None:
    platform = app.extensions["creditflow"]
    province_pm, bank_pm = login(app, "pm"), login(app, "ly_pm")
    shared = upload(province_pm, LINEAR)
    assert shared.status_code == 201 and shared.get_json()["definitions"][0]["version"] == 1

    refused = upload(bank_pm, changed(LINEAR))
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["errors"] == [{"field": "files", "message": "process id 'linear' is in use"}]
    assert versions(platform, "linear") == 1  # nothing stored
    assert upload(bank_pm, LINEAR).status_code == 200  # the same content: the shared version, nothing new

    assert upload(province_pm, changed(LINEAR)).get_json()["definitions"][0]["version"] == 2  # the owner may
    officer = login(app, "qh_officer")
    started = officer.post("/api/v1/process-instances", json={"definition_key": "linear", "data": {"amount": 1}})
    assert started.status_code == 201 and started.get_json()["definition_version"] == 2


def test_a_banks_own_process_is_invisible_to_the_other_banks(app: Any) -> None:
    platform = app.extensions["creditflow"]
    own = upload(login(app, "ly_pm"), changed(LINEAR, "ly_flow"))
    assert own.status_code == 201
    definition_id = own.get_json()["definitions"][0]["id"]

    ly_officer = login(app, "ly_officer")
    mine = ly_officer.post("/api/v1/process-instances", json={"definition_key": "ly_flow", "data": {"amount": 1}})
    assert mine.status_code == 201, mine.get_json()

    other_pm, other_officer = login(app, "qh_pm"), login(app, "qh_officer")
    assert other_pm.get("/api/v1/process-definitions?key=ly_flow").get_json()["items"] == []
    assert other_pm.get(f"/api/v1/process-definitions/{definition_id}").status_code == 404
    assert other_pm.get(f"/api/v1/process-definitions/{definition_id}/xml").status_code == 404
    start = other_officer.post("/api/v1/process-instances", json={"definition_key": "ly_flow", "data": {}})
    assert start.status_code == 422
    assert start.get_json()["errors"] == [{"field": "definition_key", "message": "no such deployed process definition"}]
    assert upload(other_pm, changed(changed(LINEAR, "ly_flow"))).status_code == 409
    # the very same content too: it answered 200 with the other bank's private definition
    same = upload(other_pm, changed(LINEAR, "ly_flow"))
    assert same.status_code == 409 and "definitions" not in same.get_json()
    assert versions(platform, "ly_flow") == 1
    assert login(app, "pm").get(f"/api/v1/process-definitions/{definition_id}").status_code == 200  # the province reads


def test_a_banks_product_cannot_run_another_banks_process(catalog: CreditFlow, seeded: CreditFlow) -> None:  # noqa: F811
    """``catalog`` is ``seeded`` with the archetypes and two standard products."""
    catalog.definitions.deploy(principal_of(catalog, "ly_pm"), [("flow.bpmn", changed(LINEAR, "ly_flow"))])
    other = principal_of(catalog, "qh_pm")
    catalog.products.clone(other, "XEKD-XIN", code="QH-XIN", name=None, overrides={"archetype": "ly_flow"})
    with pytest.raises(InvalidInput) as refused:
        catalog.products.publish(other, "QH-XIN")
    [problem] = refused.value.problems
    assert problem["field"] == "archetype" and problem["message"].startswith("unknown archetype 'ly_flow'")


def test_a_banks_own_process_cannot_pull_a_credit_report_or_pay_out(app: Any) -> None:
    """Outside an application a bank's own process would query the bureau, or disburse, with no product
    limit, review or approval in between; the province's processes (and applications) may."""
    model = (MODELS / "service_uncaught.bpmn").read_bytes()
    bank_model = model.replace(b'id="service_uncaught"', b'id="ly_bureau_pull"')
    assert upload(login(app, "ly_pm"), bank_model).status_code == 201
    assert upload(login(app, "pm"), model).status_code == 201
    officer = login(app, "ly_officer")
    found = {}
    for key in ("ly_bureau_pull", "service_uncaught"):
        started = officer.post("/api/v1/process-instances", json={"definition_key": key, "data": {"id_number": "X"}})
        assert started.status_code == 201, started.get_json()
        found[key] = started.get_json()
    refused, allowed = found["ly_bureau_pull"], found["service_uncaught"]
    assert refused["status"] == "error" and "bureau_result" not in refused["data"]
    assert "acts on a loan" in refused["error"]["message"]
    assert allowed["status"] == "completed" and allowed["data"]["bureau_result"]["score"] == 720
