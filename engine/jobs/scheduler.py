"""The scheduler: APScheduler as a metronome that wakes the job pass; the database holds all state.

Nothing durable lives in APScheduler's own stores, so any number of nodes can run it side by side
and a restart after an outage finds everything that became due meanwhile: one pass works through
all of it (in batches) before it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

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


def run_pass(platform: CreditFlow, now: datetime | None = None, *, batch: int = BATCH, lane: Lane = ALL) -> PassResult:
    """Acquire and run due jobs until none is left; a job's failure never stops the pass.

    Jobs that a run makes due at once (the next escalation level after an outage) are picked up by
    the next batch of the same pass; a failed job is due again only after its backoff. A job whose
    instance another node holds stays due: the pass comes back to it after a short pause, so a
    single pass (``--once``) still leaves nothing due behind, unless the instance stays held.
    """
    started = time.perf_counter()
    owner = node_name()
    acquired = done = busy_rounds = 0
    while busy_rounds <= BUSY_ROUNDS:
        at = now or platform.clock.now()
        jobs = platform.jobs.acquire(owner, at, batch, lane)
        if not jobs:
            break
        acquired += len(jobs)
        outcomes = [platform.jobs.run(job, at) for job in jobs]
        done += outcomes.count(DONE)
        if all(outcome == BUSY for outcome in outcomes):
            busy_rounds += 1
            time.sleep(BUSY_PAUSE_SECONDS)  # the holder commits within milliseconds, usually
        else:
            busy_rounds = 0
    return PassResult(acquired, done, time.perf_counter() - started)


def _tick(platform: CreditFlow, lane: Lane) -> None:
    try:
        result = run_pass(platform, lane=lane)
        if result.acquired:
            log.info("scheduler pass: %s jobs done of %s in %.3f s", result.done, result.acquired, result.seconds)
    except Exception:
        log.exception("scheduler pass failed; the next tick tries again")


def _schedule(scheduler: BackgroundScheduler | BlockingScheduler, platform: CreditFlow, interval: float) -> None:
    """Two loops, each on its own thread: notification deliveries (which wait on other people's
    servers) and everything else (timers, escalations, archiving), so one never waits for the other;
    and tonight's housekeeping queued if it is not."""
    ensure_scheduled(platform)
    for lane in (Lane(OWN_LANE), Lane(OWN_LANE, skip=True)):
        scheduler.add_job(_tick, "interval", seconds=interval, args=[platform, lane], max_instances=1, coalesce=True)


def start_background(platform: CreditFlow, interval: float = INTERVAL_SECONDS) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    _schedule(scheduler, platform, interval)
    scheduler.start()
    return scheduler


def run_forever(platform: CreditFlow, interval: float = INTERVAL_SECONDS) -> None:
    scheduler = BlockingScheduler()
    _schedule(scheduler, platform, interval)
    scheduler.start()
