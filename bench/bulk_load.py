"""What the PostgreSQL benches share: a throwaway database, the province's bulk load, and measuring.

``load`` fills a fresh CreditFlow schema server-side (``INSERT ... SELECT generate_series``, seeded so
every run has the same data) with a province and its banks (head office, ~42 branches each, a grid or
two per branch, officers, branch heads and head-office staff) and one open task per application: most
offered to loan officers at a branch or grid, a share already claimed by an officer, the rest waiting
in head-office pools. Each task's step clock is due at ``deadline`` (an SQL expression over the draw
``d``), with its yellow time a day before and its red time two days after. Instances are running, with
an empty audit trail (``audit_seq`` 0, ``audit_head`` the chain's genesis), as the engine leaves them.

The tables' secondary indexes are dropped for the load and built again afterwards from their own
definitions (``pg_indexes``), sorted, which is several times faster than maintaining them row by row.

Used by ``bench/inbox.py`` and ``bench/escalation.py``; not a script of its own.
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
WARMUP = 10

# The inbox's spread: 5% of the steps without a time limit, the rest due within 30 days either side.
INBOX_DEADLINE = "CASE WHEN d.due < 0.05 THEN NULL ELSE :now + (d.due * 60 - 30) * interval '1 day' END"

# the tables loaded in bulk: their indexes other than primary keys and unique constraints are built after the load
BULK_TABLES = ["process_instance", "human_task", "task_exclusion", "task_candidate", "job"]
SECONDARY_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
WHERE t.relname = ANY(:tables) AND t.relnamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY t.relname, c.relname
"""

Step = tuple[str, str]  # (name printed with its time, statements separated by ";")

# Where the open tasks are, by share: (kind, cumulative upper bound of the draw)
#   branch: offered to loan officers at the application's branch
#   grid: offered to loan officers at the application's grid (its officer holds the role there)
#   claimed: claimed by one of the branch's officers
#   branch_head / reviewer / approver / disburser: the branch head's or a head-office pool
_PROVINCE_SQL: list[Step] = [
    (
        "tenants",
        """
        INSERT INTO tenant (code, name, kind, parent_id, created_at)
        VALUES ('province', '省农村信用社联合社', 'province', NULL, :now);
        INSERT INTO tenant (code, name, kind, parent_id, created_at)
        SELECT format('bank%s', lpad(b::text, 3, '0')), format('第%s农商银行', b), 'bank',
               (SELECT id FROM tenant WHERE code = 'province'), :now
        FROM generate_series(1, :banks) b;
        """,
    ),
    (
        "org units",
        """
        INSERT INTO org_unit (id, tenant_id, parent_id, code, name, kind, path, created_at)
        SELECT id, tenant_id, NULL, 'HO', '总行营业部', 'head_office', '/' || id || '/', :now
        FROM (SELECT nextval('org_unit_id_seq') AS id, t.id AS tenant_id
              FROM tenant t WHERE t.kind = 'bank' ORDER BY t.id) ho;
        -- 30 to 54 branches per bank (about 42 on average, ~4,600 in the province)
        INSERT INTO org_unit (id, tenant_id, parent_id, code, name, kind, path, created_at)
        SELECT id, tenant_id, parent_id, format('B%s', lpad(k::text, 3, '0')), format('第%s支行', k), 'branch',
               path || id || '/', :now
        FROM (SELECT nextval('org_unit_id_seq') AS id, ho.tenant_id, ho.id AS parent_id, ho.path, k
              FROM org_unit ho, generate_series(1, 30 + (ho.tenant_id * 7) % 25) k
              WHERE ho.kind = 'head_office' ORDER BY ho.id, k) b;
        -- one or two grids (网格) per branch
        INSERT INTO org_unit (id, tenant_id, parent_id, code, name, kind, path, created_at)
        SELECT id, tenant_id, parent_id, format('%s-G%s', code, k), format('%s第%s网格', name, k), 'grid',
               path || id || '/', :now
        FROM (SELECT nextval('org_unit_id_seq') AS id, b.tenant_id, b.id AS parent_id, b.code, b.name, b.path, k
              FROM org_unit b, generate_series(1, 1 + b.id % 2) k
              WHERE b.kind = 'branch' ORDER BY b.id, k) g;
        """,
    ),
    (
        "users and roles",
        """
        WITH staff(kind, role, n) AS (
            VALUES ('branch', 'loan_officer', 3), ('branch', 'branch_head', 1),
                   ('head_office', 'reviewer', 4), ('head_office', 'approver', 3),
                   ('head_office', 'risk_manager', 1), ('head_office', 'disburser', 2)
        ), users AS (
            INSERT INTO app_user (tenant_id, org_unit_id, username, display_name, password_hash, is_active,
                                  created_at)
            SELECT u.tenant_id, u.id, format('%s.%s.%s', s.role, u.id, i), format('%s %s-%s', s.role, u.code, i),
                   '!', true, :now
            FROM org_unit u JOIN staff s ON s.kind = u.kind, generate_series(1, s.n) i
            ORDER BY u.id, s.role, i
            RETURNING id, org_unit_id, username
        )
        INSERT INTO user_role (user_id, role, org_unit_id)
        SELECT id, split_part(username, '.', 1), org_unit_id FROM users;
        -- grid k's officer is the branch's k-th loan officer, who also holds the role at the grid
        INSERT INTO user_role (user_id, role, org_unit_id)
        SELECT u.id, 'loan_officer', g.id
        FROM (SELECT id, parent_id, row_number() OVER (PARTITION BY parent_id ORDER BY id) AS k
              FROM org_unit WHERE kind = 'grid') g
        JOIN app_user u ON u.username = format('loan_officer.%s.%s', g.parent_id, g.k);
        """,
    ),
    (
        "draw of applications",
        """
        SELECT setseed(0.2026);
        INSERT INTO deployment (tenant_id, sha256, created_at) VALUES (NULL, repeat('0', 64), :now);
        INSERT INTO process_definition (key, version, name, sha256, deployment_id, tenant_id,
                                        called_definition_ids, created_at)
        SELECT 'bench_loan', 1, '农户小额信用贷款', repeat('0', 64), id, NULL, '[]', :now FROM deployment;
        CREATE TEMP TABLE bench_branch ON COMMIT DROP AS
        SELECT row_number() OVER (ORDER BY b.id) - 1 AS n, b.id AS branch_id, b.tenant_id,
               b.parent_id AS head_office_id,
               (SELECT array_agg(g.id ORDER BY g.id) FROM org_unit g WHERE g.parent_id = b.id) AS grids,
               (SELECT array_agg(u.id ORDER BY u.id) FROM app_user u
                WHERE u.org_unit_id = b.id AND u.username LIKE 'loan_officer.%') AS officers
        FROM org_unit b WHERE b.kind = 'branch';
        CREATE TEMP TABLE bench_draw ON COMMIT DROP AS
        SELECT d.g, md5('task' || d.g)::uuid::text AS task_id, md5('instance' || d.g)::uuid::text AS instance_id,
               b.tenant_id, b.branch_id, b.head_office_id, b.officers,
               b.grids[1 + floor(d.pick * cardinality(b.grids))::int] AS grid_id,
               CASE WHEN d.kind < 0.40 THEN 'branch' WHEN d.kind < 0.55 THEN 'grid' WHEN d.kind < 0.75 THEN 'claimed'
                    WHEN d.kind < 0.80 THEN 'branch_head' WHEN d.kind < 0.90 THEN 'reviewer'
                    WHEN d.kind < 0.96 THEN 'approver' ELSE 'disburser' END AS kind,
               d.pick, d.extra,
               {deadline} AS due_at,
               CASE WHEN d.prio < 0.1 THEN 80 WHEN d.prio < 0.2 THEN 20 ELSE 50 END AS priority,
               :now - d.age * interval '20 days' AS created_at
        FROM (SELECT g, floor(random() * (SELECT count(*) FROM bench_branch))::int AS n, random() AS kind,
                     random() AS pick, random() AS extra, random() AS due, random() AS prio, random() AS age
              FROM generate_series(1, :tasks) g) d
        JOIN bench_branch b USING (n);
        """,
    ),
    (
        "process instances",
        """
        -- in arrival order (as everywhere below): a bank's work is spread over the whole table
        INSERT INTO process_instance (id, tenant_id, definition_id, business_key, status, state, serializer_version,
                                      version, data, created_at, updated_at, audit_seq, audit_head, org_unit_id,
                                      applicant_name)
        SELECT d.instance_id, d.tenant_id, (SELECT id FROM process_definition), format('XD%s', lpad(d.g::text, 9, '0')),
               'running', '', '', 1, '{}', d.created_at, d.created_at, 0, repeat('0', 64),
               CASE WHEN d.kind = 'grid' THEN d.grid_id ELSE d.branch_id END,
               (ARRAY['王', '李', '张', '刘', '陈', '杨', '赵', '黄'])[1 + d.g % 8]
               || (ARRAY['建国', '秀英', '桂兰', '志强', '海燕', '春生'])[1 + d.g % 6]
        FROM bench_draw d ORDER BY d.g;
        """,
    ),
    (
        "human tasks",
        """
        INSERT INTO human_task (id, instance_id, tenant_id, bpmn_id, name, lane, form, status, role, org_unit_id,
                                duty, priority, warn_at, due_at, escalate_at, assignee_id, created_at)
        SELECT d.task_id, d.instance_id, d.tenant_id, s.bpmn_id, s.name, s.role, s.bpmn_id, 'ready', s.role,
               CASE d.kind WHEN 'branch' THEN d.branch_id WHEN 'grid' THEN d.grid_id WHEN 'claimed' THEN d.branch_id
                           WHEN 'branch_head' THEN d.branch_id ELSE d.head_office_id END,
               s.duty, d.priority, d.due_at - interval '1 day', d.due_at, d.due_at + interval '2 days',
               CASE WHEN d.kind = 'claimed' THEN d.officers[1 + floor(d.pick * cardinality(d.officers))::int] END,
               d.created_at
        FROM bench_draw d JOIN (
            VALUES ('branch', 'loan_officer', 'investigate', '贷前调查', 'investigate'),
                   ('grid', 'loan_officer', 'investigate', '贷前调查', 'investigate'),
                   ('claimed', 'loan_officer', 'investigate', '贷前调查', 'investigate'),
                   ('branch_head', 'branch_head', 'branch_approve', '支行审批', 'approve'),
                   ('reviewer', 'reviewer', 'review', '审查', 'review'),
                   ('approver', 'approver', 'approve', '审批', 'approve'),
                   ('disburser', 'disburser', 'disburse', '放款', 'disburse')
        ) s(kind, role, bpmn_id, name, duty) USING (kind)
        ORDER BY d.g;
        -- segregation of duties: an officer of the branch barred from some investigations (co-investigated)
        INSERT INTO task_exclusion (task_id, user_id)
        SELECT task_id, officers[1 + floor(pick * cardinality(officers))::int]
        FROM bench_draw WHERE kind = 'branch' AND extra < 0.05;
        -- explicit candidates: some branch approvals are also offered to an officer standing in for the head
        INSERT INTO task_candidate (task_id, user_id, group_id)
        SELECT task_id, officers[1], NULL FROM bench_draw WHERE kind = 'branch_head' AND extra < 0.1;
        """,
    ),
]


@contextmanager
def bench_database(url: str | None, keep: bool, prefix: str) -> Iterator[str]:
    """The given database, or a fresh ``<prefix>_<pid>`` on the local server, dropped afterwards unless kept."""
    if url:
        yield url
        return
    name = f"{prefix}_{os.getpid()}"
    admin = create_engine(SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield SERVER + name
    finally:
        if keep:
            print(f"\nkept database {SERVER + name}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def psycopg_url(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq one, for a raw psycopg connection."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load(
    conn: Connection,
    *,
    tasks: int,
    banks: int,
    now: Any,
    deadline: str = INBOX_DEADLINE,
    then: Sequence[Step] = (),
    params: Mapping[str, Any] | None = None,
) -> None:
    """Load the province with ``tasks`` open tasks due at ``deadline``, run the caller's ``then`` steps
    (the draw is still there as the temp table ``bench_draw``), build the indexes and ANALYZE; prints
    each step's time."""
    values = {"tasks": tasks, "banks": banks, "now": now, **(params or {})}
    steps = [(name, sql.replace("{deadline}", deadline)) for name, sql in _PROVINCE_SQL]
    total = time.perf_counter()
    indexes = conn.execute(text(SECONDARY_INDEXES), {"tables": BULK_TABLES}).all()
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    for name, sql in [*steps, *then]:
        started = time.perf_counter()
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(text(statement), {k: v for k, v in values.items() if f":{k}" in statement})
        print(f"  {name:<24}{time.perf_counter() - started:>8.1f} s")
    started = time.perf_counter()
    conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for _, definition in indexes:
        conn.execute(text(definition))
    print(f"  {f'{len(indexes)} indexes':<24}{time.perf_counter() - started:>8.1f} s")
    started = time.perf_counter()
    conn.execute(text("ANALYZE"))
    print(f"  {'analyze':<24}{time.perf_counter() - started:>8.1f} s")
    print(f"  {'loaded in':<24}{time.perf_counter() - total:>8.1f} s")


def census(conn: Connection) -> str:
    row = conn.execute(
        text(
            "SELECT (SELECT count(*) FROM tenant WHERE kind = 'bank'),"
            " (SELECT count(*) FROM org_unit WHERE kind = 'branch'),"
            " (SELECT count(*) FROM org_unit WHERE kind = 'grid'),"
            " (SELECT count(*) FROM app_user), (SELECT count(*) FROM human_task WHERE status = 'ready'),"
            " (SELECT count(*) FROM human_task WHERE status = 'ready' AND assignee_id IS NOT NULL)"
        )
    ).one()
    return (
        f"{row[0]} banks, {row[1]} branches, {row[2]} grids, {row[3]} users; {row[4]:,} open tasks ({row[5]:,} claimed)"
    )


def measure(paths: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Alternate the paths call by call, in turn forwards and backwards; milliseconds per call."""
    for _ in range(WARMUP):
        for run in paths.values():
            run()
    timings: dict[str, list[float]] = {name: [] for name in paths}
    forward, backward = list(paths.items()), list(reversed(paths.items()))
    for index in range(repeat):
        for name, run in forward if index % 2 else backward:
            started = time.perf_counter()
            run()
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def stats(values: list[float]) -> tuple[float, float]:
    """Median and p95."""
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[-1]


def report_pairs(timings: dict[str, list[float]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median and p95 per path, with the ratio of each path to the raw baseline that follows it."""
    print(f"\n{repeat} calls per path after {WARMUP} warm-ups, alternating")
    print(f"{'path':<44}{'median ms':>10}{'p95 ms':>10}")
    rows = {name: stats(values) for name, values in timings.items()}
    names = list(rows)
    for index, name in enumerate(names):
        median, p95 = rows[name]
        print(f"{name:<44}{median:>10.2f}{p95:>10.2f}")
        if index % 2:
            (ours_median, ours_p95), (raw_median, raw_p95) = rows[names[index - 1]], rows[name]
            print(f"{'  ratio service / raw':<44}{ours_median / raw_median:>9.2f}x{ours_p95 / raw_p95:>9.2f}x")
    return rows


def captured(engine: Engine, call: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The statements (with their parameters) that ``call`` sends through ``engine``."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def explain(cursor: psycopg.Cursor[Any], title: str, statement: str, parameters: Any) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) a statement (a write is executed: run it in a transaction to roll back)."""
    print(f"\n-- {title}\n{statement}\n-- parameters: {parameters}")
    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
    plan = [line for (line,) in cursor.fetchall()]
    print("\n".join(plan))
    indexes = sorted(set(re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", "\n".join(plan))))
    blocks = sum(int(n) for n in re.findall(r"Heap Blocks: exact=(\d+)", "\n".join(plan)))
    total = next((line.strip().removeprefix("Buffers: ") for line in plan if "Buffers:" in line), "no buffers")
    print(f"-- {title}: indexes {', '.join(indexes)}; {blocks:,} bitmap heap blocks; in all {total}")
