"""The scheduler: APScheduler as a metronome that wakes the timer pass; the database holds all state.

Nothing durable lives in APScheduler's own stores, so any number of nodes can run it side by side
and a restart after an outage simply finds everything that became due meanwhile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.jobs.timers import fire_due_timers

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 5.0


def run_pass(platform: CreditFlow) -> int:
    """One pass; a failure is logged and the next tick tries again."""
    try:
        return fire_due_timers(platform)
    except Exception:
        log.exception("scheduler pass failed")
        return 0


def _schedule(scheduler: BackgroundScheduler | BlockingScheduler, platform: CreditFlow, interval: float) -> None:
    scheduler.add_job(run_pass, "interval", seconds=interval, args=[platform], max_instances=1, coalesce=True)


def start_background(platform: CreditFlow, interval: float = INTERVAL_SECONDS) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(daemon=True)
    _schedule(scheduler, platform, interval)
    scheduler.start()
    return scheduler


def run_forever(platform: CreditFlow, interval: float = INTERVAL_SECONDS) -> None:
    scheduler = BlockingScheduler()
    _schedule(scheduler, platform, interval)
    scheduler.start()
