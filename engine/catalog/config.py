"""Product configurations: loading and validating the JSON documents that define credit products.

A product is configuration, not code: an archetype BPMN process plus one JSON document (schema in
``product_configs/schema/product.schema.json``, explained in ``docs/product-config.md``). A bank's
variant is the province's template plus a JSON Merge Patch, so everything here validates the
*resolved* document.

Validation reports every problem at once, each as ``{"field": "<dotted path>", "message": ...}``,
so a product manager fixes a document in one round instead of one error at a time. The JSON Schema
checks shapes; the cross-checks below check what a schema cannot: ranges (min <= max), amount
precision, working-time durations, and references to archetypes, rule files and forms that live
elsewhere.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Container, Mapping
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from engine.errors import CreditFlowError
from engine.forms.formats import amount_problem
from engine.json_documents import load_object

__all__ = [
    "DEFAULT_STANDARD_DIR",
    "SCHEMA_PATH",
    "InvalidProductConfig",
    "clone_problems",
    "load_product_configs",
    "validate_catalog",
    "validate_product_config",
]

_PRODUCT_CONFIGS = Path(__file__).resolve().parents[2] / "product_configs"
SCHEMA_PATH = _PRODUCT_CONFIGS / "schema" / "product.schema.json"
DEFAULT_STANDARD_DIR = _PRODUCT_CONFIGS / "standard"
"""The province's standard templates, one ``<CODE>.json`` each (source checkout layout)."""

# Working time has no calendar months or years: a limit is so many working days, hours and minutes.
_WORKING_DURATION = re.compile(r"P(?:([0-9]+)D)?(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?)?")

# The schema's amount pattern: sign and precision are left to ``amount_problem`` for a clearer message.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

Problem = dict[str, str]


class InvalidProductConfig(CreditFlowError):
    """A product file cannot be read as a JSON object; ``problems`` names each file."""

    status = 422
    title = "Invalid product configuration"


@cache
def _schema_validator() -> Draft202012Validator:
    """The product schema, checked against the draft 2020-12 meta-schema once per process."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    # A fresh checker: ``date`` is the only format the product schema uses, and it needs no extras.
    return Draft202012Validator(schema, format_checker=FormatChecker(["date"]))


def _read_directory(directory: Path) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Parse every ``*.json`` file strictly; documents by file stem, and one problem per unreadable file."""
    documents: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.json")):
        try:
            documents[path.stem] = load_object(path.read_bytes())
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problems.append({"file": path.name, "field": "", "message": f"not valid JSON: {error}"})
    return documents, problems


def load_product_configs(directory: str | os.PathLike[str] = DEFAULT_STANDARD_DIR) -> dict[str, dict[str, Any]]:
    """Every product document in ``directory``, keyed by file stem (which must equal its ``code``).

    Only parsing happens here (strict JSON: UTF-8, no duplicate keys, no NaN); call
    ``validate_product_config`` or ``validate_catalog`` to check the contents.
    """
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"product directory {path} does not exist")
    documents, problems = _read_directory(path)
    if problems:
        listed = "; ".join(f"{problem['file']}: {problem['message']}" for problem in problems)
        raise InvalidProductConfig(f"unreadable product files in {path}: {listed}", problems)
    return documents


def _dotted(parts: list[str | int]) -> str:
    return ".".join(str(part) for part in parts)


def _schema_problems(document: dict[str, Any]) -> list[Problem]:
    """Schema errors by field; a missing or unexpected property is named in the path itself."""
    problems: list[Problem] = []
    for error in sorted(
        _schema_validator().iter_errors(document), key=lambda e: ([str(part) for part in e.absolute_path], e.message)
    ):
        path = list(error.absolute_path)
        if error.validator in ("required", "additionalProperties") and isinstance(error.instance, dict):
            # jsonschema names the property only inside its message; work it out from the instance instead.
            if error.validator == "required":
                names = [name for name in error.validator_value if name not in error.instance]
                message = "is required"
            else:
                names = sorted(error.instance.keys() - error.schema.get("properties", {}).keys())
                message = "is not a known field"
            for name in names:
                problem = {"field": _dotted([*path, name]), "message": message}
                if problem not in problems:  # ``required`` yields one error per missing name, each naming all
                    problems.append(problem)
        else:
            problems.append({"field": _dotted(path), "message": error.message})
    return problems


def _section(document: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A nested object, or an empty one when it is absent or of the wrong type (the schema reports that)."""
    current: Any = document
    for key in keys:
        current = current.get(key) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _amount_problems(amount: dict[str, Any]) -> list[Problem]:
    """Precision and sign of each amount, then the range; text that is no number is the schema's job."""
    problems: list[Problem] = []
    values: dict[str, Decimal] = {}
    for bound in ("min", "max"):
        text = amount.get(bound)
        if not isinstance(text, str) or not _DECIMAL_TEXT.fullmatch(text):
            continue  # not decimal text at all: the schema pattern reports it
        if (problem := amount_problem(text)) is None:
            values[bound] = Decimal(text)
        else:
            problems.append({"field": f"parameters.amount.{bound}", "message": problem})
    if len(values) == 2 and values["min"] > values["max"]:
        problems.append({"field": "parameters.amount", "message": f"min {values['min']} is above max {values['max']}"})
    return problems


def _range_problem(field: str, section: dict[str, Any], low: str, high: str) -> list[Problem]:
    minimum, maximum = section.get(low), section.get(high)
    if _is_number(minimum) and _is_number(maximum) and minimum > maximum:
        return [{"field": field, "message": f"{low} {minimum} is above {high} {maximum}"}]
    return []


LONGEST_LIMIT_DAYS = 366  # P99999999D passed, and every application of the product then failed with a 500


def _duration_problem(text: str) -> str | None:
    """Why ``text`` is not a positive ISO 8601 duration in working days, hours and minutes, or None."""
    match = _WORKING_DURATION.fullmatch(text)
    parts = [int(value) for value in match.groups() if value is not None] if match else []
    if not parts:
        return (
            f"{text!r} is not an ISO 8601 working-time duration: use days, hours and minutes (P5D, PT4H, PT30M, P1DT4H)"
        )
    if not any(parts):
        return "must be longer than zero"
    days, hours, minutes = (int(value or 0) for value in match.groups())
    if days * 1440 + hours * 60 + minutes > LONGEST_LIMIT_DAYS * 1440:  # a clock must end within the calendar
        return f"must be at most P{LONGEST_LIMIT_DAYS}D"
    return None


def _time_limit_problems(time_limits: dict[str, Any]) -> list[Problem]:
    durations = {"time_limits.process": time_limits.get("process")}
    durations.update({f"time_limits.steps.{task}": limit for task, limit in _section(time_limits, "steps").items()})
    problems: list[Problem] = [
        {"field": field, "message": problem}
        for field, text in durations.items()
        if isinstance(text, str) and (problem := _duration_problem(text)) is not None
    ]
    ladder = _section(time_limits, "ladder")
    levels = [ladder.get(level) for level in ("yellow", "orange", "red")]
    if all(isinstance(v, int | float) for v in levels) and not levels[0] < levels[1] < levels[2]:
        problems.append(
            {"field": "time_limits.ladder", "message": "yellow < orange < red, each a fraction of the limit"}
        )
    return problems


def _rule_parameter_problems(document: dict[str, Any]) -> list[Problem]:
    """Rule thresholds must agree with the product ranges they are copied from, and pair up min <= max."""
    rule_parameters = _section(document, "rule_parameters")
    parameters = _section(document, "parameters")
    problems: list[Problem] = []
    for name in sorted(rule_parameters):
        if name.startswith("min_"):
            partner = "max_" + name.removeprefix("min_")
            problems.extend(_range_problem("rule_parameters", rule_parameters, name, partner))
    max_amount, amount_max = rule_parameters.get("max_amount"), _section(parameters, "amount").get("max")
    if (
        _is_number(max_amount)
        and isinstance(amount_max, str)
        and amount_problem(amount_max) is None
        and Decimal(str(max_amount)) > Decimal(amount_max)
    ):
        problems.append(
            {"field": "rule_parameters.max_amount", "message": f"is above parameters.amount.max {amount_max}"}
        )
    rate = _section(parameters, "rate")
    low, high = rate.get("min_bp"), rate.get("max_bp")
    if _is_number(low) and _is_number(high) and low <= high:  # an inverted range is reported on its own
        for name in ("min_rate_bp", "max_rate_bp"):
            value = rule_parameters.get(name)
            if _is_number(value) and not low <= value <= high:
                problems.append(
                    {"field": f"rule_parameters.{name}", "message": f"is outside parameters.rate [{low}, {high}]"}
                )
    return problems


def _reference_problems(
    document: dict[str, Any],
    archetypes: Collection[str],
    forms: Container[str],
    rule_files: Container[str],
) -> list[Problem]:
    """Everything the document names that lives elsewhere: the archetype, rule files and forms."""
    problems: list[Problem] = []
    archetype = document.get("archetype")
    if isinstance(archetype, str) and archetype not in archetypes:
        known = ", ".join(sorted(archetypes))
        problems.append({"field": "archetype", "message": f"unknown archetype {archetype!r} (known: {known})"})
    bindings = _section(document, "bindings")
    for slot, rule in _section(bindings, "decisions").items():
        if isinstance(rule, str) and rule not in rule_files:
            problems.append(
                {"field": f"bindings.decisions.{slot}", "message": f"no rule file {rule!r} in product_configs/rules"}
            )
    for task, form in _section(bindings, "forms").items():
        if isinstance(form, str) and form not in forms:
            problems.append({"field": f"bindings.forms.{task}", "message": f"no form {form!r} in the form catalog"})
    return problems


DEFAULT_COMMITTEE_THRESHOLD = "1000000.00"


def committee_threshold(config: Mapping[str, Any]) -> str:
    """The amount above which an application goes to the bank's credit committee (贷审会): the
    product's, never the application's (an applicant's own threshold would skip the committee)."""
    parameters = config.get("parameters")
    found = parameters.get("committee_threshold") if isinstance(parameters, Mapping) else None
    return found if isinstance(found, str) else DEFAULT_COMMITTEE_THRESHOLD


def validate_product_config(
    document: dict[str, Any],
    *,
    archetypes: Collection[str],
    forms: Container[str],
    rule_files: Container[str],
    file_name: str | None = None,
) -> list[Problem]:
    """Every problem of one resolved product document; an empty list means it is valid.

    ``archetypes``, ``forms`` and ``rule_files`` are what exists where the product will run (the
    deployed archetype process keys, the form catalog, the rule files by name without ``.json``).
    ``file_name``, when the document comes from a file, must be ``<code>.json``.
    """
    problems = _schema_problems(document)
    code = document.get("code")
    if file_name is not None and isinstance(code, str) and Path(file_name).name != f"{code}.json":
        problems.append({"field": "code", "message": f"{code!r} does not match the file name {file_name!r}"})
    parameters = _section(document, "parameters")
    problems.extend(_amount_problems(_section(parameters, "amount")))
    problems.extend(_range_problem("parameters.term_months", _section(parameters, "term_months"), "min", "max"))
    problems.extend(_range_problem("parameters.rate", _section(parameters, "rate"), "min_bp", "max_bp"))
    problems.extend(_rule_parameter_problems(document))
    problems.extend(_time_limit_problems(_section(document, "time_limits")))
    problems.extend(_reference_problems(document, archetypes, forms, rule_files))
    return problems


def clone_problems(code: Any, overrides: Any) -> list[Problem]:
    """Why a local product cannot be made with ``code`` and ``overrides``, before anything is
    stored: a code the schema refuses could never be published, and only a JSON object is a merge
    patch (any other value would replace the whole template). Empty when both are fine."""
    problems: list[Problem] = []
    pattern = _schema_validator().schema["properties"]["code"]["pattern"]
    if not isinstance(code, str) or re.fullmatch(pattern, code) is None:
        problems.append(
            {"field": "code", "message": f"{code!r} is not a product code: capitals, digits and '-' ({pattern})"}
        )
    if not isinstance(overrides, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(overrides), "a number"
        )
        problems.append({"field": "overrides", "message": f"must be a JSON object (a JSON Merge Patch), not {kind}"})
    return problems


def validate_catalog(
    directory: str | os.PathLike[str] = DEFAULT_STANDARD_DIR,
    *,
    archetypes: Collection[str],
    forms: Container[str],
    rule_files: Container[str],
) -> list[Problem]:
    """Every problem of every product file in ``directory``, each with its ``file``, plus duplicate codes and names.

    Codes must be unique because they identify a product; names because staff and customers choose
    products by name.
    """
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"product directory {path} does not exist")
    documents, problems = _read_directory(path)
    first_file: dict[tuple[str, str], str] = {}
    for stem, document in documents.items():
        file_name = f"{stem}.json"
        problems.extend(
            {"file": file_name, **problem}
            for problem in validate_product_config(
                document, archetypes=archetypes, forms=forms, rule_files=rule_files, file_name=file_name
            )
        )
        for field in ("code", "name"):
            value = document.get(field)
            if not isinstance(value, str):
                continue
            earlier = first_file.setdefault((field, value), file_name)
            if earlier != file_name:
                problems.append({"file": file_name, "field": field, "message": f"{value!r} is also used by {earlier}"})
    return problems
