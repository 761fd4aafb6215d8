"""Engine and transaction handling for SQLite (embedded) and PostgreSQL (production).

A unit of work is one transaction. Write transactions on SQLite start with ``BEGIN IMMEDIATE``
so two writers never both read and then fail to upgrade their lock; PostgreSQL writers lock the
instance row with ``SELECT … FOR UPDATE`` (``FastRows.instance(lock=True)``).

A writer waits at most ``lock_wait_ms`` for a lock (SQLite's busy timeout, PostgreSQL's
``lock_timeout``; PostgreSQL would otherwise wait forever behind a stuck transaction). What
another writer causes leaves a transaction as a domain error, for every entry point alike: a
unique key it took first is a :class:`Conflict` (409), a lock it held too long, a deadlock or a
serialization failure is :class:`Busy` (503, worth retrying). Other database errors stay what
they are: a violated foreign key or NOT NULL is a bug, not a race.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import Busy, Conflict, CreditFlowError
from engine.store.fast_rows import FastRows
from engine.store.wal_checkpoint import BACKSTOP_PAGES, WalCheckpointer

_BEGIN_MODE = "creditflow_begin"
LOCK_WAIT_MS = 30_000
# PostgreSQL SQLSTATEs: unique_violation; lock_not_available, deadlock_detected, serialization_failure
_PG_TAKEN, _PG_BUSY = {"23505"}, {"55P03", "40P01", "40001"}
_SQLITE_TAKEN = {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}
_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class Database:
    def __init__(self, url: str, *, echo: bool = False, lock_wait_ms: int = LOCK_WAIT_MS) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": lock_wait_ms / 1000, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(url, **kwargs)
        self.checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, lock_wait_ms)
            if parsed.database and parsed.database != ":memory:":
                self.checkpointer = WalCheckpointer(self.engine)
        else:
            _configure_postgres(self.engine, lock_wait_ms)
        self.rows = FastRows(postgres=not self.is_sqlite)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(**{_BEGIN_MODE: "IMMEDIATE"}), expire_on_commit=False)

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """One unit of work: commit on success, roll back everything on any exception."""
        factory = self._writer if write else self._reader
        try:
            with factory() as session, session.begin():
                try:
                    yield session
                finally:  # before the commit: afterwards the connection may be back in the pool, or closed
                    cursor = session.info.pop("fast_rows_cursor", None)
                    if cursor is not None:
                        cursor.close()
        except Exception as exc:  # SQLAlchemy's DBAPIError, or the driver's own from FastRows
            raced = _raced(exc)
            if raced is None:
                raise
            raise raced from exc
        if write and self.checkpointer is not None:
            self.checkpointer.committed()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.wait()
        self.engine.dispose()


def _raced(exc: Exception) -> CreditFlowError | None:
    """The domain error for a database error another writer caused; None for any other."""
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = getattr(driver_error, "sqlstate", None)  # psycopg
    code = getattr(driver_error, "sqlite_errorcode", None)
    if sqlstate in _PG_TAKEN or code in _SQLITE_TAKEN:
        return Conflict("a concurrent change wrote the same record; reload and retry")
    if sqlstate in _PG_BUSY or (code is not None and code & 0xFF in _SQLITE_BUSY):
        return Busy("other changes held these records too long; try again")
    return None


def _configure_postgres(engine: Engine, lock_wait_ms: int) -> None:
    """``lock_timeout`` set once per connection: a startup option would be refused by PgBouncer."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(lock_wait_ms)}")
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine, lock_wait_ms: int) -> None:
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
        cursor.execute(f"PRAGMA busy_timeout={int(lock_wait_ms)}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
        # straight to the driver: SQLAlchemy's statement layer adds about 25 µs to every BEGIN
        conn.connection.driver_connection.execute(f"BEGIN {mode}")
