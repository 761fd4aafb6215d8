"""A graceful stop on SIGTERM (every deploy) and SIGINT: no new jobs, the running one commits, the
leased jobs not started go back to the queue at once for another node, exit 0; a second signal
stops at once.

The drain is driven directly with events (a job that blocks until released) and the frozen clock;
then ``creditflow scheduler`` and ``creditflow serve`` are stopped for real, as subprocesses on a
SQLite file, while a webhook receiver holds a delivery open. Nothing sleeps: the tests wait for
events and for lines of the process's output.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.jobs.queue import RETRIES, AcquiredJob, enqueue
from engine.jobs.scheduler import Scheduler, run_pass
from engine.notify.outbox import publish
from engine.store.models import Delivery, Job, Tenant, Webhook
from tests.conftest import migrated_sqlite

REPO = Path(__file__).resolve().parents[1]
WAIT = 60  # seconds: how long an event may take before the test fails (it is never slept)


class Probe:
    """A job handler that blocks until released: the job running when a stop is asked for."""

    kind = "probe"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.proceed = threading.Event()
        self.ran: list[int] = []

    def __call__(self, platform: CreditFlow, job: AcquiredJob, _now: datetime) -> None:
        self.ran.append(job.id)
        self.started.set()
        if not self.proceed.wait(WAIT):
            raise TimeoutError("the test never let the job finish")
        with platform.db.transaction(write=True) as session:
            platform.jobs.finish(session, job)


@pytest.fixture
def probe(platform: CreditFlow) -> Probe:
    handler = Probe()
    platform.jobs.register(Probe.kind, handler)
    return handler


def probe_jobs(platform: CreditFlow, clock: FrozenClock, count: int = 3) -> list[int]:
    with platform.db.transaction(write=True) as session:
        for _ in range(count):
            enqueue(session, Probe.kind, clock.now(), clock.now())
    return [job.id for job in queued(platform)]


def queued(platform: CreditFlow) -> list[Job]:
    with platform.db.transaction() as session:
        return list(session.scalars(select(Job).where(Job.kind != "housekeeping").order_by(Job.id)))


def test_a_stop_lets_the_running_job_commit_and_hands_back_the_jobs_not_started(
    platform: CreditFlow, clock: FrozenClock, probe: Probe
) -> None:
    ids = probe_jobs(platform, clock)
    stop = threading.Event()
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(run_pass(platform, stop=stop)))
    worker.start()
    try:
        assert probe.started.wait(WAIT)
        assert platform.jobs.acquire("node-b", clock.now(), 10) == []  # the stopping node leased all three
        stop.set()
    finally:
        probe.proceed.set()
        worker.join(WAIT)
    (result,) = results
    assert (result.acquired, result.done, result.released) == (3, 1, 2)
    assert probe.ran == ids[:1]  # the running job committed; the others never started here
    assert [(j.id, j.lock_owner, j.lock_expires_at, j.attempts, j.retries_left) for j in queued(platform)] == [
        (job_id, None, None, 0, RETRIES) for job_id in ids[1:]
    ]
    assert run_pass(platform, stop=stop).acquired == 0  # once stopped, nothing is acquired, due or not
    taken = platform.jobs.acquire("node-b", clock.now(), 10)  # at the same instant: no lease to wait out
    assert [job.id for job in taken] == ids[1:]


def test_the_scheduler_waits_for_the_running_job_within_its_grace_period(
    platform: CreditFlow, clock: FrozenClock, probe: Probe
) -> None:
    ids = probe_jobs(platform, clock)
    node = Scheduler(platform, interval=0.05)
    node.start()
    try:
        assert probe.started.wait(WAIT)
        node.request_stop()
        early = node.stop(grace_seconds=0)  # the probe still runs: a grace period of nothing runs out
        # the probe's pass, and perhaps the delivery loop's, this instant finding nothing due
        assert not early.finished and early.running in (1, 2) and early.released == 0
        assert f"{early.running} job(s) still running" in early.summary()
        probe.proceed.set()
        report = node.stop(grace_seconds=WAIT)
    finally:
        probe.proceed.set()
        node.stop(grace_seconds=WAIT)
    assert (report.finished, report.running, report.released) == (True, 0, 2)
    assert report.summary() == "scheduler stopped: the running jobs finished, 2 leased job(s) handed back to the queue"
    assert probe.ran == ids[:1]
    assert [job.id for job in platform.jobs.acquire("node-b", clock.now(), 10)] == ids[1:]


# -- the real commands, stopped by signals ------------------------------------------------------


class HeldReceiver:
    """A webhook endpoint that answers only when told: a delivery in progress for as long as needed."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.answer = threading.Event()
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                receiver.arrived.set()
                receiver.answer.wait(WAIT)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[HeldReceiver]:
    endpoint = HeldReceiver()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.answer.set()
    endpoint.server.shutdown()
    endpoint.server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """These tests stop real processes on a SQLite file, whichever database the others run on."""
    return migrated_sqlite(tmp_path_factory.mktemp("node") / "template.db")


@pytest.fixture
def node_platform(sqlite_template: Path, tmp_path: Path) -> Iterator[CreditFlow]:
    """A platform on its own SQLite file, on the wall clock the subprocess reads too."""
    shutil.copy(sqlite_template, tmp_path / "node.db")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'node.db'}",
        data_dir=tmp_path,
        secret_key="test-secret-key-" + "x" * 32,
        webhook_networks=("127.0.0.0/8",),
    )
    platform = CreditFlow(settings)
    yield platform
    platform.close()


def three_messages(platform: CreditFlow, url: str) -> None:
    """Three messages of a bank with one webhook: six deliver jobs, each message's log line, then its POST."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    with platform.db.transaction(write=True) as session:
        bank = Tenant(code="bank-x", name="某农商银行", kind="bank", created_at=now)
        session.add(bank)
        session.flush()
        session.add(Webhook(tenant_id=bank.id, url=url, secret="s" * 32, topics=[], active=True, created_at=now))
        session.flush()
        for n in range(3):
            publish(session, now, tenant_id=bank.id, topic="test.drain", recipients=[], payload={"n": n})


class Output:
    """The process's output line by line, read on a thread, so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        threading.Thread(target=lambda: [self.lines.put(line) for line in proc.stdout], daemon=True).start()

    def wait_for(self, text: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {WAIT} s; so far: {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def start(platform: CreditFlow, *command: str) -> subprocess.Popen[str]:
    settings = platform.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CREDITFLOW_SECRET_KEY": settings.secret_key,
        "CREDITFLOW_DATA_DIR": str(settings.data_dir),
        "CREDITFLOW_WEBHOOK_NETWORKS": "127.0.0.0/8",
        "CREDITFLOW_PDF_WORKERS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "-v", *command],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize(
    ("command", "ready"),
    [
        (("scheduler", "--interval", "0.1"), "scheduler running"),
        (("serve", "--port", "0", "--threads", "2"), "listening on"),
    ],
)
def test_sigterm_stops_the_process_after_its_running_job_and_releases_the_leases(
    node_platform: CreditFlow, receiver: HeldReceiver, command: tuple[str, ...], ready: str
) -> None:
    three_messages(node_platform, receiver.url)
    proc = start(node_platform, *command)
    output = Output(proc)
    try:
        output.wait_for(ready)
        assert receiver.arrived.wait(WAIT)  # the first webhook POST is in progress
        proc.send_signal(signal.SIGTERM)
        output.wait_for("SIGTERM: stopping gracefully")
        receiver.answer.set()  # the running delivery completes after the stop was asked for
        assert proc.wait(WAIT) == 0, output.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    said = output.rest()
    assert "the running jobs finished, 4 leased job(s) handed back to the queue" in said, said
    assert receiver.requests == 1
    with node_platform.db.transaction() as session:
        statuses = list(session.scalars(select(Delivery.status).order_by(Delivery.id)))
    assert statuses == ["delivered", "delivered", "pending", "pending", "pending", "pending"]
    left = queued(node_platform)
    assert len(left) == 4 and {(j.lock_owner, j.lock_expires_at, j.attempts) for j in left} == {(None, None, 0)}
    taken = node_platform.jobs.acquire("another-node", datetime.now(UTC), 10)
    assert sorted(job.id for job in taken) == [job.id for job in left]


def test_a_second_signal_stops_at_once(node_platform: CreditFlow, receiver: HeldReceiver) -> None:
    three_messages(node_platform, receiver.url)
    proc = start(node_platform, "scheduler", "--interval", "0.1")
    output = Output(proc)
    try:
        output.wait_for("scheduler running")
        assert receiver.arrived.wait(WAIT)
        proc.send_signal(signal.SIGTERM)
        output.wait_for("SIGTERM: stopping gracefully")
        proc.send_signal(signal.SIGINT)  # the webhook still holds its answer: no waiting for it
        assert proc.wait(WAIT) == 128 + signal.SIGINT, output.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    assert "SIGINT again: stopping at once" in output.rest()
    left = queued(node_platform)
    assert len(left) == 5 and all(job.lock_owner is not None for job in left)  # leases run out by themselves
