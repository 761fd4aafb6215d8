"""The forms package: formats, the catalog of shipped forms, and form-data validation."""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import time_machine

from engine.errors import CreditFlowError
from engine.forms.catalog import DEFAULT_FORMS_DIR, FormCatalog, InvalidFormDefinition
from engine.forms.definition import compile_form, form_name, form_sha256
from engine.forms.formats import (
    FORMAT_CHECKER,
    age_on,
    amount_problem,
    bank_card_problem,
    is_amount,
    is_bank_card,
    is_mobile,
    is_resident_id,
    is_uscc,
    mask_resident_id,
    resident_id_birth_date,
    resident_id_problem,
    uscc_problem,
)
from engine.forms.validation import validate_form_data

CHINA = timezone(timedelta(hours=8))


def with_check_char(first17: str) -> str:
    """GB 11643 check character, computed independently of the code under test."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


def with_uscc_check(first17: str) -> str:
    charset = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(charset.index(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + charset[(31 - total % 31) % 31]


def with_luhn(body: str) -> str:
    for check in "0123456789":
        digits = [int(c) for c in reversed(body + check)]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits))
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable: one digit always completes a Luhn number")


def wrong_last(value: str, alphabet: str = "0123456789") -> str:
    return value[:-1] + next(c for c in alphabet if c != value[-1])


VALID_ID = with_check_char("11010519491231002")
ID_ENDING_IN_X = next(
    candidate
    for candidate in (with_check_char(f"44030619900101{seq:03d}") for seq in range(1000))
    if candidate.endswith("X")
)


# --- resident ID -----------------------------------------------------------------------------


def test_known_base_gives_the_published_example() -> None:
    assert VALID_ID == "11010519491231002X"
    assert is_resident_id(VALID_ID)
    assert resident_id_problem(VALID_ID) is None


def test_lowercase_x_is_accepted() -> None:
    assert is_resident_id(ID_ENDING_IN_X.lower())
    assert is_resident_id(VALID_ID[:-1] + "x")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (wrong_last(VALID_ID), "(checksum)"),
        (with_check_char("11010519490230002"), "(birth date)"),  # 30 February
        (with_check_char("11010519490231002"), "(birth date)"),  # 31 February
        (with_check_char("11010519491331002"), "(birth date)"),  # month 13
        (with_check_char("11010518991231002"), "(birth date before 1900)"),
        (with_check_char("01010519491231002"), "(region code)"),
        (VALID_ID[:17], "(must be 18 characters)"),
        (VALID_ID + "1", "(must be 18 characters)"),
        ("1101051949123100AX", "(17 digits followed by a digit or X)"),
        ("11010519491231002Y", "(17 digits followed by a digit or X)"),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "(17 digits followed by a digit or X)"),  # Arabic-Indic digits
    ],
)
def test_invalid_resident_ids(value: str, reason: str) -> None:
    assert not is_resident_id(value)
    problem = resident_id_problem(value)
    assert problem is not None
    assert problem.startswith("is not a valid resident ID number")
    assert problem.endswith(reason)


def test_birth_date_must_not_be_in_the_future() -> None:
    with time_machine.travel(datetime(2026, 5, 1, 0, 30, tzinfo=CHINA), tick=False):
        born_today = with_check_char("11010520260501002")
        born_tomorrow = with_check_char("11010520260502002")
        assert is_resident_id(born_today)
        assert resident_id_problem(born_tomorrow) == "is not a valid resident ID number (birth date in the future)"


def test_today_is_taken_in_china_time() -> None:
    # 2026-04-30 17:00 UTC is already 1 May in Beijing.
    with time_machine.travel(datetime(2026, 4, 30, 17, 0, tzinfo=UTC), tick=False):
        assert is_resident_id(with_check_char("11010520260501002"))


def test_resident_id_format_ignores_non_strings() -> None:
    # JSON Schema: a format applies to strings only; "type" rejects the rest.
    assert is_resident_id(110105194912310020)
    assert is_resident_id(None)


def test_birth_date_and_age() -> None:
    assert resident_id_birth_date(VALID_ID) == date(1949, 12, 31)
    assert age_on(VALID_ID, date(2019, 12, 30)) == 69
    assert age_on(VALID_ID, date(2019, 12, 31)) == 70
    leap = with_check_char("11010520000229002")
    assert age_on(leap, date(2018, 2, 28)) == 17
    assert age_on(leap, date(2018, 3, 1)) == 18
    assert age_on(leap, date(2000, 2, 29)) == 0


def test_age_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError, match="before the birth date"):
        age_on(VALID_ID, date(1949, 12, 30))


def test_birth_date_of_invalid_id_raises_without_echoing_it() -> None:
    bad = wrong_last(VALID_ID)
    with pytest.raises(ValueError, match="checksum") as caught:
        resident_id_birth_date(bad)
    assert bad not in str(caught.value)
    assert mask_resident_id(bad) in str(caught.value)


def test_masking() -> None:
    assert mask_resident_id("110105194912311234") == "110105********1234"
    assert mask_resident_id(VALID_ID) == "110105********002X"
    assert mask_resident_id("12345678901") == "123456*8901"
    assert mask_resident_id("1234567890") == "**********"
    assert mask_resident_id("") == ""


# --- unified social credit code --------------------------------------------------------------


def test_commonly_cited_uscc_is_valid() -> None:
    assert with_uscc_check("91350100M000100Y4") == "91350100M000100Y43"
    assert is_uscc("91350100M000100Y43")


def test_constructed_uscc_is_valid() -> None:
    code = with_uscc_check("92371002MA3C1234X")  # 个体工商户
    assert uscc_problem(code) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (wrong_last("91350100M000100Y43", "0123456789ABCDEFGHJKLMNPQRTUWXY"), "(checksum)"),
        ("91350100m000100y43", "(digits and capitals except I, O, S, V, Z)"),
        ("91350100I000100Y43", "(digits and capitals except I, O, S, V, Z)"),
        ("91350100M000100Y4", "(must be 18 characters)"),
    ],
)
def test_invalid_uscc(value: str, reason: str) -> None:
    assert not is_uscc(value)
    problem = uscc_problem(value)
    assert problem is not None
    assert problem.endswith(reason)


# --- mobile and bank card --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["13800138000", "19912345678", "16612345678"])
def test_valid_mobiles(value: str) -> None:
    assert is_mobile(value)


@pytest.mark.parametrize(
    "value", ["12800138000", "1380013800", "138001380001", "+8613800138000", "138 0013 8000", "1380013800a"]
)
def test_invalid_mobiles(value: str) -> None:
    assert not is_mobile(value)


def test_luhn_cards() -> None:
    card = with_luhn("622202020011234567")
    assert len(card) == 19
    assert is_bank_card(card)
    assert is_bank_card(with_luhn("622588012345678"))  # 16 digits
    assert bank_card_problem(wrong_last(card)) == "is not a valid bank card number (checksum)"


@pytest.mark.parametrize("value", ["622202020011234", "62220202001123456701", "6222 0202 0011 2345", ""])
def test_card_numbers_of_the_wrong_shape(value: str) -> None:
    assert bank_card_problem(value) == "is not a valid bank card number (16 to 19 digits)"


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["100.00", "100", "0", "0.5", "1.500", "999999999999999.99", 0.1, 100, 0, 12.5, Decimal("12.50")],
)
def test_valid_amounts(value: object) -> None:
    assert amount_problem(value) is None
    assert is_amount(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100.001", "must be at most 2 decimal places"),
        (0.001, "must be at most 2 decimal places"),
        (1e-7, "must be at most 2 decimal places"),
        (Decimal("1.005"), "must be at most 2 decimal places"),
        (-1, "must not be negative"),
        ("-0.01", "must not be negative"),
        (-0.5, "must not be negative"),
        (json.loads("1e400"), "must be a finite number"),
        (float("nan"), "must be a finite number"),
        (Decimal("NaN"), "must be a finite number"),
        ("1000000000000000", "must have at most 15 digits before the decimal point"),
        (1e15, "must have at most 15 digits before the decimal point"),
        ("abc", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        ("NaN", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        ("1e3", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        (" 100", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        ("1_000", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        ("", "is not a valid amount (digits with an optional decimal point, e.g. 1234.56)"),
        (True, "is not an amount (true/false)"),
        (False, "is not an amount (true/false)"),
    ],
)
def test_invalid_amounts(value: object, message: str) -> None:
    assert amount_problem(value) == message
    assert not is_amount(value)


def test_amount_format_leaves_other_types_to_the_type_keyword() -> None:
    assert is_amount(None)
    assert is_amount({"value": "1"})


def test_format_checker_knows_the_custom_formats() -> None:
    for name in ("cn-resident-id", "cn-uscc", "cn-mobile", "bank-card", "amount"):
        assert name in FORMAT_CHECKER.checkers
    assert not FORMAT_CHECKER.conforms("12800138000", "cn-mobile")
    assert not FORMAT_CHECKER.conforms(True, "amount")
    assert FORMAT_CHECKER.conforms("2026-02-28", "date")
    assert not FORMAT_CHECKER.conforms("2026-02-30", "date")


# --- the shipped catalog ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> FormCatalog:
    return FormCatalog(DEFAULT_FORMS_DIR)


def good_application(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "applicant": {"name": "张三", "id_number": VALID_ID, "mobile": "13800138000"},
        "amount": "50000.00",
        "term_months": 12,
        "purpose": "种植业生产",
        "disbursement_card": with_luhn("622202020011234567"),
        "guarantors": [{"name": "李四", "id_number": ID_ENDING_IN_X, "mobile": "13900139000", "relationship": "配偶"}],
    }
    data.update(changes)
    return data


def test_shipped_forms_load(catalog: FormCatalog) -> None:
    assert {"approval", "guarantor-sign", "loan-application", "review"} <= set(catalog.names())
    for name in catalog.names():
        form = catalog.get(name)
        assert form.name == name
        assert form.schema["type"] == "object"
        assert len(form.sha256) == 64
        int(form.sha256, 16)
    assert catalog.get("guarantor-sign").ui_schema == json.loads(
        (DEFAULT_FORMS_DIR / "guarantor-sign-uischema.json").read_text(encoding="utf-8")
    )
    assert catalog.get("review").ui_schema == json.loads(
        (DEFAULT_FORMS_DIR / "review-uischema.json").read_text(encoding="utf-8")
    )


def test_forms_are_found_by_name_or_file_name(catalog: FormCatalog) -> None:
    form = catalog.get("loan-application")
    assert catalog.get("loan-application-schema.json") is form
    assert catalog.get("loan-application-uischema.json") is form
    assert form.validator is catalog.get("loan-application-schema.json").validator
    assert "loan-application-schema.json" in catalog
    assert "guarantor-sign" in catalog
    assert "guarantor-sign-uischema.json" in catalog
    assert "approval-extra-uischema.json" not in catalog
    assert "common-defs.json" not in catalog
    assert "common-defs" not in catalog
    with pytest.raises(KeyError, match="no-such-form"):
        catalog.get("no-such-form")


def test_top_level_stays_open_for_other_process_variables(catalog: FormCatalog) -> None:
    data = good_application(credit_score=712, branch="城关支行")
    assert validate_form_data(catalog.get("loan-application"), data) == []


def test_amount_as_json_number(catalog: FormCatalog) -> None:
    form = catalog.get("loan-application")
    assert validate_form_data(form, good_application(amount=50000.5)) == []
    assert validate_form_data(form, good_application(amount=50000.005)) == [
        {"field": "amount", "message": "must be at most 2 decimal places", "code": "format"}
    ]


def test_ref_to_shared_definitions_resolves(catalog: FormCatalog) -> None:
    # The resident-ID format lives in common-defs.json; the error proves it was reached and asserted.
    form = catalog.get("loan-application")
    data = good_application(applicant={"name": "张三", "id_number": wrong_last(VALID_ID), "mobile": "13800138000"})
    assert validate_form_data(form, data) == [
        {
            "field": "applicant.id_number",
            "message": "is not a valid resident ID number (checksum)",
            "code": "format",
        }
    ]


def test_every_error_is_collected_with_its_path(catalog: FormCatalog) -> None:
    bad_id = wrong_last(VALID_ID)
    data = {
        "applicant": {"name": "张三", "id_number": bad_id, "nickname": "三儿"},
        "amount": "100.001",
        "term_months": "12",
        "purpose": "炒股",
        "guarantors": [
            {"name": "李四", "id_number": ID_ENDING_IN_X, "mobile": "13900139000"},
            {"name": "王五", "id_number": VALID_ID, "mobile": "12345"},
        ],
    }
    problems = validate_form_data(catalog.get("loan-application"), data)
    assert [(p["field"], p["code"]) for p in problems] == [
        ("amount", "format"),
        ("applicant.id_number", "format"),
        ("applicant.mobile", "required"),
        ("applicant.nickname", "additionalProperties"),
        ("guarantors[1].mobile", "format"),
        ("purpose", "enum"),
        ("term_months", "type"),
    ]
    messages = {p["field"]: p["message"] for p in problems}
    assert messages["amount"] == "must be at most 2 decimal places"
    assert messages["applicant.mobile"] == "is required"
    assert messages["applicant.nickname"] == "is not an allowed field"
    assert messages["term_months"] == "must be a whole number"
    assert messages["purpose"].startswith('must be one of: "种植业生产", ')
    assert all(bad_id not in p["message"] and VALID_ID not in p["message"] for p in problems)


def test_every_missing_property_is_named(catalog: FormCatalog) -> None:
    assert validate_form_data(catalog.get("loan-application"), {"guarantors": [{}]}) == [
        {"field": name, "message": "is required", "code": "required"}
        for name in [
            "amount",
            "applicant",
            "guarantors[0].id_number",
            "guarantors[0].mobile",
            "guarantors[0].name",
            "purpose",
            "term_months",
        ]
    ]


def test_numeric_bounds_also_apply_to_amount_strings(catalog: FormCatalog) -> None:
    form = catalog.get("loan-application")
    assert validate_form_data(form, good_application(amount="1000")) == []
    assert validate_form_data(form, good_application(amount="500000.00")) == []
    assert validate_form_data(form, good_application(amount="500000.01")) == [
        {"field": "amount", "message": "must be at most 500000", "code": "maximum"}
    ]
    assert validate_form_data(form, good_application(amount="999.99")) == [
        {"field": "amount", "message": "must be at least 1000", "code": "minimum"}
    ]
    assert validate_form_data(form, good_application(amount=999)) == [
        {"field": "amount", "message": "must be at least 1000", "code": "minimum"}
    ]


def test_review_needs_an_amount_when_approving(catalog: FormCatalog) -> None:
    form = catalog.get("review")
    assert validate_form_data(form, {"recommendation": "reject", "comment": "收入不足"}) == []
    assert validate_form_data(form, {"recommendation": "approve", "comment": "同意"}) == [
        {"field": "suggested_amount", "message": "is required", "code": "required"}
    ]
    ui_schema = catalog.get("review").ui_schema
    assert ui_schema is not None
    assert ui_schema["recommendation"]["ui:enumNames"] == ["同意", "不同意"]


def test_approval_rules(catalog: FormCatalog) -> None:
    form = catalog.get("approval")
    assert (
        validate_form_data(form, {"decision": "approve", "approved_amount": "30000.00", "approved_rate_bp": 45}) == []
    )
    assert validate_form_data(form, {"decision": "approve"}) == [
        {"field": "approved_amount", "message": "is required", "code": "required"},
        {"field": "approved_rate_bp", "message": "is required", "code": "required"},
    ]
    assert validate_form_data(form, {"decision": "return"}) == [
        {"field": "comment", "message": "is required", "code": "required"}
    ]
    assert validate_form_data(form, {"decision": "defer", "approved_amount": -5}) == [
        {"field": "approved_amount", "message": "must not be negative", "code": "format"},
        {"field": "approved_amount", "message": "must be at least 0", "code": "minimum"},
        {"field": "decision", "message": 'must be one of: "approve", "reject", "return"', "code": "enum"},
    ]


def test_guarantor_sign(catalog: FormCatalog) -> None:
    form = catalog.get("guarantor-sign")
    assert validate_form_data(form, {"signed": True, "signer_name": "李四"}) == []
    assert validate_form_data(form, {"signed": "yes"}) == [
        {"field": "signed", "message": "must be true or false", "code": "type"},
        {"field": "signer_name", "message": "is required", "code": "required"},
    ]


def test_data_that_is_not_an_object(catalog: FormCatalog) -> None:
    assert validate_form_data(catalog.get("guarantor-sign"), []) == [  # type: ignore[arg-type]
        {"field": "", "message": "must be an object", "code": "type"}
    ]


# --- catalogs built for a test ---------------------------------------------------------------


def write(folder: Path, name: str, document: Any) -> None:
    (folder / name).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


SHARED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"mobile": {"type": "string", "format": "cn-mobile"}, "nested": {"$ref": "#/$defs/mobile"}},
}


def form_with(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def test_ref_across_files_in_a_custom_folder(tmp_path: Path) -> None:
    write(tmp_path, "shared.json", SHARED)
    write(tmp_path, "contact-schema.json", form_with(phone={"$ref": "shared.json#/$defs/nested"}))
    form = FormCatalog(tmp_path).get("contact")
    assert validate_form_data(form, {"phone": "13800138000"}) == []
    assert validate_form_data(form, {"phone": "110"}) == [
        {
            "field": "phone",
            "message": "is not a valid mainland mobile number (11 digits starting with 13 to 19)",
            "code": "format",
        }
    ]


def test_array_paths_sort_naturally(tmp_path: Path) -> None:
    write(
        tmp_path,
        "list-schema.json",
        form_with(phones={"type": "array", "items": {"type": "string", "format": "cn-mobile"}}),
    )
    data = {"phones": ["110"] * 11}
    fields = [p["field"] for p in validate_form_data(FormCatalog(tmp_path).get("list"), data)]
    assert fields == [f"phones[{i}]" for i in range(11)]


def test_dependent_required_and_pattern_properties(tmp_path: Path) -> None:
    schema = form_with(
        guarantee={
            "type": "object",
            "properties": {"type": {"type": "string"}, "collateral": {"type": "string"}},
            "patternProperties": {"^x_": {}},
            "additionalProperties": False,
            "dependentRequired": {"type": ["collateral"]},
        }
    )
    write(tmp_path, "guarantee-schema.json", schema)
    form = FormCatalog(tmp_path).get("guarantee")
    assert validate_form_data(form, {"guarantee": {"type": "抵押", "x_note": "ok", "other": 1}}) == [
        {"field": "guarantee.collateral", "message": "is required", "code": "dependentRequired"},
        {"field": "guarantee.other", "message": "is not an allowed field", "code": "additionalProperties"},
    ]


def test_hash_covers_ui_schema_and_shared_definitions(tmp_path: Path) -> None:
    write(tmp_path, "shared.json", SHARED)
    write(tmp_path, "contact-schema.json", form_with(phone={"$ref": "shared.json#/$defs/mobile"}))
    write(tmp_path, "plain-schema.json", form_with(note={"type": "string"}))
    first = FormCatalog(tmp_path)

    write(tmp_path, "shared.json", {**SHARED, "title": "changed"})
    second = FormCatalog(tmp_path)
    assert second.get("contact").sha256 != first.get("contact").sha256
    assert second.get("plain").sha256 == first.get("plain").sha256

    write(tmp_path, "plain-uischema.json", {"note": {"ui:widget": "textarea"}})
    third = FormCatalog(tmp_path)
    assert third.get("plain").sha256 != second.get("plain").sha256
    assert third.get("plain").ui_schema == {"note": {"ui:widget": "textarea"}}


def test_a_form_is_bundled_with_every_shared_file_it_uses(tmp_path: Path) -> None:
    """What a deploy or publish freezes validates alone: the folder can change or go."""
    write(tmp_path, "phones.json", {"$defs": {"mobile": {"$ref": "shared.json#/$defs/nested"}}})
    write(tmp_path, "shared.json", SHARED)
    write(tmp_path, "contact-schema.json", form_with(phone={"$ref": "phones.json#/$defs/mobile"}))
    write(tmp_path, "plain-schema.json", form_with(note={"type": "string"}))
    catalog = FormCatalog(tmp_path)
    form = catalog.get("contact")
    assert form.schema["$defs"] == {
        "phones.json": {"$id": "phones.json", **json.loads((tmp_path / "phones.json").read_text())},
        "shared.json": {"$id": "shared.json", **SHARED},
    }
    assert "$defs" not in catalog.get("plain").schema
    shutil.rmtree(tmp_path)
    alone = compile_form("contact", form.schema, None, form.sha256)  # as a stored snapshot is compiled
    assert validate_form_data(alone, {"phone": "12345"}) == [
        {
            "field": "phone",
            "message": "is not a valid mainland mobile number (11 digits starting with 13 to 19)",
            "code": "format",
        }
    ]
    assert alone.sha256 == form_sha256(form.schema, None)


def test_a_variant_is_bundled_with_what_its_changes_use(tmp_path: Path) -> None:
    write(tmp_path, "shared.json", SHARED)
    write(tmp_path, "plain-schema.json", form_with(note={"type": "string"}))
    catalog = FormCatalog(tmp_path)
    base = catalog.get("plain")
    variant = catalog.derive("plain", {**base.schema, **form_with(phone={"$ref": "shared.json#/$defs/mobile"})}, "x")
    assert variant.schema["$defs"]["shared.json"]["$id"] == "shared.json" and variant.sha256 != base.sha256
    assert validate_form_data(variant, {"phone": "12345"})[0]["field"] == "phone"
    with pytest.raises(InvalidFormDefinition, match="does not resolve"):
        catalog.derive("plain", form_with(phone={"$ref": "shared.json#/$defs/nope"}), "form_overrides.plain")


def test_form_names_from_file_names() -> None:
    assert {form_name(n) for n in ("review-schema.json", "review-uischema.json", "review")} == {"review"}


def load_broken(folder: Path) -> InvalidFormDefinition:
    with pytest.raises(InvalidFormDefinition) as caught:
        FormCatalog(folder)
    return caught.value


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("bad-schema.json", '{"type": "object",}', "not valid JSON"),
        ("bad-schema.json", '{"type": "object", "type": "string"}', "duplicate key 'type'"),
        ("bad-schema.json", '{"maximum": NaN}', "NaN is not valid JSON"),
        ("bad-schema.json", "[]", "the top level must be a JSON object"),
        ("bad-schema.json", '{"type": "strnig"}', "not a valid JSON Schema at type"),
        ("bad-schema.json", '{"properties": {"a": {"minimum": "1"}}}', "at properties/a/minimum"),
        ("bad-schema.json", '{"$schema": "http://json-schema.org/draft-07/schema#"}', "$schema must be"),
        ("bad-schema.json", '{"$ref": "missing.json"}', "$ref 'missing.json' does not resolve"),
        ("bad-schema.json", '{"$ref": "shared.json#/$defs/nope"}', "$ref 'shared.json#/$defs/nope'"),
        ("bad-schema.json", '{"$ref": "#/$defs/nope"}', "$ref '#/$defs/nope' does not resolve"),
        ("bad-schema.json", '{"properties": {"a": {"format": "cn-residentid"}}}', "format 'cn-residentid'"),
        ("bad-schema.json", '{"$defs": {"a": {"$id": "a.json"}}}', "$id 'a.json' is not allowed"),
        ("bad-schema.json", '{"$defs": {"shared.json": {}}}', "$defs 'shared.json' is the name of a catalog file"),
        ("bad-schema.json", '{"$ref": "bad-schema.json#/$defs/a", "$defs": {"a": {}}}', "names the form's own file"),
        ("shared-defs.json", '{"type": 5}', "not a valid JSON Schema"),
        ("orphan-uischema.json", "{}", "there is no orphan-schema.json"),
        ("orphan-uischema.json", "{", "not valid JSON"),
    ],
)
def test_broken_files_are_named(tmp_path: Path, file_name: str, content: str, message: str) -> None:
    write(tmp_path, "shared.json", SHARED)
    write(tmp_path, "fine-schema.json", form_with(phone={"$ref": "shared.json#/$defs/mobile"}))
    (tmp_path / file_name).write_text(content, encoding="utf-8")
    error = load_broken(tmp_path)
    assert isinstance(error, CreditFlowError)
    assert error.status == 422
    assert [p["location"] for p in error.problems] == [file_name]
    assert message in error.problems[0]["message"]
    assert file_name in error.detail


def test_all_broken_files_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a-schema.json", {"type": "strnig"})
    write(tmp_path, "b-schema.json", {"$ref": "gone.json", "format": "nope"})
    error = load_broken(tmp_path)
    assert [p["location"] for p in error.problems] == ["a-schema.json", "b-schema.json", "b-schema.json"]


def test_remote_refs_are_never_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the catalog tried to fetch a remote schema")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    write(tmp_path, "remote-schema.json", {"$ref": "https://example.com/schema.json"})
    error = load_broken(tmp_path)
    assert "does not resolve to a schema in the form catalog" in error.problems[0]["message"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        FormCatalog(tmp_path / "does-not-exist")


def test_copy_of_shipped_forms_loads_from_any_folder(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_FORMS_DIR, tmp_path / "forms")
    copied = FormCatalog(tmp_path / "forms")
    assert copied.names() == FormCatalog().names()
    assert copied.get("review").sha256 == FormCatalog().get("review").sha256
