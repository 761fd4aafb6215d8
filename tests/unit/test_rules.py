"""The rules package against the real zen-engine: shipped decisions, fail-closed inputs, lint, parameters, threads."""

from __future__ import annotations

import copy
import dataclasses
import json
import runpy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest

from engine.rules import (
    ParameterError,
    RuleConflictError,
    RuleDefinitionError,
    RuleEngine,
    RuleEvaluationError,
    apply_parameters,
    lint_decision,
    placeholders,
)
from engine.rules.parameters import literal

RULES_DIR = Path(__file__).resolve().parents[2] / "product_configs" / "rules"
SHIPPED = ("xed-access", "segment-scorecard", "pricing")

CLEAN_SALARIED: dict[str, Any] = {
    "segment": "salaried",
    "applied_amount": Decimal("60000.00"),
    "age": 35,
    "province_code": "37",
    "occupation_category": "enterprise_employee",
    "monthly_income": Decimal("8000.00"),
    "debt_to_income": Decimal("0.30"),
    "current_overdue_count": 0,
    "current_overdue_amount": Decimal("0.00"),
    "max_overdue_days_24m": 0,
    "overdue_count_24m": 0,
    "max_consecutive_overdue_24m": 0,
    "credit_inquiries_3m": 1,
    "credit_inquiries_6m": 2,
    "lender_count": 1,
    "existing_loans_count": 1,
    "guarantee_exposure": Decimal("0.00"),
    "guaranteed_overdue_count": 0,
    "credit_card_utilization": Decimal("0.30"),
    "court_enforcement_records": 0,
    "dishonest_debtor": False,
    "blacklist_hit": False,
    "fraud_list_hit": False,
    "worst_loan_class": "normal",
    "special_transactions_5y": 0,
    "has_credit_history": True,
    "is_related_party": False,
    "employment_years": Decimal("5"),
    "social_insurance_months": 60,
    "provident_fund_months": 48,
}
# non-local, debt-to-income and inquiries each at the yellow line of salaried 5万-20万: together a manual review
BORDERLINE = {**CLEAN_SALARIED, "province_code": "41", "debt_to_income": Decimal("0.52"), "credit_inquiries_3m": 3}
BAD_FARMER = {
    **CLEAN_SALARIED,
    "segment": "farmer",
    "credit_household_rating": "AA",
    "blacklist_hit": True,
    "current_overdue_count": 1,
    "current_overdue_amount": Decimal("3200.00"),
    "max_overdue_days_24m": 95,
    "overdue_count_24m": 6,
    "max_consecutive_overdue_24m": 3,
}
FARMER_SCORING = {
    "segment": "farmer",
    "age": 42,
    "employment_years": 15,
    "debt_to_income": Decimal("0.30"),
    "overdue_count_24m": 0,
    "credit_inquiries_6m": 1,
    "household_annual_income": Decimal("90000.00"),
    "farm_area_mu": Decimal("30.5"),
    "credit_household_rating": "AA",
}


def load(name: str, suffix: str = "") -> dict[str, Any]:
    return json.loads((RULES_DIR / f"{name}{suffix}.json").read_text("utf-8"))


def published(name: str, **overrides: Any) -> dict[str, Any]:
    """The shipped template with the provincial defaults (or a bank's overrides) written in."""
    defaults = load(name, ".params") if (RULES_DIR / f"{name}.params.json").exists() else {}
    return apply_parameters(load(name), {**defaults, **overrides})


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    rules = RuleEngine()
    for name in SHIPPED:
        rules.register(name, published(name))
    return rules


def hit_ids(engine: RuleEngine, context: dict[str, Any], key: str = "xed-access") -> list[str]:
    return [hit["id"] for hit in engine.evaluate(key, context).hits]


# ── the shipped decisions ──────────────────────────────────────────────────────────────────


def test_clean_applicant_is_approved_without_hits(engine: RuleEngine) -> None:
    result = engine.evaluate("xed-access", CLEAN_SALARIED)
    assert result.result == {"outcome": "approve", "level": "none", "hits": []}
    assert result.hits == []
    assert result.elapsed_ms > 0


def test_borderline_applicant_goes_to_manual_review(engine: RuleEngine) -> None:
    result = engine.evaluate("xed-access", BORDERLINE)
    assert (result.result["outcome"], result.result["level"]) == ("review", "orange")
    assert result.hits == [
        {
            "id": "XED-A-0013",
            "level": "orange",
            "action": "manual_review",
            "reason": "非本省客户，须核实在本行服务区域内居住或经营",
        },
        {"id": "XED-A-0054", "level": "yellow", "action": "warn", "reason": "工薪·5万至20万元：0.45≤负债收入比<0.55"},
        {
            "id": "XED-A-0090",
            "level": "yellow",
            "action": "warn",
            "reason": "工薪·5万至20万元：3次≤近3个月贷款及信用卡审批查询次数<5次",
        },
        {
            "id": "XED-A-0571",
            "level": "orange",
            "action": "manual_review",
            "reason": "工薪·5万至20万元：近3个月贷款及信用卡审批查询次数≥3次且负债收入比≥0.45，两项预警信号叠加",
        },
    ]


def test_bad_applicant_is_rejected_with_every_reason(engine: RuleEngine) -> None:
    result = engine.evaluate("xed-access", BAD_FARMER)
    assert (result.result["outcome"], result.result["level"]) == ("reject", "red")
    assert [hit["id"] for hit in result.hits] == ["XED-A-0004", "XED-A-0016", "XED-A-0017", "XED-A-0311", "XED-A-0323"]
    assert {hit["action"] for hit in result.hits} == {"reject"}
    assert result.hits[0]["reason"] == "命中本行黑名单"


def test_warnings_alone_still_approve(engine: RuleEngine) -> None:
    result = engine.evaluate("xed-access", {**CLEAN_SALARIED, "has_credit_history": False})
    assert (result.result["outcome"], result.result["level"]) == ("approve", "yellow")
    assert [(hit["id"], hit["action"]) for hit in result.hits] == [("XED-A-0022", "warn")]


def test_bank_parameters_move_the_thresholds(engine: RuleEngine) -> None:
    older = {**CLEAN_SALARIED, "age": 63}
    assert hit_ids(engine, older) == ["XED-A-0031"]  # near retirement: a warning under the provincial maximum of 65
    engine.register("xed-access@max-age-60", published("xed-access", max_age=60))
    assert hit_ids(engine, older, key="xed-access@max-age-60") == ["XED-A-0002", "XED-A-0031"]


def test_segment_scorecard_adds_up_the_bins(engine: RuleEngine) -> None:
    result = engine.evaluate("segment-scorecard", FARMER_SCORING).result
    assert result["segment"] == "farmer"
    assert [item["variable"] for item in result["items"]] == [
        "base",
        "age",
        "employment_years",
        "household_annual_income",
        "farm_area_mu",
        "credit_household_rating",
        "debt_to_income",
        "overdue_count_24m",
        "credit_inquiries_6m",
    ]
    assert result["score"] == sum(item["points"] for item in result["items"]) == 750
    assert engine.evaluate("segment-scorecard", FARMER_SCORING).hits == []


def test_scorecards_differ_by_segment(engine: RuleEngine) -> None:
    salaried = {
        **{key: FARMER_SCORING[key] for key in ("age", "employment_years", "debt_to_income", "overdue_count_24m")},
        "segment": "salaried",
        "credit_inquiries_6m": 5,
        "monthly_income": Decimal("12000.00"),
        "employer_type": "state_owned",
        "social_insurance_months": 48,
    }
    result = engine.evaluate("segment-scorecard", salaried).result
    assert {item["variable"]: item["points"] for item in result["items"]} == {
        "base": 580,
        "age": 20,
        "employment_years": 30,
        "monthly_income": 30,
        "employer_type": 35,
        "social_insurance_months": 15,
        "debt_to_income": 15,
        "overdue_count_24m": 30,
        "credit_inquiries_6m": -15,
    }
    assert result["score"] == 740


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (
            {"score": 750, "segment": "farmer", "guarantee_type": "credit"},
            {"grade": "A", "limit": 300000, "rate_bp": 50},
        ),
        (  # 50万 x 1.5 is capped at {{max_amount}}, 60-40 bp floored at {{min_rate_bp}}
            {"score": 760, "segment": "small_business", "guarantee_type": "mortgage"},
            {"grade": "A", "limit": 300000, "rate_bp": 50},
        ),
        (
            {"score": Decimal("650.5"), "segment": "merchant", "guarantee_type": "guarantee"},
            {"grade": "C", "limit": 180000, "rate_bp": 130},
        ),
        ({"score": 590, "segment": "salaried", "guarantee_type": "credit"}, {"grade": "E", "limit": 0, "rate_bp": 300}),
    ],
)
def test_pricing_limits_and_rates(engine: RuleEngine, context: dict[str, Any], expected: dict[str, Any]) -> None:
    assert engine.evaluate("pricing", context).result == expected


def test_pricing_uses_the_banks_caps(engine: RuleEngine) -> None:
    engine.register("pricing@bank-b", published("pricing", max_amount=200000, max_rate_bp=250))
    result = engine.evaluate("pricing@bank-b", {"score": 590, "segment": "farmer", "guarantee_type": "credit"})
    assert result.result == {"grade": "E", "limit": 0, "rate_bp": 250}
    result = engine.evaluate("pricing@bank-b", {"score": 700, "segment": "farmer", "guarantee_type": "credit"})
    assert result.result["limit"] == 200000


def test_committed_access_table_is_the_generator_output() -> None:
    generator = runpy.run_path(str(RULES_DIR / "generate_xed_access.py"), run_name="generate_xed_access")
    rules = generator["all_rules"]()
    assert load("xed-access") == generator["decision"](rules)
    assert load("xed-access", ".fields") == {field: kind for field, (kind, _, _) in generator["FIELDS"].items()}
    assert len(rules) >= 1000


def test_access_rows_are_complete_and_unique() -> None:
    table = next(node for node in load("xed-access")["nodes"] if node["type"] == "decisionTableNode")["content"]
    rows = table["rules"]
    assert table["hitPolicy"] == "collect"
    assert len({row["_id"] for row in rows}) == len(rows) >= 1000
    actions = {"red": "reject", "orange": "manual_review", "yellow": "warn"}
    for row in rows:
        assert row["out_id"] == f'"{row["_id"]}"'
        level, action = json.loads(row["out_level"]), json.loads(row["out_action"])
        assert actions[level] == action, row["_id"]
        assert any("\u4e00" <= char <= "\u9fff" for char in json.loads(row["out_reason"])), row["_id"]


# ── inputs: fail closed, Decimal-safe ──────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("context", "field", "fragment"),
    [
        ({key: value for key, value in CLEAN_SALARIED.items() if key != "age"}, "age", "missing"),
        ({**CLEAN_SALARIED, "age": None}, "age", "invalid"),
        ({**CLEAN_SALARIED, "age": "35"}, "age", "invalid"),
        ({**CLEAN_SALARIED, "applied_amount": "50000.00"}, "applied_amount", "invalid"),
        ({**CLEAN_SALARIED, "segment": "retiree"}, "segment", "invalid"),
        ({**CLEAN_SALARIED, "guarantee_exposure": Decimal("-1")}, "guarantee_exposure", "invalid"),
        (  # salaried customers must supply their social-insurance record
            {key: value for key, value in CLEAN_SALARIED.items() if key != "social_insurance_months"},
            "social_insurance_months",
            "missing",
        ),
    ],
)
def test_missing_or_ill_typed_input_fails_naming_the_field(
    engine: RuleEngine, context: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(RuleEvaluationError) as caught:
        engine.evaluate("xed-access", context)
    assert caught.value.field == field
    assert f"'{field}'" in str(caught.value) and fragment in str(caught.value)
    assert caught.value.problems == [{"field": field, "message": str(caught.value)}]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (Decimal("12345678901234.567"), "without rounding"),
        (Decimal("NaN"), "without rounding"),
        (float("inf"), "not a finite number"),
        (2**70, "out of range"),
        (date(2026, 12, 1), "date values cannot be passed"),
    ],
)
def test_values_zen_cannot_hold_exactly_are_refused(engine: RuleEngine, value: Any, fragment: str) -> None:
    with pytest.raises(RuleEvaluationError, match=fragment) as caught:
        engine.evaluate("xed-access", {**CLEAN_SALARIED, "monthly_income": value})
    assert caught.value.field == "monthly_income"


def test_decimal_amounts_compare_exactly_at_tier_boundaries(engine: RuleEngine) -> None:
    # 200000.00 is the top of the 5万-20万 tier ((50000..200000]); a thin file there is a warning, above it a review
    at_boundary = {**CLEAN_SALARIED, "has_credit_history": False, "applied_amount": Decimal("200000.00")}
    assert hit_ids(engine, at_boundary)[:1] == ["XED-A-0022"]
    above = {**at_boundary, "applied_amount": Decimal("200000.01")}
    assert hit_ids(engine, above)[:1] == ["XED-A-0023"]
    as_floats = {key: float(value) if isinstance(value, Decimal) else value for key, value in at_boundary.items()}
    assert engine.evaluate("xed-access", as_floats).result == engine.evaluate("xed-access", at_boundary).result


def test_unknown_key_fails(engine: RuleEngine) -> None:
    with pytest.raises(RuleEvaluationError, match="no rule decision is registered under 'xed-access@nope'"):
        engine.evaluate("xed-access@nope", CLEAN_SALARIED)


def test_result_is_immutable(engine: RuleEngine) -> None:
    result = engine.evaluate("xed-access", CLEAN_SALARIED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.hits = []  # type: ignore[misc]


# ── registration ───────────────────────────────────────────────────────────────────────────


def test_registering_is_idempotent_and_versions_are_immutable() -> None:
    rules = RuleEngine()
    content = published("pricing")
    rules.register("pricing@1", content)
    rules.register("pricing@1", copy.deepcopy(content))  # same content: no-op
    assert "pricing@1" in rules and "pricing@2" not in rules
    assert rules.keys() == ["pricing@1"]
    with pytest.raises(RuleConflictError, match="pricing@1 is already registered with different content"):
        rules.register("pricing@1", published("pricing", max_amount=100000))
    assert rules.evaluate("pricing@1", {"score": 750, "segment": "farmer", "guarantee_type": "credit"}).result == {
        "grade": "A",
        "limit": 300000,
        "rate_bp": 50,
    }


def test_registering_content_that_cannot_fail_closed_is_refused() -> None:
    rules = RuleEngine()
    without_schema = valid_decision()
    without_schema["nodes"][0]["content"] = {}
    with pytest.raises(RuleDefinitionError, match="no JSON Schema"):
        rules.register("open", without_schema)
    cyclic = valid_decision()
    cyclic["edges"].append({"id": "back", "sourceId": "summary", "targetId": "access", "type": "edge"})
    with pytest.raises(RuleDefinitionError, match="cyclicGraph"):
        rules.register("cyclic", cyclic)
    assert rules.keys() == []


def test_threads_share_one_engine(engine: RuleEngine) -> None:
    contexts = [
        CLEAN_SALARIED,
        BORDERLINE,
        BAD_FARMER,
        *(
            {**CLEAN_SALARIED, "debt_to_income": Decimal(f"0.{n:02d}"), "credit_inquiries_3m": n % 5}
            for n in range(40, 80)
        ),
    ]
    expected = [engine.evaluate("xed-access", context).result for context in contexts]
    assert len({json.dumps(result) for result in expected}) > 3  # the contexts lead to different results
    threads = 8
    start = Barrier(threads)

    def work(offset: int) -> dict[int, list[dict[str, Any]]]:
        """Each thread walks the contexts from a different place, three times."""
        start.wait()
        seen: dict[int, list[dict[str, Any]]] = {}
        for _ in range(3):
            for index in [*range(offset, len(contexts)), *range(offset)]:
                seen.setdefault(index, []).append(engine.evaluate("xed-access", contexts[index]).result)
        return seen

    with ThreadPoolExecutor(max_workers=threads) as pool:
        outcomes = list(pool.map(work, range(0, 5 * threads, 5)))
    for seen in outcomes:
        assert seen == {index: [result] * 3 for index, result in enumerate(expected)}


# ── lint ───────────────────────────────────────────────────────────────────────────────────


def valid_decision() -> dict[str, Any]:
    """A small decision that passes the lint: input (schema) → table (collect) → expression → output."""
    schema = {
        "type": "object",
        "required": ["age", "segment"],
        "properties": {"age": {"type": "integer"}, "segment": {"type": "string"}},
    }
    return {
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "request", "content": {"schema": json.dumps(schema)}},
            {
                "id": "access",
                "type": "decisionTableNode",
                "name": "access",
                "content": {
                    "hitPolicy": "collect",
                    "inputs": [
                        {"id": "c_segment", "name": "segment", "field": "segment"},
                        {"id": "c_age", "name": "age", "field": "age"},
                    ],
                    "outputs": [{"id": "o_id", "name": "id", "field": "id"}],
                    "rules": [
                        {"_id": "R1", "c_age": "> 65", "o_id": '"R1"'},
                        {"_id": "R2", "c_segment": '"farmer"', "c_age": "[18..25)", "o_id": '"R2"'},
                    ],
                    "passThrough": False,
                    "outputPath": "hits",
                },
            },
            {
                "id": "summary",
                "type": "expressionNode",
                "name": "summary",
                "content": {"expressions": [{"id": "x", "key": "count", "value": "len(hits)"}]},
            },
            {"id": "out", "type": "outputNode", "name": "response", "content": {}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "access", "type": "edge"},
            {"id": "e2", "sourceId": "access", "targetId": "summary", "type": "edge"},
            {"id": "e3", "sourceId": "summary", "targetId": "out", "type": "edge"},
        ],
    }


DICTIONARY = {"age": "integer", "segment": "string"}


def node(decision: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(item for item in decision["nodes"] if item["id"] == node_id)


def set_schema(decision: dict[str, Any], schema: dict[str, Any]) -> None:
    node(decision, "in")["content"]["schema"] = json.dumps(schema)


def test_valid_decision_passes_and_runs() -> None:
    decision = valid_decision()
    assert lint_decision(decision, DICTIONARY) == []
    rules = RuleEngine()
    rules.register("small", decision)
    assert rules.evaluate("small", {"age": 70, "segment": "salaried"}).result == {"count": 1}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_decisions_pass_lint_once_parameters_are_applied(name: str) -> None:
    assert lint_decision(published(name), load(name, ".fields")) == []


def test_lint_refuses_a_template_with_placeholders_left() -> None:
    problems = lint_decision(load("xed-access"), load("xed-access", ".fields"))
    assert [problem["location"] for problem in problems] == [
        "信e贷准入规则/XED-A-0001/年龄",
        "信e贷准入规则/XED-A-0002/年龄",
        "信e贷准入规则/XED-A-0009/月收入",
        "信e贷准入规则/XED-A-0013/户籍或经营地省份代码",
    ]
    assert all("unfilled parameter placeholder" in problem["message"] for problem in problems)


def test_lint_reports_every_problem_at_once() -> None:
    decision = valid_decision()
    node(decision, "in")["content"] = {}  # no schema: missing fields would silently not match
    table = node(decision, "access")["content"]
    table["inputs"].append({"id": "c_agee", "name": "agee", "field": "agee"})
    table["rules"][0]["c_age"] = "> > 65"
    decision["nodes"].insert(
        3,
        {
            "id": "js",
            "type": "functionNode",
            "name": "enrich",
            "content": {"source": "export const handler = async (input) => input;"},
        },
    )
    problems = lint_decision(decision, DICTIONARY)
    assert [problem["location"] for problem in problems] == ["access/inputs/agee", "access/R1/age", "enrich", "request"]
    messages = [problem["message"] for problem in problems]
    assert "'agee'" in messages[0] and "data dictionary" in messages[0]
    assert "'> > 65' does not compile" in messages[1]
    assert "JavaScript" in messages[2]
    assert "no JSON Schema" in messages[3]


def _mutation(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``node_id.key.key…`` (list indexes as digits) to ``value``."""

    def apply(decision: dict[str, Any]) -> None:
        node_id, *keys = path.split(".")
        target: Any = node(decision, node_id)
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1] if isinstance(target, dict) else int(keys[-1])] = value

    return apply


def _add_node(kind: str, content: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda decision: decision["nodes"].append({"id": "extra", "type": kind, "name": "extra", "content": content})


@pytest.mark.parametrize(
    ("mutate", "location", "fragment"),
    [
        (_mutation("access.content.rules.0.c_age", "> 65 and"), "access/R1/age", "does not compile"),
        (_mutation("access.content.rules.0.o_id", '"R1'), "access/R1/id", "does not compile"),
        (_mutation("access.content.rules.0.o_id", ""), "access/R1/id", "expected a non-empty expression"),
        (_mutation("access.content.rules.0.c_age", "> agee"), "access/R1/age", "reads 'agee'"),
        (_mutation("access.content.rules.0.c_age", "> {{max_age}}"), "access/R1/age", "unfilled parameter"),
        (_mutation("access.content.inputs.1.field", "agee"), "access/inputs/age", "reads 'agee'"),
        (_mutation("access.content.hitPolicy", "priority"), "access/hitPolicy", "must be 'first' or 'collect'"),
        (_mutation("access.content.inputField", "applicants"), "access", "inputField"),
        (_mutation("summary.content.expressions.0.value", "len(hitz)"), "summary/count/value", "reads 'hitz'"),
        (_mutation("summary.content.expressions.0.value", "len(hits"), "summary/count/value", "does not compile"),
        (_mutation("in.content.schema", "{not json"), "request", "not valid JSON"),
        (_mutation("in.content.schema", json.dumps({"type": "object"})), "request", "no required fields"),
        (
            lambda decision: set_schema(
                decision,
                {"required": ["age"], "properties": {"age": {"type": "integer"}, "segment": {"type": "string"}}},
            ),
            "request/schema/segment",
            "not required",
        ),
        (
            lambda decision: set_schema(
                decision,
                {
                    "required": ["age", "segment"],
                    "properties": {"age": {"type": "string"}, "segment": {"type": "string"}},
                },
            ),
            "request/schema/age",
            "data dictionary says 'integer'",
        ),
        (_add_node("functionNode", {"source": "export const handler = () => ({})"}), "extra", "JavaScript"),
        (_add_node("customNode", {"kind": "x", "config": {}}), "extra", "host code"),
        (_add_node("decisionNode", {"key": "other.json"}), "extra", "sub-decision"),
        (_add_node("fooNode", {}), "extra", "unknown node type 'fooNode'"),
        (
            _add_node("switchNode", {"statements": [{"id": "s", "condition": "segment =="}]}),
            "extra/0/condition",
            "does not compile",
        ),
        (
            lambda decision: decision["edges"].append({"id": "e9", "sourceId": "out", "targetId": "ghost"}),
            "edges/e9",
            "does not connect",
        ),
    ],
)
def test_lint_finds_each_problem_kind(mutate: Callable[[dict[str, Any]], None], location: str, fragment: str) -> None:
    decision = valid_decision()
    mutate(decision)
    problems = lint_decision(decision, DICTIONARY)
    assert [problem["location"] for problem in problems] == [location]
    assert fragment in problems[0]["message"]


def test_lint_checks_a_node_hiding_behind_a_duplicate_id() -> None:
    decision = valid_decision()
    hidden = {"id": "summary", "type": "functionNode", "name": "enrich", "content": {"source": "export const x = 1"}}
    decision["nodes"].insert(2, hidden)
    problems = lint_decision(decision, DICTIONARY)
    assert [problem["location"] for problem in problems] == ["enrich", "enrich"]
    assert problems[0]["message"] == "node id 'summary' is used twice"
    assert "JavaScript" in problems[1]["message"]


def test_lint_accepts_names_produced_upstream_and_segment_conditional_requirements() -> None:
    decision = valid_decision()
    set_schema(
        decision,
        {
            "required": ["segment"],
            "properties": {"segment": {"type": "string"}, "age": {"type": "integer"}},
            "allOf": [{"if": {"properties": {"segment": {"const": "farmer"}}}, "then": {"required": ["age"]}}],
        },
    )
    node(decision, "summary")["content"]["expressions"].append(
        {"id": "y", "key": "first", "value": "count > 0 ? hits[0].id : null"}
    )
    assert lint_decision(decision, DICTIONARY) == [
        {
            "location": "summary/first/value",
            "message": "reads 'count', which is neither in the data dictionary nor produced upstream",
        }
    ]
    node(decision, "summary")["content"]["expressions"][1]["value"] = "len(hits) > 0 ? hits[0].id : null"
    assert lint_decision(decision, DICTIONARY) == []


def test_lint_reads_a_malformed_document_without_crashing() -> None:
    assert lint_decision({"nodes": "x"}, DICTIONARY) == [
        {"location": "decision", "message": "a decision is an object with a list of nodes, each with an id"}
    ]
    decision = valid_decision()
    node(decision, "access")["content"]["rules"] = "not a list"
    assert lint_decision(decision, DICTIONARY) == [
        {"location": "access/rules", "message": "rules must be a list of objects"}
    ]


# ── parameters ─────────────────────────────────────────────────────────────────────────────


def test_placeholders_of_the_shipped_templates() -> None:
    assert placeholders(load("xed-access")) == set(load("xed-access", ".params"))
    assert placeholders(load("pricing")) == set(load("pricing", ".params"))
    assert placeholders(load("segment-scorecard")) == set()


def test_parameters_are_written_as_literals_into_a_copy() -> None:
    template = load("xed-access")
    before = copy.deepcopy(template)
    filled = apply_parameters(
        template, {"min_age": 18, "max_age": 60, "min_monthly_income": Decimal("2100.50"), "home_province": "37"}
    )
    assert template == before
    rows = {row["_id"]: row for row in next(n for n in filled["nodes"] if n["id"] == "access")["content"]["rules"]}
    assert rows["XED-A-0001"]["in_age"] == "< 18"
    assert rows["XED-A-0002"]["in_age"] == "> 60"
    assert rows["XED-A-0009"]["in_monthly_income"] == "< 2100.50"
    assert rows["XED-A-0013"]["in_province_code"] == '!= "37"'
    assert placeholders(filled) == set()


def test_parameter_problems_are_listed_all_at_once() -> None:
    with pytest.raises(ParameterError) as caught:
        apply_parameters(load("xed-access"), {"min_age": 18, "max_ages": 60, "home_province": ["37", None]})
    assert sorted((problem["field"], problem["message"]) for problem in caught.value.problems) == [
        ("home_province", "NoneType values have no rule literal"),
        ("max_age", "no value given for this placeholder"),
        ("max_ages", "unknown parameter: no placeholder uses it"),
        ("min_monthly_income", "no value given for this placeholder"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (65, "65"),
        (Decimal("0.0435"), "0.0435"),
        (Decimal("1E+5"), "100000"),
        (1e-05, "0.00001"),
        (True, "true"),
        ("37", '"37"'),
        ('say "hi"', "'say \"hi\"'"),
        (["farmer", 3], '["farmer", 3]'),
    ],
)
def test_literals(value: Any, expected: str) -> None:
    assert literal(value) == expected


@pytest.mark.parametrize("value", [float("nan"), Decimal("Infinity"), 'it\'s "odd"', None, {"a": 1}])
def test_values_without_a_literal(value: Any) -> None:
    with pytest.raises(ValueError):
        literal(value)
