"""The LPR table contracts are priced on: the quotes shipped in ``product_configs/lpr.json`` plus the
announcements the province's administrators enter as they come out (每月20日公布).

The shipped table ends on the day the release was made; without a way to enter the announcements
since, every contract would be priced on an outdated rate until the next release. An entered quote
wins over a shipped one of the same day (a correction). The LPR is national: the province enters it
once for every bank, and a bank reads it. Each entry and correction is in the organisation's change
trail with the rates it replaced; contracts already generated keep the rate they state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.documents.lpr import BENCHMARKS, LprQuote, LprTable
from engine.errors import Forbidden, InvalidInput
from engine.org.changes import LPR_QUOTE_SET, record_org_update
from engine.org.roles import RATES_ADMIN
from engine.services.documents import SHANGHAI
from engine.services.principal import Principal
from engine.store.models import LprQuoteEntry, User

if TYPE_CHECKING:
    from engine.container import CreditFlow

SHIPPED, ENTERED = "shipped", "entered"
_COLUMNS = {"LPR_1Y": "lpr_1y_bp", "LPR_5Y": "lpr_5y_bp"}
_HIGHEST = Decimal("20")  # percent a year: far above any LPR ever quoted, so a typo (310 for 3.10) is caught


@dataclass(frozen=True)
class LprQuoteView:
    effective: date
    rates: dict[str, Decimal]
    source: str  # shipped (the release's table) or entered (by the province's administrators)
    entered_by: str | None = None
    entered_at: datetime | None = None


class LprQuoteService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def table(self, session: Session) -> LprTable:
        """The quotes in force for pricing: shipped ones, each replaced by an entered one of its day."""
        return LprTable([LprQuote(v.effective, v.rates) for v in self._quotes(session)])

    def list(self, principal: Principal) -> list[LprQuoteView]:
        """Every quote, newest first (any signed-in user: contracts state the rate they use)."""
        with self.platform.db.transaction() as session:
            return sorted(self._quotes(session), key=lambda v: v.effective, reverse=True)

    def enter(self, principal: Principal, effective: date, rates: dict[str, Any]) -> LprQuoteView:
        """Enter (or correct) the quote announced for ``effective``; the province's administrators only."""
        if not principal.is_system and (
            RATES_ADMIN not in principal.permissions or not self.platform.products.is_province(principal)
        ):
            raise Forbidden("the LPR is national: the province's administrators enter it for every bank")
        now = self.platform.clock.now()
        if effective > now.astimezone(SHANGHAI).date():
            message = "a quote takes effect the day it is announced: this day has not come yet"
            raise InvalidInput(f"no LPR is announced for {effective} yet", [{"field": "effective", "message": message}])
        parsed = _rates(rates)
        with self.platform.db.transaction(write=True) as session:
            before = {v.effective: v for v in self._quotes(session)}.get(effective)
            row = session.get(LprQuoteEntry, effective) or LprQuoteEntry(effective=effective)
            for benchmark, column in _COLUMNS.items():
                setattr(row, column, int(parsed[benchmark] * 100))
            row.entered_by_id, row.entered_at = principal.user_id, now
            session.add(row)
            session.flush()
            record_org_update(
                session,
                principal,
                now,
                tenant_id=None,
                action=LPR_QUOTE_SET,
                subject=effective.isoformat(),
                before={b: str(r) for b, r in before.rates.items()} if before is not None else {},
                after={b: str(r) for b, r in parsed.items()},
            )
            return self._view(session, row)

    def _quotes(self, session: Session) -> list[LprQuoteView]:
        shipped = LprTable.load(self.platform.settings.lpr_file).quotes
        found = {q.effective: LprQuoteView(q.effective, q.rates, SHIPPED) for q in shipped}
        for row in session.scalars(select(LprQuoteEntry)):
            found[row.effective] = self._view(session, row)
        return list(found.values())

    def _view(self, session: Session, row: LprQuoteEntry) -> LprQuoteView:
        rates = {benchmark: Decimal(getattr(row, column)) / 100 for benchmark, column in _COLUMNS.items()}
        who = session.get(User, row.entered_by_id) if row.entered_by_id is not None else None
        return LprQuoteView(row.effective, rates, ENTERED, who.username if who else None, row.entered_at)


def _rates(rates: dict[str, Any]) -> dict[str, Decimal]:
    """Each benchmark as percent a year, above 0 and at most 20, in whole basis points (3.10, not 3.105)."""
    parsed: dict[str, Decimal] = {}
    problems = []
    for benchmark in BENCHMARKS:
        try:
            value = Decimal(str(rates[benchmark]))
        except (KeyError, InvalidOperation):
            problems.append({"field": benchmark, "message": 'required: percent a year, e.g. "3.10"'})
            continue
        if not value.is_finite() or not Decimal(0) < value <= _HIGHEST or value != value.quantize(Decimal("0.01")):
            message = f"percent a year above 0, at most {_HIGHEST}, two decimals"
            problems.append({"field": benchmark, "message": message})
            continue
        parsed[benchmark] = value.quantize(Decimal("0.01"))
    if problems:
        raise InvalidInput("the LPR quote is not valid", problems)
    return parsed
