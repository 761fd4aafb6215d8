"""The scheduler: APScheduler as a metronome that wakes the job pass; the database holds all state.

Nothing durable lives in APScheduler's own stores, so any number of nodes can run it side by side
and a restart after an outage finds everything that became due meanwhile: one pass works through
all of it (in batches) before it returns.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from engine.jobs.housekeeping import ensure_scheduled
from engine.jobs.queue import ALL, BUSY, DONE, Lane, node_name
from engine.notify.outbox import DELIVER

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 2.0
BATCH = 200
BUSY_ROUNDS, BUSY_PAUSE_SECONDS = 20, 0.05  # at most about a second of waiting for held instances
OWN_LANE = (DELIVER,)  # webhook deliveries run in a loop of their own


@dataclass(frozen=True)
class PassResult:
    acquired: int
    done: int
    seconds: float
    released: int = 0  # acquired but handed back unstarted, as the node is stopping


def run_pass(
    platform: CreditFlow,
    now: datetime | None = None,
    *,
    batch: int = BATCH,
    lane: Lane = ALL,
    stop: threading.Event | None = None,
) -> PassResult:
    """Acquire and run due jobs until none is left; a job's failure never stops the pass.

    Jobs that a run makes due at once (the next escalation level after an outage) are picked up by
    the next batch of the same pass; a failed job is due again only after its backoff. A job whose
    instance another node holds stays due: the pass comes back to it after a short pause, so a
    single pass (``--once``) still leaves nothing due behind, unless the instance stays held.

    Once ``stop`` is set the pass acquires nothing more: the job running then finishes, and the jobs
    of its batch not yet started are handed back, so that another node takes them at once rather
    than when their leases run out (a deploy would otherwise hold up every escalation it caught).
    """
    started = time.perf_counter()
    owner = node_name()
    stop = stop if stop is not None else threading.Event()
    acquired = done = released = busy_rounds = 0
    while busy_rounds <= BUSY_ROUNDS and not stop.is_set():
        at = now or platform.clock.now()
        jobs = platform.jobs.acquire(owner, at, batch, lane)
        if not jobs:
            break
        acquired += len(jobs)
        outcomes: list[str] = []
        for job in jobs:
            if stop.is_set():
                released += platform.jobs.release(jobs[len(outcomes) :])
                break
            outcomes.append(platform.jobs.run(job, at))
        done += outcomes.count(DONE)
        if outcomes and all(outcome == BUSY for outcome in outcomes):
            busy_rounds += 1
            stop.wait(BUSY_PAUSE_SECONDS)  # the holder commits within milliseconds, usually
        else:
            busy_rounds = 0
    return PassResult(acquired, done, time.perf_counter() - started, released)


@dataclass(frozen=True)
class StopReport:
    finished: bool  # every pass ended within the grace period
    running: int  # passes still in a job when the grace period ran out
    released: int  # leased jobs handed back unstarted

    def summary(self) -> str:
        handed_back = f"{self.released} leased job(s) handed back to the queue"
        if self.finished:
            return f"scheduler stopped: the running jobs finished, {handed_back}"
        return (
            f"scheduler stopped with {self.running} job(s) still running after the grace period, {handed_back}; "
            "the running ones are free again when their leases run out (or with creditflow jobs release)"
        )


class Scheduler:
    """This node's two job loops on APScheduler's threads: notification deliveries (which wait on other
    people's servers) and everything else (timers, escalations, archiving), so one never waits for the
    other; and their graceful stop (``request_stop``, then ``stop``)."""

    def __init__(self, platform: CreditFlow, interval: float = INTERVAL_SECONDS) -> None:
        self.platform = platform
        self.stopping = threading.Event()
        self._passes = 0  # running now
        self._released = 0
        self._idle = threading.Condition()
        self._metronome = BackgroundScheduler(daemon=True)
        ensure_scheduled(platform)  # tonight's housekeeping, if it is not queued
        for lane in (Lane(OWN_LANE), Lane(OWN_LANE, skip=True)):
            self._metronome.add_job(
                self._tick, "interval", seconds=interval, args=[lane], max_instances=1, coalesce=True
            )

    def start(self) -> None:
        self._metronome.start()

    def request_stop(self) -> None:
        """Acquire nothing more; each running pass finishes its current job and hands back the rest.
        Safe in a signal handler: it only sets an event."""
        self.stopping.set()

    def stop(self, grace_seconds: float) -> StopReport:
        """Stop, and wait up to ``grace_seconds`` for the running passes to end."""
        self.request_stop()
        if self._metronome.running:
            self._metronome.shutdown(wait=False)
        with self._idle:
            finished = self._idle.wait_for(lambda: self._passes == 0, timeout=grace_seconds)
            return StopReport(finished, self._passes, self._released)

    def _tick(self, lane: Lane) -> None:
        with self._idle:  # a pass starts only while no stop is asked for, or ``stop`` waits for it
            if self.stopping.is_set():
                return
            self._passes += 1
        released = 0
        try:
            result = run_pass(self.platform, lane=lane, stop=self.stopping)
            released = result.released
            if result.acquired:
                log.info("scheduler pass: %s jobs done of %s in %.3f s", result.done, result.acquired, result.seconds)
        except Exception:
            log.exception("scheduler pass failed; the next tick tries again")
        finally:
            with self._idle:
                self._passes -= 1
                self._released += released
                self._idle.notify_all()
