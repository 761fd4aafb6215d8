"""Persistence guarantees: split state, locking, rollback, audit chain, migrations."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from api import create_app
from engine.cli import main as cli
from engine.container import CreditFlow
from engine.errors import Conflict
from engine.services.demo import seed_demo
from engine.services.principal import Principal
from engine.store.models import ArchivePackage, AuditEvent, Base, HumanTask, Job, ProcessInstance, Tenant
from tests.conftest import PASSWORD, PG_URL, deploy, drop_append_only_guards, login

SYSTEM = Principal.system()
REVIEW = {"recommendation": "reject", "comment": "收入不足"}


def test_state_is_stored_without_the_spec(platform: CreditFlow) -> None:
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1})
    with platform.db.transaction() as session:
        state = json.loads(session.get(ProcessInstance, view.instance.id).state)
    assert "spec" not in state and "subprocess_specs" not in state
    assert state["serializer_version"] == "1.5"
    assert state["tasks"]


def test_concurrent_completions_give_one_success_and_one_conflict(platform: CreditFlow) -> None:
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1})
    task_id = view.tasks[0].id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def complete() -> None:
        barrier.wait()
        try:
            platform.tasks.complete(SYSTEM, task_id, REVIEW)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    events = [e.event_type for e in platform.instances.history(SYSTEM, view.instance.id)]
    assert events.count("task_completed") == 1


def test_stale_version_is_rejected_and_rolls_back_everything(platform: CreditFlow) -> None:
    """A writer that bypassed the lock bumps the version mid-step: the step's rows all vanish."""
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1})
    instance_id, task_id = view.instance.id, view.tasks[0].id
    before = _snapshot(platform, instance_id)

    def complete_then_collide(execution: Any) -> None:
        task = execution.workflow.get_task_from_id(uuid.UUID(task_id))
        execution.close_task(task_id, "completed")
        execution.journal.record("task_completed", task_id=task_id)
        # another writer that ignored the lock saved a newer version meanwhile
        execution.session.execute(
            text("UPDATE process_instance SET version = version + 5 WHERE id = :id"), {"id": instance_id}
        )
        execution.run(lambda: (task.data.update(REVIEW), task.run()))

    with pytest.raises(Conflict):
        platform.instances.change(SYSTEM, instance_id, complete_then_collide)
    assert _snapshot(platform, instance_id) == before


def _snapshot(platform: CreditFlow, instance_id: str) -> tuple[Any, ...]:
    with platform.db.transaction() as session:
        instance = session.get(ProcessInstance, instance_id)
        tasks = sorted((t.id, t.status) for t in session.scalars(select(HumanTask)))
        audit = session.scalar(select(text("count(*)")).select_from(AuditEvent))
        return instance.state, instance.version, instance.status, tasks, audit


def test_failing_step_keeps_nothing_of_itself(platform: CreditFlow) -> None:
    """An exception inside a step (here: the database refusing a row) rolls back state, tasks, audit."""
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1})
    before = _snapshot(platform, view.instance.id)

    def half_done(execution: Any) -> None:
        (task,) = execution.workflow.get_tasks(state=16, manual=True)
        execution.run(lambda: (task.data.update(REVIEW), task.run()))
        execution.session.add(
            HumanTask(
                id="orphan", instance_id="no-such-instance", bpmn_id="x", status="ready", created_at=execution.now
            )
        )
        execution.session.flush()  # foreign key violation

    with pytest.raises(DBAPIError):
        platform.instances.change(SYSTEM, view.instance.id, half_done)
    assert _snapshot(platform, view.instance.id) == before


def test_a_unique_key_taken_by_another_writer_is_a_conflict(platform: CreditFlow, clock: Any) -> None:
    """The database's own unique violation (the race a check-then-insert cannot close) leaves the
    transaction as a 409, and nothing of it is kept."""
    with platform.db.transaction(write=True) as session:
        session.add(Tenant(code="race", name="先到", kind="bank", created_at=clock.now()))
    with pytest.raises(Conflict, match="concurrent change"), platform.db.transaction(write=True) as session:
        session.add(Tenant(code="race-2", name="后到的另一行", kind="bank", created_at=clock.now()))
        session.flush()
        session.add(Tenant(code="race", name="后到", kind="bank", created_at=clock.now()))
    with platform.db.transaction() as session:
        assert sorted(session.scalars(select(Tenant.code).where(Tenant.code.like("race%")))) == ["race"]


def test_a_change_committed_on_an_overflow_connection_is_reported_committed(platform: CreditFlow, clock: Any) -> None:
    """Under load a transaction runs on a connection beyond the pool's size, which the pool closes when
    it comes back to a full pool: the fast-rows cursor, closed after the commit, failed there, and a
    committed (and disbursed) application was answered with a 500 saying nothing had changed."""
    with ExitStack() as busy:
        for _ in range(platform.db.engine.pool.size()):  # every pooled connection in use
            busy.enter_context(platform.db.transaction()).connection()
        with platform.db.transaction(write=True) as session:  # on an overflow connection
            assert platform.db.rows.task(session, "no-such-task") is None  # the fast-rows cursor is open
            session.add(Tenant(code="overflow", name="溢出连接", kind="bank", created_at=clock.now()))
            busy.close()  # the others go back first and fill the pool
    with platform.db.transaction() as session:
        assert session.scalar(select(Tenant.name).where(Tenant.code == "overflow")) == "溢出连接"


def test_a_write_held_up_past_the_lock_wait_is_a_503_worth_retrying(settings: Any, clock: Any, connectors: Any) -> None:
    """Another transaction holding the instance (stuck, or just slow) costs a request the lock wait,
    not forever: a 503 with Retry-After that changed nothing, and the same request then succeeds."""
    platform = CreditFlow(replace(settings, lock_wait_ms=50), clock=clock, connectors=connectors)
    try:
        seed_demo(platform, PASSWORD)
        deploy(platform, "linear.bpmn")
        api = login(create_app(platform))
        view = api.post("/api/v1/process-instances", json={"definition_key": "linear", "data": {"amount": 1}})
        instance_id, task_id = view.get_json()["id"], view.get_json()["tasks"][0]["id"]
        before = _snapshot(platform, instance_id)
        with platform.db.engine.connect() as holder, holder.begin():
            # a row lock on PostgreSQL; SQLite's single write lock on SQLite
            holder.execute(text("UPDATE process_instance SET status = status WHERE id = :id"), {"id": instance_id})
            held = api.post(f"/api/v1/tasks/{task_id}/complete", json={"data": REVIEW})
            assert held.status_code == 503 and held.mimetype == "application/problem+json"
            assert held.headers["Retry-After"] == "1" and "try again" in held.get_json()["detail"]
        assert _snapshot(platform, instance_id) == before
        assert api.post(f"/api/v1/tasks/{task_id}/complete", json={"data": REVIEW}).status_code == 200
    finally:
        platform.close()


def test_audit_chain_detects_edits_and_deletions(platform: CreditFlow, settings: Any, monkeypatch: Any) -> None:
    deploy(platform, "linear.bpmn")
    view = platform.instances.start(SYSTEM, "linear", data={"amount": 1})
    platform.tasks.complete(SYSTEM, view.tasks[0].id, REVIEW)
    instance_id = view.instance.id
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    runner = CliRunner()

    ok = runner.invoke(cli, ["audit", "verify", instance_id])
    assert ok.exit_code == 0, ok.output
    assert "chain intact" in ok.output

    # the table itself refuses changes ...
    with pytest.raises(DBAPIError), platform.db.transaction(write=True) as session:
        session.execute(text("UPDATE audit_event SET payload = '{}' WHERE seq = 2"))

    # ... so a tamperer with DDL rights drops the guard first
    drop_append_only_guards(platform, "audit_event")
    with platform.db.transaction(write=True) as session:
        session.execute(
            text("UPDATE audit_event SET event_type = 'started' WHERE instance_id = :i AND seq = 2"), {"i": instance_id}
        )
    edited = runner.invoke(cli, ["audit", "verify", instance_id])
    assert edited.exit_code == 1
    missing = runner.invoke(cli, ["audit", "verify", "no-such-instance"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "event 2" in edited.output and "altered" in edited.output

    with platform.db.transaction(write=True) as session:
        session.execute(text("DELETE FROM audit_event WHERE instance_id = :i AND seq = 3"), {"i": instance_id})
    deleted = platform.instances.verify_audit(SYSTEM, instance_id)
    assert not deleted.ok and any("event 3 is missing" in p for p in deleted.problems)

    with platform.db.transaction(write=True) as session:
        last = session.scalar(
            select(AuditEvent.seq).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.seq.desc())
        )
        session.execute(
            text("DELETE FROM audit_event WHERE instance_id = :i AND seq = :s"), {"i": instance_id, "s": last}
        )
    tail = platform.instances.verify_audit(SYSTEM, instance_id)
    assert any("instance recorded event" in p for p in tail.problems)


def test_migrations_match_the_models(platform: CreditFlow) -> None:
    with platform.db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_works_on_an_empty_database(tmp_path: Any) -> None:
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(database)
    with database.engine.connect() as connection:
        tables = {r[0] for r in connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    database.dispose()
    assert {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"} <= tables


def _definition_row(conn: Any) -> None:
    """Definition 1 (and its deployment), written with SQL so that it fits an early schema."""
    conn.execute(text("INSERT INTO deployment (id, sha256, created_at) VALUES (1, 'x', '2026-12-01 00:00:00')"))
    conn.execute(
        text(
            "INSERT INTO process_definition (id, key, version, sha256, deployment_id, called_definition_ids,"
            " created_at) VALUES (1, 'p', 1, 'x', 1, '[]', '2026-12-01 00:00:00')"
        )
    )


def test_upgrading_gives_open_applications_their_amount_for_the_inbox(tmp_path: Any) -> None:
    """Revision 0014 reads the amount each open application was started with from its audit trail."""
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    database = Database(f"sqlite:///{tmp_path / 'before_0014.db'}")
    upgrade(database, "0013")
    with database.engine.begin() as conn:
        _definition_row(conn)
        for instance_id, status, amount in (("open", "running", '"800000.50"'), ("closed", "completed", "5000")):
            conn.execute(
                text(
                    "INSERT INTO process_instance (id, definition_id, status, state, serializer_version, version,"
                    " data, created_at, updated_at, audit_seq, audit_head, application_key) VALUES (:id, 1, :status,"
                    " '{}', '1', 1, '{}', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 1, 'h', :id)"
                ),
                {"id": instance_id, "status": status},
            )
            conn.execute(
                text(
                    "INSERT INTO audit_event (instance_id, seq, event_type, payload, created_at, prev_hash, hash)"
                    " VALUES (:id, 1, 'started', :payload, '2026-12-01 00:00:00', 'a', 'b')"
                ),
                {"id": instance_id, "payload": f'{{"data": {{"amount": {amount}}}}}'},
            )
    upgrade(database)
    with database.engine.connect() as conn:
        amounts = dict(conn.execute(text("SELECT id, amount_fen FROM process_instance")).all())
    database.dispose()
    assert amounts == {"open": 80000050, "closed": None}  # a closed one's loan file has it


def test_upgrading_a_populated_database_keeps_its_rows(tmp_path: Any) -> None:
    """Later revisions rebuild tables on SQLite; rows and the references to them must survive."""
    from engine.store.db import Database
    from engine.store.migrate import upgrade

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(database, "0001")
    with database.engine.begin() as conn:
        _definition_row(conn)
        conn.execute(
            text(
                "INSERT INTO process_instance (id, definition_id, status, state, serializer_version, version, data,"
                " created_at, updated_at, audit_seq, audit_head) VALUES ('i1', 1, 'running', '{}', '1.5', 3, '{}',"
                " '2026-12-01 00:00:00', '2026-12-01 00:00:00', 0, 'h')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO human_task (id, instance_id, bpmn_id, status, created_at)"
                " VALUES ('t1', 'i1', 'review', 'ready', '2026-12-01 00:00:00')"
            )
        )
    upgrade(database)
    with database.engine.connect() as conn:
        row = conn.execute(text("SELECT version, product_version_id FROM process_instance WHERE id = 'i1'")).one()
        tasks = conn.execute(text("SELECT count(*) FROM human_task WHERE instance_id = 'i1'")).scalar()
        enforced = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
    database.dispose()
    assert tuple(row) == (3, None) and tasks == 1 and enforced == 1


@pytest.fixture
def scratch_url(tmp_path: Any) -> Iterator[str]:
    """An empty database of its own, of the kind under test: migrations go down and up on it."""
    if PG_URL is None:
        yield f"sqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"creditflow_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_archives_made_before_renewals_get_a_renewal_check(scratch_url: str, settings: Any, clock: Any) -> None:
    """Revision 0011 gives every existing archive an ``archive_renew`` job, due at once: it reads when the
    bag's timestamp expires and schedules the renewal ahead of that."""
    from alembic import command

    from engine.store.db import Database
    from engine.store.migrate import alembic_config, upgrade

    database = Database(scratch_url)
    upgrade(database)
    platform = CreditFlow(replace(settings, database_url=scratch_url), clock=clock, database=database)
    deploy(platform, "linear.bpmn")
    instance_id = platform.instances.start(SYSTEM, "linear", data={"amount": 50000}).instance.id
    with database.transaction(write=True) as session:
        session.add(
            ArchivePackage(
                instance_id=instance_id,
                outcome="completed",
                name="loanfile.zip",
                storage_key="archives/x/loanfile.zip",
                size=1,
                sha256="0" * 64,
                file_count=1,
                retention_until=date(2056, 12, 1),
                created_at=clock.now(),
            )
        )
    database.dispose()
    command.downgrade(alembic_config(scratch_url), "0010")
    upgrade(database)
    with database.transaction() as session:
        (job,) = session.scalars(select(Job).where(Job.kind == "archive_renew")).all()
        row = session.get(ArchivePackage, instance_id)
    platform.close()
    assert job.instance_id == instance_id and job.payload == {} and job.retries_left == 5
    assert abs(job.due_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert row.renewals == 0 and row.evidence_expires_at is None and row.renewed_at is None


def test_wal_checkpoints_run_off_the_committing_request(tmp_path: Any) -> None:
    """Every N write commits a background checkpoint moves the WAL into the database file; SQLite's
    own checkpoint (which would stall the committing request) is only a far-off backstop."""
    from engine.store.db import Database
    from engine.store.wal_checkpoint import BACKSTOP_PAGES

    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    checkpointer = database.checkpointer
    assert checkpointer is not None
    checkpointer.every = 5
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE loan (id INTEGER PRIMARY KEY, amount TEXT)")
    for amount in range(4):
        with database.transaction(write=True) as session:
            session.execute(text("INSERT INTO loan (amount) VALUES (:a)"), {"a": str(amount)})
    checkpointer.wait()
    assert checkpointer.runs == 0  # four commits: not yet
    with database.transaction(write=True) as session:
        session.execute(text("INSERT INTO loan (amount) VALUES ('5')"))
    checkpointer.wait()
    with database.engine.connect() as conn:
        backstop = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        rows = conn.exec_driver_sql("SELECT count(*) FROM loan").scalar()
    database.dispose()
    assert checkpointer.runs == 1 and checkpointer.last is not None
    busy, frames, moved = checkpointer.last
    assert busy == 0 and frames > 0 and moved == frames
    assert backstop == BACKSTOP_PAGES and rows == 5
