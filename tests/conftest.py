"""Test fixtures: a real database per test (SQLite file, or PostgreSQL when
CREDITFLOW_TEST_DATABASE_URL is set), a platform over it, and API clients with tokens."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from argon2 import PasswordHasher, profiles
from sqlalchemy import text

from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.jobs.scheduler import run_pass
from engine.runtime.connectors import ConnectorError, ConnectorRegistry
from engine.services.auth import use_password_hasher
from engine.store.audit_guards import GUARDED, guard_statements
from engine.store.db import Database
from engine.store.migrate import upgrade
from engine.store.models import Base

MODELS = Path(__file__).parent / "models"
PG_URL = os.environ.get("CREDITFLOW_TEST_DATABASE_URL") or None  # empty: SQLite, as when unset
PASSWORD = "correct horse battery"

use_password_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session; each test then gets a copy (SQLite) or truncated tables (PostgreSQL)."""
    if PG_URL:
        database = Database(PG_URL)
        with database.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(database)
        database.dispose()
        return PG_URL
    return str(migrated_sqlite(tmp_path_factory.mktemp("template") / "template.db"))


def migrated_sqlite(path: Path) -> Path:
    """A SQLite file at the newest schema, whole in itself (no WAL beside it) so that copies of it work."""
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    with database.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.dispose()
    return path


# One round trip names the tables a test left rows in; most tests touch a handful of the schema's tables.
_FILLED_TABLES = " UNION ALL ".join(
    f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM {t.name})" for t in Base.metadata.sorted_tables
)


@pytest.fixture
def database_url(migrated_template: str, tmp_path: Path) -> str:
    return fresh_database(migrated_template, tmp_path)


def fresh_database(migrated_template: str, folder: Path) -> str:
    """The URL of a database at the newest schema with no rows: a copy of the template in ``folder``
    (SQLite), or the test database emptied (PostgreSQL)."""
    if PG_URL:
        _empty_postgresql(PG_URL)
        return PG_URL
    target = folder / "creditflow.db"
    shutil.copy(migrated_template, target)
    return f"sqlite:///{target}"


def _empty_postgresql(url: str) -> None:
    """Every table empty and every sequence back at 1, as on a fresh copy of the template.

    Deleting the few rows a test left costs a tenth of truncating all the tables (TRUNCATE makes new
    files for each). Replica mode turns off the triggers, the append-only guards and the foreign keys
    alike, so the order does not matter; it needs the superuser that tests already use for
    ``CREATE DATABASE`` and ``DROP SCHEMA``. A guard a tamper test dropped is put back: with a copy of
    the template per test, SQLite gets that for free."""
    database = Database(url)
    with database.engine.begin() as conn:
        filled = conn.execute(text(_FILLED_TABLES)).scalars().all()
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in filled:
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(
            text(
                "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) FROM pg_sequences"
                " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        )
        guarded = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
        for table in (t for t in GUARDED if f"{t}_no_change" not in guarded):  # a tamper test dropped it
            for statement in guard_statements(table, "postgresql"):
                conn.execute(text(statement))
    database.dispose()


def resident_id(base17: str = "37010219800101123") -> str:
    """A resident ID with a correct GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return base17 + "10X98765432"[sum(int(c) * w for c, w in zip(base17, weights, strict=True)) % 11]


BLACKLISTED_ID = resident_id("37010219850505123")  # the bureau's risk lists name this borrower


def bureau(id_number: str) -> dict[str, Any]:
    """Test double of the credit bureau with real failure modes: IDs starting with DOWN fail, and
    ``BLACKLISTED_ID`` is on the bank's blacklist; everyone else has a clean report."""
    from engine.runtime.demo_connectors import CLEAN_REPORT

    if id_number.startswith("DOWN"):
        raise ConnectorError("bureau timed out after 5 s", code="CONNECTOR_ERROR")
    return {"score": 720, **CLEAN_REPORT, "blacklist_hit": id_number == BLACKLISTED_ID}


@pytest.fixture
def connectors() -> ConnectorRegistry:
    """The demo connectors (deterministic) with the bureau replaced by one that fails on request."""
    from engine.runtime import demo_connectors

    registry = ConnectorRegistry()
    registry.register("credit_bureau/score", bureau)
    registry.register("core_banking/disburse", demo_connectors.disburse)
    registry.register("core_banking/renew", demo_connectors.renew)
    registry.register("guarantee/apply", demo_connectors.guarantee_apply)
    return registry


CLOCK_START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(CLOCK_START)


@dataclass
class Clocks:
    """The platform's clock and SpiffWorkflow's wall clock, moved together.

    SpiffWorkflow fires a timer only once the wall clock is strictly past its due time; in production
    the engine reads it just after the scheduler pass read its now, and ``run_pass`` does the same, a
    microsecond later."""

    platform: FrozenClock
    wall: time_machine.Traveller

    def at(self, moment: datetime) -> None:
        self.platform.advance(moment - self.platform.now())
        self.wall.move_to(moment)

    def run_pass(self, platform: CreditFlow, moment: datetime) -> int:
        """One scheduler pass at ``moment``; the number of jobs it did."""
        self.at(moment)
        self.wall.shift(timedelta(microseconds=1))
        return run_pass(platform, moment).done


@pytest.fixture
def clocks(clock: FrozenClock) -> Iterator[Clocks]:
    with time_machine.travel(CLOCK_START, tick=False) as wall:
        yield Clocks(clock, wall)


@pytest.fixture(scope="session")
def documents_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One development PKI (banks get their seal on first use) and one warm LibreOffice for the run:
    starting either per test would cost seconds each."""
    from engine.documents.pki import init_pki

    pki = tmp_path_factory.mktemp("pki")
    init_pki(pki, [], now=datetime.now(UTC))
    return {"pki_dir": pki, "office_dir": tmp_path_factory.mktemp("office")}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, documents_dirs: dict[str, Path]) -> Settings:
    """Four-eyes control off, so that tests publish products directly; tests/test_publication_requests.py
    runs with the installation's default (on)."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret-key-" + "x" * 32,
        four_eyes=False,
        **documents_dirs,
    )


@pytest.fixture
def platform(settings: Settings, clock: FrozenClock, connectors: ConnectorRegistry) -> Iterator[CreditFlow]:
    p = CreditFlow(settings, clock=clock, connectors=connectors)
    yield p
    p.close()


def deploy(platform: CreditFlow, *names: str) -> list[Any]:
    from engine.services.principal import Principal

    files = [(n, (MODELS / n).read_bytes()) for n in names]
    return platform.definitions.deploy(Principal.system(), files).definitions


def drop_append_only_guards(platform: CreditFlow, table: str) -> None:
    """What a tamperer with DDL rights does first: drop the triggers that make a trail table append-only."""
    with platform.db.transaction(write=True) as session:
        if platform.db.is_sqlite:
            session.execute(text(f"DROP TRIGGER {table}_no_update"))
            session.execute(text(f"DROP TRIGGER {table}_no_delete"))
        else:
            session.execute(text(f"DROP TRIGGER {table}_no_change ON {table}"))


@pytest.fixture
def seeded(platform: CreditFlow) -> CreditFlow:
    from engine.services.demo import seed_demo

    seed_demo(platform, PASSWORD)
    return platform


@pytest.fixture
def app(seeded: CreditFlow) -> Any:
    from api import create_app

    application = create_app(seeded)
    application.config["TESTING"] = True
    return application


class ApiClient:
    """The Flask test client with a bearer token."""

    def __init__(self, client: Any, token: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __getattr__(self, method: str) -> Any:
        def call(url: str, **kwargs: Any) -> Any:
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)(url, headers=headers, **kwargs)

        return call


def login(app: Any, username: str = "admin", password: str = PASSWORD) -> ApiClient:
    client = app.test_client()
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    return ApiClient(client, response.get_json()["access_token"])


@pytest.fixture
def api(app: Any) -> ApiClient:
    return login(app)


APPLICATION = {
    "applicant": {"name": "王小二", "id_number": resident_id(), "mobile": "13800138000"},
    "amount": "50000.00",
    "term_months": 12,
    "purpose": "种植业生产",
}


def bank_card(base: str = "622202020011234567") -> str:
    """A card number with a correct Luhn check digit."""
    digits = [int(c) for c in base]
    total = sum(d if i % 2 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return base + str((10 - total % 10) % 10)


def pdfsig(pdf: bytes, ca_pem: bytes, workdir: Path) -> str:
    """What poppler's pdfsig says of ``pdf`` when its NSS store trusts ``ca_pem`` (as a bank's
    auditors would set it up: NSS checks document signers as e-mail signers, hence the S/MIME flag)."""
    import subprocess

    nss = workdir / "nss"
    nss.mkdir()
    (workdir / "ca.pem").write_bytes(ca_pem)
    (workdir / "checked.pdf").write_bytes(pdf)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    trust = ["certutil", "-A", "-d", f"sql:{nss}", "-n", "creditflow-root", "-t", ",C,", "-i", str(workdir / "ca.pem")]
    subprocess.run(trust, check=True, capture_output=True)
    command = ["pdfsig", "-nssdir", f"sql:{nss}", str(workdir / "checked.pdf")]
    return subprocess.run(command, capture_output=True, text=True).stdout
