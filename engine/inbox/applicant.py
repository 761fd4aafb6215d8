"""The columns of an application that inbox rows show and filter by: applicant and amount.

Kept on the instance row so an inbox page needs no instance data; the ID number only ever masked.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.masking import mask_sensitive


def application_columns(data: dict[str, Any], product_code: str | None = None) -> dict[str, Any]:
    """With ``product_code`` (an application of a product), also ``application_key``: the borrower
    and product hashed, so a bank holds one open application per borrower and product."""
    applicant = data.get("applicant")
    fen = amount_fen(data.get("amount"))
    if not isinstance(applicant, dict):
        return {"applicant_name": None, "applicant_id_masked": None, "application_key": None, "amount_fen": fen}
    name = applicant.get("name") or applicant.get("company_name")
    number = applicant.get("id_number") or applicant.get("uscc")
    return {
        "applicant_name": str(name)[:200] if name else None,
        "applicant_id_masked": str(mask_sensitive(str(number)))[:32] if number else None,
        "application_key": application_key(product_code, str(number)) if product_code and number else None,
        "amount_fen": fen,
    }


def amount_fen(value: Any) -> int | None:
    """Yuan as the application gave them (a number or a string such as "50000.00") in whole fen;
    None for anything that is not a plain non-negative amount (a process that is no application)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return int(amount * 100) if amount.is_finite() and 0 <= amount < 10**14 else None


def yuan(fen: int | None) -> str | None:
    """Fen as the API shows money: a string of yuan with two decimals, never a float."""
    return None if fen is None else f"{Decimal(fen) / 100:.2f}"


def application_key(product_code: str, number: str) -> str:
    return hashlib.sha256(f"{product_code}|{number.strip().upper()}".encode()).hexdigest()
