"""Running Alembic from code, so ``creditflow db upgrade`` needs no alembic.ini."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from engine.config import REPO_ROOT
from engine.store.db import Database


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(
    database: Database,
    revision: str = "head",
    *,
    forms_dir: Path = REPO_ROOT / "forms",
    bpmn_dir: Path = REPO_ROOT / "bpmn",
) -> None:
    """Apply migrations on the platform's own engine (SQLite pragmas included).

    SQLite can only change a table by copying it ("batch" migrations), and dropping the old copy
    trips foreign keys that point at it; so, as SQLite documents, foreign keys are off while the
    migration runs and the result is checked with ``foreign_key_check`` before it commits.
    ``forms_dir`` and ``bpmn_dir`` are the platform's: revision 0021 freezes the forms they hold
    for the definitions and product versions already there.
    """
    config = alembic_config(database.engine.url.render_as_string(hide_password=False))
    config.attributes.update(forms_dir=forms_dir, bpmn_dir=bpmn_dir)
    with database.engine.connect() as connection:
        raw = connection.connection.driver_connection if database.is_sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # outside any transaction, or SQLite ignores it
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if raw is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


@cache
def head_revision() -> str | None:
    """The newest migration this code ships (read from ``migrations/`` once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(database: Database) -> str | None:
    """The migration the database is at (None: never migrated)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
