"""Generate xed-access.json, the pre-loan access decision of the 信e贷 family, and its data dictionary.

    python product_configs/rules/generate_xed_access.py    # rewrites xed-access.json and xed-access.fields.json

The output is deterministic. Every row comes from a rule family a credit officer can read:

* knock-outs: blacklists, non-performing loans, 连三, current overdue, age and income limits …, one row each;
* ladders: one indicator, per customer segment (and, where it matters, per amount tier), cut at a
  yellow (warn), orange (manual review) and red (reject) line; lines tighten as the amount grows;
* pairs: two indicators that both reach their yellow line escalate to manual review, both at their
  orange line to reject ("signals stack"), with the same per-segment, per-tier lines.

Thresholds a bank may adjust are placeholders (``{{min_age}}``, …); xed-access.params.json holds the
provincial defaults and engine.rules.parameters writes a bank's values in at publish time.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "XED-A-"
SEGMENTS = {"farmer": "农户", "merchant": "个体工商户", "salaried": "工薪", "small_business": "小微企业主"}
TIERS = (("<= 50000", "5万元及以下"), ("(50000..200000]", "5万至20万元"), ("> 200000", "20万元以上"))
LEVELS = ("yellow", "orange", "red")
ACTIONS = {"yellow": "warn", "orange": "manual_review", "red": "reject"}

# The data dictionary: field -> (JSON type, 中文名, unit). Order = column order of the table.
FIELDS: dict[str, tuple[str, str, str]] = {
    "segment": ("string", "客群", ""),
    "applied_amount": ("number", "申请金额", "元"),
    "age": ("integer", "年龄", "岁"),
    "province_code": ("string", "户籍或经营地省份代码", ""),
    "occupation_category": ("string", "职业类别", ""),
    "monthly_income": ("number", "月收入", "元"),
    "debt_to_income": ("number", "负债收入比", ""),
    "current_overdue_count": ("integer", "当前逾期账户数", "个"),
    "current_overdue_amount": ("number", "当前逾期金额", "元"),
    "max_overdue_days_24m": ("integer", "近24个月最长逾期天数", "天"),
    "overdue_count_24m": ("integer", "近24个月累计逾期期数", "期"),
    "max_consecutive_overdue_24m": ("integer", "近24个月最长连续逾期期数", "期"),
    "credit_inquiries_3m": ("integer", "近3个月贷款及信用卡审批查询次数", "次"),
    "credit_inquiries_6m": ("integer", "近6个月贷款及信用卡审批查询次数", "次"),
    "lender_count": ("integer", "未结清贷款机构数", "家"),
    "existing_loans_count": ("integer", "未结清贷款笔数", "笔"),
    "guarantee_exposure": ("number", "对外担保余额", "元"),
    "guaranteed_overdue_count": ("integer", "对外担保贷款逾期笔数", "笔"),
    "credit_card_utilization": ("number", "信用卡额度使用率", ""),
    "court_enforcement_records": ("integer", "近5年被执行记录数", "条"),
    "dishonest_debtor": ("boolean", "失信被执行人", ""),
    "blacklist_hit": ("boolean", "命中本行黑名单", ""),
    "fraud_list_hit": ("boolean", "命中涉赌涉诈名单", ""),
    "worst_loan_class": ("string", "贷款最差五级分类", ""),
    "special_transactions_5y": ("integer", "近5年代偿、以资抵债、呆账等特殊交易笔数", "笔"),
    "has_credit_history": ("boolean", "有信贷记录", ""),
    "is_related_party": ("boolean", "本行关联方", ""),
    "employment_years": ("number", "现职或现经营年限", "年"),
    "social_insurance_months": ("integer", "社保连续缴存月数", "个月"),
    "provident_fund_months": ("integer", "公积金连续缴存月数", "个月"),
    "tax_grade": ("string", "纳税信用等级", ""),
    "credit_household_rating": ("string", "信用户评级", ""),
}
DERIVED = {"loan_to_income": ("number", "申请金额与年收入之比", "")}  # computed by the "derive" node
LABELS = {**FIELDS, **DERIVED}
# zen divides by zero to null, and null silently matches nothing: no income counts as an unbounded ratio
LOAN_TO_INCOME = "monthly_income > 0 ? applied_amount / (monthly_income * 12) : 999"
ONLY_FOR = {  # fields a segment must supply in addition to the common ones
    "salaried": ["social_insurance_months", "provident_fund_months"],
    "merchant": ["tax_grade"],
    "small_business": ["tax_grade"],
    "farmer": ["credit_household_rating"],
}
ENUMS = {
    "segment": list(SEGMENTS),
    "occupation_category": [
        "agriculture",
        "civil_servant",
        "enterprise_employee",
        "self_employed",
        "freelancer",
        "retired",
        "restricted_industry",
        "student",
        "unemployed",
    ],
    "worst_loan_class": ["none", "normal", "special_mention", "substandard", "doubtful", "loss"],
    "tax_grade": ["A", "B", "M", "C", "D"],
    "credit_household_rating": ["AAA", "AA", "A", "B", "none"],
}


@dataclass(frozen=True)
class Rule:
    when: dict[str, str]  # field -> unary cell
    level: str
    reason: str


Line = str | int  # a threshold, written as text when it has decimals so that no float creeps in


@dataclass(frozen=True)
class Ladder:
    """Lines per segment, worst last: (yellow, orange[, red]); ``tighten[tier]`` moves them to the safe side."""

    field: str
    worse: str  # "high" or "low": which side of a line is risky
    lines: dict[str, tuple[Line, ...]]
    tighten: tuple[Line, Line, Line] | None = None  # None: the same lines for every amount

    def at(self, segment: str, tier: int) -> list[Decimal]:
        shift = Decimal(self.tighten[tier] if self.tighten else 0) * (-1 if self.worse == "high" else 1)
        values = [Decimal(line) + shift for line in self.lines[segment]]
        ordered = values == sorted(values, reverse=self.worse == "low") and len(set(values)) == len(values)
        assert ordered and min(values) > 0, (self.field, segment, tier, values)
        return values


def knockouts() -> Iterator[Rule]:
    """One row each; thresholds in {{…}} are the bank's parameters."""
    yield Rule({"age": "< {{min_age}}"}, "red", "年龄低于准入下限")
    yield Rule({"age": "> {{max_age}}"}, "red", "年龄高于准入上限")
    yield Rule({"dishonest_debtor": "true"}, "red", "申请人为失信被执行人")
    yield Rule({"blacklist_hit": "true"}, "red", "命中本行黑名单")
    yield Rule({"fraud_list_hit": "true"}, "red", "命中涉赌涉诈风险名单")
    yield Rule({"worst_loan_class": '"substandard", "doubtful", "loss"'}, "red", "存在次级、可疑或损失类贷款")
    yield Rule({"worst_loan_class": '"special_mention"'}, "orange", "存在关注类贷款，须核实成因")
    yield Rule({"special_transactions_5y": "> 0"}, "red", "近5年存在担保代偿、以资抵债或呆账等特殊交易")
    yield Rule({"monthly_income": "< {{min_monthly_income}}"}, "red", "月收入低于当地最低工资标准")
    yield Rule({"occupation_category": '"student"'}, "red", "在校学生不予准入")
    yield Rule({"occupation_category": '"unemployed"'}, "red", "无职业、无稳定收入来源")
    yield Rule(
        {"occupation_category": '"restricted_industry"'},
        "orange",
        "从事民间借贷、典当、融资担保等限制类行业，须核实经营合规性",
    )
    yield Rule({"province_code": "!= {{home_province}}"}, "orange", "非本省客户，须核实在本行服务区域内居住或经营")
    yield Rule({"is_related_party": "true"}, "orange", "申请人为本行关联方，须按关联交易程序审批")
    yield Rule(
        {"current_overdue_count": "> 0", "current_overdue_amount": "< 1000"},
        "orange",
        "当前存在1000元以下逾期，须核实是否为非恶意逾期",
    )
    yield Rule({"current_overdue_count": "> 0", "current_overdue_amount": ">= 1000"}, "red", "当前存在1000元及以上逾期")
    yield Rule({"max_consecutive_overdue_24m": ">= 3"}, "red", "近24个月连续逾期3期及以上（连三）")
    yield Rule({"max_consecutive_overdue_24m": "[2..3)"}, "orange", "近24个月最长连续逾期2期")
    yield Rule({"guaranteed_overdue_count": "[1..2)"}, "orange", "对外担保贷款有1笔逾期")
    yield Rule({"guaranteed_overdue_count": ">= 2"}, "red", "对外担保贷款有2笔及以上逾期")


def segment_rules() -> Iterator[Rule]:
    """Rules that only make sense for some segments or amounts."""
    for tier, level in enumerate(("yellow", "yellow", "orange")):
        yield _in_tier(tier, Rule({"has_credit_history": "false"}, level, "征信无信贷记录（白户）"))
    business = '"merchant", "small_business"'
    yield Rule({"segment": business, "tax_grade": '"M"'}, "yellow", "纳税信用等级为M级（新设立或评价年度无经营收入）")
    yield Rule({"segment": business, "tax_grade": '"C"'}, "orange", "纳税信用等级为C级")
    yield Rule({"segment": business, "tax_grade": '"D"'}, "red", "纳税信用等级为D级")
    yield Rule({"segment": '"farmer"', "credit_household_rating": '"B"'}, "orange", "信用户评级为B级")
    yield Rule({"segment": '"farmer"', "credit_household_rating": '"none"'}, "yellow", "未参加信用户评定")
    yield Rule({"segment": '"farmer"', "age": ">= 60"}, "yellow", "农户年满60岁，须关注劳动能力和第二还款来源")
    for tier, level in enumerate(("yellow", "yellow", "orange")):
        yield _in_tier(tier, Rule({"segment": '"salaried"', "age": ">= 55"}, level, "工薪客户临近退休，收入可能下降"))


def _in_tier(tier: int, rule: Rule) -> Rule:
    return Rule({**rule.when, "applied_amount": TIERS[tier][0]}, rule.level, f"{TIERS[tier][1]}：{rule.reason}")


def _seg(**lines: tuple[Line, ...]) -> dict[str, tuple[Line, ...]]:
    assert list(lines) == list(SEGMENTS), lines
    return lines


# Lines per segment as (yellow, orange[, red]); the 4th argument moves them by tier (≤5万, 5万-20万, >20万).
# Farmers' income is seasonal and business owners borrow more, so their lines sit further out than salaried ones.
LADDERS = {
    "dti": Ladder(
        "debt_to_income",
        "high",
        _seg(
            farmer=("0.55", "0.70", "0.85"),
            merchant=("0.60", "0.75", "0.90"),
            salaried=("0.50", "0.60", "0.75"),
            small_business=("0.65", "0.80", "0.95"),
        ),
        ("0", "0.05", "0.10"),
    ),
    "inq3": Ladder(
        "credit_inquiries_3m",
        "high",
        _seg(farmer=(4, 6, 9), merchant=(5, 7, 10), salaried=(4, 6, 8), small_business=(6, 8, 12)),
        (0, 1, 2),
    ),
    "inq6": Ladder(
        "credit_inquiries_6m",
        "high",
        _seg(farmer=(6, 9, 13), merchant=(8, 11, 15), salaried=(6, 9, 12), small_business=(9, 12, 16)),
        (0, 1, 2),
    ),
    "loans": Ladder(
        "existing_loans_count",
        "high",
        _seg(farmer=(4, 6, 8), merchant=(5, 7, 9), salaried=(4, 6, 8), small_business=(6, 8, 10)),
        (0, 1, 2),
    ),
    "card": Ladder(
        "credit_card_utilization",
        "high",
        _seg(
            farmer=("0.85", "0.95", "1.05"),
            merchant=("0.85", "0.95", "1.05"),
            salaried=("0.80", "0.90", "1.00"),
            small_business=("0.85", "0.95", "1.05"),
        ),
        ("0", "0.05", "0.10"),
    ),
    "tenure": Ladder(
        "employment_years",
        "low",
        _seg(farmer=(3, 2, 1), merchant=(2, 1, "0.5"), salaried=(1, "0.5", "0.25"), small_business=(2, 1, "0.5")),
        ("0", "0.5", "1"),
    ),
    "lti": Ladder(
        "loan_to_income",
        "high",
        _seg(farmer=("1.5", 2, 3), merchant=("1.5", "2.5", "3.5"), salaried=(1, "1.5", 2), small_business=(2, 3, 4)),
        ("0", "0.25", "0.5"),
    ),
    "income": Ladder(  # the red line is the bank's {{min_monthly_income}} knock-out
        "monthly_income",
        "low",
        _seg(farmer=(3000, 2200), merchant=(5000, 3500), salaried=(4500, 3000), small_business=(8000, 5000)),
        (0, 1000, 2500),
    ),
    # Credit-history and contingent-liability lines do not depend on the amount.
    "days": Ladder(  # M1/M2/M3 buckets; salaried customers have payroll, so any late day is a signal
        "max_overdue_days_24m",
        "high",
        _seg(farmer=(31, 61, 91), merchant=(16, 31, 61), salaried=(1, 31, 61), small_business=(16, 31, 61)),
    ),
    "times": Ladder(  # 累六: six overdue instalments in 24 months is a reject everywhere
        "overdue_count_24m",
        "high",
        _seg(farmer=(3, 5, 6), merchant=(3, 5, 6), salaried=(2, 4, 6), small_business=(3, 5, 6)),
    ),
    "lenders": Ladder(  # 多头借贷
        "lender_count",
        "high",
        _seg(farmer=(3, 4, 5), merchant=(4, 5, 7), salaried=(3, 4, 6), small_business=(4, 6, 8)),
    ),
    "court": Ladder(
        "court_enforcement_records",
        "high",
        _seg(farmer=(1, 2, 3), merchant=(2, 3, 5), salaried=(1, 2, 3), small_business=(2, 4, 6)),
    ),
    "guarantee": Ladder(  # 担保圈
        "guarantee_exposure",
        "high",
        _seg(
            farmer=(200000, 500000, 1000000),
            merchant=(300000, 800000, 1500000),
            salaried=(100000, 300000, 600000),
            small_business=(500000, 1500000, 3000000),
        ),
    ),
}
SALARIED_LADDERS = (
    Ladder("social_insurance_months", "low", {"salaried": (12, 6, 3)}, (0, 6, 12)),
    Ladder("provident_fund_months", "low", {"salaried": (6,)}, (0, 6, 12)),
)
PAIRS = (  # (ladder, ladder): both at their yellow line -> manual review, both at their orange line -> reject
    ("days", "dti"),
    ("days", "inq3"),
    ("days", "lenders"),
    ("times", "dti"),
    ("times", "card"),
    ("times", "loans"),
    ("inq3", "lenders"),
    ("inq3", "card"),
    ("inq3", "dti"),
    ("inq6", "loans"),
    ("inq6", "lti"),
    ("inq6", "dti"),
    ("lenders", "dti"),
    ("lenders", "lti"),
    ("loans", "dti"),
    ("loans", "card"),
    ("income", "dti"),
    ("income", "lti"),
    ("income", "card"),
    ("income", "loans"),
    ("tenure", "lti"),
    ("tenure", "dti"),
    ("tenure", "inq3"),
    ("tenure", "lenders"),
    ("lti", "dti"),
    ("guarantee", "dti"),
    ("guarantee", "lenders"),
    ("court", "dti"),
    ("court", "days"),
)


def ladder_rules(ladder: Ladder) -> Iterator[Rule]:
    for segment, tier, scope in _scopes(ladder.lines, tiered=ladder.tighten is not None):
        lines = ladder.at(segment, tier)
        for level, (low, high) in zip(LEVELS, _bands(ladder.worse, lines), strict=False):
            cell, text = _band(ladder.field, low, high)
            yield Rule({**scope, ladder.field: cell}, level, f"{_where(segment, tier, scope)}：{text}")


def pair_rules(first: Ladder, second: Ladder) -> Iterator[Rule]:
    tiered = first.tighten is not None or second.tighten is not None
    for segment, tier, scope in _scopes(first.lines, tiered=tiered):
        for line, level, signal in ((0, "orange", "预警"), (1, "red", "复核")):
            cells = [_beyond(ladder, ladder.at(segment, tier)[line]) for ladder in (first, second)]
            when = {**scope, first.field: cells[0][0], second.field: cells[1][0]}
            reason = f"{_where(segment, tier, scope)}：{cells[0][1]}且{cells[1][1]}，两项{signal}信号叠加"
            yield Rule(when, level, reason)


def _scopes(lines: dict[str, tuple[Line, ...]], *, tiered: bool) -> Iterator[tuple[str, int, dict[str, str]]]:
    for segment in lines:
        for tier in range(len(TIERS)) if tiered else (0,):
            scope = {"segment": f'"{segment}"'}
            yield segment, tier, ({**scope, "applied_amount": TIERS[tier][0]} if tiered else scope)


def _where(segment: str, tier: int, scope: dict[str, str]) -> str:
    return f"{SEGMENTS[segment]}·{TIERS[tier][1]}" if "applied_amount" in scope else SEGMENTS[segment]


def _bands(worse: str, lines: list[Decimal]) -> list[tuple[Decimal | None, Decimal | None]]:
    """[low, high) bands from the yellow line outwards; the last band is open towards the risky side."""
    ends: list[Decimal | None] = [*lines[1:], None]
    return [(line, end) if worse == "high" else (end, line) for line, end in zip(lines, ends, strict=True)]


def _band(field: str, low: Decimal | None, high: Decimal | None) -> tuple[str, str]:
    _, label, unit = LABELS[field]
    if low is None:
        return f"< {high:f}", f"{label}<{_human(high, unit)}"
    if high is None:
        return f">= {low:f}", f"{label}≥{_human(low, unit)}"
    if LABELS[field][0] == "integer" and high == low + 1:
        return f"[{low:f}..{high:f})", f"{label}为{_human(low, unit)}"
    return f"[{low:f}..{high:f})", f"{_human(low, unit)}≤{label}<{_human(high, unit)}"


def _beyond(ladder: Ladder, line: Decimal) -> tuple[str, str]:
    return _band(ladder.field, *((line, None) if ladder.worse == "high" else (None, line)))


def _human(value: Decimal, unit: str) -> str:
    if unit == "元" and value >= 10000 and value % 10000 == 0:
        return f"{value / 10000:f}万元"
    return f"{value:f}{unit}"


def all_rules() -> list[Rule]:
    rules = [*knockouts(), *segment_rules()]
    for ladder in [*LADDERS.values(), *SALARIED_LADDERS]:
        rules.extend(ladder_rules(ladder))
    for first, second in PAIRS:
        rules.extend(pair_rules(LADDERS[first], LADDERS[second]))
    return rules


def input_schema() -> dict:
    """Every field typed and required (conditionally per segment), so a missing value fails instead of not matching."""
    conditional = {field for fields in ONLY_FOR.values() for field in fields}
    properties = {}
    for field, (kind, label, _) in FIELDS.items():
        prop: dict = {"type": kind, "description": label}
        if kind in ("integer", "number"):
            prop["minimum"] = 0
        if field in ENUMS:
            prop["enum"] = ENUMS[field]
        properties[field] = prop
    properties["province_code"]["pattern"] = "^[1-8][0-9]$"
    return {
        "type": "object",
        "required": [field for field in FIELDS if field not in conditional],
        "properties": properties,
        "allOf": [
            {"if": {"properties": {"segment": {"const": segment}}}, "then": {"required": fields}}
            for segment, fields in ONLY_FOR.items()
        ],
    }


def decision(rules: list[Rule]) -> dict:
    columns = [*FIELDS, *DERIVED]
    unknown = {field for rule in rules for field in rule.when} - set(columns)
    assert not unknown, unknown
    rows = []
    for number, rule in enumerate(rules, start=1):
        rule_id = f"{PREFIX}{number:04d}"
        assert '"' not in rule.reason, rule.reason
        row = {"_id": rule_id, **{f"in_{field}": rule.when[field] for field in columns if field in rule.when}}
        outputs = {"id": rule_id, "level": rule.level, "action": ACTIONS[rule.level], "reason": rule.reason}
        rows.append(row | {f"out_{key}": f'"{value}"' for key, value in outputs.items()})
    table = {
        "hitPolicy": "collect",
        "inputs": [{"id": f"in_{field}", "name": LABELS[field][1], "field": field} for field in columns],
        "outputs": [{"id": f"out_{key}", "name": key, "field": key} for key in ("id", "level", "action", "reason")],
        "rules": rows,
        "passThrough": False,
        "inputField": None,
        "outputPath": "hits",
        "executionMode": "single",
    }
    derive = [{"id": "loan_to_income", "key": "loan_to_income", "value": LOAN_TO_INCOME}]
    outcome = [
        {
            "id": "outcome",
            "key": "outcome",
            "value": 'some(hits, #.action == "reject") ? "reject" : '
            '(some(hits, #.action == "manual_review") ? "review" : "approve")',
        },
        {
            "id": "level",
            "key": "level",
            "value": 'some(hits, #.level == "red") ? "red" : (some(hits, #.level == "orange") ? "orange" : '
            '(some(hits, #.level == "yellow") ? "yellow" : "none"))',
        },
        {"id": "hits", "key": "hits", "value": "hits"},
    ]
    nodes = [
        _node("request", "inputNode", "申请信息", 0, {"schema": json.dumps(input_schema(), ensure_ascii=False)}),
        _node("derive", "expressionNode", "派生指标", 1, _expressions(derive, pass_through=True)),
        _node("access", "decisionTableNode", "信e贷准入规则", 2, table),
        _node("outcome", "expressionNode", "准入结论", 3, _expressions(outcome, pass_through=False)),
        _node("response", "outputNode", "结果", 4, {}),
    ]
    order = [node["id"] for node in nodes]
    edges = [
        {"id": f"{source}-{target}", "sourceId": source, "targetId": target, "type": "edge"}
        for source, target in itertools.pairwise(order)
    ]
    return {"nodes": nodes, "edges": edges}


def _node(node_id: str, kind: str, name: str, column: int, content: dict) -> dict:
    return {"id": node_id, "type": kind, "name": name, "position": {"x": 280 * column, "y": 200}, "content": content}


def _expressions(items: list[dict], *, pass_through: bool) -> dict:
    return {
        "expressions": items,
        "passThrough": pass_through,
        "inputField": None,
        "outputPath": None,
        "executionMode": "single",
    }


def dump(value: object, indent: str = "") -> str:
    """JSON with one table row per line: readable, and a changed rule is a one-line diff."""
    inner = indent + "  "
    if isinstance(value, dict) and value and "_id" not in value:
        items = [f"{inner}{json.dumps(key)}: {dump(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[\n" + ",\n".join(inner + dump(item, inner) for item in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False)


def main() -> None:
    rules = all_rules()
    assert len(rules) >= 1000, len(rules)
    (HERE / "xed-access.json").write_text(dump(decision(rules)) + "\n", encoding="utf-8")
    fields = {field: kind for field, (kind, _, _) in FIELDS.items()}
    (HERE / "xed-access.fields.json").write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    print(f"xed-access.json: {len(rules)} rules")


if __name__ == "__main__":
    main()
