"""Engine and transaction handling for SQLite (embedded) and PostgreSQL (production).

A unit of work is one transaction. Write transactions on SQLite start with ``BEGIN IMMEDIATE``
so two writers never both read and then fail to upgrade their lock; PostgreSQL writers lock the
instance row with ``SELECT … FOR UPDATE`` (``FastRows.instance(lock=True)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from engine.store.fast_rows import FastRows
from engine.store.wal_checkpoint import BACKSTOP_PAGES, WalCheckpointer

_BEGIN_MODE = "creditflow_begin"


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        self.checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            if parsed.database and parsed.database != ":memory:":
                self.checkpointer = WalCheckpointer(self.engine)
        self.rows = FastRows(postgres=not self.is_sqlite)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(**{_BEGIN_MODE: "IMMEDIATE"}), expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """One unit of work: commit on success, roll back everything on any exception."""
        factory = self._writer if write else self._reader
        with factory() as session:
            try:
                with session.begin():
                    yield session
            finally:
                cursor = session.info.pop("fast_rows_cursor", None)
                if cursor is not None:
                    cursor.close()
        if write and self.checkpointer is not None:
            self.checkpointer.committed()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.wait()
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, foreign keys on, and explicit BEGIN so we choose the lock mode.

    ``synchronous=NORMAL`` in WAL mode survives a killed process (the WAL is in the OS page cache)
    but not a power cut; production runs PostgreSQL. Checkpoints run in the background
    (``engine.store.wal_checkpoint``); the automatic one is only a backstop.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
        # straight to the driver: SQLAlchemy's statement layer adds about 25 µs to every BEGIN
        conn.connection.driver_connection.execute(f"BEGIN {mode}")
