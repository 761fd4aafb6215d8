"""Running applications keep the forms they started with: a deploy freezes a definition's forms, a
publish a product version's (its overrides and start form included), and an operator's new form
files reach new versions only, never the tasks of applications under way."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import func, select

from engine.cli import main as cli
from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.errors import InvalidInput
from engine.forms.catalog import DEFAULT_FORMS_DIR
from engine.forms.freezing import START_FORM
from engine.runtime.connectors import ConnectorRegistry
from engine.store.db import Database
from engine.store.migrate import alembic_config, upgrade
from engine.store.models import FormSnapshot, FrozenForm, ProcessDefinition, ProductVersion
from tests.conftest import MODELS, bank_card, deploy, login, resident_id
from tests.test_persistence import scratch_url  # noqa: F401 - fixture
from tests.test_products import CODES, SYSTEM, applicant, catalog, principal_of  # noqa: F401 - fixture

# an investigation the shipped form takes: the report is short, and nothing says what the risks are
INVESTIGATION = {
    "investigation_conclusion": "reject",
    "interview_done": True,
    "site_visit_date": "2026-11-30",
    "investigation_report": "经营正常，负债偏高。",
}
APPLICATION = {"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
TIGHTER = {"investigation": {"properties": {"village_cadre_opinion": {"type": "string", "minLength": 4}}}}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The shipped forms and archetypes, copied: these tests change them as an operator's release would."""
    shutil.copytree(DEFAULT_FORMS_DIR, tmp_path / "forms")
    shutil.copytree(settings.bpmn_dir, tmp_path / "bpmn")
    return replace(settings, forms_dir=tmp_path / "forms", bpmn_dir=tmp_path / "bpmn")


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text("utf-8"))
    change(document)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), "utf-8")


def release(settings: Settings) -> None:
    """New form files: the investigation asks what the risks are, every comment (a shared definition)
    says at least 30 characters, and an offline application states the household's size."""

    def risks(schema: dict[str, Any]) -> None:
        schema["required"].append("risk_note")
        schema["properties"]["risk_note"] = {"type": "string", "title": "风险提示", "minLength": 2}

    def household(manifest: dict[str, Any]) -> None:
        start = next(a for a in manifest["archetypes"] if a["key"] == "a4_standard_offline")["start_data"]
        start["required"].append("household_size")
        start["properties"]["household_size"] = {"type": "integer", "minimum": 1}

    edit(settings.forms_dir / "investigation-schema.json", risks)
    edit(settings.forms_dir / "common-defs.json", lambda d: d["$defs"]["comment"].update(minLength=30))
    edit(settings.bpmn_dir / "archetypes.json", household)


@pytest.fixture
def restart(settings: Settings, clock: FrozenClock, connectors: ConnectorRegistry) -> Iterator[Any]:
    """Start the platform again on the same database, reading the form files as they are now."""
    started: list[CreditFlow] = []

    def start() -> CreditFlow:
        started.append(CreditFlow(settings, clock=clock, connectors=connectors))
        return started[-1]

    yield start
    for platform in started:
        platform.close()


def investigation(view: Any) -> Any:
    return next(t for t in view.tasks if t.bpmn_id == "main_investigation")


def fields(caught: pytest.ExceptionInfo[InvalidInput]) -> set[str]:
    return {p["field"] for p in caught.value.problems}


@pytest.mark.usefixtures("catalog")
def test_a_running_application_keeps_the_forms_its_version_froze(
    seeded: CreditFlow, settings: Settings, restart: Any
) -> None:
    officer = principal_of(seeded, "ly_officer")
    seeded.products.clone(officer, "FND-DAINONG", code="LY-DAINONG", name=None, overrides={"form_overrides": TIGHTER})
    seeded.products.publish(officer, "LY-DAINONG")
    running = seeded.products.apply(officer, "LY-DAINONG", applicant=applicant(), data=APPLICATION)
    frozen = seeded.tasks.get(officer, investigation(running).id).form
    assert "village_cadre_opinion" in frozen.schema["properties"]  # the bank's own field is frozen with it

    release(settings)
    restarted = restart()
    assert restarted.forms.get("investigation").sha256 != seeded.forms.get("investigation").sha256

    shown = restarted.tasks.get(officer, investigation(running).id).form
    assert (shown.name, shown.sha256, shown.schema) == ("investigation", frozen.sha256, frozen.schema)
    assert "risk_note" not in shown.schema["properties"]
    with pytest.raises(InvalidInput) as caught:
        restarted.tasks.complete(officer, investigation(running).id, {})
    assert fields(caught) == {"investigation_conclusion", "interview_done", "site_visit_date", "investigation_report"}

    # a second application on the version on sale starts and runs with what that version froze
    second = restarted.products.apply(
        officer,
        "LY-DAINONG",
        applicant={**applicant(), "id_number": resident_id("37010219800102123")},
        data=APPLICATION,
    )
    assert restarted.tasks.get(officer, investigation(second).id).form.sha256 == frozen.sha256

    # the product manager sees which forms changed; so does the operator, for every product on sale
    forms = {f["name"]: f for f in restarted.products.get(officer, "LY-DAINONG").forms}
    assert forms["investigation"]["sha256"] == frozen.sha256 and forms["investigation"]["changed"]
    assert forms[START_FORM]["changed"] and forms["review"]["changed"]  # review's comment is the shared one
    stale = restarted.products.stale_forms(SYSTEM)
    assert stale["investigation"] == ["FND-DAINONG v1", "LY-DAINONG v1"] and stale[START_FORM] == stale["investigation"]
    assert "XEKD-XIN v1" in stale["connector-exception"]
    assert restarted.products.stale_forms(principal_of(seeded, "qh_officer"))["investigation"] == ["FND-DAINONG v1"]

    assert restarted.tasks.complete(officer, investigation(running).id, INVESTIGATION).instance.status == "running"
    (completed,) = [
        e for e in restarted.instances.history(SYSTEM, running.instance.id) if e.event_type == "task_completed"
    ]
    assert completed.payload["form_sha256"] == frozen.sha256  # the audit trail says which form it met

    # publishing again freezes the new files: new applications get them, with the bank's override
    assert restarted.products.publish(officer, "LY-DAINONG").version == 2
    assert not any(f["changed"] for f in restarted.products.get(officer, "LY-DAINONG").forms)
    third = {**applicant(), "id_number": resident_id("37010219800103123")}
    with pytest.raises(InvalidInput) as caught:
        restarted.products.apply(officer, "LY-DAINONG", applicant=third, data=APPLICATION)
    assert fields(caught) == {"data.household_size"}
    newer = restarted.products.apply(officer, "LY-DAINONG", applicant=third, data={**APPLICATION, "household_size": 4})
    form = restarted.tasks.get(officer, investigation(newer).id).form
    assert form.sha256 == forms["investigation"]["current_sha256"] != frozen.sha256
    assert {"risk_note", "village_cadre_opinion"} <= set(form.schema["properties"])
    with pytest.raises(InvalidInput) as caught:
        restarted.tasks.complete(officer, investigation(newer).id, INVESTIGATION)
    assert fields(caught) == {"risk_note", "investigation_report"}  # the report is now under 30 characters
    # and the second application, under way on version 1, keeps version 1's form
    assert restarted.tasks.get(officer, investigation(second).id).form.sha256 == frozen.sha256


def test_a_bare_process_keeps_the_forms_of_its_definition_version(
    platform: CreditFlow, settings: Settings, restart: Any
) -> None:
    (first,) = deploy(platform, "linear.bpmn")
    running = platform.instances.start(SYSTEM, "linear", data={"amount": 50000})
    (review,) = running.tasks
    frozen = platform.tasks.get(SYSTEM, review.id).form
    assert frozen.sha256 == platform.forms.get("review").sha256

    def tightened(schema: dict[str, Any]) -> None:
        schema["required"].append("risk_note")
        schema["properties"]["risk_note"] = {"type": "string", "minLength": 2}

    edit(settings.forms_dir / "review-schema.json", tightened)
    again = restart()
    assert again.tasks.get(SYSTEM, review.id).form.sha256 == frozen.sha256
    done = again.tasks.complete(SYSTEM, review.id, {"recommendation": "reject", "comment": "负债过高"})
    assert done.instance.status == "completed"  # rejected, on the form it started with

    # the same model deployed again after a form changed is a new version; new instances get the new form
    (second,) = deploy(again, "linear.bpmn")
    assert (second.version, second.sha256) == (2, first.sha256)
    assert again.definitions.deploy(SYSTEM, [("linear.bpmn", (MODELS / "linear.bpmn").read_bytes())]).created is False
    newer = again.instances.start(SYSTEM, "linear", data={"amount": 50000})
    with pytest.raises(InvalidInput) as caught:
        again.tasks.complete(SYSTEM, newer.tasks[0].id, {"recommendation": "reject", "comment": "负债过高"})
    assert fields(caught) == {"risk_note"}
    assert again.tasks.get(SYSTEM, newer.tasks[0].id).form.sha256 == again.forms.get("review").sha256


@pytest.mark.usefixtures("catalog")
def test_identical_forms_are_stored_once(platform: CreditFlow) -> None:
    with platform.db.transaction() as session:
        snapshots = session.scalar(select(func.count()).select_from(FormSnapshot))
        links = session.scalar(select(func.count()).select_from(FrozenForm))
        distinct = session.scalar(select(func.count(FrozenForm.sha256.distinct())))
        approval = platform.forms.get("approval").sha256
        owners = session.scalar(select(func.count()).where(FrozenForm.sha256 == approval))
        versions = session.scalar(select(func.count()).select_from(ProductVersion))
    # the archetypes' definitions and both products share their forms (the approval form: a4, a5, a6, a7,
    # demo_loan, and FND-DAINONG): one snapshot each
    assert snapshots == distinct < links and owners >= 6 and versions == len(CODES)


@pytest.mark.usefixtures("catalog")
def test_forms_over_http(platform: CreditFlow, app: Any, settings: Settings, restart: Any) -> None:
    from api import create_app

    officer, pm = login(app, "ly_officer"), login(app, "ly_pm")
    cloned = pm.post("/api/v1/products/FND-DAINONG/clone", json={"code": "LY-DAINONG", "overrides": {}})
    assert cloned.status_code == 201 and pm.post("/api/v1/products/LY-DAINONG/publish").status_code == 200
    started = officer.post(
        "/api/v1/products/LY-DAINONG/applications", json={"applicant": applicant(), "data": APPLICATION}
    )
    assert started.status_code == 201, started.get_json()
    task_id = next(t["id"] for t in started.get_json()["tasks"] if t["bpmn_id"] == "main_investigation")
    before = officer.get(f"/api/v1/tasks/{task_id}").get_json()["form_definition"]
    assert before["sha256"] == platform.forms.get("investigation").sha256
    assert before["schema"]["$defs"]["common-defs.json"]["$id"] == "common-defs.json"  # bundled: self-contained

    release(settings)
    application = create_app(restart())
    application.config["TESTING"] = True
    officer, pm = login(application, "ly_officer"), login(application, "ly_pm")
    assert officer.get(f"/api/v1/tasks/{task_id}").get_json()["form_definition"] == before
    refused = officer.post(f"/api/v1/tasks/{task_id}/complete", json={"data": {**INVESTIGATION, "interview_done": "x"}})
    assert refused.status_code == 422 and {e["field"] for e in refused.get_json()["errors"]} == {"interview_done"}
    shown = {f["name"]: f for f in pm.get("/api/v1/products/LY-DAINONG").get_json()["forms"]}
    assert shown["investigation"] == {
        "name": "investigation",
        "sha256": before["sha256"],
        "current_sha256": shown["investigation"]["current_sha256"],
        "changed": True,
    }
    diff = pm.get("/api/v1/products/LY-DAINONG/diff").get_json()
    assert {f["name"] for f in diff["forms"] if f["changed"]} == {n for n, f in shown.items() if f["changed"]}
    assert login(application, "qh_pm").get("/api/v1/products/LY-DAINONG").status_code == 404
    done = officer.post(f"/api/v1/tasks/{task_id}/complete", json={"data": INVESTIGATION})
    assert done.status_code == 200, done.get_json()
    retired = pm.post("/api/v1/products/LY-DAINONG/retire", json={"reason": "停办"})  # every answer with the product
    assert retired.status_code == 200 and retired.get_json()["forms"] == list(shown.values())


@pytest.mark.usefixtures("catalog")
def test_catalog_load_reports_the_forms_products_on_sale_froze_before(
    seeded: CreditFlow, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    officer = principal_of(seeded, "ly_officer")
    seeded.products.clone(officer, "FND-DAINONG", code="LY-DAINONG", name=None, overrides={})
    seeded.products.publish(officer, "LY-DAINONG")
    title = {"title": "走访日期"}
    edit(settings.forms_dir / "investigation-schema.json", lambda d: d["properties"]["site_visit_date"].update(title))

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CREDITFLOW_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("CREDITFLOW_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CREDITFLOW_FORMS_DIR", str(settings.forms_dir))
    loaded = CliRunner().invoke(cli, ["catalog", "load"], catch_exceptions=False)
    assert loaded.exit_code == 0, loaded.output
    # the province's templates were published again; the bank's variant waits for the bank
    assert loaded.output.splitlines()[-2:] == [
        "forms changed since these products on sale were published (publish them again for new applications):",
        "  investigation: 1 product(s): LY-DAINONG v1",
    ]
    assert seeded.products.get(SYSTEM, "FND-DAINONG").current.version == 2


def test_upgrading_freezes_the_forms_of_existing_definitions_and_versions(
    scratch_url: str,  # noqa: F811 - the fixture
    settings: Settings,
    clock: FrozenClock,
) -> None:
    """Revision 0024 gives what was deployed and published before it the forms as the folder holds them."""
    database = Database(scratch_url)
    upgrade(database)
    platform = CreditFlow(replace(settings, database_url=scratch_url), clock=clock, database=database)
    files = sorted(settings.bpmn_dir.glob("*.bpmn"))
    platform.definitions.deploy(SYSTEM, [(f.name, f.read_bytes()) for f in files])
    subset = settings.data_dir / "standard"
    subset.mkdir()
    shutil.copy(Path(__file__).parents[1] / "product_configs" / "standard" / "FND-DAINONG.json", subset)
    (version,) = platform.products.load_standard(SYSTEM, subset)
    running = platform.products.apply(SYSTEM, "FND-DAINONG", applicant=applicant(), data=APPLICATION)
    with database.transaction() as session:
        before = {
            (f.definition_id, f.product_version_id, f.name, f.sha256) for f in session.scalars(select(FrozenForm))
        }
        definitions = session.scalar(select(func.count()).select_from(ProcessDefinition))
    platform.close()
    command.downgrade(alembic_config(scratch_url), "-1")  # before 0024: nothing frozen
    upgrade(database, forms_dir=settings.forms_dir, bpmn_dir=settings.bpmn_dir)

    again = CreditFlow(replace(settings, database_url=scratch_url), clock=clock, database=database)
    with database.transaction() as session:
        after = {(f.definition_id, f.product_version_id, f.name, f.sha256) for f in session.scalars(select(FrozenForm))}
        owners = session.scalar(select(func.count(FrozenForm.definition_id.distinct())))
    assert after == before and owners == definitions
    assert {name for _, owner, name, _ in after if owner == version.id} >= {"investigation", START_FORM}
    task = investigation(running)
    assert again.tasks.get(SYSTEM, task.id).form.sha256 == again.forms.get("investigation").sha256
    assert again.tasks.complete(SYSTEM, task.id, INVESTIGATION).instance.status == "running"
    again.close()
