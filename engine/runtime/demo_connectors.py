"""Connectors the demo processes call, standing in for the credit bureau, core banking and the
guarantee company until the real integrations are configured.

They are deterministic so that demos give the same answer every time; they are registered only
when no connector registry is supplied (``make run``), never in production wiring.
"""

from __future__ import annotations

import hashlib
from typing import Any

from engine.runtime.connectors import ConnectorError, ConnectorRegistry

UNAVAILABLE_SUFFIX = "0000"


def _reference(prefix: str, *parts: object) -> str:
    """A stable reference number derived from the request, as a real system would return one."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12].upper()
    return f"{prefix}-{digest}"


# A clean credit report and risk-list answer (征信报告指标, 黑名单, 反欺诈名单, 失信被执行人, 法院执行):
# what the online archetypes' access rules read from the bureau, never from the application.
CLEAN_REPORT: dict[str, Any] = {
    "credit_card_utilization": 0.2,
    "credit_inquiries_3m": 0,
    "credit_inquiries_6m": 1,
    "current_overdue_amount": 0,
    "current_overdue_count": 0,
    "existing_loans_count": 1,
    "guarantee_exposure": 0,
    "guaranteed_overdue_count": 0,
    "has_credit_history": True,
    "lender_count": 1,
    "max_consecutive_overdue_24m": 0,
    "max_overdue_days_24m": 0,
    "overdue_count_24m": 0,
    "special_transactions_5y": 0,
    "worst_loan_class": "normal",
    "blacklist_hit": False,
    "fraud_list_hit": False,
    "dishonest_debtor": False,
    "court_enforcement_records": 0,
}


def bureau_score(id_number: str) -> dict[str, Any]:
    """A stable pseudo score in 550–849 with a clean report; IDs ending in 0000 simulate an outage."""
    if not isinstance(id_number, str) or not id_number:
        raise ConnectorError("id_number is required")
    if id_number.endswith(UNAVAILABLE_SUFFIX):
        raise ConnectorError("credit bureau did not answer within 5 s")
    score = 550 + int(hashlib.sha256(id_number.encode()).hexdigest()[:8], 16) % 300
    return {"score": score, **CLEAN_REPORT, "source": "demo"}


def disburse(amount: str, account: str, reference: str, id_number: str) -> dict[str, Any]:
    """``reference`` (the loan contract's number) is core banking's duplicate check: a retry after a
    timeout answers with the first payout instead of paying again. ``id_number`` lets core banking
    check that the account is the borrower's (the demo keeps no accounts to check against). Accounts
    ending in 0000 simulate a transfer core banking never answers: it may or may not have been made."""
    if not id_number:
        raise ConnectorError("no borrower: core banking cannot check whose account it pays", code="ACCOUNT_OWNER")
    if not account:
        raise ConnectorError("no disbursement account", code="ACCOUNT_MISSING")
    if not reference:
        raise ConnectorError("no contract reference: core banking cannot tell a retry from a new loan")
    if account.endswith(UNAVAILABLE_SUFFIX):
        raise ConnectorError("core banking did not answer the transfer within 30 s", outcome_unknown=True)
    return {"disbursement_id": _reference("FK", reference), "source": "demo"}


def renew(loan_id: str, amount: str, id_number: str) -> dict[str, Any]:
    """Core banking checks that the loan is the borrower's and its balance covers ``amount``; the demo
    has no loan book to check against."""
    if not loan_id or not id_number:
        raise ConnectorError("a renewal names the loan and its borrower")
    return {"renewal_id": _reference("XD", loan_id, amount), "source": "demo"}


def guarantee_apply(amount: str, id_number: str) -> dict[str, Any]:
    return {"application_id": _reference("DB", amount, id_number), "source": "demo"}


def register_demo_connectors(registry: ConnectorRegistry) -> None:
    registry.register("credit_bureau/score", bureau_score)
    registry.register("core_banking/disburse", disburse)
    registry.register("core_banking/renew", renew)
    registry.register("guarantee/apply", guarantee_apply)
