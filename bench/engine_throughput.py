"""Instances per second through CreditFlow's service layer (with persistence) vs raw SpiffWorkflow.

Model (tests/models/linear.bpmn): start → script → user task → exclusive gateway → user task → end.
Each instance: start, complete both user tasks, end. The raw baseline runs the same model in memory
with SpiffWorkflow's default engine, in the same process and run, so the ratio is comparable. The
modes take turns within each round and the ratio is taken per round: on a shared machine whose speed
drifts by 2x within a minute, that is the figure to read. ``bench/engine_phases.py`` shows where an
instance's time goes.

    python bench/engine_throughput.py [--instances N] [--rounds R] [--postgres URL | --no-postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import Settings  # noqa: E402
from engine.container import CreditFlow  # noqa: E402
from engine.services.principal import Principal  # noqa: E402
from engine.store.migrate import upgrade  # noqa: E402

MODEL = ROOT / "tests" / "models" / "linear.bpmn"
REVIEW = {"recommendation": "approve", "comment": "同意", "suggested_amount": "50000.00"}
APPROVE = {"decision": "approve", "approved_amount": "50000.00", "approved_rate_bp": 35}


def raw_spiff() -> Callable[[int], None]:
    parser = SpiffBpmnParser()
    parser.add_bpmn_file(str(MODEL))
    spec, subprocesses = parser.get_spec("linear"), parser.get_subprocess_specs("linear")

    def run(n: int) -> None:
        for _ in range(n):
            workflow = BpmnWorkflow(spec, subprocesses)
            workflow.get_next_task(state=TaskState.READY).data.update(amount=50000)
            workflow.do_engine_steps()
            for form in (REVIEW, APPROVE):
                (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
                task.data.update(form)
                task.run()
                workflow.do_engine_steps()
            assert workflow.completed

    return run


def creditflow(url: str) -> tuple[Callable[[int], None], CreditFlow]:
    platform = CreditFlow(Settings.from_env(database_url=url, data_dir=Path(tempfile.mkdtemp())))
    upgrade(platform.db)
    system = Principal.system()
    platform.definitions.deploy(system, [(MODEL.name, MODEL.read_bytes())])

    def run(n: int) -> None:
        for _ in range(n):
            view = platform.instances.start(system, "linear", data={"amount": 50000})
            view = platform.tasks.complete(system, view.tasks[0].id, REVIEW)
            view = platform.tasks.complete(system, view.tasks[0].id, APPROVE)
            assert view.instance.status == "completed"

    return run, platform


def measure(runs: dict[str, Callable[[int], None]], instances: int, rounds: int) -> dict[str, list[float]]:
    """Instances per second of each mode, per round. The modes take turns within every round, so
    a slower or faster stretch of the machine hits the baseline and the platform alike."""
    for run in runs.values():
        run(max(instances // 10, 5))  # warm caches
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run(instances)
            rates[name].append(instances / (time.perf_counter() - started))
    return rates


def fresh_postgres(url: str) -> str:
    name = f"creditflow_bench_{int(time.time())}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def drop_postgres(admin_url: str, url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)"))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    platforms: list[CreditFlow] = []
    runs: dict[str, Callable[[int], None]] = {"raw SpiffWorkflow (in memory)": raw_spiff()}
    pg_url = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run, platform = creditflow(f"sqlite:///{tmp}/bench.db")
            runs["CreditFlow on SQLite"] = run
            platforms.append(platform)
            if not args.no_postgres:
                pg_url = fresh_postgres(args.postgres)
                run, platform = creditflow(pg_url)
                runs["CreditFlow on PostgreSQL"] = run
                platforms.append(platform)
            rates = measure(runs, args.instances, args.rounds)
        finally:
            for platform in platforms:
                platform.close()
            if pg_url is not None:
                drop_postgres(args.postgres, pg_url)

    raw = rates.pop("raw SpiffWorkflow (in memory)")
    print(f"linear model, {args.instances} instances x {args.rounds} interleaved rounds (instances per second)")
    print(f"{'mode':<32}{'best':>10}{'median':>10}{'ratio (best)':>15}{'ratio (median of rounds)':>27}")
    print(f"{'raw SpiffWorkflow (in memory)':<32}{max(raw):>10.1f}{statistics.median(raw):>10.1f}{1:>15.2f}{1:>27.2f}")
    for name, mode in rates.items():
        per_round = statistics.median(m / r for m, r in zip(mode, raw, strict=True))
        rates_text = f"{max(mode):>10.1f}{statistics.median(mode):>10.1f}"
        print(f"{name:<32}{rates_text}{max(mode) / max(raw):>15.2f}{per_round:>27.2f}")


if __name__ == "__main__":
    main()
