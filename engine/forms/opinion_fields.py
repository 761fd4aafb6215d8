"""Which fields of a form state the step's opinion: its decision, comment, amounts, term and rate.

Every form names them differently (审批决定 ``decision``, 审查结论 ``recommendation``, 表决意见 ``vote``,
调查结论 ``investigation_conclusion``), so the opinion record (``engine.services.opinions``) cannot
know them by name. A form field says what it is with ``"x-creditflow-opinion": "<part>"``; a form the
province adds needs no code to appear in the record. The decision's Chinese label is the form's own
(``ui:enumNames`` of its UI schema), so the record says what the person chose as they saw it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.forms.catalog import FormDefinition

OPINION_KEYWORD = "x-creditflow-opinion"
# what a field may be: the step's decision, its free text, extra conditions (a committee member's 附加条件),
# an amount it proposes (建议金额) or approves (批准金额), a term in months, a rate spread in basis points
PARTS = ("decision", "comment", "conditions", "proposed_amount", "approved_amount", "term_months", "rate_bp")


@dataclass(frozen=True)
class OpinionFields:
    """A form's opinion parts (part -> field name) and its decision's labels (value -> Chinese label)."""

    fields: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def opinion_problems(schema: Mapping[str, Any]) -> list[str]:
    """Why a form's opinion annotations are unusable: an unknown part, or a part named twice."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for name, spec in (schema.get("properties") or {}).items():
        part = spec.get(OPINION_KEYWORD) if isinstance(spec, Mapping) else None
        if part is None:
            continue
        if part not in PARTS:
            problems.append(f"field {name!r}: {OPINION_KEYWORD} must be one of {', '.join(PARTS)}, not {part!r}")
        elif part in seen:
            problems.append(f"field {name!r}: {OPINION_KEYWORD} {part!r} is already field {seen[part]!r}")
        else:
            seen[part] = name
    return problems


def opinion_fields(form: FormDefinition | None) -> OpinionFields:
    """The form's opinion parts; none for a step without a form."""
    if form is None:
        return OpinionFields()
    properties = form.schema.get("properties") or {}
    parts = {
        spec[OPINION_KEYWORD]: name
        for name, spec in reversed(list(properties.items()))  # the first field naming a part wins
        if isinstance(spec, Mapping) and spec.get(OPINION_KEYWORD) in PARTS
    }
    decision = parts.get("decision")
    if decision is None:
        return OpinionFields(parts)
    options = properties[decision].get("enum") or []
    names = ((form.ui_schema or {}).get(decision) or {}).get("ui:enumNames") or []
    return OpinionFields(parts, {str(value): str(label) for value, label in zip(options, names, strict=False)})
