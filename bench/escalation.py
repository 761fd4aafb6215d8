"""The scheduler pass on PostgreSQL with 1,000,000 open task clocks, 10,000 of them due: the cost
follows what is due, not what is open.

Loads the province of ``bench/inbox.py`` (``bench/bulk_load.py``) with one open task per application,
each with its step clock (yellow, orange and red times) and its ``escalate`` job for yellow, as the
engine leaves them: ``--due`` of the tasks passed yellow in the last day, the rest turn yellow in 1 to
59 days. Instances are running with an empty audit trail, so the real handler runs on them. The
province has been running for a while: ``--history`` escalations of steps closed since, with their
notifications delivered, are in the tables (with none, the pass also measures a fresh database whose
plans were cached while those tables were empty). Then, in one process:

1. an empty pass: ``run_pass`` at a time when nothing is due, timed call by call in alternation with
   the baseline, the due-jobs query ``ix_job_due`` answers (``SELECT id FROM job WHERE due_at <= now
   AND retries_left > 0 ORDER BY due_at LIMIT 200``) on a raw psycopg cursor; target (issue): empty
   pass p95 ≤ 10 ms;
2. one pass when the ``--due`` jobs are due: each escalation locks its instance, records the level,
   journals it on the instance's audit chain, publishes a log notification (a message, a delivery
   and a ``deliver`` job, which the same pass runs) and queues the orange job. It prints the jobs,
   seconds and jobs per second, the time spent in each kind's handler and the process's CPU time
   (what is not CPU here is waiting for PostgreSQL), and checks that exactly
   ``--due`` escalations happened, once each, with their audit events, deliveries and next jobs;
3. the empty pass again, right after that pass at its time: every clock still open, none due, and
   the finished jobs' index entries not vacuumed yet;
4. EXPLAIN (ANALYZE, BUFFERS) of the acquisition statement as ``JobQueue.acquire`` sends it, with
   nothing due and with the ``--due`` jobs due (in a rolled-back transaction), showing ``ix_job_due``.

    python bench/escalation.py [--database-url URL] [--tasks 1000000] [--due 10000] [--history 100000]
                               [--banks 110] [--repeat 200] [--keep] [--profile]

Without a URL (nor CREDITFLOW_BENCH_DATABASE_URL) it creates creditflow_bench_esc_<pid> on the local
server (user postgres, trust auth) and drops it afterwards unless --keep. A kept database whose due
jobs were not handled yet is measured as is. ``--profile`` runs the due pass under cProfile (slower)
and prints where its time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select, text

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
from engine.jobs.queue import RETRIES, node_name  # noqa: E402
from engine.jobs.scheduler import BATCH, run_pass  # noqa: E402
from engine.notify.outbox import DELIVER  # noqa: E402
from engine.sla.deadlines import Level  # noqa: E402
from engine.sla.escalation import ESCALATE, TASK  # noqa: E402
from engine.store.audit import verify_chain  # noqa: E402
from engine.store.migrate import upgrade  # noqa: E402
from engine.store.models import ProcessInstance  # noqa: E402

TARGET_EMPTY_P95_MS = 10.0
CHAINS_VERIFIED = 100  # escalated instances whose audit chain is recomputed after the pass

# ``--due`` of the tasks, spread evenly over the draw (so over the whole table), passed yellow in the last
# day (yellow is a day before due: due in 0.1 to 0.9 days); the others turn yellow in 1 to 59 days.
DEADLINE = (
    "CASE WHEN d.g::bigint * :due / :tasks > (d.g - 1)::bigint * :due / :tasks"
    " THEN :now + (0.1 + 0.8 * d.due) * interval '1 day'"
    " ELSE :now + (2 + 58 * d.due) * interval '1 day' END"
)
# Each open task's clock has its ``escalate`` job, due at its yellow time, queued in arrival order.
JOBS = (
    "escalate jobs",
    """
    INSERT INTO job (kind, tenant_id, instance_id, task_id, payload, due_at, retries_left, attempts, version,
                     created_at)
    SELECT :kind, t.tenant_id, t.instance_id, t.id, CAST(:payload AS jsonb), t.warn_at, :retries, 0, 0, t.created_at
    FROM bench_draw d JOIN human_task t ON t.id = d.task_id
    ORDER BY d.g
    """,
)
# The province has been running: escalations of steps closed since, each with its log notification delivered.
# (Empty tables would also measure a fresh database's plans, cached while they were empty: see the report.)
HISTORY = (
    "history",
    """
    INSERT INTO escalation (scope, subject_id, instance_id, tenant_id, level, due_at, created_at, actions)
    SELECT 'task', md5('closed task' || d.g)::uuid::text, d.instance_id, d.tenant_id,
           (ARRAY['yellow', 'orange', 'red'])[1 + d.g % 3], :now - (1 + d.g % 30) * interval '1 day',
           :now - (1 + d.g % 30) * interval '1 day', '{"notified": []}'
    FROM bench_draw d WHERE d.g <= :history ORDER BY d.g;
    INSERT INTO outbox_message (tenant_id, topic, recipients, payload, created_at)
    SELECT tenant_id, 'escalation.task.' || level, '[]', '{}', created_at FROM escalation ORDER BY id;
    INSERT INTO delivery (message_id, channel, webhook_id, status, attempts, delivered_at)
    SELECT id, 'log', NULL, 'delivered', 1, created_at FROM outbox_message ORDER BY id
    """,
)
RAW_DUE = "SELECT id FROM job WHERE due_at <= %(now)s AND retries_left > 0 ORDER BY due_at LIMIT %(limit)s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("CREDITFLOW_BENCH_DATABASE_URL"))
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--banks", type=int, default=110)
    parser.add_argument("--history", type=int, default=100_000, help="escalations of steps closed before")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the database this run created")
    parser.add_argument("--profile", action="store_true", help="run the due pass under cProfile")
    args = parser.parse_args()
    if not 0 < args.due <= args.tasks:
        parser.error("--due must be between 1 and --tasks")

    with (
        bench_database(args.database_url, args.keep, "creditflow_bench_esc") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        platform = CreditFlow(Settings(database_url=url, data_dir=Path(tmp), secret_key="bench-" + "x" * 32))
        upgrade(platform.db)
        with platform.db.engine.begin() as conn:
            if conn.execute(text("SELECT count(*) FROM human_task")).scalar():
                if conn.execute(text("SELECT count(*) FROM audit_event WHERE event_type = 'escalated'")).scalar():
                    sys.exit("this database's due jobs were handled by an earlier run: load a fresh one")
                print("reusing the data already loaded")
            else:
                print(
                    f"loading {args.tasks:,} open tasks across {args.banks} banks, {args.due:,} of them due,"
                    f" and {min(args.history, args.tasks):,} escalations of closed steps"
                )
                payload = json.dumps({"scope": TASK, "level": str(Level.YELLOW)})
                load(
                    conn,
                    tasks=args.tasks,
                    banks=args.banks,
                    now=platform.clock.now(),
                    deadline=DEADLINE,
                    then=[JOBS, HISTORY],
                    params={
                        "due": args.due,
                        "kind": ESCALATE,
                        "payload": payload,
                        "retries": RETRIES,
                        "history": args.history,
                    },
                )
        with psycopg.connect(psycopg_url(url), autocommit=True) as raw:
            bench_scheduler(platform, raw, args.repeat, args.profile)
        platform.close()


def bench_scheduler(platform: CreditFlow, raw: psycopg.Connection[Any], repeat: int, profile: bool) -> None:
    cursor = raw.cursor()
    with platform.db.engine.connect() as conn:
        print(census(conn))
        # the load's "now": the due jobs passed yellow before it, the others turn yellow a day after it at the earliest
        loaded_at = conn.execute(text("SELECT created_at FROM tenant WHERE code = 'province'")).scalar_one()
        first_due = conn.execute(text("SELECT min(due_at) FROM job")).scalar_one()
        jobs, due = conn.execute(
            text("SELECT count(*), count(*) FILTER (WHERE due_at <= :at) FROM job"), {"at": loaded_at}
        ).one()
    quiet = first_due - timedelta(hours=1)
    print(
        f"{jobs:,} escalate jobs: {due:,} due at {loaded_at:%Y-%m-%d %H:%M} (the due pass),"
        f" none at {quiet:%Y-%m-%d %H:%M}"
    )

    print("\n1. empty pass: run_pass with nothing due, against the due-jobs query on a raw cursor")
    empty = empty_passes(platform, cursor, quiet, repeat)

    owner = node_name()
    acquisition = captured(platform.db.engine, lambda: platform.jobs.acquire(owner, quiet, BATCH))
    statement, parameters = next(s for s in acquisition if s[0].lstrip().startswith("UPDATE job"))
    shift = loaded_at - quiet
    due_parameters = {k: v + shift if isinstance(v, datetime) else v for k, v in parameters.items()}
    plans = io.StringIO()  # explained now, before the due pass handles the due jobs; printed last
    with contextlib.redirect_stdout(plans):
        for title, params in (
            ("acquisition as JobQueue.acquire sends it, nothing due", parameters),
            (f"the same at the due pass's time, {due:,} due (rolled back)", due_parameters),
        ):
            with raw.transaction(force_rollback=True):
                explain(cursor, title, statement, params)
        explain(cursor, "the raw baseline, nothing due", RAW_DUE, {"now": quiet, "limit": BATCH})

    print(f"\n2. the due pass: run_pass at {loaded_at:%Y-%m-%d %H:%M}")
    due_pass(platform, loaded_at, due, profile)
    verify(platform, loaded_at, jobs, due)

    with platform.db.engine.connect() as conn:
        autovacuum = conn.execute(text("SHOW autovacuum")).scalar_one()
    print(
        "\n3. empty pass right after it, at its time: every clock still open, none due,"
        f" finished jobs not vacuumed (autovacuum {autovacuum})"
    )
    empty_passes(platform, cursor, loaded_at, repeat)
    ratio = empty[0][1] / empty[1][1]
    print(f"(before the due pass: run_pass p95 {empty[0][1]:.2f} ms, {ratio:.1f}x the raw query)")

    print("\n4. plans (taken before the due pass)", end="")
    print(plans.getvalue(), end="")


def empty_passes(
    platform: CreditFlow, cursor: psycopg.Cursor[Any], at: datetime, repeat: int
) -> list[tuple[float, float]]:
    """Time ``run_pass`` with nothing due against the raw due-jobs query; prints the table and the verdict."""

    def empty_pass() -> None:
        result = run_pass(platform, now=at)
        assert result.acquired == 0, f"{result.acquired} jobs were due at {at}"

    def raw_due() -> None:
        cursor.execute(RAW_DUE, {"now": at, "limit": BATCH})
        assert not cursor.fetchall()

    timings = measure({"run_pass, nothing due": empty_pass, "raw SQL: due jobs via ix_job_due": raw_due}, repeat)
    rows = list(report_pairs(timings, repeat).values())
    p95 = rows[0][1]
    verdict = "met" if p95 <= TARGET_EMPTY_P95_MS else "NOT met"
    print(f"empty pass p95 {p95:.2f} ms — target ≤ {TARGET_EMPTY_P95_MS:.0f} ms: {verdict}")
    return rows


@contextmanager
def handler_clock(platform: CreditFlow) -> Iterator[tuple[Counter[str], Counter[str]]]:
    """Seconds spent in, and calls of, each job kind's handler while the block runs."""
    seconds: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    originals = dict(platform.jobs.handlers)

    def timed(kind: str) -> Any:
        handler = originals[kind]

        def run(p: CreditFlow, job: Any, now: datetime) -> None:
            started = time.perf_counter()
            try:
                handler(p, job, now)
            finally:
                seconds[kind] += time.perf_counter() - started
                calls[kind] += 1

        return run

    for kind in originals:
        platform.jobs.register(kind, timed(kind))
    try:
        yield seconds, calls
    finally:
        platform.jobs.handlers.update(originals)


def due_pass(platform: CreditFlow, at: datetime, due: int, profile: bool) -> None:
    profiler = cProfile.Profile() if profile else None
    with handler_clock(platform) as (seconds, calls):
        if profiler is not None:
            profiler.enable()
        cpu = time.process_time()
        result = run_pass(platform, now=at)
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
    handled = sum(seconds.values())
    print(
        f"acquired {result.acquired:,}, done {result.done:,} in {result.seconds:.2f} s: "
        f"{result.done / result.seconds:,.0f} jobs/s" + (" (under cProfile)" if profiler is not None else "")
    )
    print(
        f"  {calls[ESCALATE]:,} escalations: {calls[ESCALATE] / result.seconds:,.0f} per second of the pass, "
        f"{seconds[ESCALATE] / max(calls[ESCALATE], 1) * 1000:.2f} ms each in the handler"
    )
    print(
        f"  {calls[DELIVER]:,} log deliveries they published: "
        f"{seconds[DELIVER] / max(calls[DELIVER], 1) * 1000:.2f} ms each in the handler"
    )
    print(
        f"  handler time {handled:.2f} s ({seconds[ESCALATE]:.2f} escalate + {seconds[DELIVER]:.2f} deliver); "
        f"acquisition and the rest {result.seconds - handled:.2f} s "
        f"({(result.seconds - handled) / max(-(-result.acquired // BATCH), 1) * 1000:.1f} ms per batch of {BATCH})"
    )
    print(
        f"  this process's CPU {cpu:.2f} s of the {result.seconds:.2f} s ({cpu / result.seconds:.0%}): "
        f"{cpu / max(calls[ESCALATE], 1) * 1000:.2f} ms per escalation with its delivery; the rest is waiting"
        " for PostgreSQL"
    )
    assert calls[ESCALATE] == due and result.done == result.acquired == 2 * due, "every due job must be done once"
    if profiler is not None:
        for order, limit in (("cumulative", 40), ("tottime", 25)):
            print(f"\ncProfile of the due pass, by {order}")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats(order).print_stats(limit)


def verify(platform: CreditFlow, at: datetime, jobs: int, due: int) -> None:
    """Exactly ``due`` escalations, once each, with what each one writes; a sample of chains recomputed."""
    mine = "created_at >= :at"  # rows the pass wrote (the history is older)
    checks = {
        "escalation rows": (f"SELECT count(*) FROM escalation WHERE {mine}", due),
        "distinct (scope, task, level)": (
            f"SELECT count(DISTINCT (scope, subject_id, level)) FROM escalation WHERE {mine}",
            due,
        ),
        "of due tasks, yellow": (
            "SELECT count(*) FROM escalation e JOIN human_task t ON t.id = e.subject_id"
            " WHERE e.scope = 'task' AND e.level = 'yellow' AND t.warn_at <= :at AND e.created_at >= :at",
            due,
        ),
        "audit events 'escalated'": ("SELECT count(*) FROM audit_event WHERE event_type = 'escalated'", due),
        "instances at audit_seq 1": ("SELECT count(*) FROM process_instance WHERE audit_seq = 1", due),
        "outbox messages": (f"SELECT count(*) FROM outbox_message WHERE {mine}", due),
        "deliveries delivered": (
            "SELECT count(*) FROM delivery d JOIN outbox_message m ON m.id = d.message_id"
            " WHERE d.status = 'delivered' AND m.created_at >= :at",
            due,
        ),
        "orange jobs queued": (
            "SELECT count(*) FROM job WHERE kind = 'escalate' AND payload->>'level' = 'orange'",
            due,
        ),
        "escalate jobs left": ("SELECT count(*) FROM job WHERE kind = 'escalate'", jobs),
        "deliver jobs left": ("SELECT count(*) FROM job WHERE kind = 'deliver'", 0),
        "jobs due left": ("SELECT count(*) FROM job WHERE due_at <= :at", 0),
        "incidents": ("SELECT count(*) FROM incident", 0),
    }
    failed = []
    with platform.db.engine.connect() as conn:
        found = {name: conn.execute(text(sql), {"at": at}).scalar_one() for name, (sql, _) in checks.items()}
        sample = conn.execute(
            text(f"SELECT DISTINCT instance_id FROM escalation WHERE {mine} ORDER BY instance_id LIMIT :n"),
            {"n": CHAINS_VERIFIED, "at": at},
        ).scalars()
        sample = list(sample)
    for name, (_, expected) in checks.items():
        if found[name] != expected:
            failed.append(f"{name}: {found[name]:,}, expected {expected:,}")
    with platform.db.transaction() as session:
        instances = session.scalars(select(ProcessInstance).where(ProcessInstance.id.in_(sample))).all()
        broken = [r for r in (verify_chain(session, i) for i in instances) if not r.ok]
    failed += [f"audit chain of {r.instance_id}: {r.problems}" for r in broken]
    summary = ", ".join(f"{name} {found[name]:,}" for name in checks)
    print(f"  checked: {summary}; {len(instances)} audit chains recomputed")
    print(
        f"  escalation rows created: {found['escalation rows']:,} (expected {due:,}), duplicates: "
        f"{found['escalation rows'] - found['distinct (scope, task, level)']:,}"
    )
    if failed:
        sys.exit("the due pass did not do exactly its work:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
