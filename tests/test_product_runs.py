"""Every standard product runs: published, applied for with data generated from its own config, the
archetype's start schema and its forms, and driven to an approved end with real rule decisions.

The run over the catalog knows no product or form by name. Start data comes from the product
(amount and term inside its ranges, its first guarantee type and customer segment, every field of
its data dictionary that the archetype does not compute itself), the archetype's start schema and
example (bpmn/archetypes.json), and a clean applicant profile keyed by the province's field
vocabulary (the rules' ``<rule>.fields.json``). Task data is generated from each form's JSON Schema;
where a form asks for a decision, the approving option is taken. Messages are answered with the
manifest's payload examples.

All tests share one database with the archetypes deployed once (deploying the bundle costs more
than publishing a product); each test publishes its own product, so no test depends on another.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from lxml import etree
from sqlalchemy import select

from engine.catalog.config import DEFAULT_STANDARD_DIR, load_product_configs
from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.errors import Conflict, Forbidden, InvalidInput
from engine.forms.formats import FORMAT_CHECKER, age_on
from engine.forms.validation import validate_form_data
from engine.org.roles import ALL_PERMISSIONS
from engine.runtime import demo_connectors
from engine.runtime.connectors import ConnectorRegistry
from engine.services.auth import load_principal
from engine.services.execution import payout_state
from engine.services.instances import InstanceView
from engine.services.principal import Principal
from engine.services.products import ProductService
from engine.store.models import OutboxMessage, ProcessInstance, Tenant, User
from tests.conftest import BLACKLISTED_ID, bureau, fresh_database
from tests.test_archetypes import face_signed

SYSTEM = Principal.system()
LENDER_CODE = "bank-lingyuan"
ROOT = Path(__file__).resolve().parents[1]
FORMS_DIR = ROOT / "forms"
RULES_DIR = ROOT / "product_configs" / "rules"
MANIFEST = json.loads((ROOT / "bpmn" / "archetypes.json").read_text("utf-8"))
ARCHETYPES = {archetype["key"]: archetype for archetype in MANIFEST["archetypes"]}
CATALOG = load_product_configs(DEFAULT_STANDARD_DIR)
TODAY = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}

# Where a form field offers a decision, the option that moves the application forward.
APPROVING = ("approve", "agree", "confirmed", "recommend_approve", "recommend", "pass")

# A clean applicant in the province's rule vocabulary: every field some rule's data dictionary names
# (product_configs/rules/*.fields.json), with a value no access rule objects to. ``segment`` and
# ``guarantee_type`` come from the product; ``applied_amount``, (in A1) ``score`` and (in A1 and A3)
# the credit report are computed by the archetype (the decision slots' ``inputs`` in the manifest),
# so the application leaves them out.
CLEAN = {
    "age": 35,
    "province_code": "37",
    "monthly_income": 50000,
    "debt_to_income": 0.1,
    "current_overdue_count": 0,
    "current_overdue_amount": 0,
    "max_overdue_days_24m": 0,
    "overdue_count_24m": 0,
    "max_consecutive_overdue_24m": 0,
    "credit_inquiries_3m": 0,
    "credit_inquiries_6m": 1,
    "lender_count": 1,
    "existing_loans_count": 1,
    "guarantee_exposure": 0,
    "guaranteed_overdue_count": 0,
    "credit_card_utilization": 0.2,
    "court_enforcement_records": 0,
    "dishonest_debtor": False,
    "blacklist_hit": False,
    "fraud_list_hit": False,
    "worst_loan_class": "normal",
    "special_transactions_5y": 0,
    "has_credit_history": True,
    "is_related_party": False,
    "employment_years": 10,
    "social_insurance_months": 60,
    "provident_fund_months": 60,
    "tax_grade": "A",
    "credit_household_rating": "AAA",
    "household_annual_income": 300000,
    "farm_area_mu": 50,
    "monthly_acquiring_flow": 200000,
    "avg_deposit_6m": 100000,
    "employer_type": "state_owned",
    "annual_sales": 5000000,
    "annual_tax_paid": 100000,
    "score": 750,  # where no scorecard step computes it: the bank's internal rating, sent with the application
}
OCCUPATION = {
    "farmer": "agriculture",
    "merchant": "self_employed",
    "small_business": "self_employed",
    "salaried": "enterprise_employee",
}
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "amount": (str,),
}
RULE_SEGMENTS: dict[str, str] = MANIFEST["conventions"]["rule_segments"]["mapping"]


def input_mappings(archetype: dict[str, Any]) -> dict[str, str]:
    """Rule inputs the archetype computes itself before a decision (field -> expression)."""
    return {name: source for slot in archetype["decision_slots"] for name, source in slot.get("inputs", {}).items()}


# -- generating data from a JSON Schema -----------------------------------------------------------------


def resident_id(born: date, region: str = "370102", sequence: str = "123") -> str:
    body = f"{region}{born:%Y%m%d}{sequence}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def bank_card(prefix: str = "622202123456789012") -> str:
    total = 0
    for position, char in enumerate(reversed(prefix)):
        digit = int(char) * (1 if position % 2 else 2)
        total += digit - 9 if digit > 9 else digit
    return prefix + str(-total % 10)


def uscc(body: str = "91370100MA3C4K5L6") -> str:
    charset = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(charset.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + charset[-total % 31]


class SchemaData:
    """Valid data for a JSON Schema: the required properties (also those an ``if``/``then`` requires,
    with the constraints a ``then`` adds), enums (the approving option where there is one), the
    platform's formats, bounds, ``minItems`` and ``$ref`` to the form catalog's shared definitions.

    ``amount`` is what amount fields (an approved or suggested amount) repeat: the applied amount.
    """

    FILLER = "经核实，情况属实，同意办理。"

    def __init__(self, *, born: date, amount: str | None = None) -> None:
        self.born = born
        self.amount = amount
        self.documents: dict[str, dict[str, Any]] = {}

    def __call__(self, schema: dict[str, Any]) -> Any:
        return self.value(schema, schema)

    def _document(self, name: str) -> dict[str, Any]:
        if name not in self.documents:
            self.documents[name] = json.loads((FORMS_DIR / name).read_text("utf-8"))
        return self.documents[name]

    def resolve(self, schema: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Follow ``$ref`` (another catalog file or this document); sibling keywords win over the target."""
        while "$ref" in schema:
            file_name, _, pointer = schema["$ref"].partition("#")
            document = self._document(file_name) if file_name else base
            target: Any = document
            for part in filter(None, pointer.split("/")):
                target = target[part]
            schema = {**target, **{key: value for key, value in schema.items() if key != "$ref"}}
            base = document
        return schema, base

    def value(self, schema: dict[str, Any], base: dict[str, Any]) -> Any:
        schema, base = self.resolve(schema, base)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = schema["enum"]
            return next((option for option in APPROVING if option in options), options[0])
        kinds = schema.get("type") or ("object" if "properties" in schema else None)
        assert kinds, f"no type in {schema}"
        kind = kinds if isinstance(kinds, str) else ("string" if "string" in kinds else kinds[0])
        if kind == "object":
            return self.object(schema, base)
        if kind == "array":
            items = schema.get("items", {})
            return [self.value(items, base) for _ in range(schema.get("minItems", 0))]
        if kind == "string":
            return self.string(schema)
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
            return min(low, schema.get("maximum", low))
        if kind == "boolean":
            return False
        raise AssertionError(f"no generator for {schema}")

    PHRASE = "购买生产资料"  # a short phrase, as a purpose is (no sentence, no clause)

    def string(self, schema: dict[str, Any]) -> str:
        match schema.get("format"):
            case None if "pattern" in schema:
                assert re.search(schema["pattern"], self.PHRASE), f"no generator for pattern {schema['pattern']}"
                return self.PHRASE
            case None:
                low, high = schema.get("minLength", 0), schema.get("maxLength", len(self.FILLER))
                return (self.FILLER * (1 + low // len(self.FILLER)))[: max(low, min(high, len(self.FILLER)))]
            case "cn-resident-id":
                return resident_id(self.born)
            case "cn-mobile":
                return "13800138000"
            case "bank-card":
                return bank_card()
            case "cn-uscc":
                return uscc()
            case "date":
                return TODAY.date().isoformat()
            case "amount":
                wanted = Decimal(self.amount) if self.amount else Decimal(10000)
                wanted = max(wanted, Decimal(str(schema.get("minimum", 0))))
                return f"{min(wanted, Decimal(str(schema.get('maximum', wanted)))):.2f}"
            case unknown:
                raise AssertionError(f"no generator for format {unknown}")

    def object(self, schema: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        properties = dict(schema.get("properties", {}))
        required = list(schema.get("required", []))
        conditionals = [part for part in [schema, *schema.get("allOf", [])] if "if" in part]
        data: dict[str, Any] = {}
        for _ in range(1 + len(conditionals)):  # each round may switch on one more conditional
            for name in required:
                if name not in data:
                    data[name] = self.value(properties.get(name, {}), base)
            changed = False
            for part in conditionals:
                if not Draft202012Validator(part["if"]).is_valid(data):
                    continue
                then = part.get("then", {})
                for name in then.get("required", []):
                    if name not in required:
                        required.append(name)
                        changed = True
                for name, extra in then.get("properties", {}).items():
                    merged = {**self.resolve(properties.get(name, {}), base)[0], **extra}
                    if name in data and not Draft202012Validator(merged, format_checker=FORMAT_CHECKER).is_valid(
                        data[name]
                    ):
                        data[name] = self.value(merged, base)
                        changed = True
                    properties[name] = merged
            if not changed:
                break
        return data


# -- the product's application ----------------------------------------------------------------------------


def birth_date(age: int) -> date:
    born = date(TODAY.year - age, 6, 15)
    assert age_on(resident_id(born), TODAY.date()) == age
    return born


def choose_amount(parameters: dict[str, Any]) -> str:
    """The middle of the product's amount range, in whole hundreds (large ranges reach the committee)."""
    low, high = Decimal(parameters["amount"]["min"]), Decimal(parameters["amount"]["max"])
    middle = ((low + high) / 2).quantize(Decimal(100), rounding=ROUND_DOWN)
    return f"{max(low, middle):.2f}"


def choose_term(parameters: dict[str, Any]) -> int:
    return min(parameters["term_months"]["max"], max(parameters["term_months"]["min"], 12))


def rule_segment(product: dict[str, Any]) -> str:
    """The rules' customer segment of the product's first audience segment (manifest mapping)."""
    return RULE_SEGMENTS[product["segments"][0]]


def application(product: dict[str, Any], **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(applicant, data) for ``platform.products.apply``, from the product, its archetype and CLEAN."""
    archetype = ARCHETYPES[product["archetype"]]
    schema, example = archetype["start_data"], archetype["start_data_example"]
    parameters = product["parameters"]
    amount, term = choose_amount(parameters), choose_term(parameters)
    # a clean applicant earns enough for the amount: a year's income is at least twice the loan
    profile = {**CLEAN, "monthly_income": max(CLEAN["monthly_income"], int(Decimal(amount) / 6) + 1), **changes}
    generate = SchemaData(born=birth_date(profile["age"]), amount=amount)
    applicant = generate(schema["properties"]["applicant"])
    data: dict[str, Any] = {}
    for name, spec in schema["properties"].items():
        if name in ("applicant", "product"):  # apply() sets them
            continue
        if name == "amount":
            data[name] = amount
        elif name == "term_months":
            data[name] = term
        elif name in example:
            data[name] = copy.deepcopy(example[name])
        elif name in schema.get("required", []):
            data[name] = generate(spec)
    if "existing_loan" in data:  # a renewal renews the old balance, and no more
        data["existing_loan"]["principal"] = amount
    segment = rule_segment(product)
    derived = input_mappings(archetype)
    for field, kind in product["data_dictionary"].items():
        if field in derived:
            continue
        if field == "segment":
            value: Any = segment
        elif field == "guarantee_type":
            value = parameters["guarantee_types"][0]
        elif field == "occupation_category":
            value = profile.get(field, OCCUPATION[segment])
        else:
            assert field in profile, f"{product['code']}: no clean value for data dictionary field {field}"
            value = profile[field]
        assert isinstance(value, PYTHON_TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool)), (
            field,
            kind,
            value,
        )
        data[field] = value
    started = {
        **data,
        "applicant": applicant,
        "product": {"code": product["code"], "version": 1, "name": product["name"]},
    }
    problems = [e.message for e in Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(started)]
    assert problems == [], (product["code"], problems)
    return applicant, data


# -- driving an instance ----------------------------------------------------------------------------------


def matched(schema: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The fields that must repeat what the instance holds (``x-creditflow-matches``), as it holds them:
    the contract number signed, the hash of the sealed contract."""
    found: dict[str, Any] = {}
    for name, spec in schema.get("properties", {}).items():
        if path := spec.get("x-creditflow-matches"):
            value: Any = current
            for part in path.split("."):
                value = value[part]
            found[name] = value
    return found


def drive(
    platform: CreditFlow, view: InstanceView, max_steps: int = 40, until: Callable[[Any], bool] | None = None
) -> tuple[InstanceView, list[str]]:
    """Complete READY tasks with generated form data and answer awaited messages until the instance
    stops running (or the next task is one ``until`` picks); returns the last view and the steps taken
    (task ids and message names)."""
    archetype = ARCHETYPES[view.definition.key]
    steps: list[str] = []
    while view.instance.status == "running":
        assert len(steps) < max_steps, steps
        if view.tasks:
            task = view.tasks[0]
            if until is not None and until(task):
                break
            data = form_data(platform, view.instance.product_version_id, task)
            view = platform.tasks.complete(SYSTEM, task.id, data)  # InvalidInput (422) would fail the test
            steps.append(task.bpmn_id)
            continue
        for message in archetype["messages"]:
            try:
                payload = copy.deepcopy(message["payload"]["example"])
                payload |= matched(message["payload"]["schema"], view.instance.data)
                view = platform.instances.send_message(SYSTEM, view.instance.id, message["message"], payload)
            except Conflict:  # not the message it is waiting for
                continue
            steps.append(message["message"])
            break
        else:
            raise AssertionError(f"running, no task and no awaited manifest message: {steps}")
    return view, steps


def form_data(platform: CreditFlow, product_version_id: int, task: Any) -> dict[str, Any]:
    """What a person enters in ``task``'s form: generated from the form's schema, agreeing with the
    application (its amount within the pricing rule's limit, the rate the rule or the product gives)."""
    detail = platform.tasks.get(SYSTEM, task.id)
    form = platform.forms.get(task.form)
    current = detail.data or {}
    amount = current.get("amount")
    limit = (current.get("pricing") or {}).get("limit")  # an approver stays within the rule's limit
    if amount and limit is not None:
        amount = f"{min(Decimal(str(amount)), Decimal(str(limit))):.2f}"
    data = SchemaData(born=birth_date(CLEAN["age"]), amount=str(amount) if amount else None)(form.schema)
    data |= matched(form.schema, current)
    if "approved_rate_bp" in data:  # the approver confirms the rule's spread, or the product's floor
        with platform.db.transaction() as session:
            rate = platform.products.binding(session, product_version_id).contract["parameters"]
        data["approved_rate_bp"] = int((current.get("pricing") or {}).get("rate_bp", rate["rate"]["min_bp"]))
    assert validate_form_data(form, data) == [], (task.bpmn_id, data)
    return data


def events(platform: CreditFlow, view: InstanceView, event_type: str) -> list[Any]:
    return [e for e in platform.instances.history(SYSTEM, view.instance.id) if e.event_type == event_type]


def end_of(platform: CreditFlow, view: InstanceView) -> str:
    assert view.instance.status == "completed", (view.instance.status, view.instance.error)
    return events(platform, view, "completed")[-1].payload["end"]


def ends(archetype: dict[str, Any], outcome: str) -> set[str]:
    return {end["id"] for end in archetype["end_events"] if end["outcome"] == outcome}


# -- the shared platform ------------------------------------------------------------------------------------


def _connectors() -> ConnectorRegistry:
    """The conftest's deterministic connectors: the test bureau and the demo services."""
    registry = ConnectorRegistry()
    registry.register("credit_bureau/score", bureau)
    registry.register("core_banking/disburse", demo_connectors.disburse)
    registry.register("core_banking/renew", demo_connectors.renew)
    registry.register("guarantee/apply", demo_connectors.guarantee_apply)
    return registry


@pytest.fixture(scope="module")
def shared(
    migrated_template: str, tmp_path_factory: pytest.TempPathFactory, documents_dirs: dict[str, Path]
) -> Iterator[CreditFlow]:
    """A fresh database for this module with the bpmn/ bundle deployed once."""
    data_dir = tmp_path_factory.mktemp("product_runs")
    url = fresh_database(migrated_template, data_dir)
    settings = Settings(database_url=url, data_dir=data_dir, secret_key="test-secret-key-" + "x" * 32, **documents_dirs)
    platform = CreditFlow(settings, clock=FrozenClock(TODAY), connectors=_connectors())
    with platform.db.transaction(write=True) as session:
        session.add(Tenant(code=LENDER_CODE, name="陵源农商银行", kind="bank", created_at=TODAY))
    for member in COMMITTEE:  # the bank's credit committee (贷审会), each with one vote
        platform.organization.create_user(SYSTEM, LENDER_CODE, member, "贷审会委员", "committee-password-1")
        platform.organization.grant(SYSTEM, member, "credit_committee")
    files = sorted(platform.settings.bpmn_dir.glob("*.bpmn"))
    platform.definitions.deploy(SYSTEM, [(f.name, f.read_bytes()) for f in files])
    yield platform
    platform.close()


COMMITTEE = ("committee_a", "committee_b", "committee_c")


def lender(platform: CreditFlow) -> Principal:
    """The bank taking the applications (through its channel): its seal goes on the contracts."""
    with platform.db.transaction() as session:
        tenant_id = session.scalars(select(Tenant.id).where(Tenant.code == LENDER_CODE)).one()
    return Principal(user_id=None, username="channel", tenant_id=tenant_id, permissions=ALL_PERMISSIONS)


def publish(platform: CreditFlow, code: str, tmp_path: Path) -> None:
    folder = tmp_path / "standard"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEFAULT_STANDARD_DIR / f"{code}.json", folder)
    (version,) = platform.products.load_standard(SYSTEM, folder, progress=lambda _m: None)
    assert set(version.decisions) == set(CATALOG[code]["bindings"]["decisions"])


# -- Task A: every product runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(ARCHETYPES))
def test_the_inputs_an_archetype_derives_are_its_decision_pre_scripts(key: str) -> None:
    """The manifest's ``inputs`` of each decision slot are what the business-rule task's preScript computes."""
    root = etree.parse(str(ROOT / "bpmn" / ARCHETYPES[key]["file"])).getroot()
    scripts = {
        task.get("id"): task.findtext(".//spiffworkflow:preScript", namespaces=NS)
        for task in root.iterfind(".//bpmn:businessRuleTask", NS)
    }
    for slot in ARCHETYPES[key]["decision_slots"]:
        inputs = slot.get("inputs", {})
        expected = "\n".join(f"{name} = {source}" for name, source in inputs.items()) if inputs else None
        assert scripts[slot["task"]] == expected, (key, slot["task"])


@pytest.mark.parametrize("code", sorted(CATALOG))
def test_every_standard_product_reaches_an_approved_end(shared: CreditFlow, tmp_path: Path, code: str) -> None:
    product = CATALOG[code]
    archetype = ARCHETYPES[product["archetype"]]
    publish(shared, code, tmp_path)
    applicant, data = application(product)
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key=f"RUN-{code}")
    view, steps = drive(shared, view)
    end = end_of(shared, view)
    assert end in ends(archetype, "approved"), (code, end, steps, view.instance.data.get("access"))

    evaluated = {e.bpmn_id: e.payload for e in events(shared, view, "rule_evaluated")}
    slots = {slot["task"]: slot["slot"] for slot in archetype["decision_slots"]}
    assert set(evaluated) == set(slots), (code, sorted(evaluated))
    for task, payload in evaluated.items():  # each slot ran the product's own decision
        assert payload["decision"].startswith(product["bindings"]["decisions"][slots[task]] + "@")
    if "access" in evaluated:  # a clean applicant: no rule fires at all
        assert evaluated["access"]["result"]["outcome"] == "approve" and evaluated["access"]["hits"] == [], code
    user_tasks = {task["id"] for task in archetype["user_tasks"] if task["form"] != "connector-exception"}
    assert set(steps) - {m["message"] for m in archetype["messages"]} <= user_tasks, steps


def test_an_offered_policy_guarantee_is_priced_not_failed(shared: CreditFlow, tmp_path: Path) -> None:
    """ZC-SHESHINONGYE offers 政策性担保 and binds the pricing rule, which did not accept it: every such
    application failed at pricing, after it was taken."""
    code = "ZC-SHESHINONGYE"
    assert "policy_guarantee" in CATALOG[code]["parameters"]["guarantee_types"]
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    data["guarantee_type"] = "policy_guarantee"
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="POLICY-1")
    view, steps = drive(shared, view)
    assert end_of(shared, view) in ends(ARCHETYPES[CATALOG[code]["archetype"]], "approved"), steps
    (pricing,) = [e.payload for e in events(shared, view, "rule_evaluated") if e.bpmn_id == "pricing"]
    # grade A: a 300,000 limit and a 40 bp spread, times the policy guarantee's 1.2 and less its 30 bp
    assert pricing["result"] == {"grade": "A", "limit": 360000, "rate_bp": 10}


@pytest.mark.parametrize("first", ["main_investigation", "co_investigation"])
def test_a_return_into_the_parallel_investigation_works_whichever_officer_finished_last(
    shared: CreditFlow, tmp_path: Path, first: str
) -> None:
    """After a parallel join SpiffWorkflow keeps the review under the branch that arrived last: a return
    to the other branch's step alone used to leave the review running, and wrote its row twice (409)."""
    code = "FND-DAINONG"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key=f"RET-{first}")
    view = replace(view, tasks=sorted(view.tasks, key=lambda task: task.bpmn_id != first))
    view, steps = drive(shared, view, until=lambda task: task.bpmn_id == "review")
    assert steps == [first, *({"main_investigation", "co_investigation"} - {first})]
    (review,) = view.tasks
    view = shared.tasks.return_to(SYSTEM, review.id, "main_investigation", "补充经营流水")
    reopened = sorted(task.bpmn_id for task in view.tasks)
    assert "review" not in reopened and "main_investigation" in reopened
    view, _ = drive(shared, view)
    assert end_of(shared, view) in ends(ARCHETYPES[CATALOG[code]["archetype"]], "approved")


def test_a_return_past_the_contract_voids_the_old_contract_and_never_offers_a_ballot(
    shared: CreditFlow, tmp_path: Path
) -> None:
    """Returning from 面签 to a step before the contract: the contract steps make a new one, and the
    sealed contract with the old terms is void (it verified as binding). A committee ballot is not a
    step to return to: reopened alone it lost its member and put the application in error."""
    code = "FND-DAINONG"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="RET-SIGN")
    view, steps = drive(shared, view, until=lambda task: task.bpmn_id == "face_signing")
    assert "committee_vote" in steps
    old = view.instance.data["sealed_contract"]["document_id"]
    (signing,) = view.tasks
    offered = [step.bpmn_id for step in shared.tasks.get(SYSTEM, signing.id).return_steps]
    assert "committee_vote" not in offered and {"senior_approval", "review", "main_investigation"} <= set(offered)
    with pytest.raises(InvalidInput):
        shared.tasks.return_to(SYSTEM, signing.id, "committee_vote", "请重新表决")

    view = shared.tasks.return_to(SYSTEM, signing.id, "senior_approval", "利率需调整")
    voided = {d.id: d.void_reason for d in shared.documents.list(SYSTEM, view.instance.id) if d.voided_at}
    assert len(voided) == 3 and set(voided.values()) == {"superseded: 退回至「高级审批人签批」"}
    assert shared.documents.verify(SYSTEM, old)["binding"] is False
    view, _ = drive(shared, view, until=lambda task: task.bpmn_id == "face_signing")
    new = view.instance.data["sealed_contract"]["document_id"]
    (signing,) = view.tasks
    view = shared.tasks.complete(SYSTEM, signing.id, face_signed(view))
    assert view.instance.status == "completed" and end_of(shared, view) in ends(
        ARCHETYPES["a4_standard_offline"], "approved"
    )
    assert shared.documents.verify(SYSTEM, new)["binding"] is True and new != old
    assert shared.instances.verify_audit(SYSTEM, view.instance.id).ok


UNANSWERED_ACCOUNT = "6222020000000000000"  # the demo core banking never answers a transfer to it


def test_a_payout_core_banking_never_answered_keeps_the_contract_and_bars_a_return_past_it(
    shared: CreditFlow, tmp_path: Path
) -> None:
    """The transfer timed out: the money may have moved. Aborting the application must not void the
    contract the borrower may now owe on, and a return to a step before the contract would make a new
    contract number that core banking's duplicate check does not know, so it is refused."""
    code = "FND-DAINONG"
    publish(shared, code, tmp_path)
    shared.organization.create_user(SYSTEM, LENDER_CODE, "payout_clerk", "放款岗", "payout-password-1")
    shared.organization.grant(SYSTEM, "payout_clerk", "disburser")
    applicant, data = application(CATALOG[code])
    data["account"] = UNANSWERED_ACCOUNT
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="PAY-UNKNOWN")
    view, _ = drive(shared, view, until=lambda task: task.bpmn_id == "face_signing")
    (signing,) = view.tasks
    view = shared.tasks.complete(SYSTEM, signing.id, face_signed(view))
    (exception,) = view.tasks
    assert exception.bpmn_id == "disburse_exception" and view.instance.data["disbursement_error"]["outcome_unknown"]
    (failed,) = events(shared, view, "connector_failed")
    assert (failed.bpmn_id, failed.payload["connector"], failed.payload["outcome_unknown"]) == (
        "disburse",
        "core_banking/disburse",
        True,
    )
    documents = [d.id for d in shared.documents.list(SYSTEM, view.instance.id)]
    assert len(documents) == 3

    with pytest.raises(Conflict, match="settle the payout first"):
        shared.tasks.return_to(SYSTEM, exception.id, "senior_approval", "利率需调整")
    assert shared.instances.get(SYSTEM, view.instance.id).instance.version == view.instance.version  # nothing written

    abort = {"exception_action": "abort", "exception_note": "核心系统无应答，终止流程"}
    view = shared.tasks.complete(SYSTEM, exception.id, abort)
    assert end_of(shared, view) == "end_disburse_aborted"
    assert [d.voided_at for d in shared.documents.list(SYSTEM, view.instance.id)] == [None] * 3
    sealed = view.instance.data["sealed_contract"]["document_id"]
    assert shared.documents.verify(SYSTEM, sealed)["binding"] is True
    assert events(shared, view, "contract_voided") == []
    (kept,) = events(shared, view, "contract_kept")
    assert (kept.payload["cause"], sorted(kept.payload["documents"])) == ("payout_unconfirmed", sorted(documents))
    with shared.db.transaction() as session:
        clerk = load_principal(session, session.scalars(select(User).where(User.username == "payout_clerk")).one())
    (told,) = shared.notifications.list(clerk, topic="application.payout_unconfirmed").items
    assert told.payload["instance_id"] == view.instance.id and "请与核心系统核实" in told.summary
    assert shared.instances.verify_audit(SYSTEM, view.instance.id).ok


@pytest.mark.parametrize(
    ("calls", "state"),
    [
        ([], None),
        ([("disburse", True)], "unconfirmed"),
        ([("disburse", True), ("disburse", False)], None),  # refused outright on retry: it never landed
        ([("disburse", False), ("disburse", True)], "unconfirmed"),
        ([("disburse", True), ("disbursed", None)], "moved"),
        ([("bureau", True)], None),  # a credit report that timed out moves no money
        ([("renew", True)], "unconfirmed"),
    ],
)
def test_the_audit_trail_tells_whether_a_payout_may_have_moved(calls: list[tuple[str, Any]], state: str | None) -> None:
    connectors = {"disburse": "core_banking/disburse", "renew": "core_banking/renew", "bureau": "credit_bureau/score"}
    trail = [
        ("disbursed", {})
        if name == "disbursed"
        else ("connector_failed", {"connector": connectors[name], "outcome_unknown": unknown})
        for name, unknown in calls
    ]
    assert payout_state(trail) == state


def test_a_step_cannot_grant_more_than_was_applied_for_or_the_product_allows(
    shared: CreditFlow, tmp_path: Path
) -> None:
    code, step = next(
        (code, task["id"])
        for code, product in sorted(CATALOG.items())
        for task in ARCHETYPES[product["archetype"]]["user_tasks"]
        if task["form"] == "approval"
    )
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key=f"CAP-{code}")
    view, steps = drive(shared, view, until=lambda task: task.bpmn_id == step)
    assert view.tasks, (code, steps, view.instance.status)
    (task,) = view.tasks
    requested = Decimal(str(data["amount"]))
    highest = Decimal(CATALOG[code]["parameters"]["amount"]["max"])
    rate = {"approved_rate_bp": CATALOG[code]["parameters"]["rate"]["min_bp"]}
    for amount, code_, words in (
        (requested + 1, "at_most", f"must not exceed the {requested} applied for"),
        (highest + 1, "product_range", "the product's range"),
    ):
        with pytest.raises(InvalidInput) as refused:
            shared.tasks.complete(SYSTEM, task.id, {"decision": "approve", "approved_amount": str(amount), **rate})
        (problem,) = refused.value.problems
        assert problem["field"] == "approved_amount" and problem["code"] == code_ and words in problem["message"]
    # nor may a step rewrite what the applicant gave: the contract prints the term and pays to the account
    with pytest.raises(InvalidInput) as refused:
        rewrite = {"term_months": 120, "account": "6222029999999999999"}
        shared.tasks.complete(
            SYSTEM, task.id, {"decision": "approve", "approved_amount": str(requested), **rate, **rewrite}
        )
    assert [(p["field"], p["code"]) for p in refused.value.problems] == [
        ("account", "unknown"),
        ("term_months", "unknown"),
    ]
    # nor more than the limit the product's pricing rule decided (approvers granted 800,000 on a 300,000 limit)
    limit = Decimal(str(shared.tasks.get(SYSTEM, task.id).data["pricing"]["limit"]))
    assert limit < requested, (code, limit, requested)
    with pytest.raises(InvalidInput) as refused:
        shared.tasks.complete(SYSTEM, task.id, {"decision": "approve", "approved_amount": str(requested), **rate})
    assert [(p["field"], p["code"]) for p in refused.value.problems] == [("approved_amount", "rule_limit")]
    # and at a rate within the product's spread (offline loans were all signed at the floor: nobody set one)
    above = {"approved_rate_bp": CATALOG[code]["parameters"]["rate"]["max_bp"] + 1}
    with pytest.raises(InvalidInput) as refused:
        shared.tasks.complete(SYSTEM, task.id, {"decision": "approve", "approved_amount": f"{limit:.2f}", **above})
    assert [(p["field"], p["code"]) for p in refused.value.problems] == [("approved_rate_bp", "product_range")]
    view = shared.tasks.complete(SYSTEM, task.id, {"decision": "approve", "approved_amount": f"{limit:.2f}", **rate})
    assert task.id not in {t.id for t in view.tasks}
    assert view.instance.data["term_months"] == data["term_months"] and view.instance.data["account"] == data["account"]


# -- Task B: 薪e贷 on the instant archetype with its real decisions ---------------------------------------------

INSTANT = "XEKD-XIN"


def access_rows() -> list[dict[str, Any]]:
    """The xed-access decision table's rows."""
    content = json.loads((RULES_DIR / "xed-access.json").read_text("utf-8"))
    (table,) = [node for node in content["nodes"] if node["type"] == "decisionTableNode"]
    return table["content"]["rules"]


def single_field_rule(field: str, cell: str) -> dict[str, str]:
    """The one access rule that tests only ``field`` against ``cell``, as the hit it produces."""
    (row,) = [
        row
        for row in access_rows()
        if {key for key in row if key.startswith("in_") and row[key]} == {f"in_{field}"} and row[f"in_{field}"] == cell
    ]
    return {key: json.loads(row[f"out_{key}"]) for key in ("id", "level", "action", "reason")}


@pytest.fixture
def instant(shared: CreditFlow, tmp_path: Path) -> CreditFlow:
    assert CATALOG[INSTANT]["archetype"] == "a1_instant_online"
    publish(shared, INSTANT, tmp_path)
    return shared


def announced(platform: CreditFlow, view: InstanceView) -> list[tuple[str, Any]]:
    """The application's lifecycle messages (topic, approved amount), oldest first."""
    with platform.db.transaction() as session:
        messages = session.scalars(select(OutboxMessage).where(OutboxMessage.topic.startswith("application.")))
        found = [m for m in messages if m.payload["instance_id"] == view.instance.id]
    return [
        (m.topic, m.payload.get("approved_amount", m.payload.get("amount"))) for m in sorted(found, key=lambda m: m.id)
    ]


def apply_instant(platform: CreditFlow, key: str, *, id_number: str | None = None, **changes: Any) -> InstanceView:
    applicant, data = application(CATALOG[INSTANT], **changes)
    applicant |= {"id_number": id_number} if id_number else {}
    return platform.products.apply(lender(platform), INSTANT, applicant=applicant, data=data, business_key=key)


def test_instant_product_approves_and_disburses_without_a_human(instant: CreditFlow) -> None:
    view = apply_instant(instant, "XIN-OK")
    assert view.tasks == [] and view.instance.status == "running" and "disbursement" not in view.instance.data
    # the channel shows the borrower the sealed PDF and reports the signature on exactly those bytes
    sealed, content = instant.documents.content(SYSTEM, view.instance.data["sealed_contract"]["document_id"])
    assert sealed.kind == "contract_sealed"
    signature = {
        "contract_sha256": hashlib.sha256(content).hexdigest(),
        "signed_at": "2026-12-01T09:30:00+08:00",
        "channel": "mobile_banking",
        "evidence_no": "ZJBQ-XIN-OK",
    }
    view = instant.instances.send_message(SYSTEM, view.instance.id, "contract_signed", signature)
    assert view.tasks == [] and end_of(instant, view) == "end_approved"
    data = view.instance.data
    assert data["signature"] == signature
    assert data["access"] == {"outcome": "approve", "level": "none", "hits": []}
    assert data["score"] == data["scorecard"]["score"]  # the archetype hands the score to pricing
    limit, amount = Decimal(str(data["pricing"]["limit"])), Decimal(data["amount"])
    assert data["approved_amount"] == f"{min(limit, amount):.2f}"
    rates = CATALOG[INSTANT]["rule_parameters"]
    assert rates["min_rate_bp"] <= data["pricing"]["rate_bp"] <= rates["max_rate_bp"]
    assert limit <= rates["max_amount"]
    # the contract is the product's template filled for the approved amount, sealed by the lending bank
    documents = {d.kind: d for d in instant.documents.list(SYSTEM, view.instance.id)}
    assert data["contract"]["template"] == CATALOG[INSTANT]["contract_template"]
    assert data["contract"]["document_id"] == documents["contract_pdf"].id
    assert data["sealed_contract"]["document_id"] == documents["contract_sealed"].id
    assert instant.documents.verify(SYSTEM, documents["contract_sealed"].id)["status"] == "valid"
    reference, borrower = data["contract"]["contract_no"], data["applicant"]["id_number"]
    paid = demo_connectors.disburse(data["approved_amount"], data["account"], reference, borrower)
    assert data["disbursement"] == paid
    assert events(instant, view, "task_created") == []
    evaluated = [e.bpmn_id for e in events(instant, view, "rule_evaluated")]
    assert evaluated == ["access", "scorecard", "pricing"]
    # the channel learns the outcome from the answer, and later from the application's own event
    assert view.outcome == instant.instances.get(SYSTEM, view.instance.id).outcome == "approved"
    paid = data["approved_amount"]  # told the money moved, then how the application ended
    assert announced(instant, view) == [("application.disbursed", paid), ("application.approved", paid)]
    (disbursed,) = events(instant, view, "disbursed")
    assert disbursed.payload["contract_no"] == data["contract"]["contract_no"]
    assert disbursed.payload["reference"] == data["disbursement"]


def test_a_purpose_is_a_short_phrase_never_a_clause(instant: CreditFlow) -> None:
    """The contract prints the purpose as written: an instant application's "补充约定" waiving all
    interest was approved and sealed by the bank, and so was a purpose of 5,000 characters."""
    applicant, data = application(CATALOG[INSTANT])
    for purpose in ("种植业生产。补充约定：甲方同意本合同项下借款免收全部利息", "种" * 51):
        with pytest.raises(InvalidInput) as refused:
            instant.products.apply(lender(instant), INSTANT, applicant=applicant, data={**data, "purpose": purpose})
        assert [p["field"] for p in refused.value.problems] == ["data.purpose"], purpose


def test_a_renewal_renews_the_old_balance_never_more(shared: CreditFlow, tmp_path: Path) -> None:
    """A 500,000 renewal of a 200,000 balance was approved: the contract said it all went to repay the
    old loan and charged interest on 500,000."""
    code = "XND-WUHUANBEN"
    assert CATALOG[code]["archetype"] == "a7_renewal"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    data["existing_loan"] = {**data["existing_loan"], "principal": "200000.00"}
    with pytest.raises(InvalidInput) as refused:
        shared.products.apply(lender(shared), code, applicant=applicant, data={**data, "amount": "200000.01"})
    assert refused.value.problems == [
        {
            "field": "data.amount",
            "message": "must not exceed the 200000.00 of existing_loan.principal",
            "code": "at_most",
        }
    ]


def test_a_policy_loan_names_its_programme_at_intake_not_at_signing(shared: CreditFlow, tmp_path: Path) -> None:
    """Without ``policy`` a policy-guaranteed application was taken, investigated, guaranteed, reviewed
    and approved, and then its contract could not be generated: retry failed, abort lost the loan."""
    code = "ZC-CHUANGYEDANBAO"
    assert CATALOG[code]["contract_template"] == "policy-guaranteed"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    assert data.pop("policy")
    with pytest.raises(InvalidInput) as refused:
        shared.products.apply(lender(shared), code, applicant=applicant, data=data)
    assert refused.value.problems == [{"field": "data.policy", "message": "the contract (policy-guaranteed) needs it"}]


def test_a_rule_input_must_be_a_value_the_rules_read(shared: CreditFlow, tmp_path: Path) -> None:
    """``credit_household_rating: "优秀"`` and ``tax_grade: "优"`` were taken; after the officer's work the
    access rule failed on them and nobody could correct the application."""
    code = "FND-FANXIANGCHUANGYE"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    wrong = {**data, "credit_household_rating": "优秀", "tax_grade": "优"}
    with pytest.raises(InvalidInput) as refused:
        shared.products.apply(lender(shared), code, applicant=applicant, data=wrong)
    messages = {p["field"]: p["message"] for p in refused.value.problems}
    assert sorted(messages) == ["data.credit_household_rating", "data.tax_grade"]
    assert messages["data.tax_grade"].endswith("one of A, B, M, C, D")


def test_applications_are_checked_against_the_rule_decisions_their_version_froze(
    shared: CreditFlow, tmp_path: Path
) -> None:
    """The rule file changed on disk after publishing (tax grades in other words); the version on sale
    still runs the decision it froze, so what that decision reads is what an application is held to."""
    code = "FND-FANXIANGCHUANGYE"
    publish(shared, code, tmp_path)
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    content = json.loads((rules / "xed-access.json").read_text("utf-8"))
    (inputs,) = [node for node in content["nodes"] if node["type"] == "inputNode"]
    schema = json.loads(inputs["content"]["schema"])
    schema["properties"]["tax_grade"]["enum"] = ["甲", "乙", "丙"]
    inputs["content"]["schema"] = json.dumps(schema, ensure_ascii=False)
    (rules / "xed-access.json").write_text(json.dumps(content, ensure_ascii=False), "utf-8")
    after_the_change = ProductService(shared, rules)
    applicant, data = application(CATALOG[code])
    view = after_the_change.apply(lender(shared), code, applicant=applicant, data={**data, "tax_grade": "A"})
    assert view.instance.status == "running"
    with pytest.raises(InvalidInput) as refused:
        after_the_change.apply(lender(shared), code, applicant=applicant, data={**data, "tax_grade": "甲"})
    assert [p["field"] for p in refused.value.problems] == ["data.tax_grade"]


def test_a_borrower_has_one_open_application_per_product(instant: CreditFlow) -> None:
    """Five parallel submissions by one borrower, each with its own Idempotency-Key, were five loans."""
    first = apply_instant(instant, "XIN-ONE")
    assert first.instance.status == "running"  # sealed, waiting for the borrower's signature
    applicant, data = application(CATALOG[INSTANT])
    with pytest.raises(Conflict) as refused:
        instant.products.apply(lender(instant), INSTANT, applicant=applicant, data=data, business_key="XIN-TWO")
    assert refused.value.problems == [
        {"field": "applicant.id_number", "message": f"has an open application on {INSTANT}: {first.instance.id}"}
    ]
    # the race the check cannot see is the database's: a unique index on open applications
    with instant.db.transaction() as session:
        binding = instant.products.binding(session, first.instance.product_version_id)
    started = {**data, "applicant": applicant, "product": {"code": INSTANT}}
    with pytest.raises(Conflict):
        instant.instances.start(lender(instant), binding=binding, business_key="XIN-RACE", data=started)
    with instant.db.transaction() as session:
        keys = set(
            session.scalars(select(ProcessInstance.business_key).where(ProcessInstance.business_key.like("XIN-%")))
        )
    assert "XIN-ONE" in keys and not {"XIN-TWO", "XIN-RACE"} & keys
    # once the first has ended, the borrower applies again
    ended = instant.instances.cancel(SYSTEM, first.instance.id, reason="客户撤回")
    assert ended.instance.status == "cancelled"
    again = instant.products.apply(lender(instant), INSTANT, applicant=applicant, data=data, business_key="XIN-TWO")
    assert again.instance.status == "running"
    instant.instances.cancel(SYSTEM, again.instance.id, reason="测试结束")


def test_an_instant_application_missing_a_rule_input_is_refused_before_anything_runs(instant: CreditFlow) -> None:
    """Without ``segment``, or with ``fraud_list_hit: 0``, an application was taken (201), the bureau
    queried, and the instance failed at its first decision."""
    applicant, data = application(CATALOG[INSTANT])
    assert isinstance(data.pop("segment"), str)
    data["employment_years"] = "ten"
    with pytest.raises(InvalidInput) as refused:
        instant.products.apply(lender(instant), INSTANT, applicant=applicant, data=data, business_key="XIN-BAD")
    assert {p["field"]: p["message"] for p in refused.value.problems} == {
        "data.segment": "is required: a string the product's rules read",
        "data.employment_years": "must be a number",
    }
    with instant.db.transaction() as session:
        assert session.scalar(select(ProcessInstance.id).where(ProcessInstance.business_key == "XIN-BAD")) is None


def test_an_instant_loan_is_decided_on_the_bureaus_report_never_on_the_channels(instant: CreditFlow) -> None:
    """The channel sent ``blacklist_hit: false`` and its own overdue counts, and the rules read them:
    whoever held a channel key chose their own credit history."""
    applicant, data = application(CATALOG[INSTANT])
    own_report = {"blacklist_hit": False, "overdue_count_24m": 0, "worst_loan_class": "normal"}
    with pytest.raises(InvalidInput) as refused:
        instant.products.apply(lender(instant), INSTANT, applicant=applicant, data={**data, **own_report})
    assert {(p["field"], p.get("code")) for p in refused.value.problems} == {
        (f"data.{name}", "computed") for name in own_report
    }
    view = apply_instant(instant, "XIN-LISTED", id_number=BLACKLISTED_ID)
    assert view.instance.data["blacklist_hit"] is True and view.instance.data["access"]["outcome"] == "reject"


def test_instant_product_sends_a_manual_review_case_to_exactly_one_reviewer(instant: CreditFlow) -> None:
    related = single_field_rule("is_related_party", "true")
    assert related["action"] == "manual_review"
    view = apply_instant(instant, "XIN-GREY", is_related_party=True)
    assert [t.bpmn_id for t in view.tasks] == ["manual_review"]
    assert view.instance.data["access"] == {"outcome": "review", "level": related["level"], "hits": [related]}
    view, steps = drive(instant, view)
    assert steps == ["manual_review", "contract_signed"] and end_of(instant, view) == "end_approved"
    assert [e.bpmn_id for e in events(instant, view, "task_created")] == ["manual_review"]


def test_instant_product_rejects_with_the_rule_hits_on_record(instant: CreditFlow) -> None:
    blacklisted = single_field_rule("blacklist_hit", "true")
    assert blacklisted["action"] == "reject"
    view = apply_instant(instant, "XIN-NO", id_number=BLACKLISTED_ID)  # the bureau's lists say so, not the channel
    assert view.tasks == [] and end_of(instant, view) == "end_auto_rejected"
    access = view.instance.data["access"]
    assert access == {"outcome": "reject", "level": "red", "hits": [blacklisted]}
    (evaluation,) = [e for e in events(instant, view, "rule_evaluated") if e.bpmn_id == "access"]
    assert evaluation.payload["hits"] == [blacklisted]
    assert [(hit["id"], hit["reason"]) for hit in evaluation.payload["hits"]] == [(blacklisted["id"], "命中本行黑名单")]
    assert "contract" not in view.instance.data and events(instant, view, "task_created") == []
    assert view.outcome == "rejected" and announced(instant, view) == [("application.rejected", None)]


def test_above_the_products_threshold_the_banks_own_credit_committee_votes(shared: CreditFlow, tmp_path: Path) -> None:
    """The threshold is the product's and the voters are the bank's committee members: an applicant's
    own ``committee_threshold`` or ``committee_members`` used to decide whether and by whom it was voted."""
    code = "XND-LONGTOU"
    assert CATALOG[code]["archetype"] == "a4_standard_offline"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    data["amount"] = "1500000.00"
    for smuggled in ({"committee_threshold": "99999999.00"}, {"committee_members": ["ly_officer"]}):
        with pytest.raises(InvalidInput) as refused:
            shared.products.apply(lender(shared), code, applicant=applicant, data={**data, **smuggled})
        assert [p["field"] for p in refused.value.problems] == [f"data.{next(iter(smuggled))}"]
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="COMMITTEE-1")
    view, _ = drive(shared, view, until=lambda task: task.bpmn_id == "committee_vote")
    voters = sorted(shared.tasks.get(SYSTEM, task.id).data["committee_member"] for task in view.tasks)
    assert voters == list(COMMITTEE)
    assert view.instance.data["committee_threshold"] == "1000000.00"

    # each ballot is its member's own: assigned to them, offered to nobody else, cast by nobody else (a
    # ballot offered to the whole committee was recorded under the loop's name, not the voter's)
    with shared.db.transaction() as session:
        members = {
            user.username: load_principal(session, user)
            for user in session.scalars(select(User).where(User.username.in_(COMMITTEE)))
        }
    ballots = {shared.tasks.get(SYSTEM, task.id).data["committee_member"]: task for task in view.tasks}
    assert {name: task.assignee_id for name, task in ballots.items()} == {
        name: members[name].user_id for name in COMMITTEE
    }
    someone_elses = (ballots["committee_a"].id, {"vote": "approve", "opinion": "同意"})
    with pytest.raises(Conflict):
        shared.tasks.complete(members["committee_b"], *someone_elses)
    overriding = replace(members["committee_b"], permissions=ALL_PERMISSIONS)  # not even with tasks.override
    with pytest.raises(Forbidden):
        shared.tasks.complete(overriding, *someone_elses)
    votes = {"committee_a": "approve", "committee_b": "reject", "committee_c": "approve"}
    for name, task in ballots.items():
        ballot = {"vote": votes[name], "opinion": f"{name}的意见"}
        view = shared.tasks.complete(
            members[name], task.id, ballot | ({"conditions": "追加配偶共同还款"} if name == "committee_c" else {})
        )
    recorded = {b["member"]: (b["vote"], b.get("conditions")) for b in view.instance.data["votes"]}
    assert recorded == {
        "committee_a": ("approve", None),
        "committee_b": ("reject", None),
        "committee_c": ("approve", "追加配偶共同还款"),
    }
    assert [t.bpmn_id for t in view.tasks] == ["senior_approval"]


# -- Contracts of loans never paid out are void ----------------------------------------------------------------

DECLINED = "withdrawn: 借款人放弃签约"  # the offline archetypes' end when the borrower declines at 面签


def test_a_contract_the_borrower_declines_at_face_signing_is_void(shared: CreditFlow, tmp_path: Path) -> None:
    code = "FND-DAINONG"
    assert CATALOG[code]["archetype"] == "a4_standard_offline"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="DECLINED-1")
    view, _ = drive(shared, view, until=lambda task: task.bpmn_id == "face_signing")
    sealed_id = view.instance.data["sealed_contract"]["document_id"]
    assert shared.documents.verify(SYSTEM, sealed_id)["binding"] is True  # sealed; the borrower has yet to sign

    (signing,) = view.tasks
    declined = {"signing_result": "declined", "signing_note": "客户拒绝签约，认为利率偏高"}
    view = shared.tasks.complete(SYSTEM, signing.id, declined)
    assert end_of(shared, view) == "end_signing_declined" and view.outcome == "withdrawn"
    assert events(shared, view, "disbursed") == []
    documents = shared.documents.list(SYSTEM, view.instance.id)
    assert [(d.kind, d.voided_at, d.void_reason) for d in documents] == [
        (kind, shared.clock.now(), DECLINED) for kind in ("contract_docx", "contract_pdf", "contract_sealed")
    ]
    voided = events(shared, view, "contract_voided")
    assert {e.payload["document_id"]: (e.payload["contract_no"], e.payload["reason"]) for e in voided} == {
        d.id: (view.instance.data["contract"]["contract_no"], DECLINED) for d in documents
    }
    report = shared.documents.verify(SYSTEM, sealed_id)
    assert (report["status"], report["binding"], report["void"]) == (
        "valid",
        False,
        {"at": shared.clock.now(), "reason": DECLINED},
    )
    audit = shared.instances.verify_audit(SYSTEM, view.instance.id)
    assert audit.ok and audit.problems == []


def test_a_paid_loan_keeps_its_contract_however_the_application_ends(shared: CreditFlow, tmp_path: Path) -> None:
    """A policy loan is paid out before its subsidy filing: cancelled while it waits for the filing, it
    ends ``cancelled``, yet the borrower has the money and the contract binds them both."""
    code = "ZC-CHUANGYEDANBAO"
    assert CATALOG[code]["archetype"] == "a5_guaranteed_policy"
    publish(shared, code, tmp_path)
    applicant, data = application(CATALOG[code])
    assert data["interest_subsidy"] is True
    view = shared.products.apply(lender(shared), code, applicant=applicant, data=data, business_key="PAID-1")
    view, _ = drive(shared, view, until=lambda task: task.bpmn_id == "face_signing")
    (signing,) = view.tasks
    view = shared.tasks.complete(SYSTEM, signing.id, face_signed(view))
    assert view.instance.status == "running" and len(events(shared, view, "disbursed")) == 1  # awaits the filing

    view = shared.instances.cancel(SYSTEM, view.instance.id, "贴息备案材料无法补齐")
    assert view.outcome == "cancelled"
    documents = shared.documents.list(SYSTEM, view.instance.id)
    assert [(d.voided_at, d.void_reason) for d in documents] == [(None, None)] * 3
    assert events(shared, view, "contract_voided") == []
    assert shared.documents.verify(SYSTEM, view.instance.data["sealed_contract"]["document_id"])["binding"] is True
