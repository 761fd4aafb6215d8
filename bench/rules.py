"""Latency of the 1,000-rule 信e贷 access decision: CreditFlow's RuleEngine against bare zen-engine, same run.

Ours is ``RuleEngine.evaluate`` as a process calls it: Decimal amounts in the context, conversion, hit
extraction and the RuleResult included. The baseline is ``zen.ZenEngine`` with a static loader, given
contexts already converted to plain floats. Both see the same varied applicants, call by call in
alternation, after a warm-up, so machine noise hits both alike. Targets (issue): median ≤ 1 ms,
overhead ≤ 1.5x.

    python bench/rules.py [--applicants 300] [--iterations 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import zen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.rules.context import to_zen_context  # noqa: E402
from engine.rules.engine import RuleEngine  # noqa: E402
from engine.rules.parameters import apply_parameters  # noqa: E402

RULES = ROOT / "product_configs" / "rules"
KEY = "xed_access@bench"
TARGET_MEDIAN_MS = 1.0
TARGET_RATIO = 1.5


def applicants(count: int, seed: int = 20261201) -> list[dict[str, Any]]:
    """Mostly ordinary applicants, with a realistic share of thin files, heavy borrowers and bad records."""
    rng = random.Random(seed)
    segments = {"farmer": 0.35, "merchant": 0.25, "salaried": 0.3, "small_business": 0.1}
    income_median = {"farmer": 5000, "merchant": 9000, "salaried": 7000, "small_business": 15000}
    result = []
    for _ in range(count):
        segment = rng.choices(list(segments), weights=list(segments.values()))[0]
        income = rng.lognormvariate(0, 0.45) * income_median[segment]
        amount = min(300, max(10, round(income * 12 * rng.uniform(0.2, 1.2) / 10000) * 10)) * 1000
        troubled = rng.random() < 0.15  # has some credit history problem
        overdue_days = rng.choice([3, 12, 25, 45, 75, 120]) if troubled else 0
        loans = rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 6])
        inquiries_3m = min(int(rng.expovariate(0.9)), 12)
        result.append(
            {
                "segment": segment,
                "applied_amount": Decimal(amount).quantize(Decimal("0.01")),
                "age": rng.choice([rng.randint(22, 60)] * 19 + [rng.randint(61, 70)]),
                "province_code": rng.choice(["37"] * 29 + ["41"]),
                "occupation_category": rng.choice(
                    ["agriculture", "enterprise_employee", "self_employed", "civil_servant"] * 10
                    + ["freelancer", "restricted_industry", "retired"]
                ),
                "monthly_income": Decimal(income).quantize(Decimal("0.01")),
                "debt_to_income": round(rng.betavariate(2, 6) * 1.2, 3),
                "current_overdue_count": int(troubled and rng.random() < 0.2),
                "current_overdue_amount": Decimal(rng.choice([500, 3200]) if troubled else 0),
                "max_overdue_days_24m": overdue_days,
                "overdue_count_24m": rng.randint(1, 7) if troubled else 0,
                "max_consecutive_overdue_24m": min(overdue_days // 30, 4),
                "credit_inquiries_3m": inquiries_3m,
                "credit_inquiries_6m": inquiries_3m + min(int(rng.expovariate(0.8)), 10),
                "lender_count": min(loans, rng.choice([1, 1, 2, 3, 5])),
                "existing_loans_count": loans,
                "guarantee_exposure": Decimal(rng.choice([0] * 12 + [50_000, 200_000, 600_000])),
                "guaranteed_overdue_count": rng.choice([0] * 40 + [1]),
                "credit_card_utilization": round(rng.betavariate(1.5, 4), 3),
                "court_enforcement_records": rng.choice([0] * 20 + [1, 2]),
                "dishonest_debtor": rng.random() < 0.01,
                "blacklist_hit": rng.random() < 0.01,
                "fraud_list_hit": rng.random() < 0.005,
                "worst_loan_class": rng.choice(["none", "normal"] * 25 + ["special_mention", "substandard"]),
                "special_transactions_5y": rng.choice([0] * 60 + [1]),
                "has_credit_history": rng.random() > 0.1,
                "is_related_party": rng.random() < 0.02,
                "employment_years": round(rng.uniform(0.5, 25), 1),
                "social_insurance_months": rng.randint(6, 120),
                "provident_fund_months": rng.randint(0, 96),
                "tax_grade": rng.choice(["A", "A", "B", "B", "B", "M", "C", "D"]),
                "credit_household_rating": rng.choice(["AAA", "AA", "AA", "A", "A", "B", "none"]),
            }
        )
    return result


def measure(
    paths: dict[str, Callable[[dict[str, Any]], Any]], contexts: list[Any], iterations: int
) -> dict[str, list[float]]:
    """Alternate the paths call by call over the same contexts, first one then the other going first
    (the first call after a context switch pays for cold caches); milliseconds per call."""
    for index in range(min(1000, iterations)):  # warm-up: caches, allocator, branch predictors
        for run in paths.values():
            run(contexts[index % len(contexts)])
    timings: dict[str, list[float]] = {name: [] for name in paths}
    forward, backward = list(paths.items()), list(reversed(paths.items()))
    clock = time.perf_counter_ns
    for index in range(iterations):
        for name, run in forward if index % 2 else backward:
            started = clock()
            run(contexts[index % len(contexts)])
            timings[name].append((clock() - started) / 1e6)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applicants", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=10000)
    args = parser.parse_args()

    template = json.loads((RULES / "xed-access.json").read_text(encoding="utf-8"))
    content = apply_parameters(template, json.loads((RULES / "xed-access.params.json").read_text(encoding="utf-8")))
    rows = len(next(n for n in content["nodes"] if n["type"] == "decisionTableNode")["content"]["rules"])
    ours = RuleEngine()
    ours.register(KEY, content)
    bare = zen.ZenEngine({"loader": {"type": "static", "content": {KEY: content}}})

    pairs = [(context, to_zen_context(context)) for context in applicants(args.applicants)]
    outcomes: Counter[str] = Counter()
    hits = []
    for context, plain in pairs:  # both paths must agree before their speed means anything
        result = ours.evaluate(KEY, context)
        assert result.result == bare.evaluate(KEY, plain)["result"], context
        outcomes[result.result["outcome"]] += 1
        hits.append(len(result.hits))

    load_before = os.getloadavg()[0]
    timings = measure(
        {
            "CreditFlow RuleEngine.evaluate": lambda pair: ours.evaluate(KEY, pair[0]),
            "zen ZenEngine(static loader).evaluate": lambda pair: bare.evaluate(KEY, pair[1]),
        },
        pairs,
        args.iterations,
    )
    print(f"xed-access: {rows} rules (collect), zen-engine {version('zen-engine')}, {len(pairs)} applicants")
    print(f"outcomes {dict(outcomes)}, hits per applicant: mean {statistics.fmean(hits):.1f}, max {max(hits)}")
    print(f"{args.iterations} calls per path; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    report(timings)


def report(timings: dict[str, list[float]]) -> None:
    stats = {name: _stats(values) for name, values in timings.items()}
    print()
    print(f"{'path':<40} {'median ms':>10} {'p99 ms':>10} {'mean ms':>10} {'evals/s':>10}")
    for name, (median, p99, mean) in stats.items():
        print(f"{name:<40} {median:>10.3f} {p99:>10.3f} {mean:>10.3f} {1000 / mean:>10.0f}")
    ours, bare = stats.values()
    ratios = [f"{mine / theirs:>9.2f}x" for mine, theirs in zip(ours, bare, strict=True)]
    print(f"{'ratio (ours / zen)':<40} {' '.join(ratios)}")
    print()
    for label, value, target, unit in (
        ("median", ours[0], TARGET_MEDIAN_MS, " ms"),
        ("overhead (median ratio)", ours[0] / bare[0], TARGET_RATIO, "x"),
    ):
        print(f"target {label} ≤ {target}{unit}: {'met' if value <= target else 'MISSED'} ({value:.2f}{unit})")


def _stats(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)], statistics.fmean(ordered)


if __name__ == "__main__":
    main()
