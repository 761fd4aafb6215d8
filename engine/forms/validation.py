"""Validate submitted form data and report every problem by field, in words a user understands.

``validate_form_data`` is the one entry point for submitted data (task completion, API drafts), so
a form is checked the same way wherever data comes in. jsonschema's own messages are never shown
because they repeat the value (which may be a resident ID number).

``FormValidator`` is draft 2020-12 with one extension: ``minimum``, ``maximum``,
``exclusiveMinimum`` and ``exclusiveMaximum`` also compare strings written as amounts (see
``formats.amount_problem``), so ``"amount": "9999999.00"`` cannot slip past a ``maximum`` just
because it was sent as a string to keep its decimals.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypedDict

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from engine.forms.formats import FORMAT_CHECKER, amount_problem, format_problem

if TYPE_CHECKING:
    from engine.forms.definition import FormDefinition

__all__ = [
    "FormValidator",
    "Problem",
    "bound_problems",
    "match_problems",
    "payload_problems",
    "unknown_fields",
    "validate_form_data",
]


class Problem(TypedDict):
    field: str
    message: str
    code: str


_BOUNDS: dict[str, tuple[Callable[[Decimal, Decimal], bool], str]] = {
    "minimum": (operator.ge, "must be at least"),
    "maximum": (operator.le, "must be at most"),
    "exclusiveMinimum": (operator.gt, "must be greater than"),
    "exclusiveMaximum": (operator.lt, "must be less than"),
}


def _amount_aware(keyword: str) -> Callable[..., Iterator[ValidationError]]:
    """Wrap a numeric bound keyword so that it also applies to amount strings."""
    standard = Draft202012Validator.VALIDATORS[keyword]
    holds, words = _BOUNDS[keyword]

    def check(validator: Validator, bound: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
        if isinstance(instance, str) and amount_problem(instance) is None:
            if not holds(Decimal(instance), Decimal(str(bound))):
                yield ValidationError(f"{words} {bound}")
        else:
            yield from standard(validator, bound, instance, schema)

    return check


FormValidator = validators.extend(Draft202012Validator, {keyword: _amount_aware(keyword) for keyword in _BOUNDS})

_TYPE_NAMES = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "empty",
}


def field_path(path: Iterable[str | int]) -> str:
    """``("guarantors", 1, "mobile")`` → ``guarantors[1].mobile``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _shown(value: Any) -> str:
    """Schema values (bounds, enum members) as JSON, readable for Chinese text too."""
    return json.dumps(value, ensure_ascii=False)


def _message(error: ValidationError) -> str:
    """A message for one error that names the rule and never repeats the submitted value."""
    value = error.validator_value
    match error.validator:
        case "format":
            return format_problem(value, error.instance)
        case "type":
            types = [value] if isinstance(value, str) else value
            return "must be " + " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" as keyword:
            return f"{_BOUNDS[keyword][1]} {value}"
        case "minLength":
            return f"must be at least {value} characters"
        case "maxLength":
            return f"must be at most {value} characters"
        case "minItems":
            return f"must have at least {value} items"
        case "maxItems":
            return f"must have at most {value} items"
        case "uniqueItems":
            return "must not contain duplicates"
        case "multipleOf":
            return f"must be a multiple of {value}"
        case "pattern":
            return "does not have the expected format"
        case "enum":
            return "must be one of: " + ", ".join(_shown(option) for option in value)
        case "const":
            return f"must be {_shown(value)}"
        case "oneOf":
            return "must match exactly one of the allowed options"
        case "anyOf":
            return "must match one of the allowed options"
        case "not":
            return "is not allowed"
        case keyword:
            return f"is not valid ({keyword})"


def _missing(error: ValidationError) -> list[str]:
    """Properties a ``required`` or ``dependentRequired`` error is about, absent from the object."""
    if error.validator == "required":
        wanted = error.validator_value
    else:  # dependentRequired: {"trigger": ["needed", ...]}
        wanted = [
            name for trigger, needed in error.validator_value.items() if trigger in error.instance for name in needed
        ]
    return [name for name in dict.fromkeys(wanted) if name not in error.instance]


def _unexpected(error: ValidationError) -> list[str]:
    """Properties that ``"additionalProperties": false`` refused."""
    schema = error.schema
    known = schema.get("properties", {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    return [
        name for name in error.instance if name not in known and not any(pattern.search(name) for pattern in patterns)
    ]


def _problems(errors: Iterable[ValidationError]) -> Iterator[tuple[tuple[Any, ...], Problem]]:
    """Turn errors into problems keyed by path; property-level errors name the property itself.

    jsonschema yields one ``required`` error per missing property without saying which one, so
    each such error reports every missing property; the caller drops the repeats.
    """
    for error in errors:
        path = tuple(error.absolute_path)
        keyword = error.validator
        if keyword in ("required", "dependentRequired", "additionalProperties"):
            if keyword == "additionalProperties":
                names, message = _unexpected(error), "is not an allowed field"
            else:
                names, message = _missing(error), "is required"
            for name in names:
                yield (*path, name), {"field": field_path((*path, name)), "message": message, "code": keyword}
        else:
            yield path, {"field": field_path(path), "message": _message(error), "code": keyword}


def _sort_key(item: tuple[tuple[Any, ...], Problem]) -> tuple[Any, ...]:
    """Natural field order (``items[2]`` before ``items[10]``), then code, then message."""
    path, problem = item
    parts = tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in path)
    return (parts, problem["code"], problem["message"])


def validate_form_data(form: FormDefinition, data: Mapping[str, Any]) -> list[Problem]:
    """Every problem in ``data`` against ``form``, sorted by field; an empty list means valid.

    ``field`` is a dotted path (``applicant.id_number``, ``guarantors[1].mobile``; a missing
    property is named by its own path), ``code`` the JSON Schema keyword that failed.
    """
    return _schema_problems(form.validator, data)


def unknown_fields(form: FormDefinition, data: Mapping[str, Any]) -> list[Problem]:
    """Top-level keys the form does not define. A step's submission is merged into the application's
    data, so an unknown key would let a step rewrite what another step or the applicant gave (an
    approver changing the borrower, the payout account or the term the contract prints)."""
    defined = form.schema.get("properties") or {}
    return [
        {"field": name, "message": "is not a field of this form", "code": "unknown"}
        for name in sorted(data)
        if name not in defined
    ]


def payload_problems(schema: Mapping[str, Any], payload: Mapping[str, Any]) -> list[Problem]:
    """Like ``validate_form_data``, for what an outside party's message carries; fields are named
    ``payload.<path>``, as the request names them."""
    validator = FormValidator(schema, format_checker=FORMAT_CHECKER)
    return [{**problem, "field": f"payload.{problem['field']}"} for problem in _schema_problems(validator, payload)]


def _schema_problems(validator: Validator, data: Mapping[str, Any]) -> list[Problem]:
    found = sorted(_problems(validator.iter_errors(data)), key=_sort_key)
    unique = {(problem["field"], problem["code"], problem["message"]): problem for _, problem in found}
    return list(unique.values())


BOUNDS_KEYWORD = "x-creditflow-bounds"


def bound_problems(
    form: FormDefinition, data: Mapping[str, Any], parameters: Mapping[str, Any], current: Mapping[str, Any]
) -> list[Problem]:
    """Amounts a step decides stay within the product's range and never exceed what was applied for.

    A form field opts in with ``"x-creditflow-bounds": {"product_range": "amount", "at_most": "amount",
    "rule_limit": "pricing.limit"}``: ``product_range`` names a ``{min, max}`` parameter of the
    product, ``at_most`` the dotted path of a field of the application's data (a renewal's
    ``existing_loan.principal``), ``rule_limit`` the dotted path of the
    credit limit a rule decided (no check where that rule did not run); ``rate_range`` names a
    ``{min_bp, max_bp}`` parameter a spread in basis points must lie in. Run after the form's own
    validation, on values that are well-formed amounts or whole numbers.
    """
    problems: list[Problem] = []
    for name, spec in form.schema.get("properties", {}).items():
        bounds, value = spec.get(BOUNDS_KEYWORD), data.get(name)
        if not isinstance(bounds, dict) or value is None or isinstance(value, bool):
            continue
        rate = parameters.get(bounds.get("rate_range", ""))
        if isinstance(rate, Mapping) and not rate["min_bp"] <= value <= rate["max_bp"]:
            message = f"must be between {rate['min_bp']} and {rate['max_bp']} basis points, the product's range"
            problems.append({"field": name, "message": message, "code": "product_range"})
            continue
        amount, limits = _decimal(value), parameters.get(bounds.get("product_range", ""))
        ceiling = _decimal(_at_path(current, bounds.get("at_most", "")))
        decided = _decimal(_at_path(current, bounds.get("rule_limit", "")))
        if amount is None:
            continue
        if isinstance(limits, Mapping) and not Decimal(limits["min"]) <= amount <= Decimal(limits["max"]):
            message = f"must be between {limits['min']} and {limits['max']}, the product's range"
            problems.append({"field": name, "message": message, "code": "product_range"})
        elif ceiling is not None and amount > ceiling:
            what = "applied for" if bounds["at_most"] == "amount" else f"of {bounds['at_most']}"
            problems.append({"field": name, "message": f"must not exceed the {ceiling} {what}", "code": "at_most"})
        elif decided is not None and amount > decided:
            message = f"must not exceed the {decided} limit the product's rule decided"
            problems.append({"field": name, "message": message, "code": "rule_limit"})
    return problems


MATCHES_KEYWORD = "x-creditflow-matches"


def match_problems(
    schema: Mapping[str, Any], data: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[Problem]:
    """A value that must be the one the process already holds: the contract number an officer signed,
    the hash of the contract a borrower signed.

    A field opts in with ``"x-creditflow-matches": "contract.contract_no"`` (a dotted path into the
    instance's data); no check where the process holds nothing there. ``prefix`` names the field as
    the request does (``payload.`` for a message).
    """
    problems: list[Problem] = []
    for name, spec in schema.get("properties", {}).items():
        path = spec.get(MATCHES_KEYWORD) if isinstance(spec, Mapping) else None
        expected = _at_path(current, path) if isinstance(path, str) else None
        if name in data and expected is not None and str(data[name]) != str(expected):
            message = f"does not match {path} of this application"
            problems.append({"field": f"{prefix}{name}", "message": message, "code": "matches"})
    return problems


def _at_path(data: Mapping[str, Any], path: str) -> Any:
    """``data["pricing"]["limit"]`` for ``"pricing.limit"``; None where any part is missing."""
    found: Any = data
    for part in path.split(".") if path else []:
        found = found.get(part) if isinstance(found, Mapping) else None
    return found if path else None


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value)) if value is not None and not isinstance(value, bool) else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() else None
