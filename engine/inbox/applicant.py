"""The applicant columns of an application: what inbox rows show and filter by.

Kept on the instance row so an inbox page needs no instance data; the ID number only ever masked.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.masking import mask_sensitive


def applicant_columns(data: dict[str, Any], product_code: str | None = None) -> dict[str, str | None]:
    """With ``product_code`` (an application of a product), also ``application_key``: the borrower
    and product hashed, so a bank holds one open application per borrower and product."""
    applicant = data.get("applicant")
    if not isinstance(applicant, dict):
        return {"applicant_name": None, "applicant_id_masked": None, "application_key": None}
    name = applicant.get("name") or applicant.get("company_name")
    number = applicant.get("id_number") or applicant.get("uscc")
    return {
        "applicant_name": str(name)[:200] if name else None,
        "applicant_id_masked": str(mask_sensitive(str(number)))[:32] if number else None,
        "application_key": application_key(product_code, str(number)) if product_code and number else None,
    }


def application_key(product_code: str, number: str) -> str:
    return hashlib.sha256(f"{product_code}|{number.strip().upper()}".encode()).hexdigest()
