"""BPMN timers fire through the scheduler pass at their due time, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from engine.container import CreditFlow
from engine.jobs.scheduler import run_pass
from engine.services.principal import Principal
from tests.conftest import deploy

SYSTEM = Principal.system()
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_an_interrupting_boundary_timer_fires_once_when_due(platform: CreditFlow) -> None:
    deploy(platform, "timer_bare.bpmn")  # review with a bare "PT4H" boundary timer
    with time_machine.travel(START, tick=False) as traveller:
        view = platform.instances.start(SYSTEM, "timer_bare", data={})
        assert view.instance.next_timer_at == START + timedelta(hours=4)
        assert run_pass(platform, START + timedelta(hours=3)).done == 0  # not due yet

        traveller.shift(timedelta(hours=5))
        now = START + timedelta(hours=5)
        assert run_pass(platform, now).done == 1
        after = platform.instances.get(SYSTEM, view.instance.id)
        assert after.instance.status == "completed" and after.tasks == []
        assert after.instance.next_timer_at is None
        assert run_pass(platform, now).done == 0  # a second pass (or node) finds nothing

    events = platform.instances.history(SYSTEM, view.instance.id)
    kinds = [e.event_type for e in events]
    assert kinds.count("timer_fired") == 1 and "task_cancelled" in kinds
    assert next(e for e in events if e.event_type == "completed").payload["end"] == "end_timeout"


def test_a_task_completed_before_its_timer_cancels_the_timer(platform: CreditFlow) -> None:
    deploy(platform, "timer_bare.bpmn")
    with time_machine.travel(START, tick=False) as traveller:
        view = platform.instances.start(SYSTEM, "timer_bare", data={})
        traveller.shift(timedelta(hours=1))
        done = platform.tasks.complete(SYSTEM, view.tasks[0].id, {"recommendation": "reject", "comment": "不符合条件"})
        assert done.instance.status == "completed" and done.instance.next_timer_at is None
        traveller.shift(timedelta(hours=5))
        assert run_pass(platform, START + timedelta(hours=6)).done == 0


def test_the_scheduler_command_runs_one_pass(platform: CreditFlow, settings: Any, monkeypatch: Any) -> None:
    from click.testing import CliRunner

    from engine.cli import main as cli

    deploy(platform, "timer_bare.bpmn")
    with time_machine.travel(START, tick=False) as traveller:
        view = platform.instances.start(SYSTEM, "timer_bare", data={})
        traveller.shift(timedelta(hours=5))
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
        result = CliRunner().invoke(cli, ["scheduler", "--once"], catch_exceptions=False)
    assert result.exit_code == 0 and "1 job(s) done of 1 due" in result.output
    assert platform.instances.get(SYSTEM, view.instance.id).instance.status == "completed"


def test_a_timer_pass_skips_an_instance_another_node_holds(platform: CreditFlow) -> None:
    """On PostgreSQL the pass does not queue behind a held row; on SQLite writers are serialized anyway."""
    from sqlalchemy import text

    deploy(platform, "timer_bare.bpmn")
    with time_machine.travel(START, tick=False) as traveller:
        view = platform.instances.start(SYSTEM, "timer_bare", data={})
        traveller.shift(timedelta(hours=5))
        now = START + timedelta(hours=5)
        if platform.db.is_sqlite:
            assert run_pass(platform, now).done == 1
            return
        with platform.db.engine.connect() as other_node:
            other_node.execute(
                text("SELECT id FROM process_instance WHERE id = :i FOR UPDATE"), {"i": view.instance.id}
            )
            assert run_pass(platform, now).done == 0  # held elsewhere: skipped, not waited for
            other_node.rollback()
        assert run_pass(platform, now + timedelta(seconds=3)).done == 1  # given back, due again shortly
