"""The applicant columns of an application: what inbox rows show and filter by.

Kept on the instance row so an inbox page needs no instance data; the ID number only ever masked.
"""

from __future__ import annotations

from typing import Any

from engine.masking import mask_sensitive


def applicant_columns(data: dict[str, Any]) -> dict[str, str | None]:
    applicant = data.get("applicant")
    if not isinstance(applicant, dict):
        return {"applicant_name": None, "applicant_id_masked": None}
    name = applicant.get("name") or applicant.get("company_name")
    number = applicant.get("id_number") or applicant.get("uscc")
    return {
        "applicant_name": str(name)[:200] if name else None,
        "applicant_id_masked": str(mask_sensitive(str(number)))[:32] if number else None,
    }
