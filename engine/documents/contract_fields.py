"""The vocabulary of contract templates: the one place that says which names a template may use and
which process-instance data each needs, so a template can be checked against a product's process
before any loan reaches it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, NamedTuple

from engine.documents.amounts import format_figures, parse_amount, rmb_capitals
from engine.documents.lpr import BENCHMARKS
from engine.documents.schedule import METHOD_NAMES, add_months, build_schedule

# Every top-level context key -> the dotted instance-data paths it needs. Keys with no paths come
# from the platform (bank and product configuration, contract numbering, the rate fixing).
# The mortgage registration (a6's ``mortgage_registered`` message) is no contract field: it arrives
# after the contract is signed and sealed, so no contract can print it.
FIELD_SOURCES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "contract_no": (),
        "signed_on": (),
        "bank": (),
        "product": (),
        "rate": (),
        "repayment_method": (),
        "start_date": (),
        "borrower": ("applicant.name", "applicant.id_number", "applicant.mobile"),
        "amount": ("amount",),
        "amount_cn": ("amount",),
        "term_months": ("term_months",),
        "end_date": ("term_months",),
        "schedule": ("amount", "term_months"),
        "schedule_totals": ("amount", "term_months"),
        "account": ("account",),
        "purpose": ("purpose",),
        "guarantee": ("guarantee.guarantee_no", "guarantee.guarantee_ratio"),
        # The loan-application form's array of {name, id_number, mobile, relationship}. Data paths do
        # not reach into array items, so each guarantor's name and id_number are checked here, when
        # the contract is made.
        "guarantors": ("guarantors",),
        # The collateral-appraisal form, whose fields are merged at the top level of the task data.
        "collateral": ("collateral_type", "certificate_no", "owner_name", "appraised_value"),
        "existing_loan": ("existing_loan.loan_id", "existing_loan.principal", "existing_loan.maturity_date"),
        "policy": ("policy",),
    }
)

# Present only when some of their source data is (guaranteed, secured, policy, renewal loans); a
# section with part of its data is an error naming the missing part, never a half-filled clause.
OPTIONAL_FIELDS = frozenset({"guarantee", "guarantors", "collateral", "existing_loan", "policy"})
# Sections: context key -> {name in the section: source path}.
_SECTIONS: dict[str, dict[str, str]] = {
    "borrower": {"name": "applicant.name", "id_number": "applicant.id_number", "mobile": "applicant.mobile"},
    "guarantee": {"guarantee_no": "guarantee.guarantee_no", "guarantee_ratio": "guarantee.guarantee_ratio"},
    "collateral": {
        "type": "collateral_type",
        "certificate_no": "certificate_no",
        "owner_name": "owner_name",
        "appraised_value": "appraised_value",
    },
    "existing_loan": {
        "loan_id": "existing_loan.loan_id",
        "principal": "existing_loan.principal",
        "maturity_date": "existing_loan.maturity_date",
    },
}
_COPIED_TEXTS = ("account", "purpose", "policy")
# The collateral-appraisal form's collateral_type values as contracts name them.
COLLATERAL_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "residential": "住宅房产",
        "commercial": "商业房产",
        "land_management_right": "土地经营权",
        "agricultural_facility": "农业设施",
    }
)
# Each guarantor's fields: the ones a contract needs, then the ones copied when given.
_GUARANTOR_REQUIRED = ("name", "id_number")
_GUARANTOR_OPTIONAL = ("mobile", "relationship")


def chinese_date(day: date) -> str:
    """A date as contracts write it: 2026年12月1日."""
    return f"{day.year}年{day.month}月{day.day}日"


def _data_amount(value: Decimal | str | int | float) -> Decimal:
    """An amount from instance data: forms allow JSON numbers, whose shortest repr is the decimal typed."""
    return parse_amount(repr(value) if isinstance(value, float) else value)


def _guarantee_percent(ratio: object) -> str:
    """The guaranteed share (0.8) as the contract prints it (80%)."""
    try:
        share = Decimal(str(ratio))
    except InvalidOperation:
        share = None
    if share is None or not share.is_finite() or not 0 < share <= 1:
        raise ValueError(f"guarantee.guarantee_ratio {ratio!r} is not a share in (0, 1]")
    return f"{(share * 100).normalize():f}%"


def _collateral_label(kind: object) -> str:
    """The appraisal form's collateral_type (residential) as the contract names it (住宅房产)."""
    label = COLLATERAL_TYPES.get(kind) if isinstance(kind, str) else None
    if label is None:
        raise ValueError(f"collateral_type {kind!r} is not one of {', '.join(COLLATERAL_TYPES)}")
    return label


# How copied values are printed; anything not listed is printed as text.
_PATH_FORMATS: dict[str, Callable[[Any], str]] = {
    "appraised_value": lambda value: format_figures(_data_amount(value)),
    "collateral_type": _collateral_label,
    "existing_loan.principal": lambda value: format_figures(_data_amount(value)),
    "existing_loan.maturity_date": lambda value: chinese_date(date.fromisoformat(str(value))),
    "guarantee.guarantee_ratio": _guarantee_percent,
}


class UnfillableTag(NamedTuple):
    """A template tag the contract context cannot fill for a process, and why (unpacks as a pair)."""

    tag: str
    reason: str


def unfillable_tags(tags: Iterable[str], available_paths: set[str]) -> list[UnfillableTag]:
    """Tags that are no contract field, or whose source paths are not all among ``available_paths``.

    ``available_paths`` are the dotted data paths the product's process provides; a path counts only
    when listed itself (providing ``guarantee`` does not promise ``guarantee.guarantee_no``).
    The result is sorted by tag.
    """
    problems: list[UnfillableTag] = []
    for tag in sorted(tags):
        if tag not in FIELD_SOURCES:
            problems.append(UnfillableTag(tag, "not a contract field"))
            continue
        missing = [path for path in FIELD_SOURCES[tag] if path not in available_paths]
        if missing:
            problems.append(UnfillableTag(tag, f"needs {', '.join(missing)}, which the process does not provide"))
    return problems


def contract_context(
    data: Mapping[str, Any],
    *,
    bank: Mapping[str, Any],
    product: Mapping[str, Any],
    contract_no: str,
    signed_on: date,
    lpr: Decimal,
    template_tags: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The template context of one contract; the loan starts on the signing day (a renewal: when the
    loan it repays matures, if that is later) at LPR plus the spread.

    Optional sections are in the context only when their source data is. Given the template's tags,
    a section the template uses but the data lacks is an error here, naming its source, rather than
    an undefined name when the template renders.
    """
    requested = _data_amount(_value(data, "amount"))
    approved = data.get("approved_amount")
    amount = requested if approved is None else _data_amount(approved)
    term = _value(data, "term_months")
    if isinstance(term, bool) or not isinstance(term, int):
        raise ValueError(f"term_months must be a whole number of months, got {term!r}")
    parameters = product["parameters"]
    spread = _spread(data, parameters["rate"])
    annual_rate = lpr + Decimal(spread) / 100
    method = _repayment_method(data, parameters["repayment_methods"])
    starts_on = _start(data, signed_on)
    schedule = build_schedule(amount, annual_rate, term, method, starts_on)
    context: dict[str, Any] = {
        "contract_no": contract_no,
        "signed_on": chinese_date(signed_on),
        "bank": dict(bank),
        "product": {"name": product["name"], "code": product["code"]},
        "rate": {
            "benchmark": BENCHMARKS[parameters["rate"]["benchmark"]],
            "lpr": f"{lpr:.2f}",
            "spread_bp": spread,
            "spread": f"{'减' if spread < 0 else '加'}{abs(spread)}个基点",
            "annual": f"{annual_rate:.2f}",
        },
        "repayment_method": METHOD_NAMES[method],
        "start_date": chinese_date(starts_on),
        "amount": format_figures(amount),
        "amount_cn": rmb_capitals(amount),
        "term_months": term,
        "end_date": chinese_date(add_months(starts_on, term)),
        "schedule": [
            {
                "period": row.period,
                "due_date": row.due_date.isoformat(),
                "principal": format_figures(row.principal),
                "interest": format_figures(row.interest),
                "payment": format_figures(row.payment),
                "balance_after": format_figures(row.balance_after),
            }
            for row in schedule.rows
        ],
        "schedule_totals": {
            "principal": format_figures(schedule.total_principal),
            "interest": format_figures(schedule.total_interest),
            "payment": format_figures(schedule.total_payment),
        },
    }
    for key, fields in _SECTIONS.items():
        if _present(data, key):
            context[key] = {name: _formatted(data, path) for name, path in fields.items()}
    for key in _COPIED_TEXTS:
        if _present(data, key):
            context[key] = _formatted(data, key)
    guarantors = _guarantors(data)
    if guarantors:
        context["guarantors"] = guarantors
    for key in sorted(OPTIONAL_FIELDS.intersection(template_tags or ()) - context.keys()):
        if key == "guarantors" and "guarantors" in data:
            raise ValueError("contract data lists no guarantors, which the template's guarantors section needs")
        raise ValueError(f"contract data lacks {', '.join(FIELD_SOURCES[key])}, which the template's {key} needs")
    return context


def _start(data: Mapping[str, Any], signed_on: date) -> date:
    """A renewal (续贷) repays its old loan when that matures and runs from then: from the signing day
    both loans would charge interest over the same weeks."""
    existing = data.get("existing_loan")
    maturity = existing.get("maturity_date") if isinstance(existing, Mapping) else None
    try:
        matures_on = date.fromisoformat(str(maturity)) if maturity is not None else None
    except ValueError:
        return signed_on
    return max(signed_on, matures_on) if matures_on is not None else signed_on


def _present(data: Mapping[str, Any], key: str) -> bool:
    """Whether any of an optional section's source data is there (required sections always are)."""
    if key not in OPTIONAL_FIELDS:
        return True
    return any(path.split(".", 1)[0] in data for path in FIELD_SOURCES[key])


def _guarantors(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The guarantors the application lists, each with at least a name and an ID number."""
    listed = data.get("guarantors")
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise ValueError(f"guarantors must be a list of guarantors, got {type(listed).__name__}")
    guarantors = []
    for index, guarantor in enumerate(listed):
        if not isinstance(guarantor, Mapping):
            raise ValueError(f"guarantors[{index}] is not a guarantor record")
        for name in _GUARANTOR_REQUIRED:
            if guarantor.get(name) in (None, ""):
                raise ValueError(f"contract data lacks guarantors[{index}].{name}")
        names = (*_GUARANTOR_REQUIRED, *(name for name in _GUARANTOR_OPTIONAL if name in guarantor))
        guarantors.append({name: str(guarantor[name]) for name in names})
    return guarantors


def _spread(data: Mapping[str, Any], rate: Mapping[str, Any]) -> int:
    """The spread in basis points the approver set, else the pricing rule's, else (a loan nobody
    priced: an instant loan's rule did not run) the product's floor. Offline loans without a pricing
    rule were all signed at the floor rate, whatever their risk."""
    pricing = data.get("pricing") or {}
    source = "approved_rate_bp" if "approved_rate_bp" in data else "pricing.rate_bp"
    spread = data.get("approved_rate_bp", pricing.get("rate_bp"))
    if spread is None:
        return int(rate["min_bp"])
    # Decision tables answer in JSON numbers, so 85.0 is as good as 85.
    whole = isinstance(spread, int | float) and not isinstance(spread, bool) and float(spread).is_integer()
    low, high = rate["min_bp"], rate["max_bp"]
    if not whole or not low <= spread <= high:
        raise ValueError(f"{source} {spread!r} is not whole basis points within the product's {low}–{high}")
    return int(spread)


def _repayment_method(data: Mapping[str, Any], offered: list[str]) -> str:
    """The chosen repayment method, or the product's first one when the application chose none."""
    method = data.get("repayment_method")
    if method is None:
        return offered[0]
    if method not in offered:
        raise ValueError(f"repayment_method {method!r} is not offered by the product ({', '.join(offered)})")
    return method


def _formatted(data: Mapping[str, Any], path: str) -> str:
    value = _value(data, path)
    return _PATH_FORMATS.get(path, str)(value)


def _value(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path; a missing one is named so the process gap can be fixed."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"contract data lacks {path}")
        value = value[part]
    return value
