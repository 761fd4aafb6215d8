"""The product configuration format: the 95 standard products, the documented example, and the validator
finding every kind of problem at once."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.catalog.config import (
    DEFAULT_STANDARD_DIR,
    SCHEMA_PATH,
    InvalidProductConfig,
    clone_problems,
    load_product_configs,
    validate_catalog,
    validate_product_config,
)
from engine.catalog.references import (
    ProcessOutline,
    process_problems,
    role_problems,
    rule_choice_problems,
    undefined_required,
)
from engine.catalog.variants import widening_problems
from engine.forms.catalog import FormCatalog
from engine.rules.jdm import input_schema
from engine.runtime.model_check import ModelFile, build_parser

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "product_configs" / "rules"
BUILDER = ROOT / "product_configs" / "tools" / "build_standard_catalog.py"
DOCS = ROOT / "docs" / "product-config.md"
MANIFEST = json.loads((ROOT / "bpmn" / "archetypes.json").read_text("utf-8"))

ARCHETYPES = frozenset(
    {
        "a1_instant_online",
        "a2_batch_preapproval",
        "a3_online_light",
        "a4_standard_offline",
        "a5_guaranteed_policy",
        "a6_collateral",
        "a7_renewal",
    }
)
FIVE_SERIES = ("兴农贷", "宜居贷", "乡风文明贷", "治理有效贷", "富农贷")
XEKD_NAMES = {
    "薪e贷",
    "质押e贷",
    "按揭e贷",
    "备用金e贷",
    "商e贷",
    "社保e贷",
    "新市民e贷",
    "税e贷",
    "公积金e贷",
    "房抵e贷",
    "农耕e贷",
}
SEED_POLICY_NAMES = {
    "创业担保贷",
    "鲁担惠农贷",
    "人才贷",
    "农业保险贷",
    "海洋牧场财补贷",
    "粮食规模种植贷",
    "设施农业贷",
}


SHARED_RULES = {"xed-access", "segment-scorecard", "pricing"}


def rule_file_names() -> set[str]:
    """Rule files by name, as products bind them; the shared three until the rules folder exists."""
    if not RULES_DIR.is_dir():
        return set(SHARED_RULES)
    return {
        path.name.removesuffix(".json")
        for path in RULES_DIR.glob("*.json")
        if not path.name.endswith((".fields.json", ".params.json"))
    }


@pytest.fixture(scope="module")
def forms() -> set[str]:
    return set(FormCatalog().names())


@pytest.fixture(scope="module")
def shipped(forms: set[str]) -> dict[str, Any]:
    """What exists in this checkout: the archetypes, the form catalog and the rule files."""
    return {"archetypes": ARCHETYPES, "forms": forms, "rule_files": rule_file_names()}


@pytest.fixture(scope="module")
def references(forms: set[str]) -> dict[str, Any]:
    """Fixed references for the validator's own tests, independent of how far the rules folder is."""
    return {"archetypes": ARCHETYPES, "forms": forms, "rule_files": SHARED_RULES}


@pytest.fixture(scope="module")
def catalog() -> dict[str, dict[str, Any]]:
    return load_product_configs(DEFAULT_STANDARD_DIR)


@pytest.fixture
def product(catalog: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A valid document to break, one field at a time."""
    return copy.deepcopy(catalog["ZC-LUDANHUINONG"])


def fields_of(problems: list[dict[str, str]]) -> list[str]:
    return [problem["field"] for problem in problems]


# ── the standard catalog ────────────────────────────────────────────────────────────────────


def test_every_standard_product_validates(shipped: dict[str, Any]) -> None:
    assert validate_catalog(DEFAULT_STANDARD_DIR, **shipped) == []


def test_data_dictionaries_are_the_fields_the_bound_rules_read(catalog: dict[str, dict[str, Any]]) -> None:
    rule_fields = {
        path.name.removesuffix(".fields.json"): json.loads(path.read_text("utf-8"))
        for path in RULES_DIR.glob("*.fields.json")
    }
    for document in catalog.values():
        expected: dict[str, str] = {}
        for rule in document["bindings"]["decisions"].values():
            expected.update(rule_fields[rule])
        assert document["data_dictionary"] == expected, document["code"]


def _archetype_mismatches(document: dict[str, Any]) -> list[str]:
    """What a document names that its archetype (per bpmn/archetypes.json) does not have."""
    archetype = next(entry for entry in MANIFEST["archetypes"] if entry["key"] == document["archetype"])
    tasks = {task["id"] for task in archetype["user_tasks"]}
    lanes = {lane["role"] for lane in archetype["lanes"]}
    slots = {slot["slot"] for slot in archetype["decision_slots"]}
    bindings, steps = document["bindings"], document["time_limits"].get("steps", {})
    return [
        *(f"decision slot {slot}" for slot in bindings["decisions"].keys() ^ slots),
        *(f"form task {task}" for task in bindings.get("forms", {}).keys() - tasks),
        *(f"step {task}" for task in steps.keys() - tasks),
        *(f"lane {lane}" for lane in bindings.get("roles", {}).keys() - lanes),
    ]


def test_bindings_match_the_archetypes(catalog: dict[str, dict[str, Any]]) -> None:
    assert {code: found for code, document in catalog.items() if (found := _archetype_mismatches(document))} == {}


def test_rule_parameters_are_placeholders_of_the_bound_rules(catalog: dict[str, dict[str, Any]]) -> None:
    defaults = {
        path.name.removesuffix(".params.json"): json.loads(path.read_text("utf-8")).keys()
        for path in RULES_DIR.glob("*.params.json")
    }
    for document in catalog.values():
        known = {name for rule in document["bindings"]["decisions"].values() for name in defaults.get(rule, ())}
        assert document.get("rule_parameters", {}).keys() <= known, document["code"]


def test_what_each_product_offers_its_bound_rules_accept(catalog: dict[str, dict[str, Any]]) -> None:
    """An offered guarantee type, repayment method or segment a bound rule cannot take fails every such
    application at that rule (ZC-SHESHINONGYE's 政策性担保 at pricing, once)."""
    inputs = {
        path.stem: input_schema(json.loads(path.read_text("utf-8")))
        for path in RULES_DIR.glob("*.json")
        if not path.name.endswith((".fields.json", ".params.json"))
    }
    mapping = MANIFEST["conventions"]["rule_segments"]["mapping"]
    found = {code: p for code, document in catalog.items() if (p := rule_choice_problems(document, inputs, mapping))}
    assert found == {}

    narrow = {"properties": {"guarantee_type": {"enum": ["credit", "mortgage"]}}}
    offers = {
        "parameters": {"guarantee_types": ["mortgage", "policy_guarantee"]},
        "bindings": {"decisions": {"p": "r"}},
    }
    assert rule_choice_problems(offers, {"r": narrow}, mapping) == [
        {
            "field": "parameters.guarantee_types",
            "message": "rule r (slot p) does not accept guarantee_type policy_guarantee",
        }
    ]


def test_catalog_counts_per_series_and_system(catalog: dict[str, dict[str, Any]]) -> None:
    series = Counter(document["series"] for document in catalog.values())
    assert len(catalog) == 95
    assert sum(series[name] for name in FIVE_SERIES) == 73
    assert series == {
        "兴农贷": 22,
        "宜居贷": 12,
        "乡风文明贷": 12,
        "治理有效贷": 10,
        "富农贷": 17,
        "政策性产品": 10,
        "信e快贷": 11,
        "信e贷": 1,
    }
    assert Counter(document["system"] for document in catalog.values()) == {
        "支农": 31,
        "兴商": 20,
        "助企": 16,
        "惠民": 28,
    }
    # every system is served inside the five rural-revitalisation series, not only by the e-products
    in_series = {document["system"] for document in catalog.values() if document["series"] in FIVE_SERIES}
    assert in_series == {"支农", "兴商", "助企", "惠民"}


def test_catalog_uses_the_names_the_seed_lists(catalog: dict[str, dict[str, Any]]) -> None:
    names = {document["series"]: set() for document in catalog.values()}
    for document in catalog.values():
        names[document["series"]].add(document["name"])
    assert names["信e快贷"] == XEKD_NAMES
    assert names["信e贷"] == {"信e贷"}
    assert names["政策性产品"] >= SEED_POLICY_NAMES
    for series in FIVE_SERIES:
        assert all(name.startswith(f"{series}·") for name in names[series]), series


def test_codes_and_names_are_unique_and_codes_are_file_names(catalog: dict[str, dict[str, Any]]) -> None:
    assert all(document["code"] == stem for stem, document in catalog.items())
    assert len({document["name"] for document in catalog.values()}) == len(catalog)


def test_archetypes_fit_the_products(catalog: dict[str, dict[str, Any]]) -> None:
    by_name = {document["name"]: document for document in catalog.values()}
    xekd = [document for document in catalog.values() if document["series"] == "信e快贷"]
    assert {d["name"] for d in xekd if d["archetype"] != "a1_instant_online"} == {"房抵e贷"}
    assert by_name["房抵e贷"]["archetype"] == "a6_collateral"
    assert by_name["信e贷"]["archetype"] == "a3_online_light"
    assert by_name["兴农贷·整村授信贷"]["archetype"] == "a2_batch_preapproval"
    for document in catalog.values():
        guarantees = set(document["parameters"]["guarantee_types"])
        renewal = document["archetype"] == "a7_renewal"
        assert renewal == (document["contract_template"] == "renewal"), document["code"]
        if document["contract_template"] in ("mortgage", "pledge"):
            assert guarantees & {"mortgage", "pledge"}, document["code"]
        if document["series"] == "政策性产品":
            assert document["archetype"] in ("a5_guaranteed_policy", "a6_collateral"), document["code"]


def test_parameters_follow_the_market_conventions(catalog: dict[str, dict[str, Any]]) -> None:
    for document in catalog.values():
        parameters = document["parameters"]
        # the 5-year LPR prices loans that can run longer than five years, the 1-year LPR the rest
        long_term = parameters["term_months"]["max"] > 60
        assert (parameters["rate"]["benchmark"] == "LPR_5Y") == long_term, document["code"]
        # canonical amount text: two decimals
        assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", value) for value in parameters["amount"].values())
        # instant online consumer credit stays within the internet consumer-loan cap of 20万
        if (document["archetype"], document["system"], parameters["guarantee_types"]) == (
            "a1_instant_online",
            "惠民",
            ["credit"],
        ):
            assert float(parameters["amount"]["max"]) <= 200_000, document["code"]
        assert "illustrative" not in document["source"] or document["source"]["note"]


def test_committed_catalog_is_what_the_builder_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("build_standard_catalog", BUILDER)
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, builder)  # dataclasses look their module up there
    spec.loader.exec_module(builder)
    assert builder.main(["--check"]) == 0


# ── the schema and the documented example ──────────────────────────────────────────────────


def _object_schemas(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_object_schemas(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_object_schemas(value))
    return found


def test_schema_is_draft_2020_12_and_strict() -> None:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    objects = _object_schemas(schema)
    assert len(objects) >= 8
    assert all(node.get("additionalProperties") is False for node in objects)


def _doc_example(marker: str) -> dict[str, Any]:
    match = re.search(rf"<!-- example:{marker} -->\n```json\n(.*?)\n```", DOCS.read_text("utf-8"), re.DOTALL)
    assert match is not None, marker
    return json.loads(match.group(1))


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the documentation describes it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def test_documented_example_is_the_patched_template_and_valid(
    catalog: dict[str, dict[str, Any]], shipped: dict[str, Any]
) -> None:
    resolved = _doc_example("resolved")
    assert _merge_patch(catalog["ZC-LUDANHUINONG"], _doc_example("patch")) == resolved
    # the bank brings its own investigation form, as the documentation says
    bank = {**shipped, "forms": shipped["forms"] | {"investigation-ly"}}
    assert validate_product_config(resolved, **bank, file_name="LY-LUDANHUINONG.json") == []
    assert fields_of(validate_product_config(resolved, **shipped)) == ["bindings.forms.investigation"]
    assert _archetype_mismatches(resolved) == []
    # the example shows every field of the format, optional ones included
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    assert resolved.keys() == schema["properties"].keys()
    assert {"forms", "roles"} <= resolved["bindings"].keys()
    assert {"steps", "calendar"} <= resolved["time_limits"].keys()
    assert {"references", "illustrative", "note"} <= resolved["source"].keys()


# ── the validator ──────────────────────────────────────────────────────────────────────────


def test_broken_document_reports_every_kind_of_problem_at_once(
    product: dict[str, Any], references: dict[str, Any]
) -> None:
    product["colour"] = "red"  # schema: unknown field
    del product["description"]  # schema: required field
    product["parameters"]["term_months"] = {"min": 48, "max": 12}
    product["parameters"]["amount"]["min"] = "1000.005"
    product["parameters"]["rate"]["min_bp"] = 200
    product["time_limits"] = {"process": "5 days", "steps": {"review": "PT0M"}}
    product["archetype"] = "a9_unknown"
    product["bindings"]["decisions"]["access"] = "no-such-rule"
    product["bindings"]["forms"] = {"review": "no-such-form"}

    problems = validate_product_config(product, **references, file_name="OTHER.json")
    messages = {problem["field"]: problem["message"] for problem in problems}

    assert sorted(fields_of(problems)) == sorted(
        [
            "colour",
            "description",
            "code",
            "parameters.amount.min",
            "parameters.term_months",
            "parameters.rate",
            "time_limits.process",
            "time_limits.steps.review",
            "archetype",
            "bindings.decisions.access",
            "bindings.forms.review",
        ]
    )
    assert messages["colour"] == "is not a known field"
    assert messages["description"] == "is required"
    assert "OTHER.json" in messages["code"]
    assert messages["parameters.amount.min"] == "must be at most 2 decimal places"
    assert messages["parameters.term_months"] == "min 48 is above max 12"
    assert messages["parameters.rate"] == "min_bp 200 is above max_bp 100"
    assert "'5 days' is not an ISO 8601 working-time duration" in messages["time_limits.process"]
    assert messages["time_limits.steps.review"] == "must be longer than zero"
    assert "unknown archetype 'a9_unknown'" in messages["archetype"]
    assert "no rule file 'no-such-rule'" in messages["bindings.decisions.access"]
    assert "no form 'no-such-form'" in messages["bindings.forms.review"]


def test_amount_problems_are_reported_once_each(product: dict[str, Any], references: dict[str, Any]) -> None:
    product["parameters"]["amount"] = {"min": "-5.00", "max": "lots"}
    problems = validate_product_config(product, **references)
    assert fields_of(problems) == ["parameters.amount.max", "parameters.amount.min"]
    assert "does not match" in problems[0]["message"]  # not decimal text: the schema says so, nobody else
    assert problems[1]["message"] == "must not be negative"
    product["parameters"]["amount"] = {"min": "1.00", "max": "1" + "0" * 15 + ".00"}
    problems = validate_product_config(product, **references)
    assert problems == [
        {"field": "parameters.amount.max", "message": "must have at most 15 digits before the decimal point"}
    ]


def test_amount_range_is_compared_as_decimals(product: dict[str, Any], references: dict[str, Any]) -> None:
    product["parameters"]["amount"] = {"min": "900.00", "max": "1000"}
    product["rule_parameters"]["max_amount"] = 1000
    assert validate_product_config(product, **references) == []
    product["parameters"]["amount"] = {"min": "1000.01", "max": "1000"}
    problems = validate_product_config(product, **references)
    assert fields_of(problems) == ["parameters.amount"]
    assert problems[0]["message"] == "min 1000.01 is above max 1000"


@pytest.mark.parametrize(
    ("duration", "problem"),
    [
        ("P5D", None),
        ("PT30M", None),
        ("PT4H", None),
        ("P1DT4H", None),
        ("P0DT1M", None),
        ("P1M", "not an ISO 8601 working-time duration"),  # calendar months mean nothing in working time
        ("P1Y", "not an ISO 8601 working-time duration"),
        ("P1W", "not an ISO 8601 working-time duration"),
        ("P", "not an ISO 8601 working-time duration"),
        ("PT", "not an ISO 8601 working-time duration"),
        ("P1DT", "not an ISO 8601 working-time duration"),
        ("P1.5D", "not an ISO 8601 working-time duration"),
        ("-P1D", "not an ISO 8601 working-time duration"),
        ("p5d", "not an ISO 8601 working-time duration"),
        ("P\u0665D", "not an ISO 8601 working-time duration"),  # a non-ASCII digit
        ("P0D", "must be longer than zero"),
        ("PT0H0M", "must be longer than zero"),
        ("P366D", None),
        ("P365DT24H1M", "must be at most P366D"),
        ("P99999999D", "must be at most P366D"),  # its red time lay beyond the year 9999: a 500 per application
    ],
)
def test_time_limit_durations(
    product: dict[str, Any], references: dict[str, Any], duration: str, problem: str | None
) -> None:
    product["time_limits"]["process"] = duration
    problems = validate_product_config(product, **references)
    if problem is None:
        assert problems == []
    else:
        assert fields_of(problems) == ["time_limits.process"]
        assert problem in problems[0]["message"]


def test_rule_parameters_must_agree_with_the_product(product: dict[str, Any], references: dict[str, Any]) -> None:
    product["rule_parameters"].update({"min_age": 70, "max_age": 65, "max_amount": 5_000_000, "min_rate_bp": -10})
    problems = validate_product_config(product, **references)
    assert {problem["field"]: problem["message"] for problem in problems} == {
        "rule_parameters": "min_age 70 is above max_age 65",
        "rule_parameters.max_amount": "is above parameters.amount.max 3000000.00",
        "rule_parameters.min_rate_bp": "is outside parameters.rate [0, 100]",
    }


def test_schema_checks_formats_and_dependencies(product: dict[str, Any], references: dict[str, Any]) -> None:
    product["source"]["as_of"] = "2026-13-45"
    del product["source"]["note"]  # required while parts are marked illustrative
    product["segments"] = ["farmer", "farmer"]
    product["code"] = "lowercase"
    problems = validate_product_config(product, **references)
    assert sorted(fields_of(problems)) == ["code", "segments", "source", "source.as_of"]


def test_nested_unknown_and_missing_fields_are_named(product: dict[str, Any], references: dict[str, Any]) -> None:
    product["parameters"]["rate"]["floor_bp"] = 0
    del product["parameters"]["rate"]["benchmark"]
    del product["time_limits"]["process"]
    assert sorted(fields_of(validate_product_config(product, **references))) == [
        "parameters.rate.benchmark",
        "parameters.rate.floor_bp",
        "time_limits.process",
    ]


def test_wrong_types_do_not_break_the_cross_checks(references: dict[str, Any]) -> None:
    document = {"parameters": {"amount": [], "term_months": "long", "rate": None}, "time_limits": 5, "bindings": []}
    problems = validate_product_config(document, **references, file_name="X.json")
    assert "code" in fields_of(problems)  # required, reported by the schema
    assert "parameters.amount" in fields_of(problems)


# ── loading and the whole catalog ──────────────────────────────────────────────────────────


def test_catalog_reports_duplicates_and_unreadable_files(tmp_path: Path, references: dict[str, Any]) -> None:
    shutil.copy(DEFAULT_STANDARD_DIR / "XEKD-XIN.json", tmp_path / "XEKD-XIN.json")
    shutil.copy(DEFAULT_STANDARD_DIR / "XEKD-XIN.json", tmp_path / "XEKD-XIN2.json")
    (tmp_path / "BROKEN.json").write_text('{"code": "A", "code": "B"}', encoding="utf-8")
    problems = validate_catalog(tmp_path, **references)
    assert sorted((problem["file"], problem["field"]) for problem in problems) == [
        ("BROKEN.json", ""),
        ("XEKD-XIN2.json", "code"),  # does not match its file name
        ("XEKD-XIN2.json", "code"),  # and is XEKD-XIN.json's code
        ("XEKD-XIN2.json", "name"),
    ]
    assert any("also used by XEKD-XIN.json" in problem["message"] for problem in problems)
    assert any("duplicate key 'code'" in problem["message"] for problem in problems)


def test_load_refuses_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "GOOD.json").write_text('{"code": "GOOD"}', encoding="utf-8")
    assert load_product_configs(tmp_path) == {"GOOD": {"code": "GOOD"}}
    (tmp_path / "NAN.json").write_text('{"x": NaN}', encoding="utf-8")
    (tmp_path / "LIST.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InvalidProductConfig) as raised:
        load_product_configs(tmp_path)
    assert sorted(problem["file"] for problem in raised.value.problems) == ["LIST.json", "NAN.json"]
    with pytest.raises(FileNotFoundError):
        load_product_configs(tmp_path / "missing")


# ── what publishing adds: a variant narrows its template, bindings name what the process has ─────


def rule_defaults(rule: str) -> dict[str, Any]:
    path = RULES_DIR / f"{rule}.params.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


@pytest.fixture(scope="module")
def outlines() -> dict[str, ProcessOutline]:
    """Each archetype's lanes, user tasks and decision slots, from its BPMN as deployed."""
    files = sorted((ROOT / "bpmn").glob("*.bpmn"))
    parser, problems = build_parser([ModelFile(f.name, "bpmn", f.read_bytes(), "") for f in files], validate=False)
    assert problems == []
    return {
        key: ProcessOutline.of(key, [parser.get_spec(key), *parser.get_subprocess_specs(key).values()])
        for key in ARCHETYPES
    }


def test_the_documented_variant_only_narrows_its_template_and_names_what_its_process_has(
    catalog: dict[str, dict[str, Any]], outlines: dict[str, ProcessOutline]
) -> None:
    resolved = _doc_example("resolved")
    assert widening_problems(catalog["ZC-LUDANHUINONG"], resolved, rule_defaults) == []
    assert process_problems(resolved, outlines[resolved["archetype"]]) == []
    assert role_problems(resolved) == []
    review = FormCatalog().get("review").schema
    assert undefined_required(_merge_patch(review, resolved["form_overrides"]["review"]), "form_overrides.review") == []


def test_every_standard_product_binds_what_its_archetype_has(
    catalog: dict[str, dict[str, Any]], outlines: dict[str, ProcessOutline]
) -> None:
    found = {
        code: problems
        for code, document in catalog.items()
        if (problems := process_problems(document, outlines[document["archetype"]]) + role_problems(document))
    }
    assert found == {}
    assert all(widening_problems(document, document, rule_defaults) == [] for document in catalog.values())


def test_a_variant_may_narrow_but_not_widen(product: dict[str, Any]) -> None:
    template = copy.deepcopy(product)  # 100000.00–3000000.00, 12–60 months, LPR_1Y + 0–100 bp, max_age 65
    narrowed = copy.deepcopy(product)
    narrowed["parameters"]["amount"] = {"min": "200000.00", "max": "3000000"}  # equal counts as inside
    narrowed["parameters"]["rate"]["max_bp"] = 80
    narrowed["rule_parameters"] = {"min_age": 20, "max_age": 60}
    narrowed["parameters"]["committee_threshold"] = "500000.00"
    assert widening_problems(template, narrowed, rule_defaults) == []

    widened = copy.deepcopy(product)
    widened["parameters"]["amount"]["max"] = "3000000.01"
    widened["parameters"]["term_months"]["min"] = 6
    widened["parameters"]["guarantee_types"] = ["policy_guarantee", "credit"]
    widened["rule_parameters"] = {"min_age": 18}  # max_age left out: the rule's default 65 is the template's
    widened["rule_parameters"]["min_monthly_income"] = 1999  # below the rule's default 2000
    widened["archetype"] = "a1_instant_online"  # the same loan without a human check
    widened["parameters"]["committee_threshold"] = "1000000.01"  # above the default 1000000.00
    problems = widening_problems(template, widened, rule_defaults)
    assert problems == [
        {"field": "parameters.amount.max", "message": "cannot go above the template's 3000000.00"},
        {"field": "parameters.term_months.min", "message": "cannot go below the template's 12"},
        {
            "field": "parameters.guarantee_types",
            "message": "may only keep values the template offers (policy_guarantee); adds credit",
        },
        {"field": "parameters.committee_threshold", "message": "cannot go above the template's 1000000.00"},
        {"field": "archetype", "message": "cannot change from the template's 'a5_guaranteed_policy'"},
        {"field": "rule_parameters.min_monthly_income", "message": "cannot go below the template's 2000"},
    ]


def test_a_variant_keeps_or_shortens_its_templates_clocks(product: dict[str, Any]) -> None:
    """A bank published P366D on the natural calendar with a ladder of 8/9/10 as a narrowing."""
    template = copy.deepcopy(product)
    template["time_limits"] = {"process": "P10D", "steps": {"review": "P2D"}}
    shorter = copy.deepcopy(template)
    shorter["time_limits"] = {
        "process": "P5D",
        "steps": {"review": "PT8H", "approval": "P1D"},
        "ladder": {"yellow": 0.5},
    }
    assert widening_problems(template, shorter, rule_defaults) == []

    longer = copy.deepcopy(template)
    longer["time_limits"] = {"process": "P366D", "steps": {}, "ladder": {"yellow": 8, "orange": 9, "red": 10}}
    assert widening_problems(template, longer, rule_defaults) == [
        {"field": "time_limits.process", "message": "cannot be longer than the template's P10D"},
        {"field": "time_limits.steps.review", "message": "cannot be longer than the template's P2D"},  # dropped
        {"field": "time_limits.ladder.yellow", "message": "cannot come later than the template's 0.8"},
        {"field": "time_limits.ladder.orange", "message": "cannot come later than the template's 1.0"},
        {"field": "time_limits.ladder.red", "message": "cannot come later than the template's 1.5"},
    ]
    natural = copy.deepcopy(template)  # ten days of clock time end before ten working days do
    natural["time_limits"]["calendar"] = "natural"
    assert widening_problems(template, natural, rule_defaults) == []
    assert widening_problems(natural, template, rule_defaults) == [
        {"field": "time_limits.calendar", "message": "cannot change from the template's 'natural'"}
    ]


def test_bindings_must_name_the_archetypes_tasks_lanes_slots_and_real_roles(
    product: dict[str, Any], outlines: dict[str, ProcessOutline]
) -> None:
    product["bindings"]["decisions"] = {"scorecard": "segment-scorecard"}  # a5 runs access, not scorecard
    product["bindings"]["forms"] = {"main_investigation": "investigation"}  # a4's task id, not a5's
    product["bindings"]["roles"] = {"approver": "no_such_role", "system": "approver", "reviewer": "admin"}
    product["time_limits"]["steps"] = {"investigation": "P1D", "committee_vote": "P1D"}
    problems = process_problems(product, outlines["a5_guaranteed_policy"]) + role_problems(product)
    assert sorted(fields_of(problems)) == [
        "bindings.decisions.access",  # unbound
        "bindings.decisions.scorecard",  # not in the process
        "bindings.forms.main_investigation",
        "bindings.roles.approver",
        "bindings.roles.reviewer",  # a system administrator takes no credit decision
        "bindings.roles.system",  # the system lane holds no user task
        "time_limits.steps.committee_vote",
    ]


def test_every_shipped_form_defines_what_it_requires_and_an_override_must_too() -> None:
    forms = FormCatalog()
    assert {name: p for name in forms.names() if (p := undefined_required(forms.get(name).schema, name))} == {}
    review = forms.get("review").schema
    patched = _merge_patch(
        review, {"required": ["recommendation", "comment", "visit"], "then": {"required": ["suggested", "comment"]}}
    )
    assert undefined_required(patched, "form_overrides.review") == [
        {"field": "form_overrides.review.required", "message": "requires visit, which the form does not have"},
        {"field": "form_overrides.review.then.required", "message": "requires suggested, which the form does not have"},
    ]


@pytest.mark.parametrize(
    ("code", "overrides", "fields"),
    [
        ("LY-DAINONG", {}, []),
        ("LY-DAINONG", {"name": None}, []),
        ("ly-dainong", {}, ["code"]),
        ("L", {}, ["code"]),  # two characters at least
        ("LY-DAINONG\n", {}, ["code"]),
        ("X" * 33, {}, ["code"]),
        ("LY-DAINONG", [], ["overrides"]),
        ("LY-DAINONG", "patch", ["overrides"]),
        ("LY-DAINONG", None, ["overrides"]),
        ("bad code", [{"a": 1}], ["code", "overrides"]),
    ],
)
def test_clone_requests_are_checked_before_anything_is_stored(code: str, overrides: Any, fields: list[str]) -> None:
    assert fields_of(clone_problems(code, overrides)) == fields
