"""Process definitions and their parsed specs, cached per immutable definition id.

Definitions never change once written, so neither the row nor the parsed spec is read twice;
instances only ever carry their state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.runtime.model_check import ModelFile, build_parser
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


class SpecCache:
    def __init__(self) -> None:
        self._loaded: dict[int, LoadedDefinition] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, definition_id: int) -> LoadedDefinition:
        loaded = self._loaded.get(definition_id)
        if loaded is None:
            definition = session.get(ProcessDefinition, definition_id)
            if definition is None:
                raise NotFound(f"process definition {definition_id} does not exist")
            parser, problems = build_parser(resources_for(session, definition), validate=False)
            if problems:  # stored models passed the same checks at deploy time
                raise RuntimeError(
                    f"stored definition {definition.key}:{definition.version} does not parse: {problems}"
                )
            loaded = self.put(
                definition, (parser.get_spec(definition.key), parser.get_subprocess_specs(definition.key))
            )
        return loaded

    def put(self, definition: ProcessDefinition, specs: tuple[Any, dict[str, Any]]) -> LoadedDefinition:
        """Seed the cache (deploy has just parsed the specs)."""
        loaded = LoadedDefinition(
            definition.id, definition.key, definition.version, definition.name, *specs, definition.tenant_id is None
        )
        with self._lock:
            return self._loaded.setdefault(definition.id, loaded)


def resources_for(session: Session, definition: ProcessDefinition) -> list[ModelFile]:
    """The definition's own deployment plus those of the definitions its call activities resolved to."""
    deployment_ids: list[int] = []
    pending = [definition]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current.id in seen:
            continue
        seen.add(current.id)
        if current.deployment_id not in deployment_ids:
            deployment_ids.append(current.deployment_id)
        if current.called_definition_ids:
            pending.extend(
                session.scalars(
                    select(ProcessDefinition).where(ProcessDefinition.id.in_(current.called_definition_ids))
                )
            )
    rows = session.scalars(
        select(DeploymentResource)
        .where(DeploymentResource.deployment_id.in_(deployment_ids))
        .order_by(DeploymentResource.deployment_id, DeploymentResource.id)
    )
    # dependencies first, so that the definition's own deployment is parsed last
    ordered = sorted(rows, key=lambda r: deployment_ids.index(r.deployment_id), reverse=True)
    return [ModelFile(r.name, r.kind, r.content.encode(), r.sha256) for r in ordered]
