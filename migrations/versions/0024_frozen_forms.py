"""forms frozen with the definition or product version that uses them: form_snapshot and frozen_form

Running instances validate against and show the forms their definition or product version froze,
not whatever ``forms/`` holds after the next release.

Backfill, the best that can be done: the forms existing definitions were deployed and product
versions published with were never stored, so each gets the forms as ``forms/`` (and, for a
version's start form, ``bpmn/archetypes.json``) holds them when this revision runs; ``creditflow db
upgrade`` reads the folders the platform reads. Upgrade before shipping changed form files, or the
running instances keep the changed ones. A form that is gone from the folder by then, or a bank's
override that no longer makes a valid form of it, is not frozen (a warning names it): such a
task validates nothing, as it did before this revision.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from sqlalchemy.orm import Session

from engine.catalog.references import ProcessOutline
from engine.config import REPO_ROOT
from engine.forms.catalog import FormCatalog, InvalidFormDefinition
from engine.forms.definition import FormDefinition
from engine.forms.freezing import TaskForms, form_names, published_form
from engine.runtime.model_check import build_parser
from engine.services.spec_cache import resources_for
from engine.store.types import UtcDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

SNAPSHOT = sa.table(
    "form_snapshot",
    sa.column("sha256", sa.String()),
    sa.column("schema", sa.JSON()),
    sa.column("ui_schema", sa.JSON()),
    sa.column("created_at", UtcDateTime(timezone=True)),
)
FROZEN = sa.table(
    "frozen_form",
    sa.column("definition_id", sa.Integer()),
    sa.column("product_version_id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("sha256", sa.String()),
)


def upgrade() -> None:
    op.create_table(
        "form_snapshot",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("ui_schema", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_form_snapshot")),
    )
    op.create_table(
        "frozen_form",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=True),
        sa.Column("product_version_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "(definition_id IS NULL) <> (product_version_id IS NULL)", name=op.f("ck_frozen_form_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["definition_id"], ["process_definition.id"], name=op.f("fk_frozen_form_definition_id_process_definition")
        ),
        sa.ForeignKeyConstraint(
            ["product_version_id"],
            ["product_version.id"],
            name=op.f("fk_frozen_form_product_version_id_product_version"),
        ),
        sa.ForeignKeyConstraint(["sha256"], ["form_snapshot.sha256"], name=op.f("fk_frozen_form_sha256_form_snapshot")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frozen_form")),
        sa.UniqueConstraint("definition_id", "name", name=op.f("uq_frozen_form_definition_id")),
        sa.UniqueConstraint("product_version_id", "name", name=op.f("uq_frozen_form_product_version_id")),
    )
    _backfill()


def _backfill() -> None:
    attributes = op.get_context().config.attributes if op.get_context().config else {}
    catalog = FormCatalog(attributes.get("forms_dir", REPO_ROOT / "forms"))
    manifest_file = Path(attributes.get("bpmn_dir", REPO_ROOT / "bpmn")) / "archetypes.json"
    start_data = {
        entry["key"]: entry["start_data"] for entry in json.loads(manifest_file.read_text("utf-8"))["archetypes"]
    }
    bind = op.get_bind()
    session = Session(bind=bind)
    stored: set[str] = set()
    task_forms: dict[int, TaskForms] = {}
    parsers: dict[tuple[str, ...], Any] = {}  # one parse per set of model files (a bundle's processes share it)
    for definition_id, key in bind.execute(sa.text("SELECT id, key FROM process_definition ORDER BY id")):
        models = resources_for(session, definition_id)
        files = tuple(model.sha256 for model in models)
        if files not in parsers:
            parser, problems = build_parser(models, validate=False)
            parsers[files] = None if problems else parser
        specs = _specs(parsers[files], key)
        if specs is None:  # it cannot run either: SpecCache parses it the same way
            log.warning("definition %s (%s) does not parse: no forms frozen", definition_id, key)
            continue
        task_forms[definition_id] = ProcessOutline.of(key, specs).task_forms
        forms = _forms(catalog, task_forms[definition_id], {}, {}, None, f"definition {definition_id} ({key})")
        _store(forms, stored, definition_id=definition_id)
    versions = bind.execute(sa.text("SELECT id, definition_id, config FROM product_version ORDER BY id"))
    for version_id, definition_id, stored_config in versions:
        config = json.loads(stored_config) if isinstance(stored_config, str) else stored_config
        forms = _forms(
            catalog,
            task_forms.get(definition_id, ()),
            (config.get("bindings") or {}).get("forms") or {},
            config.get("form_overrides") or {},
            start_data.get(config.get("archetype")),
            f"product {config.get('code')} version id {version_id}",
        )
        _store(forms, stored, product_version_id=version_id)
    session.close()


def _specs(parser: Any, key: str) -> list[Any] | None:
    """Process ``key`` and its subprocesses, parsed; None if its stored models do not give it."""
    if parser is None:
        return None
    try:
        return [parser.get_spec(key), *parser.get_subprocess_specs(key).values()]
    except ValidationException:
        return None


def _forms(
    catalog: FormCatalog,
    task_forms: TaskForms,
    bound: dict[str, str],
    overrides: dict[str, Any],
    start: dict[str, Any] | None,
    owner: str,
) -> dict[str, FormDefinition]:
    """What a deploy or publish would freeze now, leaving out (with a warning) what cannot be frozen."""
    found = {}
    for name in sorted(form_names(task_forms, bound, start)):
        try:
            found[name] = published_form(catalog, name, overrides, start)
        except (KeyError, InvalidFormDefinition) as exc:
            log.warning("%s: form %s is not frozen (%s); its tasks validate nothing", owner, name, exc)
    return found


def _store(forms: dict[str, FormDefinition], stored: set[str], **owner: int) -> None:
    """Snapshots not stored yet (each content once), and the owner's links to its forms."""
    now = datetime.now(UTC)
    new = {form.sha256: form for form in forms.values() if form.sha256 not in stored}
    if new:
        rows = [
            {"sha256": f.sha256, "schema": f.schema, "ui_schema": f.ui_schema, "created_at": now} for f in new.values()
        ]
        op.bulk_insert(SNAPSHOT, rows)
        stored.update(new)
    if forms:
        links = [
            {"definition_id": None, "product_version_id": None, **owner, "name": n, "sha256": f.sha256}
            for n, f in forms.items()
        ]
        op.bulk_insert(FROZEN, links)


def downgrade() -> None:
    op.drop_table("frozen_form")
    op.drop_table("form_snapshot")
