"""Contract templates and their field vocabulary: every committed template renders from a full
context, uses only vocabulary names, and the checks report what a process cannot fill."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import shutil
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import docx
import pytest
from jinja2 import UndefinedError

from engine.documents.contract_fields import (
    COLLATERAL_TYPES,
    FIELD_SOURCES,
    OPTIONAL_FIELDS,
    UnfillableTag,
    contract_context,
    unfillable_tags,
)
from engine.documents.templates import ContractTemplates, UnknownTemplate

ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "forms"
CONTRACTS = ROOT / "product_configs" / "contracts"
BUILDER = ROOT / "product_configs" / "tools" / "build_contract_templates.py"
SEAL_ANCHOR = "贷款人（盖章）"
ALL_PATHS = {path for paths in FIELD_SOURCES.values() for path in paths}

BANK = {"name": "陵源农商银行", "code": "bank-lingyuan"}
PRODUCT = {
    "code": "FND-NONGHUJINGYING",
    "name": "农户经营贷",
    "parameters": {
        "rate": {"benchmark": "LPR_1Y", "min_bp": 50, "max_bp": 250},
        "repayment_methods": ["equal_installment", "equal_principal", "bullet"],
        "guarantee_types": ["credit", "guarantee"],
    },
}
REQUIRED_DATA: dict[str, Any] = {
    "applicant": {"name": "张三", "id_number": "370102199001011234", "mobile": "13800138000"},
    "amount": "300000.00",
    "term_months": 24,
    "account": "6228480012345678901",
    "purpose": "种植业生产",
}
FULL_DATA: dict[str, Any] = {
    **REQUIRED_DATA,
    "approved_amount": "280000.00",
    "repayment_method": "equal_principal",
    "pricing": {"rate_bp": 85, "grade": "B", "limit": 300000},
    "guarantee": {"guarantee_no": "DB-2026-0001", "guarantee_ratio": 0.8},
    # the loan-application form's guarantors
    "guarantors": [
        {"name": "王五", "id_number": "370102198001011234", "mobile": "13900139000", "relationship": "配偶"},
        {"name": "赵六", "id_number": "37010219850202123X", "mobile": "13900139001"},
    ],
    # the collateral-appraisal form, whose fields are task data's top level
    "collateral_type": "residential",
    "certificate_no": "鲁(2024)陵源县不动产权第0001234号",
    "owner_name": "张三",
    "appraised_value": "600000.00",
    "appraisal_method": "internal",
    "appraisal_date": "2026-11-20",
    # registered after the contract is signed: no contract field
    "mortgage": {"certificate_no": "鲁(2026)陵源县不动产证明第0005678号", "registered_on": "2026-12-08"},
    "existing_loan": {"loan_id": "JJ-2024-000123", "principal": 200000, "maturity_date": "2026-12-01"},
    "policy": "创业担保贷款",
    "product": {"code": "FND-NONGHUJINGYING", "version": 1, "name": "农户经营贷"},
}
SIGNED_ON = date(2026, 12, 1)


def context_for(
    data: dict[str, Any], product: dict[str, Any] = PRODUCT, template_tags: set[str] | None = None
) -> dict[str, Any]:
    return contract_context(
        data,
        bank=BANK,
        product=product,
        contract_no="LY-2026-000001",
        signed_on=SIGNED_ON,
        lpr=Decimal("3.00"),
        template_tags=template_tags,
    )


def document_text(content: bytes) -> str:
    """All text of a .docx, body paragraphs and table cells, as python-docx reads it back."""
    document = docx.Document(io.BytesIO(content))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([*(p.text for p in document.paragraphs), *cells])


@pytest.fixture(scope="module")
def templates() -> ContractTemplates:
    return ContractTemplates(CONTRACTS)


@pytest.fixture(scope="module")
def full_context() -> dict[str, Any]:
    return context_for(FULL_DATA)


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_contract_templates", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


# -- the committed templates -----------------------------------------------------------------------


def test_there_is_one_template_per_name_the_catalog_uses(templates: ContractTemplates) -> None:
    catalog = {
        json.loads(path.read_text("utf-8"))["contract_template"]
        for path in (ROOT / "product_configs" / "standard").glob("*.json")
    }
    assert (
        set(templates.names())
        == catalog
        == {
            "business-credit",
            "mortgage",
            "personal-credit",
            "personal-guaranteed",
            "pledge",
            "policy-guaranteed",
            "renewal",
        }
    )


def test_committed_templates_are_what_the_builder_writes() -> None:
    assert load_builder().main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(ContractTemplates(CONTRACTS).names()))
def test_every_template_uses_only_vocabulary_and_renders_from_a_full_context(
    templates: ContractTemplates, full_context: dict[str, Any], name: str
) -> None:
    tags = templates.tags(name)
    assert {"contract_no", "borrower", "amount", "amount_cn", "schedule", "schedule_totals", "bank"} <= tags
    assert unfillable_tags(tags, ALL_PATHS) == []

    text = document_text(templates.render(name, full_context))
    assert "{{" not in text and "{%" not in text
    assert "合同编号：LY-2026-000001" in text
    assert "人民币（大写）贰拾捌万元整（小写：¥280,000.00）" in text
    assert "（以下无正文）" in text
    assert text.count(SEAL_ANCHOR) == 1
    assert f"{SEAL_ANCHOR}：陵源农商银行" in text


def test_a_renewal_runs_from_when_the_loan_it_repays_matures_and_pays_no_one(templates: ContractTemplates) -> None:
    """A renewal started on the signing day charged interest beside the old loan until it matured, and
    its payout article sent the money to the borrower while its renewal article said it would not."""
    data = {**copy.deepcopy(FULL_DATA), "existing_loan": {**FULL_DATA["existing_loan"], "maturity_date": "2026-12-20"}}
    context = context_for(data)
    assert (context["signed_on"], context["start_date"]) == ("2026年12月1日", "2026年12月20日")
    assert context["end_date"] == "2028年12月20日" and context["schedule"][0]["due_date"] == "2027-01-20"
    text = document_text(templates.render("renewal", context))
    assert "本合同项下借款资金不发放至乙方账户" in text and "甲方将借款发放至乙方" not in text


def test_a_home_purchase_loan_may_buy_the_home_it_is_for(templates: ContractTemplates) -> None:
    """The purpose article forbade 购房 in every contract, the mortgage contract of 城乡购房贷 included."""
    data = {**copy.deepcopy(REQUIRED_DATA), "purpose": "购买自住住房"}
    text = document_text(templates.render("personal-credit", context_for(data)))
    assert "本合同项下借款用于购买自住住房。" in text
    assert "除上述约定用途外，不得将借款用于购房" in text


def test_rendered_schedule_table_has_a_row_per_instalment_and_totals(
    templates: ContractTemplates, full_context: dict[str, Any]
) -> None:
    document = docx.Document(io.BytesIO(templates.render("personal-credit", full_context)))
    schedule = next(table for table in document.tables if table.rows[0].cells[0].text == "期数")
    rows = [[cell.text for cell in row.cells] for row in schedule.rows]
    assert len(rows) == 1 + 24 + 1
    # equal_principal: 280,000 / 24 = 11,666.67; 280,000 × 3.85% / 12 = 898.33
    assert rows[1] == ["1", "2027-01-01", "11,666.67", "898.33", "12,565.00", "268,333.33"]
    assert rows[24][0] == "24" and rows[24][-1] == "0.00"
    totals = full_context["schedule_totals"]
    assert rows[-1] == ["合计", "", "280,000.00", totals["interest"], totals["payment"], ""]


def test_autoescape_keeps_ampersand_and_angle_brackets(templates: ContractTemplates) -> None:
    data = copy.deepcopy(REQUIRED_DATA)
    data["applicant"]["name"] = "张三 & <李四>"
    text = document_text(templates.render("personal-credit", context_for(data)))
    assert "借款人（乙方）：张三 & <李四>" in text


def test_rendered_document_names_the_contract_and_the_bank_not_python_docx(
    templates: ContractTemplates, full_context: dict[str, Any]
) -> None:
    properties = docx.Document(io.BytesIO(templates.render("mortgage", full_context))).core_properties
    assert properties.title == "个人抵押借款合同"
    assert properties.author == properties.last_modified_by == "陵源农商银行"
    assert "python-docx" not in f"{properties.title}{properties.author}{properties.comments}"


def test_a_missing_section_fails_the_render_instead_of_leaving_a_blank(templates: ContractTemplates) -> None:
    with pytest.raises(UndefinedError, match="guarantor"):
        templates.render("personal-guaranteed", context_for(REQUIRED_DATA))


@pytest.mark.parametrize("name", ["../etc", "../../etc/passwd", "Mortgage", "mortgage.docx", "mortgage\n", ""])
def test_malformed_names_are_unknown(templates: ContractTemplates, name: str) -> None:
    with pytest.raises(UnknownTemplate):
        templates.tags(name)


def test_a_well_formed_name_without_a_file_is_unknown(templates: ContractTemplates) -> None:
    with pytest.raises(UnknownTemplate, match="farm-lease"):
        templates.render("farm-lease", {"bank": BANK})


def test_tags_follow_the_file_content_not_the_name(tmp_path: Path) -> None:
    shutil.copy(CONTRACTS / "mortgage.docx", tmp_path / "custom.docx")
    shutil.copy(CONTRACTS / "mortgage.docx", tmp_path / "Bad_Name.docx")
    templates = ContractTemplates(tmp_path)
    assert templates.names() == ["custom"]
    assert "collateral" in templates.tags("custom")
    shutil.copy(CONTRACTS / "personal-guaranteed.docx", tmp_path / "custom.docx")
    tags = templates.tags("custom")
    assert "guarantors" in tags and "collateral" not in tags


# -- the vocabulary ------------------------------------------------------------------------------


def test_a_tag_outside_the_vocabulary_is_reported() -> None:
    assert unfillable_tags({"borrower", "loan_officer", "amount"}, ALL_PATHS) == [
        UnfillableTag("loan_officer", "not a contract field")
    ]


def test_mortgage_template_against_a_process_without_collateral_reports_the_collateral_tag(
    templates: ContractTemplates,
) -> None:
    provided = ALL_PATHS - set(FIELD_SOURCES["collateral"])
    problems = unfillable_tags(templates.tags("mortgage"), provided)
    assert [problem.tag for problem in problems] == ["collateral"]
    tag, reason = problems[0]
    assert tag == "collateral"
    assert "collateral_type" in reason and "appraised_value" in reason


def test_collateral_comes_from_the_appraisal_form_and_its_types_all_have_a_label() -> None:
    schema = json.loads((FORMS / "collateral-appraisal-schema.json").read_text("utf-8"))
    assert set(FIELD_SOURCES["collateral"]) <= set(schema["properties"])
    assert set(COLLATERAL_TYPES) == set(schema["properties"]["collateral_type"]["enum"])


def test_guarantors_come_from_the_application_forms_guarantor_list() -> None:
    schema = json.loads((FORMS / "loan-application-schema.json").read_text("utf-8"))
    guarantors = schema["properties"]["guarantors"]
    assert guarantors["type"] == "array"
    assert {"name", "id_number"} <= set(guarantors["items"]["required"])


def test_the_mortgage_registration_is_no_contract_field(templates: ContractTemplates) -> None:
    # a6 registers the mortgage after the contract is signed and sealed
    assert "mortgage" not in FIELD_SOURCES
    assert all("mortgage" not in templates.tags(name) for name in templates.names())


def test_problems_are_sorted_and_name_only_the_missing_paths() -> None:
    provided = ALL_PATHS - {"applicant.mobile", "term_months"}
    problems = unfillable_tags({"term_months", "borrower", "account", "end_date", "zz_unknown"}, provided)
    assert problems == [
        UnfillableTag("borrower", "needs applicant.mobile, which the process does not provide"),
        UnfillableTag("end_date", "needs term_months, which the process does not provide"),
        UnfillableTag("term_months", "needs term_months, which the process does not provide"),
        UnfillableTag("zz_unknown", "not a contract field"),
    ]


def test_context_has_exactly_the_vocabulary_keys(full_context: dict[str, Any]) -> None:
    assert set(full_context) == set(FIELD_SOURCES)
    assert set(context_for(REQUIRED_DATA)) == set(FIELD_SOURCES) - OPTIONAL_FIELDS


@pytest.mark.parametrize(("key", "path"), [(key, path) for key, paths in FIELD_SOURCES.items() for path in paths])
def test_every_source_path_is_really_needed(key: str, path: str) -> None:
    data = copy.deepcopy(FULL_DATA)
    *parents, leaf = path.split(".")
    owner = data
    for part in parents:
        owner = owner[part]
    del owner[leaf]
    roots = {source.split(".", 1)[0] for source in FIELD_SOURCES[key]}
    if key in OPTIONAL_FIELDS and not parents and not roots & data.keys():
        assert key not in context_for(data)
    else:
        with pytest.raises(ValueError, match=f"lacks {path}$"):
            context_for(data)


def test_context_values(full_context: dict[str, Any]) -> None:
    assert full_context["contract_no"] == "LY-2026-000001"
    assert full_context["signed_on"] == full_context["start_date"] == "2026年12月1日"
    assert full_context["end_date"] == "2028年12月1日"
    assert full_context["bank"] == BANK
    assert full_context["product"] == {"name": "农户经营贷", "code": "FND-NONGHUJINGYING"}
    assert full_context["borrower"] == {"name": "张三", "id_number": "370102199001011234", "mobile": "13800138000"}
    assert (full_context["amount"], full_context["amount_cn"]) == ("280,000.00", "贰拾捌万元整")
    assert full_context["rate"] == {
        "benchmark": "一年期贷款市场报价利率（LPR）",
        "lpr": "3.00",
        "spread_bp": 85,
        "spread": "加85个基点",
        "annual": "3.85",
    }
    assert full_context["repayment_method"] == "等额本金"
    assert len(full_context["schedule"]) == 24
    assert full_context["schedule_totals"]["principal"] == "280,000.00"
    assert full_context["guarantee"] == {"guarantee_no": "DB-2026-0001", "guarantee_ratio": "80%"}
    assert full_context["collateral"] == {
        "type": "住宅房产",
        "certificate_no": "鲁(2024)陵源县不动产权第0001234号",
        "owner_name": "张三",
        "appraised_value": "600,000.00",
    }
    assert full_context["guarantors"] == [
        {"name": "王五", "id_number": "370102198001011234", "mobile": "13900139000", "relationship": "配偶"},
        {"name": "赵六", "id_number": "37010219850202123X", "mobile": "13900139001"},
    ]
    assert full_context["existing_loan"] == {
        "loan_id": "JJ-2024-000123",
        "principal": "200,000.00",
        "maturity_date": "2026年12月1日",
    }
    assert full_context["policy"] == "创业担保贷款"


def test_without_pricing_or_method_the_product_floor_and_first_method_apply() -> None:
    context = context_for(REQUIRED_DATA)
    assert context["amount"] == "300,000.00"
    assert (context["rate"]["spread_bp"], context["rate"]["annual"]) == (50, "3.50")
    assert context["repayment_method"] == "等额本息"


def test_the_approvers_spread_is_the_contracts_over_the_rules() -> None:
    """Offline loans without a pricing rule were all signed at the product's floor, whatever their risk."""
    context = context_for({**REQUIRED_DATA, "approved_rate_bp": 120})
    assert (context["rate"]["spread_bp"], context["rate"]["annual"]) == (120, "4.20")
    context = context_for({**REQUIRED_DATA, "pricing": {"rate_bp": 85}, "approved_rate_bp": 95})
    assert context["rate"]["spread_bp"] == 95
    with pytest.raises(ValueError, match="approved_rate_bp 300 is not whole basis points"):
        context_for({**REQUIRED_DATA, "approved_rate_bp": 300})


def test_a_whole_json_number_spread_is_accepted() -> None:
    context = context_for({**REQUIRED_DATA, "pricing": {"rate_bp": 85.0}})
    assert (context["rate"]["spread_bp"], context["rate"]["annual"]) == (85, "3.85")


def test_a_negative_spread_reads_as_minus() -> None:
    product = copy.deepcopy(PRODUCT)
    product["parameters"]["rate"] = {"benchmark": "LPR_5Y", "min_bp": -50, "max_bp": 50}
    context = context_for(REQUIRED_DATA, product)
    assert context["rate"]["benchmark"] == "五年期以上贷款市场报价利率（LPR）"
    assert (context["rate"]["spread"], context["rate"]["annual"]) == ("减50个基点", "2.50")


def test_a_json_number_amount_is_taken_as_the_decimal_typed() -> None:
    context = context_for({**REQUIRED_DATA, "amount": 50000.5})
    assert (context["amount"], context["amount_cn"]) == ("50,000.50", "伍万元伍角整")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repayment_method": "flexible"}, "repayment_method 'flexible' is not offered"),
        ({"pricing": {"rate_bp": 300}}, "pricing.rate_bp 300 is not whole basis points within the product's 50–250"),
        ({"pricing": {"rate_bp": 85.5}}, "pricing.rate_bp 85.5 is not whole"),
        ({"term_months": "24"}, "term_months"),
        ({"amount": "300000.001"}, "more than two decimals"),
        ({"guarantee": {"guarantee_no": "DB-1", "guarantee_ratio": 1.5}}, "guarantee.guarantee_ratio"),
    ],
)
def test_data_the_product_does_not_allow_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        context_for({**REQUIRED_DATA, **change})


# -- secured and guaranteed contracts from the forms' data ---------------------------------------


def test_a_mortgage_contract_from_the_appraisal_form_names_the_property(templates: ContractTemplates) -> None:
    data = {
        **REQUIRED_DATA,
        "collateral_type": "residential",
        "certificate_no": "鲁(2024)陵源县不动产权第0001234号",
        "owner_name": "李梅",
        "appraised_value": 800000,
    }
    text = document_text(templates.render("mortgage", context_for(data, template_tags=templates.tags("mortgage"))))
    assert "抵押人：李梅" in text
    assert (
        "抵押人李梅以其名下住宅房产（权属证书编号：鲁(2024)陵源县不动产权第0001234号，评估价值人民币800,000.00元）"
        in text
    )
    assert "抵押人（签字）：李梅" in text
    assert text.count(SEAL_ANCHOR) == 1


@pytest.mark.parametrize(("kind", "label"), sorted(COLLATERAL_TYPES.items()))
def test_every_collateral_type_has_a_chinese_label(kind: str, label: str) -> None:
    context = context_for({**FULL_DATA, "collateral_type": kind})
    assert context["collateral"]["type"] == label


def test_a_pledge_contract_does_not_call_the_pledge_real_estate(templates: ContractTemplates) -> None:
    text = document_text(templates.render("pledge", context_for(FULL_DATA)))
    assert (
        "出质人张三以其名下财产（权属凭证编号：鲁(2024)陵源县不动产权第0001234号，评估价值人民币600,000.00元）出质"
        in text
    )
    assert "住宅房产" not in text


def test_a_guaranteed_contract_lists_every_guarantor(templates: ContractTemplates) -> None:
    context = context_for(FULL_DATA, template_tags=templates.tags("personal-guaranteed"))
    document = docx.Document(io.BytesIO(templates.render("personal-guaranteed", context)))
    text = document_text(templates.render("personal-guaranteed", context))
    both = "王五（身份证号码：370102198001011234）、赵六（身份证号码：37010219850202123X）"
    assert f"保证人：{both}" in text
    assert f"保证人{both}自愿为乙方" in text
    signatures = document.tables[-1].rows[1].cells[1].text
    assert signatures == "保证人（签字）：王五\n保证人（签字）：赵六"
    assert text.count(SEAL_ANCHOR) == 1


def test_a_single_guarantor_reads_without_a_separator(templates: ContractTemplates) -> None:
    data = {**REQUIRED_DATA, "guarantors": FULL_DATA["guarantors"][:1]}
    text = document_text(templates.render("personal-guaranteed", context_for(data)))
    assert "保证人：王五（身份证号码：370102198001011234）\n" in text
    assert "、" not in text.split("保证人：", 1)[1].split("\n", 1)[0]


@pytest.mark.parametrize("guarantors", [None, []], ids=["missing", "empty"])
def test_a_guaranteed_template_without_guarantors_is_refused_naming_them(
    templates: ContractTemplates, guarantors: list[Any] | None
) -> None:
    data = dict(REQUIRED_DATA) if guarantors is None else {**REQUIRED_DATA, "guarantors": guarantors}
    with pytest.raises(ValueError, match="guarantors"):
        context_for(data, template_tags=templates.tags("personal-guaranteed"))


def test_an_empty_guarantor_list_is_no_guarantee_section_for_other_templates(templates: ContractTemplates) -> None:
    context = context_for({**REQUIRED_DATA, "guarantors": []}, template_tags=templates.tags("personal-credit"))
    assert "guarantors" not in context
    assert "保证人" not in document_text(templates.render("personal-credit", context))


def test_a_template_section_the_data_lacks_is_refused_naming_its_sources(templates: ContractTemplates) -> None:
    with pytest.raises(ValueError, match="lacks collateral_type, certificate_no, owner_name, appraised_value"):
        context_for(REQUIRED_DATA, template_tags=templates.tags("mortgage"))


@pytest.mark.parametrize(
    ("guarantors", "message"),
    [
        ([{"name": "王五", "id_number": "370102198001011234"}, {"name": "赵六"}], r"lacks guarantors\[1\]\.id_number"),
        ([{"name": "", "id_number": "370102198001011234"}], r"lacks guarantors\[0\]\.name"),
        (["王五"], r"guarantors\[0\] is not a guarantor record"),
        ({"name": "王五"}, "guarantors must be a list"),
    ],
)
def test_malformed_guarantors_are_refused(guarantors: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        context_for({**REQUIRED_DATA, "guarantors": guarantors})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"collateral_type": "vehicle"}, "collateral_type 'vehicle' is not one of residential"),
        ({"appraised_value": "12.345"}, "more than two decimals"),
    ],
)
def test_appraisal_data_the_contract_cannot_print_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        context_for({**FULL_DATA, **change})


def test_partial_appraisal_data_is_an_error_not_a_missing_section() -> None:
    data = {**REQUIRED_DATA, "collateral_type": "residential", "appraised_value": "600000.00"}
    with pytest.raises(ValueError, match=r"lacks certificate_no$"):
        context_for(data)
