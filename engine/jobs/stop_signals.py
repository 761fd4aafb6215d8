"""SIGTERM and SIGINT: what systemd and Kubernetes send on every deploy, and Ctrl-C.

The first asks the process to stop gracefully (the caller's ``first``: stop acquiring jobs, let the
running ones finish, hand back the rest); a second one, from an operator who will not wait, stops it
at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(first: Callable[[], None]) -> None:
    """Install the handlers (main thread only): the first signal calls ``first``, a second exits with
    128 + its number, as a process killed by it would."""
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:
            log.warning(
                "%s again: stopping at once; jobs still leased are free when their leases run out "
                "(or with creditflow jobs release)",
                name,
            )
            exit_now(128 + signum)
        received.append(signum)
        try:
            first()  # may leave by raising (the server's loop); the stop is asked for before the line says so
        finally:
            log.info(
                "%s: stopping gracefully (no new jobs; the running ones finish); a second signal stops at once", name
            )

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, handle)


def exit_now(code: int) -> NoReturn:
    """Leave without waiting for threads still in a job (their transactions roll back with their
    connections), after writing out what was logged and printed."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
