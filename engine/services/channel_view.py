"""What an integration account (a channel: mobile banking, WeChat) reads of an application.

A channel shows the borrower where the application stands and what they signed. It does not get the
bank's rule hits and thresholds (a suspected fraudster learnt which list had named him, and the
thresholds to stay under), the credit report, scores, or staff opinions ("勿告知客户").
"""

from __future__ import annotations

from typing import Any

# The application as submitted, what was granted and signed, and outside parties' answers.
CHANNEL_FIELDS = frozenset(
    {
        "applicant", "product", "amount", "term_months", "repayment_method", "purpose", "account",
        "guarantee_type", "guarantors", "policy", "existing_loan", "interest_subsidy",
        "approved_amount", "approved_rate_bp", "contract", "sealed_contract", "signature",
        "disbursement", "renewal", "guarantee_application", "mortgage", "subsidy",
    }
)  # fmt: skip
FAILED = {"message": "the application stopped on an error; the bank is looking into it"}


def channel_data(data: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (data or {}).items() if key in CHANNEL_FIELDS}


def channel_error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """An error's details name scripts, rules and data: a channel learns only that there is one."""
    return dict(FAILED) if error else None
