"""BPMN constructs driven through the service layer against a real database."""

from __future__ import annotations

from typing import Any

import pytest

from engine.container import CreditFlow
from engine.errors import Conflict, InvalidInput, InvalidModel
from engine.services.principal import Principal
from tests.conftest import APPLICATION, deploy, login

SYSTEM = Principal.system()
REVIEW_OK = {"recommendation": "approve", "comment": "资料齐全", "suggested_amount": "50000.00"}
APPROVE_OK = {"decision": "approve", "approved_amount": "50000.00", "approved_rate_bp": 35}


def only_task(platform: CreditFlow, instance_id: str) -> Any:
    view = platform.instances.get(SYSTEM, instance_id)
    assert len(view.tasks) == 1, [t.bpmn_id for t in view.tasks]
    return view.tasks[0]


def test_linear_model_runs_script_user_tasks_and_gateway(platform: CreditFlow) -> None:
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 50000}, business_key="APP-1")
    assert view.instance.status == "running"
    assert view.instance.data["score"] == 50.0
    assert [t.bpmn_id for t in view.tasks] == ["review"]
    assert view.tasks[0].lane == "reviewer"

    view = platform.tasks.complete(SYSTEM, view.tasks[0].id, REVIEW_OK)
    assert [t.bpmn_id for t in view.tasks] == ["approve"]
    view = platform.tasks.complete(SYSTEM, view.tasks[0].id, APPROVE_OK)
    assert view.instance.status == "completed"
    assert view.instance.ended_at is not None
    assert view.instance.data["decision"] == "approve"

    events = [e.event_type for e in platform.instances.history(SYSTEM, view.instance.id)]
    assert events[0] == "started" and events[-1] == "completed"
    assert events.count("task_created") == 2 and events.count("task_completed") == 2
    assert "gateway_taken" in events


def test_exclusive_gateway_default_flow(platform: CreditFlow) -> None:
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1000})
    view = platform.tasks.complete(SYSTEM, view.tasks[0].id, {"recommendation": "reject", "comment": "负债过高"})
    assert view.instance.status == "completed"
    gateway = [e for e in platform.instances.history(SYSTEM, view.instance.id) if e.event_type == "gateway_taken"]
    assert gateway[0].payload["taken"] == ["end_rejected"]


@pytest.mark.parametrize(
    ("amount", "expected", "absent", "status"),
    [
        (500, {"a": 1, "b": 2, "big": True, "medium": True}, "small", "completed"),
        (50, {"medium": True}, "big", "completed"),
        (5, {"small": True}, "medium", "completed"),
        (5000, {"big": True, "medium": True}, "small", "running"),
    ],
)
def test_parallel_and_inclusive_gateways(
    platform: CreditFlow, amount: int, expected: dict[str, Any], absent: str, status: str
) -> None:
    deploy(platform, "gateways.bpmn")
    view = platform.instances.start(SYSTEM, "gateways", data={"amount": amount})
    assert view.instance.status == status
    for key, value in expected.items():
        assert view.instance.data[key] == value
    assert absent not in view.instance.data
    if status == "running":
        assert [t.bpmn_id for t in view.tasks] == ["approve"]


def test_embedded_subprocess(platform: CreditFlow) -> None:
    definitions = deploy(platform, "subprocess.bpmn")
    assert [d.key for d in definitions] == ["subprocess"]  # the embedded one is not a definition
    view = platform.instances.start(SYSTEM, "subprocess", data={"amount": 100})
    task = only_task(platform, view.instance.id)
    assert task.bpmn_id == "investigate"
    view = platform.tasks.complete(SYSTEM, task.id, APPLICATION)
    assert view.instance.status == "completed"
    assert view.instance.data["after"] is True


@pytest.mark.parametrize(("blacklisted", "end"), [(False, "end"), (True, "end_kyc_rejected")])
def test_call_activity_and_boundary_error(platform: CreditFlow, blacklisted: bool, end: str) -> None:
    keys = {d.key for d in deploy(platform, "call_activity.bpmn")}
    assert keys == {"call_activity", "kyc_check"}
    view = platform.instances.start(SYSTEM, "call_activity", data={"blacklisted": blacklisted})
    assert view.instance.status == "completed"
    completed = [e for e in platform.instances.history(SYSTEM, view.instance.id) if e.event_type == "completed"]
    assert completed[0].payload["end"] == end
    if blacklisted:
        assert view.instance.data["kyc_error"] == {"reason": "blacklisted"}
    else:
        assert view.instance.data["after_kyc"] is True


def test_call_activity_resolves_a_process_deployed_earlier(platform: CreditFlow) -> None:
    (kyc,) = [d for d in deploy(platform, "call_activity.bpmn") if d.key == "kyc_check"]
    (caller,) = deploy(platform, "caller.bpmn")
    assert caller.called_definition_ids == [kyc.id]
    view = platform.instances.start(SYSTEM, "caller", data={"blacklisted": False})
    assert view.instance.status == "completed" and view.instance.data["after_kyc"] is True


def test_call_activity_to_an_unknown_process_is_refused(platform: CreditFlow) -> None:
    with pytest.raises(InvalidModel) as caught:
        deploy(platform, "caller.bpmn")
    assert any("kyc_check" in p["message"] for p in caught.value.problems)


def test_parallel_multi_instance_user_task(platform: CreditFlow) -> None:
    deploy(platform, "multi_instance.bpmn")
    view = platform.instances.start(SYSTEM, "multi_instance", data={"guarantors": ["张三", "李四"]})
    assert len(view.tasks) == 2
    data = {t.id: platform.tasks.get(SYSTEM, t.id).data["guarantor"] for t in view.tasks}
    assert sorted(data.values()) == ["张三", "李四"]
    first, second = view.tasks
    view = platform.tasks.complete(SYSTEM, first.id, {"signed": True, "signer_name": data[first.id]})
    assert [t.id for t in view.tasks] == [second.id]
    view = platform.tasks.complete(SYSTEM, second.id, {"signed": True, "signer_name": data[second.id]})
    assert view.instance.status == "completed"
    assert view.instance.data["all_signed"] is True
    assert sorted(s["signer_name"] for s in view.instance.data["signatures"]) == ["张三", "李四"]


def test_service_task_result_and_caught_connector_error(platform: CreditFlow) -> None:
    deploy(platform, "boundary_error.bpmn")
    ok = platform.instances.start(SYSTEM, "boundary_error", data={"id_number": "A-1"})
    assert ok.instance.status == "completed"
    assert ok.instance.data["bureau_result"]["score"] == 720 and ok.instance.data["scored"] is True

    failed = platform.instances.start(SYSTEM, "boundary_error", data={"id_number": "DOWN-1"})
    assert failed.instance.status == "running"
    assert [t.bpmn_id for t in failed.tasks] == ["manual_check"]
    error = failed.instance.data["bureau_error"]
    assert error["message"] == "bureau timed out after 5 s" and error["code"] == "CONNECTOR_ERROR"


def test_uncaught_connector_error_fails_the_instance_with_the_original_message(platform: CreditFlow) -> None:
    deploy(platform, "service_uncaught.bpmn")
    view = platform.instances.start(SYSTEM, "service_uncaught", data={"id_number": "DOWN-2"})
    assert view.instance.status == "error"
    assert "bureau timed out after 5 s" in view.instance.error["message"]
    assert view.instance.error["bpmn_id"] == "bureau"


def test_unregistered_connector_is_refused_at_deploy(platform: CreditFlow) -> None:
    with pytest.raises(InvalidModel) as caught:
        deploy(platform, "service_unknown.bpmn")
    assert any("no_such/connector" in p["message"] for p in caught.value.problems)
    assert platform.definitions.list(SYSTEM)[1] == 0


def test_script_error_puts_the_instance_in_error_and_it_can_be_cancelled(platform: CreditFlow) -> None:
    deploy(platform, "script_error.bpmn")
    view = platform.instances.start(SYSTEM, "script_error", data={"amount": 100, "divisor": 0})
    assert view.instance.status == "error"
    assert view.instance.error["bpmn_id"] == "compute"
    assert view.instance.error["type"] == "ZeroDivisionError"
    assert view.tasks == []

    view = platform.instances.cancel(SYSTEM, view.instance.id, "客户撤回申请")
    assert view.instance.status == "cancelled"
    with pytest.raises(Conflict):
        platform.instances.cancel(SYSTEM, view.instance.id)
    events = [e.event_type for e in platform.instances.history(SYSTEM, view.instance.id)]
    assert "error" in events and events[-1] == "cancelled"


def test_retry_resumes_a_failed_instance_after_the_data_is_fixed(platform: CreditFlow) -> None:
    deploy(platform, "script_error.bpmn")
    view = platform.instances.start(SYSTEM, "script_error", data={"amount": 100, "divisor": 0})
    view = platform.instances.retry(SYSTEM, view.instance.id, {"divisor": 4})
    assert view.instance.status == "running" and view.instance.error is None
    assert view.instance.data["ratio"] == 25.0
    assert [t.bpmn_id for t in view.tasks] == ["review"]
    with pytest.raises(Conflict):
        platform.instances.retry(SYSTEM, view.instance.id, {"divisor": 4})
    events = [e.event_type for e in platform.instances.history(SYSTEM, view.instance.id)]
    assert events[-2:] == ["retried", "task_created"]


def test_unknown_definition_key_names_the_field(platform: CreditFlow) -> None:
    with pytest.raises(InvalidInput) as caught:
        platform.instances.start(SYSTEM, "nope")
    assert caught.value.problems[0]["field"] == "definition_key"


def test_external_wait_resumes_on_a_message_for_that_instance_only(platform: CreditFlow) -> None:
    deploy(platform, "external_wait.bpmn")
    first = platform.instances.start(SYSTEM, "external_wait", business_key="APP-1")
    second = platform.instances.start(SYSTEM, "external_wait", business_key="APP-2")
    assert first.instance.status == second.instance.status == "running" and first.tasks == []
    with pytest.raises(Conflict) as caught:
        platform.instances.send_message(SYSTEM, first.instance.id, "loan_disbursed", {})
    assert caught.value.problems[0]["field"] == "name"

    view = platform.instances.send_message(SYSTEM, first.instance.id, "guarantee_confirmed", {"approved": True})
    assert view.instance.status == "completed" and view.instance.data["guaranteed"] is True
    assert platform.instances.get(SYSTEM, second.instance.id).instance.status == "running"
    events = [e.event_type for e in platform.instances.history(SYSTEM, first.instance.id)]
    assert "message_received" in events


def test_a_senders_retry_of_a_message_with_its_idempotency_key_is_answered_not_refused(app: Any) -> None:
    """A guarantee company whose answer timed out sends it again: with the same key it gets the
    instance as the first delivery left it, where it got a 409 that nothing was waiting."""
    platform = app.extensions["creditflow"]
    deploy(platform, "external_wait.bpmn")
    started = login(app, "ly_officer").post("/api/v1/process-instances", json={"definition_key": "external_wait"})
    instance_id, risk = started.get_json()["id"], login(app, "ly_risk")
    url, key = f"/api/v1/process-instances/{instance_id}/messages", {"Idempotency-Key": "sdndb-0001"}
    body = {"name": "guarantee_confirmed", "payload": {"approved": True}}
    first = risk.post(url, json=body, headers=key)
    again = risk.post(url, json=body, headers=key)
    assert first.status_code == again.status_code == 200, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json()["status"] == "completed"
    assert risk.post(url, json=body).status_code == 409  # without its key: a second message, refused
    received = [e for e in platform.instances.history(SYSTEM, instance_id) if e.event_type == "message_received"]
    assert len(received) == 1
