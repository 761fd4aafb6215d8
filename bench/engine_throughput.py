"""Instances per second through CreditFlow's service layer (with persistence) vs raw SpiffWorkflow.

Model (tests/models/linear.bpmn): start → script → user task → exclusive gateway → user task → end.
Each instance: start, complete both user tasks, end. The raw baseline runs the same model in memory
with SpiffWorkflow's default engine, in the same process and run, so the ratio is comparable.

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
APPROVE = {"decision": "approve", "approved_amount": "50000.00"}


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


def measure(run: Callable[[int], None], instances: int, rounds: int) -> tuple[float, float]:
    run(max(instances // 10, 5))  # warm caches
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(instances)
        rates.append(instances / (time.perf_counter() - started))
    return max(rates), statistics.median(rates)


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
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    raw_best, raw_median = measure(raw_spiff(), args.instances, args.rounds)
    rows = [("raw SpiffWorkflow (in memory)", raw_best, raw_median)]
    with tempfile.TemporaryDirectory() as tmp:
        run, platform = creditflow(f"sqlite:///{tmp}/bench.db")
        rows.append(("CreditFlow on SQLite", *measure(run, args.instances, args.rounds)))
        platform.close()
    if not args.no_postgres:
        url = fresh_postgres(args.postgres)
        try:
            run, platform = creditflow(url)
            rows.append(("CreditFlow on PostgreSQL", *measure(run, args.instances, args.rounds)))
            platform.close()
        finally:
            drop_postgres(args.postgres, url)

    print(f"linear model, {args.instances} instances x {args.rounds} rounds (best / median instances per second)")
    print(f"{'mode':<32}{'best':>10}{'median':>10}{'ratio (best)':>15}{'ratio (median)':>17}")
    for name, best, median in rows:
        print(f"{name:<32}{best:>10.1f}{median:>10.1f}{best / raw_best:>15.2f}{median / raw_median:>17.2f}")


if __name__ == "__main__":
    main()
