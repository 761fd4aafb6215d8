"""Parsed process specs, cached per immutable definition so that instances never re-parse XML."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.runtime.model_check import ModelFile, build_parser
from engine.store.models import DeploymentResource, ProcessDefinition

SpecPair = tuple[Any, dict[str, Any]]


class SpecCache:
    def __init__(self) -> None:
        self._specs: dict[int, SpecPair] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, definition: ProcessDefinition) -> SpecPair:
        pair = self._specs.get(definition.id)
        if pair is None:
            pair = self._parse(session, definition)
            with self._lock:
                pair = self._specs.setdefault(definition.id, pair)
        return pair

    def put(self, definition_id: int, pair: SpecPair) -> None:
        """Seed the cache with what deploy already parsed."""
        with self._lock:
            self._specs.setdefault(definition_id, pair)

    def _parse(self, session: Session, definition: ProcessDefinition) -> SpecPair:
        files = resources_for(session, definition)
        parser, problems = build_parser(files, validate=False)
        if problems:  # stored models passed the same checks at deploy time
            raise RuntimeError(f"stored definition {definition.key}:{definition.version} no longer parses: {problems}")
        return parser.get_spec(definition.key), parser.get_subprocess_specs(definition.key)


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
