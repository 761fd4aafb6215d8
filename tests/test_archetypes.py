"""The seven credit-process archetypes in bpmn/: deployed on a real database and driven to their ends
with real connectors, real JDM rule decisions and form-validated task completions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from lxml import etree

from engine.container import CreditFlow
from engine.errors import Conflict, InvalidInput
from engine.forms.formats import FORMAT_CHECKER
from engine.runtime.connectors import ConnectorError, ConnectorRegistry
from engine.runtime.demo_connectors import CLEAN_REPORT
from engine.services.instances import InstanceView
from engine.services.principal import Principal
from tests.conftest import CLOCK_START, Clocks, resident_id

SYSTEM = Principal.system()
BPMN_DIR = Path(__file__).resolve().parents[1] / "bpmn"
MANIFEST = json.loads((BPMN_DIR / "archetypes.json").read_text(encoding="utf-8"))
ARCHETYPES = {a["key"]: a for a in MANIFEST["archetypes"]}
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
ROLES = {
    "loan_officer",
    "co_investigator",
    "reviewer",
    "approver",
    "senior_approver",
    "credit_committee",
    "manual_reviewer",
    "village_committee",
    "collateral_officer",
}

# Applicants whose (test) bureau answers differ: the access rules below turn them into the three outcomes.
GOOD_ID = resident_id("37010219800101123")  # bureau score 720: approve
GREY_ID = resident_id("37010219850202234")  # 620: review (grey zone)
POOR_ID = resident_id("37010219900303345")  # 540: reject
DOWN_ID = resident_id("37010219750404456")  # the bureau times out
SCORES = {GOOD_ID: 720, GREY_ID: 620, POOR_ID: 540}
FLAKY_ACCOUNT = "6222020000000000017"  # core banking refuses the first transfer to this account

# Completed-form answers, each valid against its form.
VERIFY_OK = {"verification_result": "confirmed", "interview_done": True, "verification_comment": "情况属实"}
INVESTIGATE_OK = {
    "investigation_conclusion": "approve",
    "interview_done": True,
    "site_visit_date": "2026-12-02",
    "annual_income": "180000.00",
    "repayment_source": "蔬菜大棚经营收入",
    "recommended_amount": "300000.00",
    "investigation_report": "经营稳定，收入可覆盖本息。",
}
CO_INVESTIGATE_OK = {"co_investigation_conclusion": "agree", "co_site_visit": True, "co_investigation_comment": "同意"}
REVIEW_OK = {"recommendation": "approve", "comment": "资料齐全，风险可控", "suggested_amount": "300000.00"}
APPROVE = {"decision": "approve", "approved_amount": "300000.00", "approved_rate_bp": 45, "comment": "同意"}
RETURN = {"decision": "return", "comment": "补充经营流水"}


# -- connectors and rules ---------------------------------------------------------------------------


@pytest.fixture
def ledger() -> dict[str, list[Any]]:
    """What the connectors were asked to do, per test."""
    return {"disbursements": [], "contracts": [], "renewals": [], "guarantees": [], "refused": []}


@pytest.fixture
def connectors(ledger: dict[str, list[Any]]) -> ConnectorRegistry:
    """Real, deterministic stand-ins for the five integrations (overrides the conftest registry)."""

    def bureau(id_number: str) -> dict[str, Any]:
        if id_number == DOWN_ID:
            raise ConnectorError("征信系统 5 秒内未响应")
        return {"score": SCORES.get(id_number, 700), **CLEAN_REPORT}

    # The signing step's own connectors run for real in test_product_runs and test_contracts; here,
    # where archetypes run without a product (so without a template or a bank), they only record.
    def generate(task: Any) -> dict[str, Any]:
        code = task.data.get("product", {}).get("code", "XD")  # a renewal names no product
        ledger["contracts"].append((code, str(task.data.get("approved_amount", task.data["amount"]))))
        number = f"HT-{code}-{len(ledger['contracts']):04d}"
        return {"document_id": f"doc-{number}", "contract_no": number}

    def seal(task: Any, document_id: str) -> dict[str, Any]:
        return {"document_id": f"{document_id}-sealed", "sha256": hashlib.sha256(document_id.encode()).hexdigest()}

    def disburse(amount: str, account: str, reference: str, id_number: str) -> dict[str, Any]:
        if account == FLAKY_ACCOUNT and account not in ledger["refused"]:
            ledger["refused"].append(account)
            raise ConnectorError("核心系统日终批处理中，暂停转账")
        Decimal(amount)  # a non-amount would be a modelling error: fail loudly
        assert reference.startswith("HT-"), reference  # the contract's number: core banking's duplicate check
        assert len(id_number) == 18, id_number  # the borrower: core banking checks whose account it pays
        ledger["disbursements"].append((amount, account))
        return {"disbursement_id": f"FK-{len(ledger['disbursements']):04d}"}

    def renew(loan_id: str, amount: str, id_number: str) -> dict[str, Any]:
        Decimal(amount)  # core banking checks the balance and the borrower: both must reach it
        assert id_number == resident_id(), id_number
        ledger["renewals"].append(loan_id)
        return {"renewal_id": f"XD-{loan_id}"}

    def guarantee_apply(amount: str, id_number: str) -> dict[str, Any]:
        ledger["guarantees"].append((amount, id_number))
        return {"application_id": f"DB-{len(ledger['guarantees']):04d}"}

    registry = ConnectorRegistry()
    registry.register("credit_bureau/score", bureau)
    registry.register("contract.generate", generate, with_task=True)
    registry.register("contract.seal", seal, with_task=True)
    registry.register("core_banking/disburse", disburse)
    registry.register("core_banking/renew", renew)
    registry.register("guarantee/apply", guarantee_apply)
    return registry


def jdm(
    required: list[str], inputs: list[tuple[str, str]], outputs: list[str], rows: list[list[str]]
) -> dict[str, Any]:
    """A GoRules JDM decision: input node with a fail-closed schema → first-hit decision table → output."""
    table_inputs = [{"id": f"in{i}", "name": field, "field": field} for i, (field, _) in enumerate(inputs)]
    table_outputs = [{"id": f"out{i}", "name": field, "field": field} for i, field in enumerate(outputs)]
    rules = []
    for n, row in enumerate(rows):
        cells = {f"in{i}": cell for i, cell in enumerate(row[: len(inputs)])}
        cells.update({f"out{i}": cell for i, cell in enumerate(row[len(inputs) :])})
        rules.append({"_id": f"r{n}", **cells})
    properties = {field: {"type": type_} for field, type_ in inputs if "." not in field}
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "nodes": [
            {
                "id": "request",
                "type": "inputNode",
                "name": "request",
                "position": {"x": 0, "y": 0},
                "content": {"schema": json.dumps(schema)},
            },
            {
                "id": "table",
                "type": "decisionTableNode",
                "name": "table",
                "position": {"x": 250, "y": 0},
                "content": {
                    "hitPolicy": "first",
                    "inputs": table_inputs,
                    "outputs": table_outputs,
                    "rules": rules,
                    "passThrough": False,
                    "inputField": None,
                    "outputPath": None,
                    "executionMode": "single",
                },
            },
            {"id": "response", "type": "outputNode", "name": "response", "position": {"x": 500, "y": 0}, "content": {}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "request", "targetId": "table", "type": "edge"},
            {"id": "e2", "sourceId": "table", "targetId": "response", "type": "edge"},
        ],
    }


def hit(rule_id: str, level: str, action: str, reason: str) -> str:
    return f'[{{id: "{rule_id}", level: "{level}", action: "{action}", reason: "{reason}"}}]'


def access_rows(approve: str, review: str | None, reject_hit: str) -> list[list[str]]:
    rows = [[approve, '"approve"', '"none"', "[]"]]
    if review is not None:
        rows.append([review, '"review"', '"orange"', hit("ACC-020", "orange", "review", "评分处于灰区")])
    rows.append(["", '"reject"', '"red"', reject_hit])
    return rows


ACCESS_BY_SCORE = jdm(
    ["bureau"],
    [("bureau.score", "object")],
    ["outcome", "level", "hits"],
    access_rows(">= 650", "[600..650)", hit("ACC-001", "red", "reject", "征信评分低于600")),
)
SCORECARD = jdm(["bureau"], [("bureau.score", "object")], ["score"], [[">= 700", "86"], ["", "62"]])
PRICING_BY_SCORE = jdm(
    ["bureau"],
    [("bureau.score", "object")],
    ["limit", "rate_bp"],
    [[">= 700", "200000", "45"], ["", "30000", "120"]],
)


def register(platform: CreditFlow, **decisions: dict[str, Any]) -> None:
    for key, content in decisions.items():
        platform.rules.register(key, content)


# -- driving instances ------------------------------------------------------------------------------


def deploy_archetype(platform: CreditFlow, key: str) -> None:
    path = BPMN_DIR / ARCHETYPES[key]["file"]
    (definition,) = platform.definitions.deploy(SYSTEM, [(path.name, path.read_bytes())]).definitions
    assert definition.key == key


# What an application on a product brings a4 from the product and the bank, never from the applicant
AUTHORITY = {"committee_threshold": "1000000", "committee_members": ["张主任", "李委员", "赵委员"]}


def start(platform: CreditFlow, key: str, *, without: tuple[str, ...] = (), **data: Any) -> InstanceView:
    """Start ``key`` with the manifest's example start data, changed by ``data``, less ``without``."""
    example = json.loads(json.dumps(ARCHETYPES[key]["start_data_example"]))
    example |= AUTHORITY if key == "a4_standard_offline" else {}
    example = {name: value for name, value in {**example, **data}.items() if name not in without}
    return platform.instances.start(SYSTEM, key, business_key=f"{key}-test", data=example)


def task_ids(view: InstanceView) -> list[str]:
    return sorted(t.bpmn_id for t in view.tasks)


def complete(platform: CreditFlow, view: InstanceView, bpmn_id: str, data: dict[str, Any]) -> InstanceView:
    """Complete the one READY task ``bpmn_id``, checking its lane and form against the manifest."""
    (task,) = [t for t in view.tasks if t.bpmn_id == bpmn_id]
    key = view.definition.key
    (declared,) = [u for u in ARCHETYPES[key]["user_tasks"] if u["id"] == bpmn_id]
    assert task.lane == declared["lane"]
    assert task.form == f"{declared['form']}-schema.json"
    return platform.tasks.complete(SYSTEM, task.id, data)


Answer = dict[str, Any] | Callable[[InstanceView], dict[str, Any]]


def drive(platform: CreditFlow, view: InstanceView, answers: dict[str, Answer]) -> InstanceView:
    """Complete READY tasks from ``answers`` (data, or a function of the instance giving it) until none
    of them is waiting; returns the last view."""
    while view.instance.status == "running" and view.tasks:
        waiting = [t for t in view.tasks if t.bpmn_id in answers]
        if not waiting:
            break
        answer = answers[waiting[0].bpmn_id]
        view = complete(platform, view, waiting[0].bpmn_id, answer(view) if callable(answer) else answer)
    return view


def face_signed(view: InstanceView) -> dict[str, Any]:
    """The officer's record of a face-to-face signing of this application's contract (a4–a6)."""
    return {
        "signing_result": "signed",
        "contract_no": view.instance.data["contract"]["contract_no"],
        "signed_on": "2026-12-08",
        "witness": "王见证",
        "recording_no": "SL-20261208-0001",
    }


def signed_online(platform: CreditFlow, view: InstanceView, **changes: Any) -> InstanceView:
    """The channel reports the borrower's e-signature on this application's sealed contract (a1, a3, a7)."""
    payload = {
        "contract_sha256": view.instance.data["sealed_contract"]["sha256"],
        "signed_at": "2026-12-08T10:15:00+08:00",
        "channel": "mobile_banking",
        "evidence_no": "ZJBQ-20261208-000123",
    }
    return platform.instances.send_message(SYSTEM, view.instance.id, "contract_signed", {**payload, **changes})


def end_of(platform: CreditFlow, view: InstanceView) -> str:
    assert view.instance.status == "completed", (view.instance.status, view.instance.error, task_ids(view))
    (done,) = [e for e in platform.instances.history(SYSTEM, view.instance.id) if e.event_type == "completed"]
    return done.payload["end"]


def events(platform: CreditFlow, view: InstanceView, event_type: str) -> list[Any]:
    return [e for e in platform.instances.history(SYSTEM, view.instance.id) if e.event_type == event_type]


# -- the models and the manifest --------------------------------------------------------------------


def test_manifest_lists_the_seven_archetypes_and_their_start_data_is_valid() -> None:
    assert sorted(ARCHETYPES) == sorted(p.stem for p in BPMN_DIR.glob("a?_*.bpmn"))
    assert len(ARCHETYPES) == 7
    for archetype in ARCHETYPES.values():
        validator = Draft202012Validator(archetype["start_data"], format_checker=FORMAT_CHECKER)
        assert list(validator.iter_errors(archetype["start_data_example"])) == [], archetype["key"]
        for message in archetype["messages"]:
            Draft202012Validator(message["payload"]["schema"], format_checker=FORMAT_CHECKER).validate(
                message["payload"]["example"]
            )


@pytest.mark.parametrize("key", sorted(ARCHETYPES))
def test_model_matches_manifest_and_has_a_complete_diagram(key: str) -> None:
    archetype = ARCHETYPES[key]
    root = etree.parse(str(BPMN_DIR / archetype["file"])).getroot()
    (process,) = root.findall("bpmn:process", NS)
    assert process.get("id") == key and process.get("isExecutable") == "true"
    assert process.get("name") == archetype["name"]

    lanes = {
        ref.text: lane.get("name")
        for lane in process.iterfind(".//bpmn:lane", NS)
        for ref in lane.iterfind("bpmn:flowNodeRef", NS)
    }
    users = []
    for task in process.iterfind("bpmn:userTask", NS):
        props = {p.get("name"): p.get("value") for p in task.iterfind(".//spiffworkflow:property", NS)}
        form = props["formJsonSchemaFilename"].removesuffix("-schema.json")
        assert props["formUiSchemaFilename"] == f"{form}-uischema.json"
        assert lanes[task.get("id")] in ROLES
        assert task.get("name") and not task.get("name").isascii(), task.get("id")
        users.append((task.get("id"), task.get("name"), lanes[task.get("id")], form))
    assert sorted(users) == sorted((u["id"], u["name"], u["lane"], u["form"]) for u in archetype["user_tasks"])

    slots = sorted(
        t.findtext(".//spiffworkflow:calledDecisionId", namespaces=NS)
        for t in process.iterfind("bpmn:businessRuleTask", NS)
    )
    assert slots == sorted(s["slot"] for s in archetype["decision_slots"])
    operators = sorted(o.get("id") for o in process.iterfind(".//spiffworkflow:serviceTaskOperator", NS))
    assert operators == sorted(c["connector"] for c in archetype["connectors"])
    messages = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", NS)}
    received = sorted(messages[t.get("messageRef")] for t in process.iterfind("bpmn:receiveTask", NS))
    assert received == sorted(m["message"] for m in archetype["messages"])

    # Every service task has an interrupting CONNECTOR_ERROR boundary event.
    errors = {e.get("id"): e.get("errorCode") for e in root.iterfind("bpmn:error", NS)}
    caught = {
        b.get("attachedToRef")
        for b in process.iterfind("bpmn:boundaryEvent", NS)
        if (definition := b.find("bpmn:errorEventDefinition", NS)) is not None
        and errors[definition.get("errorRef")] == "CONNECTOR_ERROR"
        and b.get("cancelActivity") == "true"
    }
    assert caught == {t.get("id") for t in process.iterfind("bpmn:serviceTask", NS)}

    # bpmn.io needs a shape per node and lane and an edge with waypoints per flow.
    nodes = {e.get("id") for e in process if e.get("id") and not e.tag.endswith(("sequenceFlow", "laneSet"))}
    nodes -= {e.get("id") for e in process.iterfind("bpmn:documentation", NS)}
    nodes |= {lane.get("id") for lane in process.iterfind(".//bpmn:lane", NS)}
    flows = {f.get("id") for f in process.iterfind("bpmn:sequenceFlow", NS)}
    shapes = {s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", NS)}
    edges = {e.get("bpmnElement"): e for e in root.iterfind(".//bpmndi:BPMNEdge", NS)}
    assert nodes <= shapes, nodes - shapes
    assert flows == set(edges)
    assert all(len(edge.findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")) >= 2 for edge in edges.values())
    assert set(lanes) == {n for n in nodes if not n.startswith(f"{key}_lane_")}


def test_all_archetypes_deploy_as_one_bundle(platform: CreditFlow) -> None:
    files = [(p.name, p.read_bytes()) for p in sorted(BPMN_DIR.glob("*.bpmn"))]
    keys = {d.key for d in platform.definitions.deploy(SYSTEM, files).definitions}
    assert set(ARCHETYPES) <= keys
    for archetype in ARCHETYPES.values():
        for task in archetype["user_tasks"]:
            assert f"{task['form']}-schema.json" in platform.forms


# -- A1 线上秒批 -----------------------------------------------------------------------------------------


@pytest.fixture
def a1(platform: CreditFlow) -> CreditFlow:
    register(platform, access=ACCESS_BY_SCORE, scorecard=SCORECARD, pricing=PRICING_BY_SCORE)
    deploy_archetype(platform, "a1_instant_online")
    return platform


def test_a1_approves_and_disburses_without_any_human_task(a1: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = start(a1, "a1_instant_online")
    assert_waiting(a1, view, "contract_signed")  # sealed; no money before the borrower signs
    assert ledger["disbursements"] == []
    view = signed_online(a1, view)
    assert end_of(a1, view) == "end_approved"
    data = view.instance.data
    assert data["bureau"] == {"score": 720, **CLEAN_REPORT} and data["access"]["outcome"] == "approve"
    assert {name: data[name] for name in CLEAN_REPORT} == CLEAN_REPORT  # the rules read the bureau's report
    assert data["scorecard"] == {"score": 86} and data["pricing"] == {"limit": 200000, "rate_bp": 45}
    assert data["approved_amount"] == "50000.00"
    assert data["contract"]["contract_no"].startswith("HT-XEKD-001-")
    assert data["sealed_contract"]["document_id"] == f"doc-{data['contract']['contract_no']}-sealed"
    assert data["signature"]["evidence_no"] == "ZJBQ-20261208-000123"
    assert data["disbursement"]["disbursement_id"] == "FK-0001"
    assert ledger["disbursements"] == [("50000.00", "6222021234567890128")]
    assert events(a1, view, "task_created") == []
    assert [e.payload["decision"] for e in events(a1, view, "rule_evaluated")] == ["access", "scorecard", "pricing"]


def test_a1_caps_the_amount_at_the_priced_limit(a1: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = signed_online(a1, start(a1, "a1_instant_online", amount="250000.00"))
    assert end_of(a1, view) == "end_approved"
    assert view.instance.data["approved_amount"] == "200000.00"
    assert ledger["disbursements"] == [("200000.00", "6222021234567890128")]


@pytest.mark.parametrize(
    ("decision", "end", "disbursed"), [("approve", "end_approved", 1), ("reject", "end_rejected", 0)]
)
def test_a1_grey_zone_goes_to_exactly_one_manual_review(
    a1: CreditFlow, ledger: dict[str, list[Any]], decision: str, end: str, disbursed: int
) -> None:
    applicant = {"name": "李灰区", "id_number": GREY_ID, "mobile": "13900139000"}
    view = start(a1, "a1_instant_online", applicant=applicant)
    assert view.instance.status == "running"
    assert task_ids(view) == ["manual_review"]
    assert view.instance.data["access"]["level"] == "orange"
    view = complete(a1, view, "manual_review", {"manual_decision": decision, "manual_comment": "已电话核实收入"})
    view = signed_online(a1, view) if decision == "approve" else view
    assert view.tasks == [] and end_of(a1, view) == end
    assert len(ledger["disbursements"]) == disbursed


def test_a1_rejects_automatically_and_keeps_the_rule_hits(a1: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    applicant = {"name": "赵低分", "id_number": POOR_ID, "mobile": "13700137000"}
    view = start(a1, "a1_instant_online", applicant=applicant)
    assert view.tasks == [] and end_of(a1, view) == "end_auto_rejected"
    access = view.instance.data["access"]
    assert access["outcome"] == "reject" and access["level"] == "red"
    assert access["hits"] == [{"id": "ACC-001", "level": "red", "action": "reject", "reason": "征信评分低于600"}]
    (evaluation,) = [e for e in events(a1, view, "rule_evaluated") if e.payload["decision"] == "access"]
    assert evaluation.payload["hits"][0]["id"] == "ACC-001"
    assert ledger["contracts"] == [] and ledger["disbursements"] == []


def test_a1_bureau_outage_goes_to_the_exception_task_and_can_be_aborted(a1: CreditFlow) -> None:
    applicant = {"name": "钱断线", "id_number": DOWN_ID, "mobile": "13600136000"}
    view = start(a1, "a1_instant_online", applicant=applicant)
    assert task_ids(view) == ["bureau_exception"]
    assert view.instance.data["bureau_error"]["message"] == "征信系统 5 秒内未响应"
    assert view.instance.data["bureau_error"]["code"] == "CONNECTOR_ERROR"
    view = complete(a1, view, "bureau_exception", {"exception_action": "abort", "exception_note": "客户撤回申请"})
    assert end_of(a1, view) == "end_bureau_aborted"


def test_a1_failed_disbursement_is_retried_once_from_the_exception_task(
    a1: CreditFlow, ledger: dict[str, list[Any]]
) -> None:
    view = signed_online(a1, start(a1, "a1_instant_online", account=FLAKY_ACCOUNT))
    assert task_ids(view) == ["disburse_exception"]
    assert view.instance.data["disbursement_error"]["connector"] == "core_banking/disburse"
    assert ledger["disbursements"] == [] and len(ledger["contracts"]) == 1
    view = complete(a1, view, "disburse_exception", {"exception_action": "retry", "exception_note": "日终结束后重试"})
    assert end_of(a1, view) == "end_approved"
    assert ledger["disbursements"] == [("50000.00", FLAKY_ACCOUNT)] and len(ledger["contracts"]) == 1


def test_a1_takes_only_a_signature_on_its_own_sealed_contract(a1: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = start(a1, "a1_instant_online")
    for changes, field, code in (
        ({"contract_sha256": "0" * 64}, "payload.contract_sha256", "matches"),  # another document
        ({"signed_at": "2026-12-08T10:15:00"}, "payload.signed_at", "format"),  # no offset: which zone?
        ({"channel": "email"}, "payload.channel", "enum"),
    ):
        with pytest.raises(InvalidInput) as refused:
            signed_online(a1, view, **changes)
        assert [(p["field"], p["code"]) for p in refused.value.problems] == [(field, code)], refused.value.problems
    assert_waiting(a1, view, "contract_signed")  # nothing was taken
    assert ledger["disbursements"] == []
    assert end_of(a1, signed_online(a1, view)) == "end_approved"


def test_a1_unsigned_contract_lapses_after_seven_days_without_money(
    a1: CreditFlow, ledger: dict[str, list[Any]], clocks: Clocks
) -> None:
    view = start(a1, "a1_instant_online")
    assert clocks.run_pass(a1, CLOCK_START + timedelta(days=7) - timedelta(seconds=1)) == 0
    assert_waiting(a1, view, "contract_signed")
    assert clocks.run_pass(a1, CLOCK_START + timedelta(days=7)) == 1
    view = a1.instances.get(SYSTEM, view.instance.id)
    assert end_of(a1, view) == "end_signing_lapsed"
    assert ledger["disbursements"] == [] and len(ledger["contracts"]) == 1
    with pytest.raises(Conflict):  # a signature that comes too late changes nothing
        signed_online(a1, view)


# -- A2 整村授信 ---------------------------------------------------------------------------------------

VILLAGE_ACCESS = jdm(
    ["credit_rating", "negative_info"],
    [("credit_rating", "string"), ("negative_info", "boolean")],
    ["outcome", "level", "hits"],
    [
        ['"poor"', "", '"reject"', '"red"', hit("ZC-001", "red", "reject", "村级评议信用等级较差")],
        ["", "true", '"reject"', '"red"', hit("ZC-002", "red", "reject", "存在不良信息")],
        ['"fair"', "", '"review"', '"yellow"', hit("ZC-010", "yellow", "review", "信用等级一般")],
        ["", "", '"approve"', '"none"', "[]"],
    ],
)
VILLAGE_PRICING = jdm(
    ["credit_rating"],
    [("credit_rating", "string")],
    ["limit", "rate_bp"],
    [['"excellent"', "300000", "0"], ['"good"', "200000", "30"], ["", "100000", "80"]],
)
EVALUATION = {
    "village_recommendation": "recommend",
    "credit_rating": "excellent",
    "evaluator_count": 5,
    "negative_info": False,
    "evaluation_comment": "勤劳守信",
}


def test_a2_village_credit_is_granted_after_a_return_for_more_verification(platform: CreditFlow) -> None:
    register(platform, access=VILLAGE_ACCESS, pricing=VILLAGE_PRICING)
    deploy_archetype(platform, "a2_batch_preapproval")
    view = start(platform, "a2_batch_preapproval")
    assert task_ids(view) == ["village_evaluation"]
    view = complete(platform, view, "village_evaluation", EVALUATION)
    view = complete(platform, view, "officer_verification", {**VERIFY_OK, "verified_income": "150000.00"})
    assert task_ids(view) == ["credit_approval"]
    assert view.instance.data["pricing"] == {"limit": 300000, "rate_bp": 0}
    view = complete(platform, view, "credit_approval", RETURN)
    assert task_ids(view) == ["officer_verification"]
    view = complete(platform, view, "officer_verification", VERIFY_OK)
    view = complete(
        platform,
        view,
        "credit_approval",
        {"decision": "approve", "approved_amount": "250000.00", "approved_rate_bp": 0},
    )
    assert end_of(platform, view) == "end_granted"
    assert view.instance.data["credit_line"] == {"limit": "250000.00", "pre_approved_limit": 300000, "rate_bp": 0}


def test_a2_poor_rating_is_refused_by_the_access_rules(platform: CreditFlow) -> None:
    register(platform, access=VILLAGE_ACCESS, pricing=VILLAGE_PRICING)
    deploy_archetype(platform, "a2_batch_preapproval")
    view = start(platform, "a2_batch_preapproval")
    view = complete(platform, view, "village_evaluation", {**EVALUATION, "credit_rating": "poor"})
    view = complete(platform, view, "officer_verification", VERIFY_OK)
    assert end_of(platform, view) == "end_access_rejected"
    assert view.instance.data["access"]["hits"][0]["id"] == "ZC-001"


# -- A3 线上申请线下轻调查 -------------------------------------------------------------------------------


@pytest.fixture
def a3(platform: CreditFlow) -> CreditFlow:
    register(platform, access=ACCESS_BY_SCORE)
    deploy_archetype(platform, "a3_online_light")
    return platform


def test_a3_runs_verification_review_and_approval_then_disburses(a3: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = start(a3, "a3_online_light")
    assert task_ids(view) == ["site_verification"]
    view = drive(
        a3,
        view,
        {"site_verification": VERIFY_OK, "review": REVIEW_OK, "approval": {**APPROVE, "approved_amount": "180000.00"}},
    )
    view = signed_online(a3, view)
    assert end_of(a3, view) == "end_disbursed"
    assert ledger["contracts"] == [("XED-001", "180000.00")]
    assert ledger["disbursements"] == [("180000.00", "6222021234567890128")]
    created = [e.bpmn_id for e in events(a3, view, "task_created")]
    assert created == ["site_verification", "review", "approval"]


def test_a3_access_reject_ends_before_any_officer_work(a3: CreditFlow) -> None:
    view = start(a3, "a3_online_light", applicant={"name": "赵低分", "id_number": POOR_ID, "mobile": "13700137000"})
    assert end_of(a3, view) == "end_auto_rejected"


def test_a3_review_rejection_ends_the_process(a3: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = start(a3, "a3_online_light")
    view = complete(a3, view, "site_verification", VERIFY_OK)
    view = complete(a3, view, "review", {"recommendation": "reject", "comment": "负债过高"})
    assert end_of(a3, view) == "end_review_rejected" and ledger["contracts"] == []


# -- A4 标准线下 ---------------------------------------------------------------------------------------


@pytest.fixture
def a4(platform: CreditFlow) -> CreditFlow:
    deploy_archetype(platform, "a4_standard_offline")
    return platform


def investigate_in_pairs(platform: CreditFlow, view: InstanceView) -> InstanceView:
    assert task_ids(view) == ["co_investigation", "main_investigation"]
    assert {t.bpmn_id: t.lane for t in view.tasks} == {
        "main_investigation": "loan_officer",
        "co_investigation": "co_investigator",
    }
    view = complete(platform, view, "co_investigation", CO_INVESTIGATE_OK)
    assert task_ids(view) == ["main_investigation"]  # the join waits for both officers
    view = complete(platform, view, "main_investigation", INVESTIGATE_OK)
    assert task_ids(view) == ["review"]
    return complete(platform, view, "review", REVIEW_OK)


@pytest.mark.parametrize(
    ("amount", "threshold"), [("1000000.00", None), ("800000.00", None), ("3000000.00", "5000000")]
)
def test_a4_within_authority_goes_to_the_approver(
    a4: CreditFlow, ledger: dict[str, list[Any]], amount: str, threshold: str | None
) -> None:
    if threshold:
        view = start(a4, "a4_standard_offline", amount=amount, committee_threshold=threshold)
    else:  # no threshold in the start data: the script default of 1,000,000 applies
        view = start(a4, "a4_standard_offline", amount=amount, without=("committee_threshold",))
    view = investigate_in_pairs(a4, view)
    assert task_ids(view) == ["approval"]
    assert view.instance.data["committee_threshold"] == (threshold or "1000000")
    view = complete(a4, view, "approval", {**APPROVE, "approved_amount": amount})
    assert task_ids(view) == ["face_signing"] and ledger["disbursements"] == []
    view = complete(a4, view, "face_signing", face_signed(view))
    assert end_of(a4, view) == "end_disbursed"
    assert ledger["disbursements"] == [(amount, "6222021234567890128")]
    assert "committee_vote" not in [e.bpmn_id for e in events(a4, view, "task_created")]


def test_a4_above_threshold_goes_to_the_committee_and_senior_sign_off(
    a4: CreditFlow, ledger: dict[str, list[Any]]
) -> None:
    view = start(a4, "a4_standard_offline")  # 3,000,000 > 1,000,000
    view = investigate_in_pairs(a4, view)
    assert task_ids(view) == ["committee_vote"] * 3
    assert {t.lane for t in view.tasks} == {"credit_committee"}
    members = {t.id: a4.tasks.get(SYSTEM, t.id).data["committee_member"] for t in view.tasks}
    assert sorted(members.values()) == ["张主任", "李委员", "赵委员"]
    ballots = {"张主任": "approve", "李委员": "approve", "赵委员": "reject"}
    for task_id, member in members.items():
        vote = {"vote": ballots[member], "opinion": f"{member}意见"}
        view = a4.tasks.complete(SYSTEM, task_id, vote)
    assert task_ids(view) == ["senior_approval"]
    data = view.instance.data
    assert data["committee_approved"] is True and data["approvals"] == 2
    assert sorted((b["member"], b["vote"]) for b in data["votes"]) == sorted(ballots.items())
    view = complete(a4, view, "senior_approval", {**APPROVE, "approved_amount": "2800000.00"})
    view = complete(a4, view, "face_signing", face_signed(view))
    assert end_of(a4, view) == "end_disbursed"
    assert ledger["disbursements"] == [("2800000.00", "6222021234567890128")]


def test_a4_committee_without_two_thirds_rejects(a4: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = investigate_in_pairs(a4, start(a4, "a4_standard_offline"))
    for n, task in enumerate(view.tasks):
        view = a4.tasks.complete(SYSTEM, task.id, {"vote": "approve" if n == 0 else "reject", "opinion": "表决意见"})
    assert end_of(a4, view) == "end_committee_rejected"
    assert view.instance.data["committee_approved"] is False and ledger["contracts"] == []


def test_a4_an_empty_committee_fails_closed(a4: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = investigate_in_pairs(a4, start(a4, "a4_standard_offline", committee_members=[]))
    assert end_of(a4, view) == "end_committee_rejected"
    assert view.instance.data["votes"] == [] and ledger["contracts"] == []


def test_a4_disagreeing_co_investigator_stops_the_loan(a4: CreditFlow) -> None:
    view = start(a4, "a4_standard_offline")
    view = complete(a4, view, "main_investigation", INVESTIGATE_OK)
    view = complete(a4, view, "co_investigation", {**CO_INVESTIGATE_OK, "co_investigation_conclusion": "disagree"})
    assert end_of(a4, view) == "end_investigation_rejected"


def test_a4_return_sends_the_case_back_to_both_investigators(a4: CreditFlow) -> None:
    view = investigate_in_pairs(a4, start(a4, "a4_standard_offline", amount="500000.00"))
    view = complete(a4, view, "approval", RETURN)
    view = investigate_in_pairs(a4, view)
    view = complete(a4, view, "approval", {**APPROVE, "approved_amount": "500000.00"})
    view = complete(a4, view, "face_signing", face_signed(view))
    assert end_of(a4, view) == "end_disbursed"


def test_a4_face_signing_checks_the_contract_and_a_refusal_ends_without_money(
    a4: CreditFlow, ledger: dict[str, list[Any]]
) -> None:
    view = investigate_in_pairs(a4, start(a4, "a4_standard_offline", amount="500000.00"))
    view = complete(a4, view, "approval", {**APPROVE, "approved_amount": "500000.00"})
    signed = face_signed(view)
    for data, field, code in (
        ({**signed, "contract_no": "HT-OTHER-0001"}, "contract_no", "matches"),  # an old or another contract
        ({key: value for key, value in signed.items() if key != "recording_no"}, "recording_no", "required"),
        ({"signing_result": "declined"}, "signing_note", "required"),  # why the borrower declined
    ):
        with pytest.raises(InvalidInput) as refused:
            complete(a4, view, "face_signing", data)
        assert [(p["field"], p["code"]) for p in refused.value.problems] == [(field, code)], refused.value.problems
    assert task_ids(a4.instances.get(SYSTEM, view.instance.id)) == ["face_signing"]
    declined = {"signing_result": "declined", "signing_note": "借款人认为利率偏高，放弃借款"}
    view = complete(a4, view, "face_signing", declined)
    assert end_of(a4, view) == "end_signing_declined"
    assert ledger["disbursements"] == [] and len(ledger["contracts"]) == 1


# -- A5 第三方担保/政策性 -----------------------------------------------------------------------------

TERM_ACCESS = jdm(
    ["term_months"],
    [("term_months", "integer")],
    ["outcome", "level", "hits"],
    access_rows("<= 36", None, hit("ZC-101", "red", "reject", "政策性贷款期限超过36个月")),
)
GUARANTEED = {"approved": True, "guarantee_no": "SDNDB-2026-000123", "guarantee_ratio": 0.8}


@pytest.fixture
def a5(platform: CreditFlow) -> CreditFlow:
    register(platform, access=TERM_ACCESS)
    deploy_archetype(platform, "a5_guaranteed_policy")
    return platform


def assert_waiting(platform: CreditFlow, view: InstanceView, message: str) -> None:
    """Running, no READY task, and the instance answers only ``message`` (an external wait)."""
    assert view.instance.status == "running" and view.tasks == [], task_ids(view)
    stored = platform.instances.get(SYSTEM, view.instance.id)
    assert stored.instance.status == "running" and stored.tasks == []
    with pytest.raises(Conflict) as refused:
        platform.instances.send_message(SYSTEM, view.instance.id, "no_such_message", {})
    assert refused.value.problems == [{"field": "name", "message": f"waiting for: {message}"}]


def test_a5_waits_for_the_guarantor_and_the_subsidy_filing(a5: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = start(a5, "a5_guaranteed_policy")
    view = complete(a5, view, "investigation", INVESTIGATE_OK)
    assert_waiting(a5, view, "guarantee_confirmed")
    assert ledger["guarantees"] == [("300000.00", resident_id())]
    assert view.instance.data["guarantee_application"] == {"application_id": "DB-0001"}
    with pytest.raises(Conflict):
        a5.instances.send_message(SYSTEM, view.instance.id, "subsidy_registered", {"filing_no": "TX-1"})

    # what the contract needs from an approving guarantor is checked when the message arrives, not at signing
    for payload, fields in (
        ({"approved": True, "guarantee_no": "DB-001"}, ["payload.guarantee_ratio"]),
        ({"approved": "yes", "guarantee_ratio": 1.5}, ["payload.approved", "payload.guarantee_ratio"]),
        # an empty guarantee number, a zero share, a field the schema does not know: none of it is a guarantee
        (
            {"approved": True, "guarantee_no": "", "guarantee_ratio": 0},
            ["payload.guarantee_no", "payload.guarantee_ratio"],
        ),
        ({**GUARANTEED, "note": "x"}, ["payload.note"]),
    ):
        with pytest.raises(InvalidInput) as refused:
            a5.instances.send_message(SYSTEM, view.instance.id, "guarantee_confirmed", payload)
        assert [p["field"] for p in refused.value.problems] == fields, refused.value.problems
    assert_waiting(a5, view, "guarantee_confirmed")  # nothing was taken

    view = a5.instances.send_message(SYSTEM, view.instance.id, "guarantee_confirmed", GUARANTEED)
    assert view.instance.data["guarantee"] == GUARANTEED
    view = drive(a5, view, {"review": REVIEW_OK, "approval": APPROVE, "face_signing": face_signed})
    assert_waiting(a5, view, "subsidy_registered")
    assert ledger["disbursements"] == [("300000.00", "6222021234567890128")]
    (paid,) = events(a5, view, "disbursed")  # the money moved: on record before the subsidy filing
    assert (paid.payload["amount"], paid.payload["reference"]) == ("300000.00", {"disbursement_id": "FK-0001"})

    view = a5.instances.send_message(SYSTEM, view.instance.id, "subsidy_registered", {"filing_no": "TX-2026-0456"})
    assert end_of(a5, view) == "end_subsidy_registered"
    assert view.instance.data["subsidy"] == {"filing_no": "TX-2026-0456"}


def test_a5_without_subsidy_ends_at_disbursement(a5: CreditFlow) -> None:
    view = start(a5, "a5_guaranteed_policy", without=("interest_subsidy",))
    view = complete(a5, view, "investigation", INVESTIGATE_OK)
    view = a5.instances.send_message(SYSTEM, view.instance.id, "guarantee_confirmed", GUARANTEED)
    view = drive(a5, view, {"review": REVIEW_OK, "approval": APPROVE, "face_signing": face_signed})
    assert end_of(a5, view) == "end_disbursed"
    assert view.instance.data["interest_subsidy"] is False


def test_a5_guarantor_refusal_ends_the_process(a5: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = complete(a5, start(a5, "a5_guaranteed_policy"), "investigation", INVESTIGATE_OK)
    view = a5.instances.send_message(
        SYSTEM, view.instance.id, "guarantee_confirmed", {"approved": False, "reason": "反担保不足"}
    )
    assert end_of(a5, view) == "end_guarantee_rejected" and ledger["contracts"] == []


def test_a5_access_rules_refuse_a_term_over_three_years(a5: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    view = complete(a5, start(a5, "a5_guaranteed_policy", term_months=60), "investigation", INVESTIGATE_OK)
    assert end_of(a5, view) == "end_access_rejected" and ledger["guarantees"] == []


# -- A6 抵押 ---------------------------------------------------------------------------------------

LTV_PRICING = jdm(
    ["appraised_value", "collateral_type"],
    [("collateral_type", "string")],
    ["limit", "rate_bp"],
    [['"residential"', "number(appraised_value) * 0.7", "50"], ["", "number(appraised_value) * 0.5", "90"]],
)
APPRAISAL = {
    "collateral_type": "residential",
    "certificate_no": "鲁(2024)济南市不动产权第0101010号",
    "owner_name": "王小二",
    "appraised_value": "800000.00",
    "appraisal_method": "internal",
    "appraisal_date": "2026-12-03",
}


def test_a6_disburses_only_after_the_mortgage_is_registered(platform: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    register(platform, pricing=LTV_PRICING)
    deploy_archetype(platform, "a6_collateral")
    view = start(platform, "a6_collateral")
    view = complete(platform, view, "investigation", INVESTIGATE_OK)
    view = complete(platform, view, "collateral_appraisal", APPRAISAL)
    assert view.instance.data["pricing"]["limit"] == 560000
    approve = {**APPROVE, "approved_amount": "500000.00"}
    view = drive(platform, view, {"review": REVIEW_OK, "approval": approve, "face_signing": face_signed})
    assert_waiting(platform, view, "mortgage_registered")
    assert ledger["contracts"] == [("FDED-001", "500000.00")] and ledger["disbursements"] == []

    registered = {"certificate_no": "鲁(2026)济南市不动产证明第0012345号", "registered_on": "2026-12-08"}
    view = platform.instances.send_message(SYSTEM, view.instance.id, "mortgage_registered", registered)
    assert end_of(platform, view) == "end_disbursed"
    assert view.instance.data["mortgage"] == registered
    assert ledger["disbursements"] == [("500000.00", "6222021234567890128")]


def test_a6_appraisal_form_requires_the_appraiser_for_external_appraisals(platform: CreditFlow) -> None:
    register(platform, pricing=LTV_PRICING)
    deploy_archetype(platform, "a6_collateral")
    view = complete(platform, start(platform, "a6_collateral"), "investigation", INVESTIGATE_OK)
    with pytest.raises(InvalidInput) as refused:
        complete(platform, view, "collateral_appraisal", {**APPRAISAL, "appraisal_method": "external"})
    assert "appraiser" in json.dumps(refused.value.problems, ensure_ascii=False)


# -- A7 无还本续贷 -------------------------------------------------------------------------------------

RENEWAL_ACCESS = jdm(
    ["existing_loan"],
    [("existing_loan.max_overdue_days", "object"), ("existing_loan.classification", "object")],
    ["outcome", "level", "hits"],
    [
        ["", '!= "normal"', '"reject"', '"red"', hit("XD-002", "red", "reject", "原贷款非正常类")],
        ["> 30", "", '"reject"', '"red"', hit("XD-001", "red", "reject", "近12个月逾期超过30天")],
        ["> 0", "", '"review"', '"yellow"', hit("XD-010", "yellow", "review", "近12个月有逾期")],
        ["", "", '"approve"', '"none"', "[]"],
    ],
)
RENEWAL_CHECK = {
    "check_conclusion": "approve",
    "operation_normal": True,
    "purpose_compliant": True,
    "guarantee_effective": True,
    "check_comment": "经营正常，担保有效",
}


def test_a7_renews_through_core_banking(platform: CreditFlow, ledger: dict[str, list[Any]]) -> None:
    register(platform, access=RENEWAL_ACCESS)
    deploy_archetype(platform, "a7_renewal")
    view = start(platform, "a7_renewal")
    view = drive(platform, view, {"renewal_check": RENEWAL_CHECK, "review": REVIEW_OK, "approval": APPROVE})
    assert_waiting(platform, view, "contract_signed")
    assert ledger["renewals"] == []
    view = signed_online(platform, view)
    assert end_of(platform, view) == "end_renewed"
    assert view.instance.data["renewal"] == {"renewal_id": "XD-JJ2025000123"}
    assert ledger["renewals"] == ["JJ2025000123"]
    assert len(ledger["contracts"]) == 1 and "sealed_contract" in view.instance.data  # signed before core banking


@pytest.mark.parametrize(
    ("record", "hit_id"), [({"max_overdue_days": 45}, "XD-001"), ({"classification": "special_mention"}, "XD-002")]
)
def test_a7_repayment_record_decides_eligibility(
    platform: CreditFlow, ledger: dict[str, list[Any]], record: dict[str, Any], hit_id: str
) -> None:
    register(platform, access=RENEWAL_ACCESS)
    deploy_archetype(platform, "a7_renewal")
    existing = {**ARCHETYPES["a7_renewal"]["start_data_example"]["existing_loan"], **record}
    view = start(platform, "a7_renewal", existing_loan=existing)
    assert end_of(platform, view) == "end_not_eligible"
    assert view.instance.data["access"]["hits"][0]["id"] == hit_id and ledger["renewals"] == []


def test_a7_renewal_check_form_refuses_approval_with_a_failed_check(platform: CreditFlow) -> None:
    register(platform, access=RENEWAL_ACCESS)
    deploy_archetype(platform, "a7_renewal")
    view = start(platform, "a7_renewal")
    with pytest.raises(InvalidInput):
        complete(platform, view, "renewal_check", {**RENEWAL_CHECK, "guarantee_effective": False})


# -- forms shared by several archetypes -----------------------------------------------------------------

FormCase = tuple[str, dict[str, Any], bool]
FORM_CASES: list[FormCase] = [
    ("investigation", INVESTIGATE_OK, True),
    ("investigation", {**INVESTIGATE_OK, "interview_done": False}, False),  # approval needs the interview
    ("investigation", {k: v for k, v in INVESTIGATE_OK.items() if k != "recommended_amount"}, False),
    (
        "investigation",
        {
            "investigation_conclusion": "reject",
            "interview_done": False,
            "site_visit_date": "2026-12-02",
            "investigation_report": "无法联系借款人",
        },
        True,
    ),
    ("co-investigation", CO_INVESTIGATE_OK, True),
    ("co-investigation", {**CO_INVESTIGATE_OK, "co_site_visit": False}, False),
    ("committee-vote", {"vote": "approve", "opinion": "同意"}, True),
    ("committee-vote", {"vote": "approve"}, False),
    ("manual-review", {"manual_decision": "approve", "manual_comment": "核实", "risk_points": ["多头借贷"]}, True),
    ("manual-review", {"manual_decision": "maybe", "manual_comment": "核实"}, False),
    ("village-evaluation", EVALUATION, True),
    ("village-evaluation", {**EVALUATION, "evaluator_count": 2}, False),
    ("officer-verification", VERIFY_OK, True),
    ("collateral-appraisal", APPRAISAL, True),
    ("collateral-appraisal", {**APPRAISAL, "appraised_value": "12.345"}, False),
    ("renewal-check", RENEWAL_CHECK, True),
    ("connector-exception", {"exception_action": "retry", "exception_note": "重试"}, True),
    ("connector-exception", {"exception_action": "skip", "exception_note": "跳过"}, False),
]


@pytest.mark.parametrize(("form", "data", "valid"), FORM_CASES)
def test_archetype_forms_accept_and_refuse(platform: CreditFlow, form: str, data: dict[str, Any], valid: bool) -> None:
    from engine.forms.validation import validate_form_data

    problems = validate_form_data(platform.forms.get(form), data)
    assert (problems == []) is valid, problems


def test_every_form_has_chinese_titles_and_labels(platform: CreditFlow) -> None:
    used = {task["form"] for archetype in ARCHETYPES.values() for task in archetype["user_tasks"]}

    def check(text: str) -> bool:
        return bool(text) and not text.isascii()

    for name in used:
        form = platform.forms.get(name)
        assert check(form.schema["title"]), name
        for field, spec in form.schema["properties"].items():
            assert field.isascii() and check(spec.get("title", "")), (name, field)
            if "enum" in spec and spec.get("type") == "string":
                labels = (
                    form.ui_schema[field].get("ui:enumNames") if form.ui_schema and field in form.ui_schema else None
                )
                assert labels is None or len(labels) == len(spec["enum"]), (name, field)
        assert form.schema.get("additionalProperties") is not False
