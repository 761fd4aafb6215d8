"""SQLite WAL checkpoints on a background thread instead of inside a request's commit.

With SQLite's automatic checkpoint, the commit that crosses the threshold copies the whole WAL into
the database file and fsyncs it, so one request in forty waits 10-50 ms for everyone's writes
(``bench/engine_throughput.py`` showed the spikes). Here every ``every`` write commits hand a
PASSIVE checkpoint to one background thread; it never blocks writers or readers, and commits stay
exactly as durable as before (the WAL is written the same way). SQLite's own automatic checkpoint
stays on at a much larger threshold as a backstop, so the WAL stays bounded even if the thread
falls behind.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 20_000  # about 80 MB of WAL with 4 KiB pages


class WalCheckpointer:
    def __init__(self, engine: Engine, every: int = 200) -> None:
        self.engine = engine
        self.every = every
        self.runs = 0
        self.last: tuple[int, int, int] | None = None  # (busy, frames in the WAL, frames checkpointed)
        self._commits = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def committed(self) -> None:
        """Count a write commit; every ``every`` commits start a checkpoint unless one is running."""
        with self._lock:
            self._commits += 1
            if self._commits < self.every or (self._thread is not None and self._thread.is_alive()):
                return
            self._commits = 0
            self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)
            self._thread.start()

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy committed WAL frames into the database file without waiting for any lock."""
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            busy, frames, done = cursor.fetchone()
            cursor.close()
        finally:
            connection.close()
        self.runs += 1
        self.last = (busy, frames, done)
        return self.last

    def wait(self) -> None:
        """Let a running checkpoint finish (before the engine is disposed)."""
        thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        try:
            self.checkpoint()
        except Exception:  # the backstop checkpoint covers a failed run; the next one retries
            log.exception("background WAL checkpoint failed")
