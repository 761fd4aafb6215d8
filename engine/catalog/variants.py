"""A bank's local product may only narrow the province template it is based on, never widen it.

A local variant is the template plus the bank's merge patch, so nothing stops a patch from raising
the template's amount cap or adding a guarantee type the province never approved. Publishing
compares the resolved variant with the template version it is based on and reports every bound and
every list that lets the variant lend where the template does not, each as
``{"field": "<config path>", "message": ...}`` (the style of ``engine.forms.overrides``: narrowing
is fine, widening is refused):

- ranges (``parameters.amount``, ``parameters.term_months``, ``parameters.rate``): a minimum may
  only go up, a maximum only down; the rate's benchmark is what its spreads are counted from, so
  it cannot change;
- lists of allowed values (``parameters.repayment_methods``, ``parameters.guarantee_types``,
  ``segments``): only a subset of the template's;
- rule thresholds (``rule_parameters``): ``min_*`` may only go up and ``max_*`` only down, each
  compared as the bound rule sees it, so a threshold the patch deletes counts as the rule's
  provincial default;
- the credit committee's threshold (``parameters.committee_threshold``) may only go down;
- the process (``archetype``) stays the template's: another archetype
  decides with other controls (a collateral loan made an instant online loan loses every human
  check), so it is another product, which the province designs.

The variant must be valid on its own (``validate_product_config``) before this runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.catalog.config import committee_threshold
from engine.sla.deadlines import DEFAULT_LADDER, parse_limit

Problem = dict[str, str]

# (section path, lower-bound key, upper-bound key): the ranges of ``parameters``
RANGES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("parameters", "amount"), "min", "max"),
    (("parameters", "term_months"), "min", "max"),
    (("parameters", "rate"), "min_bp", "max_bp"),
)
# lists of allowed values: a variant may drop values, never add one
CHOICES: tuple[tuple[str, ...], ...] = (
    ("parameters", "repayment_methods"),
    ("parameters", "guarantee_types"),
    ("segments",),
)
# values a variant keeps exactly as the template has them
FIXED: tuple[tuple[str, ...], ...] = (("archetype",), ("parameters", "rate", "benchmark"))


def widening_problems(
    template: Mapping[str, Any],
    variant: Mapping[str, Any],
    rule_defaults: Callable[[str], Mapping[str, Any]] = lambda _rule: {},
) -> list[Problem]:
    """Where ``variant`` accepts what ``template`` refuses; ``rule_defaults(rule_name)`` gives a
    rule's provincial parameter values (``<rule>.params.json``)."""
    problems: list[Problem] = []
    for path, low, high in RANGES:
        base, mine = _at(template, path), _at(variant, path)
        field = ".".join(path)
        problems.extend(_bound(f"{field}.{low}", base.get(low), mine.get(low), lower=True))
        problems.extend(_bound(f"{field}.{high}", base.get(high), mine.get(high), lower=False))
    for path in CHOICES:
        base_values, values = _value(template, path), _value(variant, path)
        if isinstance(base_values, list) and isinstance(values, list):
            added = [value for value in values if value not in base_values]
            if added:
                problems.append(
                    {
                        "field": ".".join(path),
                        "message": f"may only keep values the template offers ({_listed(base_values)}); "
                        f"adds {_listed(added)}",
                    }
                )
    thresholds = committee_threshold(template), committee_threshold(variant)
    problems.extend(_bound("parameters.committee_threshold", *thresholds, lower=False))
    for path in FIXED:
        before, after = _value(template, path), _value(variant, path)
        if before != after:
            problems.append({"field": ".".join(path), "message": f"cannot change from the template's {before!r}"})
    problems.extend(_rule_parameter_problems(template, variant, rule_defaults))
    problems.extend(_time_limit_problems(template, variant))
    return problems


def _time_limit_problems(template: Mapping[str, Any], variant: Mapping[str, Any]) -> list[Problem]:
    """A variant keeps its template's clocks or shortens them: a year-long limit on the natural
    calendar with a ladder of 8/9/10 published as a narrowing, and nothing ever escalated."""
    base, mine = _at(template, ("time_limits",)), _at(variant, ("time_limits",))
    calendar, own = base.get("calendar", "working"), mine.get("calendar", "working")
    if calendar == "natural" and own != "natural":  # working days stretch over evenings and holidays
        return [{"field": "time_limits.calendar", "message": "cannot change from the template's 'natural'"}]
    problems: list[Problem] = []
    limits = [("time_limits.process", base.get("process"), mine.get("process"))]
    steps = _at(mine, ("steps",))
    limits += [(f"time_limits.steps.{step}", limit, steps.get(step)) for step, limit in _at(base, ("steps",)).items()]
    for field, before, after in limits:
        # on the natural calendar a limit runs out no later than the same text in working time, so a
        # variant that moves to it compares the texts as natural durations
        longest, asked = _duration(before, own), _duration(after, own)
        if longest is not None and (after is None or (asked is not None and asked > longest)):
            problems.append({"field": field, "message": f"cannot be longer than the template's {before}"})
    ladder, own = _at(base, ("ladder",)), _at(mine, ("ladder",))
    for level in ("yellow", "orange", "red"):
        before, after = _number(ladder.get(level, getattr(DEFAULT_LADDER, level))), _number(own.get(level))
        if before is not None and after is not None and after > before:
            message = f"cannot come later than the template's {ladder.get(level, getattr(DEFAULT_LADDER, level))}"
            problems.append({"field": f"time_limits.ladder.{level}", "message": message})
    return problems


def _duration(text: Any, calendar: str) -> timedelta | None:
    """A limit's length to compare (None: none set, or malformed, which the validator reports)."""
    try:
        return parse_limit(text, calendar).duration if isinstance(text, str) else None
    except ValueError:
        return None


def _rule_parameter_problems(
    template: Mapping[str, Any], variant: Mapping[str, Any], rule_defaults: Callable[[str], Mapping[str, Any]]
) -> list[Problem]:
    base, _ = _effective(template, rule_defaults)
    mine, defaulted = _effective(variant, rule_defaults)
    problems: list[Problem] = []
    for name in sorted(base.keys() & mine.keys()):
        if not name.startswith(("min_", "max_")):
            continue
        found = _bound(f"rule_parameters.{name}", base[name], mine[name], lower=name.startswith("min_"))
        if found and name in defaulted:
            found[0]["message"] += " (left out, so the rule's default applies)"
        problems.extend(found)
    return problems


def _effective(
    config: Mapping[str, Any], rule_defaults: Callable[[str], Mapping[str, Any]]
) -> tuple[dict[str, Any], set[str]]:
    """The rule parameters the bound rules get (the product's own over the rules' defaults), and
    the names whose value is a rule default."""
    defaults: dict[str, Any] = {}
    for rule in sorted({r for r in _at(config, ("bindings", "decisions")).values() if isinstance(r, str)}):
        defaults.update(rule_defaults(rule))
    own = _at(config, ("rule_parameters",))
    values = {**defaults, **own}
    return {k: v for k, v in values.items() if _number(v) is not None}, set(defaults) - set(own)


def _bound(field: str, base: Any, mine: Any, *, lower: bool) -> list[Problem]:
    """A minimum (``lower``) below the template's, or a maximum above it."""
    before, after = _number(base), _number(mine)
    if before is None or after is None:
        return []  # malformed values are the validator's to report
    if lower and after < before:
        return [{"field": field, "message": f"cannot go below the template's {base}"}]
    if not lower and after > before:
        return [{"field": field, "message": f"cannot go above the template's {base}"}]
    return []


def _number(value: Any) -> Decimal | None:
    """Amounts are decimal text, the other bounds JSON numbers; both compare as decimals."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _value(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = document
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _at(document: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    found = _value(document, path)
    return found if isinstance(found, Mapping) else {}


def _listed(values: list[Any]) -> str:
    return ", ".join(str(value) for value in values)
