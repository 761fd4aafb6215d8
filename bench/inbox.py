"""A loan officer's inbox on PostgreSQL with 1,000,000 open tasks across a province's 110 banks.

Loads a province with its banks and one open task per application (``bench/bulk_load.py``: server-side,
seeded; most tasks offered to loan officers at a branch or grid, a share claimed, the rest in
head-office pools). Then, for a loan officer with a typical load, it times the first inbox page
(``TaskService.list``: count, mine + candidate by due time, 50 rows, their instances) and the view
counts (``TaskService.counts``). The baseline, timed call by call in alternation in the same run, is
the same work as hand-written SQL on a raw psycopg cursor, written the way PostgreSQL can answer it
from the inbox indexes, so the ratio is what the service costs over what the database can do. Last,
EXPLAIN (ANALYZE, BUFFERS) of the exact statements the service sent shows the indexes they use.
Target (issue): page p95 ≤ 50 ms.

    python bench/inbox.py [--database-url URL] [--tasks 1000000] [--banks 110] [--repeat 200] [--keep]

Without a URL (nor CREDITFLOW_BENCH_DATABASE_URL) it creates creditflow_bench_<pid> on the local
server (user postgres, trust auth) and drops it afterwards unless --keep. A database that already
holds the bench data (a kept run) is measured as is, without loading again.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bulk_load import (  # noqa: E402
    bench_database,
    captured,
    census,
    explain,
    load,
    measure,
    psycopg_url,
    report_pairs,
)
from engine.config import Settings  # noqa: E402
from engine.container import CreditFlow  # noqa: E402
from engine.inbox.queries import InboxQuery  # noqa: E402
from engine.services.auth import load_principal  # noqa: E402
from engine.services.principal import Principal  # noqa: E402
from engine.store.migrate import upgrade  # noqa: E402
from engine.store.models import User  # noqa: E402

PAGE = 50
TARGET_P95_MS = 50.0

# The officer whose open work (claimed + offered at the units they hold the role in) is the median.
TYPICAL_OFFICER = """
WITH mine AS (
    SELECT assignee_id AS user_id, count(*) AS n FROM human_task
    WHERE status = 'ready' AND assignee_id IS NOT NULL GROUP BY assignee_id
), offered AS (
    SELECT org_unit_id, count(*) AS n FROM human_task
    WHERE status = 'ready' AND assignee_id IS NULL AND role = 'loan_officer' GROUP BY org_unit_id
), load AS (
    SELECT r.user_id, coalesce(max(m.n), 0) + coalesce(sum(o.n), 0) AS n
    FROM user_role r LEFT JOIN offered o USING (org_unit_id) LEFT JOIN mine m USING (user_id)
    WHERE r.role = 'loan_officer' GROUP BY r.user_id
)
SELECT user_id FROM load ORDER BY n, user_id OFFSET (SELECT count(*) / 2 FROM load) LIMIT 1
"""

# The baseline: the same page and counts written by hand for a loan officer (the role in some units, no
# tenant-wide grant) the way PostgreSQL serves them from the inbox indexes: every arm of the OR is an
# index condition, explicit candidates included (= ANY(ARRAY(subquery)), where IN (subquery) is a filter).
RAW_WHERE = """
t.status = 'ready'
AND (t.tenant_id = %(tenant)s OR t.tenant_id IS NULL)
AND (t.assignee_id = %(user)s
     OR (t.tenant_id = %(tenant)s AND t.assignee_id IS NULL
         AND ((t.org_unit_id = ANY(%(units)s) AND t.role = 'loan_officer')
              OR (t.org_unit_id IS NULL AND t.role = 'loan_officer')
              OR t.id = ANY(ARRAY(SELECT c.task_id FROM task_candidate c
                                  WHERE c.user_id = %(user)s OR c.group_id = ANY(%(groups)s))))
         AND NOT EXISTS (SELECT 1 FROM task_exclusion x WHERE x.task_id = t.id AND x.user_id = %(user)s)))
"""
RAW_COUNT = f"SELECT count(*) FROM human_task t WHERE {RAW_WHERE}"
RAW_PAGE = f"""
SELECT t.*, i.business_key, i.applicant_name, i.status, i.org_unit_id
FROM (SELECT t.* FROM human_task t WHERE {RAW_WHERE} ORDER BY t.due_at, t.id LIMIT %(limit)s) t
JOIN process_instance i ON i.id = t.instance_id
ORDER BY t.due_at, t.id
"""
RAW_COUNTS = f"""
SELECT count(*),
       count(*) FILTER (WHERE t.assignee_id = %(user)s),
       count(*) FILTER (WHERE t.assignee_id IS NULL)
FROM human_task t WHERE {RAW_WHERE}
"""


def raw_params(principal: Principal) -> dict[str, Any]:
    units = [g.org_unit_id for g in principal.grants if g.role == "loan_officer" and g.org_unit_id is not None]
    assert len(units) == len(principal.grants), "the hand-written SQL is a loan officer's"
    return {
        "tenant": principal.tenant_id,
        "user": principal.user_id,
        "units": units,
        "groups": sorted(principal.group_ids),
        "limit": PAGE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("CREDITFLOW_BENCH_DATABASE_URL"))
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--banks", type=int, default=110)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the database this run created")
    args = parser.parse_args()

    with bench_database(args.database_url, args.keep, "creditflow_bench") as url, tempfile.TemporaryDirectory() as tmp:
        platform = CreditFlow(Settings(database_url=url, data_dir=Path(tmp), secret_key="bench-" + "x" * 32))
        upgrade(platform.db)
        with platform.db.engine.begin() as conn:
            if conn.execute(text("SELECT count(*) FROM human_task")).scalar():
                print("reusing the data already loaded")
            else:
                print(f"loading {args.tasks:,} open tasks across {args.banks} banks")
                load(conn, tasks=args.tasks, banks=args.banks, now=platform.clock.now())
        bench_officer(platform, url, args.repeat)
        platform.close()


def bench_officer(platform: CreditFlow, url: str, repeat: int) -> None:
    """Time a typical loan officer's first page and counts against the raw SQL; explain the service's SQL."""
    with platform.db.engine.connect() as conn:
        print(census(conn))
        officer_id = conn.execute(text(TYPICAL_OFFICER)).scalar_one()
    with platform.db.transaction() as session:
        user = session.get(User, officer_id)
        principal = load_principal(session, user)
    raw = psycopg.connect(psycopg_url(url))
    raw.autocommit = True
    cursor = raw.cursor()
    params = raw_params(principal)
    page_query, counts_query = InboxQuery(view="inbox", sort="due", limit=PAGE), InboxQuery()

    def raw_page() -> None:
        cursor.execute(RAW_COUNT, params)
        cursor.fetchone()
        cursor.execute(RAW_PAGE, params)
        cursor.fetchall()

    def raw_counts() -> None:
        cursor.execute(RAW_COUNTS, params)
        cursor.fetchone()

    page = platform.tasks.list(principal, page_query)
    counts = platform.tasks.counts(principal, counts_query)
    cursor.execute(RAW_PAGE, params)
    same = [row[0] for row in cursor.fetchall()] == [item.task.id for item in page.items]
    cursor.execute(RAW_COUNTS, params)
    assert same and tuple(cursor.fetchone()) == (counts["inbox"], counts["mine"], counts["candidate"]), (
        "the hand-written SQL must return what the service returns"
    )
    grants = ", ".join(f"{g.role}@{g.org_path}" for g in principal.grants)
    print(f"\nofficer {principal.username} ({grants}): counts {counts}, first page {len(page.items)} rows")

    timings = measure(
        {
            "TaskService.list (count+page+instances)": lambda: platform.tasks.list(principal, page_query),
            "raw SQL (count, page ⋈ instance)": raw_page,
            "TaskService.counts (inbox/mine/cand.)": lambda: platform.tasks.counts(principal, counts_query),
            "raw SQL (one count with FILTERs)": raw_counts,
        },
        repeat,
    )
    report(timings, repeat)

    for title, call, pick in (
        ("page as TaskService.list sends it", lambda: platform.tasks.list(principal, page_query), 1),
        ("inbox count as TaskService.counts sends it", lambda: platform.tasks.counts(principal, counts_query), 0),
    ):
        statements = [s for s in captured(platform.db.engine, call) if "human_task" in s[0]]
        explain(cursor, title, *statements[pick])
    raw.close()


def report(timings: dict[str, list[float]], repeat: int) -> None:
    rows = report_pairs(timings, repeat)
    page_p95 = next(iter(rows.values()))[1]
    verdict = "met" if page_p95 <= TARGET_P95_MS else "NOT met"
    print(f"\npage p95 {page_p95:.1f} ms — target ≤ {TARGET_P95_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
