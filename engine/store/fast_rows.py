"""Plain-SQL reads and writes for the rows every instance step touches.

A step of an instance (lock the row, close and open task rows, append audit events, save the
state) is the engine's hot path. Through SQLAlchemy's execution layer each of those statements
cost several times the statement itself on SQLite (``bench/engine_throughput.py`` shows the
effect), so this module runs them on the DB-API cursor of the transaction's own connection. The
schema still comes from the ORM models and Alembic: SQL, records and value conversions are all
derived from the ``Table`` objects, so a column added there is picked up here. Table and column
names in the SQL come from that metadata only; every value is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field, make_dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from engine.store.models import AuditEvent, HumanTask, ProcessInstance
from engine.store.types import UtcDateTime


class StaleRow(Exception):
    """The row's version was not the one this step loaded: someone else wrote it."""


class RowType:
    """Records, SQL and value conversion for one table, for SQLite (qmark) or PostgreSQL (format)."""

    def __init__(self, table: Table, postgres: bool) -> None:
        self.table = table.name
        self.postgres = postgres
        self.columns = [c.name for c in table.columns]
        self.json = {c.name for c in table.columns if isinstance(c.type, JSON)}
        self.times = {c.name for c in table.columns if isinstance(c.type, UtcDateTime)}
        self.record = make_dataclass(
            f"{table.name.title().replace('_', '')}Record", [(c, Any, field(default=None)) for c in self.columns]
        )
        self.select = f"SELECT {', '.join(self.columns)} FROM {table.name}"
        insert_columns = [c for c in self.columns if not (c == "id" and table.c.id.autoincrement is True)]
        self.insert_columns = insert_columns
        self.insert = (
            f"INSERT INTO {table.name} ({', '.join(insert_columns)}) "
            f"VALUES ({', '.join(self.placeholder(c) for c in insert_columns)})"
        )

    def placeholder(self, column: str) -> str:
        if not self.postgres:
            return "?"
        return "%s::jsonb" if column in self.json else "%s"

    @property
    def mark(self) -> str:
        return "%s" if self.postgres else "?"

    def encode(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in self.json:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if column in self.times and not self.postgres:
            # the layout SQLAlchemy's SQLite DateTime reads back
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def decode(self, row: Sequence[Any]) -> Any:
        values = {}
        for column, value in zip(self.columns, row, strict=True):
            if value is not None and column in self.json and isinstance(value, str):
                value = json.loads(value)
            elif value is not None and column in self.times:
                value = datetime.fromisoformat(value) if isinstance(value, str) else value
                value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            values[column] = value
        return self.record(**values)

    def insert_params(self, record: Any) -> tuple[Any, ...]:
        return tuple(self.encode(c, getattr(record, c)) for c in self.insert_columns)


class FastRows:
    """The hot-path statements, bound to one database dialect."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.instances = RowType(ProcessInstance.__table__, postgres)
        self.tasks = RowType(HumanTask.__table__, postgres)
        self.audit = RowType(AuditEvent.__table__, postgres)
        p = self.instances.mark
        self._lock = f"{self.instances.select} WHERE id = {p}" + (" FOR UPDATE" if postgres else "")
        # background passes skip an instance someone else holds instead of queueing behind it
        self._lock_or_skip = self._lock + (" SKIP LOCKED" if postgres else "")
        self._get = f"{self.instances.select} WHERE id = {p}"
        updatable = [c for c in self.instances.columns if c not in ("id", "version")]
        assignments = ", ".join(f"{c} = {self.instances.placeholder(c)}" for c in updatable)
        self._updatable = updatable
        self._update = f"UPDATE process_instance SET {assignments}, version = {p} WHERE id = {p} AND version = {p}"
        self._audit_head = (
            f"UPDATE process_instance SET audit_seq = {p}, audit_head = {p} WHERE id = {p} AND version = {p}"
        )
        self._open_tasks = f"{self.tasks.select} WHERE instance_id = {p} AND status = 'ready' ORDER BY created_at, id"
        self._task = f"{self.tasks.select} WHERE id = {p}"
        self._duties = f"SELECT user_id, duty FROM instance_duty WHERE instance_id = {p} ORDER BY id"
        # a task done while paused ends its pause, and its stored times move by it
        self._closing = (
            *("status", "ended_at", "completed_by_id", "assignee_id"),
            *("paused_at", "pauses", "warn_at", "due_at", "escalate_at"),
        )
        closing = ", ".join(f"{c} = {self.tasks.placeholder(c)}" for c in self._closing)
        self._close = f"UPDATE human_task SET {closing} WHERE id = {p}"

    @staticmethod
    def _cursor(session: Session) -> Any:
        """One DB-API cursor per session (= per transaction), on the session's own connection."""
        cursor = session.info.get("fast_rows_cursor")
        if cursor is None:
            cursor = session.info["fast_rows_cursor"] = session.connection().connection.cursor()
        return cursor

    def definition_id(self, session: Session, key: str, version: int | None = None) -> int | None:
        """The id of a definition by key, at ``version`` or the newest."""
        p = self.instances.mark
        cursor = self._cursor(session)
        if version is None:
            cursor.execute(f"SELECT id FROM process_definition WHERE key = {p} ORDER BY version DESC LIMIT 1", (key,))
        else:
            cursor.execute(f"SELECT id FROM process_definition WHERE key = {p} AND version = {p}", (key, version))
        row = cursor.fetchone()
        return row[0] if row else None

    def instance(
        self, session: Session, instance_id: str, *, lock: bool = False, skip_locked: bool = False
    ) -> Any | None:
        """The instance row; ``lock`` waits for the row lock, ``skip_locked`` returns None if it is taken."""
        cursor = self._cursor(session)
        cursor.execute(self._lock_or_skip if skip_locked else self._lock if lock else self._get, (instance_id,))
        row = cursor.fetchone()
        return self.instances.decode(row) if row else None

    def insert_instance(self, session: Session, record: Any) -> None:
        self._cursor(session).execute(self.instances.insert, self.instances.insert_params(record))

    def update_instance(self, session: Session, record: Any) -> None:
        """Write every column and bump the version; raises StaleRow if the row moved on."""
        rows = self.instances
        params = [rows.encode(c, getattr(record, c)) for c in self._updatable]
        cursor = self._cursor(session)
        cursor.execute(self._update, (*params, record.version + 1, record.id, record.version))
        if cursor.rowcount != 1:
            raise StaleRow(record.id)
        record.version += 1

    def update_audit_head(self, session: Session, record: Any) -> None:
        """Move only the audit head: an inbox action leaves the workflow state, and its version, alone."""
        cursor = self._cursor(session)
        cursor.execute(self._audit_head, (record.audit_seq, record.audit_head, record.id, record.version))
        if cursor.rowcount != 1:
            raise StaleRow(record.id)

    def duties(self, session: Session, instance_id: str) -> list[tuple[int, str]]:
        """Who did which duty on an application, oldest first (segregation of duties)."""
        cursor = self._cursor(session)
        cursor.execute(self._duties, (instance_id,))
        return [(user_id, duty) for user_id, duty in cursor.fetchall()]

    def open_tasks(self, session: Session, instance_id: str) -> list[Any]:
        cursor = self._cursor(session)
        cursor.execute(self._open_tasks, (instance_id,))
        return [self.tasks.decode(row) for row in cursor.fetchall()]

    def task(self, session: Session, task_id: str) -> Any | None:
        cursor = self._cursor(session)
        cursor.execute(self._task, (task_id,))
        row = cursor.fetchone()
        return self.tasks.decode(row) if row else None

    def insert_tasks(self, session: Session, records: Iterable[Any]) -> None:
        params = [self.tasks.insert_params(r) for r in records]
        if params:
            self._cursor(session).executemany(self.tasks.insert, params)

    def close_tasks(self, session: Session, records: Iterable[Any]) -> None:
        encode = self.tasks.encode
        params = [(*(encode(c, getattr(r, c)) for c in self._closing), r.id) for r in records]
        if params:
            self._cursor(session).executemany(self._close, params)

    def append_audit(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        audit = self.audit
        params = [tuple(audit.encode(c, row.get(c)) for c in audit.insert_columns) for row in rows]
        if params:
            self._cursor(session).executemany(audit.insert, params)
