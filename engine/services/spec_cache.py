"""Process definitions with their parsed specs and frozen forms, cached per immutable definition id.

Definitions never change once written, so neither the row, the parsed spec nor the forms frozen at
deploy time are read twice; instances only ever carry their state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.forms.definition import FormDefinition
from engine.runtime.model_check import ModelFile, build_parser
from engine.services.form_snapshots import FormSnapshots
from engine.store.models import DeploymentResource, ProcessDefinition


@dataclass(frozen=True)
class LoadedDefinition:
    id: int
    key: str
    version: int
    name: str | None
    spec: Any
    subprocess_specs: dict[str, Any]
    shared: bool = True  # the province's or the platform's, not one bank's own
    # the forms its user tasks use, as deployed (what an instance without a product validates against)
    forms: dict[str, FormDefinition] = field(default_factory=dict)


class SpecCache:
    def __init__(self, snapshots: FormSnapshots) -> None:
        self.snapshots = snapshots
        self._loaded: dict[int, LoadedDefinition] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, definition_id: int) -> LoadedDefinition:
        loaded = self._loaded.get(definition_id)
        if loaded is None:
            definition = session.get(ProcessDefinition, definition_id)
            if definition is None:
                raise NotFound(f"process definition {definition_id} does not exist")
            parser, problems = build_parser(resources_for(session, definition.id), validate=False)
            if problems:  # stored models passed the same checks at deploy time
                raise RuntimeError(
                    f"stored definition {definition.key}:{definition.version} does not parse: {problems}"
                )
            loaded = self.put(
                definition,
                (parser.get_spec(definition.key), parser.get_subprocess_specs(definition.key)),
                self.snapshots.load(session, definition_id=definition.id),
            )
        return loaded

    def put(
        self, definition: ProcessDefinition, specs: tuple[Any, dict[str, Any]], forms: dict[str, FormDefinition]
    ) -> LoadedDefinition:
        """Seed the cache (deploy has just parsed the specs and frozen the forms)."""
        loaded = LoadedDefinition(
            definition.id,
            definition.key,
            definition.version,
            definition.name,
            *specs,
            definition.tenant_id is None,
            forms,
        )
        with self._lock:
            return self._loaded.setdefault(definition.id, loaded)


def resources_for(session: Session, definition_id: int) -> list[ModelFile]:
    """The definition's own deployment plus those of the definitions its call activities resolved to.

    Reads columns, not rows: migration 0021 parses the stored definitions with it too."""
    deployment_ids: list[int] = []
    pending = [definition_id]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        deployment_id, called = session.execute(
            select(ProcessDefinition.deployment_id, ProcessDefinition.called_definition_ids).where(
                ProcessDefinition.id == current
            )
        ).one()
        if deployment_id not in deployment_ids:
            deployment_ids.append(deployment_id)
        pending.extend(called or [])
    rows = session.execute(
        select(
            DeploymentResource.deployment_id,
            DeploymentResource.name,
            DeploymentResource.kind,
            DeploymentResource.content,
            DeploymentResource.sha256,
        )
        .where(DeploymentResource.deployment_id.in_(deployment_ids))
        .order_by(DeploymentResource.deployment_id, DeploymentResource.id)
    )
    # dependencies first, so that the definition's own deployment is parsed last
    ordered = sorted(rows, key=lambda r: deployment_ids.index(r.deployment_id), reverse=True)
    return [ModelFile(r.name, r.kind, r.content.encode(), r.sha256) for r in ordered]
