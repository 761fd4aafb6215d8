"""The loan prime rate (LPR) in force on a day: contracts price as LPR + a spread in basis points.

The published quotes live in ``product_configs/lpr.json``; a contract signed on a day takes the
latest quote effective on or before it. A day before the first quote is refused rather than
priced with a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

STALE_AFTER = timedelta(days=40)
BENCHMARKS = {"LPR_1Y": "一年期贷款市场报价利率（LPR）", "LPR_5Y": "五年期以上贷款市场报价利率（LPR）"}


@dataclass(frozen=True)
class LprQuote:
    effective: date
    rates: dict[str, Decimal]


class LprTable:
    def __init__(self, quotes: list[LprQuote]) -> None:
        if not quotes:
            raise ValueError("the LPR table has no quotes")
        self.quotes = sorted(quotes, key=lambda q: q.effective)

    @classmethod
    def load(cls, path: Path) -> LprTable:
        raw = json.loads(path.read_text(encoding="utf-8"))
        quotes = [
            LprQuote(date.fromisoformat(q["effective"]), {b: Decimal(q[b]) for b in BENCHMARKS}) for q in raw["quotes"]
        ]
        return cls(quotes)

    def rate(self, benchmark: str, on: date) -> Decimal:
        """The benchmark's rate (percent per year) in force on ``on``."""
        if benchmark not in BENCHMARKS:
            raise ValueError(f"unknown LPR benchmark {benchmark!r}")
        return self.in_force(on).rates[benchmark]

    def in_force(self, on: date) -> LprQuote:
        """The latest quote effective on or before ``on``."""
        in_force = [q for q in self.quotes if q.effective <= on]
        if not in_force:
            raise ValueError(f"no LPR quote in force on {on.isoformat()}: the first is {self.quotes[0].effective}")
        return in_force[-1]

    def stale_on(self, on: date) -> bool:
        """Whether the table looks out of date on ``on``: the LPR is announced every month (on the 20th),
        so a newest quote older than STALE_AFTER means a month's announcement was not entered."""
        return on - self.quotes[-1].effective > STALE_AFTER
