"""Frozen forms in the database: written once per content, read per owner, compiled once per content.

A deploy freezes the forms of a process definition, a publish those of a product version
(``engine.forms.freezing``). Snapshots never change and are addressed by their SHA-256, so the one
validator compiled for a snapshot serves every definition and version that froze the same form;
the owners' forms are cached with their owner (``SpecCache``, ``ProductService.binding``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.forms.definition import FormDefinition, compile_form
from engine.store.models import FormSnapshot, FrozenForm


class FormSnapshots:
    def __init__(self) -> None:
        self._compiled: dict[str, FormDefinition] = {}
        self._lock = threading.Lock()

    def freeze(
        self,
        session: Session,
        forms: Mapping[str, FormDefinition],
        now: datetime,
        *,
        definition_id: int | None = None,
        product_version_id: int | None = None,
    ) -> None:
        """Link one owner (a definition or a product version) to its forms, storing each snapshot
        nobody stored before; a parallel publish storing the same one is no conflict."""
        if not forms:
            return
        rows = {f.sha256: {"sha256": f.sha256, "schema": f.schema, "ui_schema": f.ui_schema} for f in forms.values()}
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        new = dialect.insert(FormSnapshot).values([{**row, "created_at": now} for row in rows.values()])
        session.execute(new.on_conflict_do_nothing(index_elements=["sha256"]))
        session.add_all(
            FrozenForm(definition_id=definition_id, product_version_id=product_version_id, name=name, sha256=f.sha256)
            for name, f in forms.items()
        )
        with self._lock:  # already compiled: the content is the hash's, committed or not
            for form in forms.values():
                self._compiled.setdefault(form.sha256, form)

    def digests(
        self, session: Session, *, definition_id: int | None = None, product_version_id: int | None = None
    ) -> dict[str, str]:
        """Form name -> snapshot SHA-256 of one owner."""
        owner = (
            FrozenForm.definition_id == definition_id
            if definition_id is not None
            else FrozenForm.product_version_id == product_version_id
        )
        return dict(session.execute(select(FrozenForm.name, FrozenForm.sha256).where(owner)).all())

    def load(
        self, session: Session, *, definition_id: int | None = None, product_version_id: int | None = None
    ) -> dict[str, FormDefinition]:
        """One owner's frozen forms by name, compiled (each snapshot once per process)."""
        links = self.digests(session, definition_id=definition_id, product_version_id=product_version_id)
        missing = set(links.values()) - self._compiled.keys()
        if missing:
            stored = select(FormSnapshot.sha256, FormSnapshot.schema, FormSnapshot.ui_schema).where(
                FormSnapshot.sha256.in_(missing)
            )
            for sha256, schema, ui_schema in session.execute(stored):
                compiled = compile_form("", schema, ui_schema, sha256)
                with self._lock:
                    self._compiled.setdefault(sha256, compiled)
        return {name: replace(self._compiled[sha256], name=name) for name, sha256 in links.items()}
