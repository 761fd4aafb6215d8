"""Deploying BPMN/DMN bundles and reading deployed process definitions.

A process id (key) belongs to whoever deployed it first: the province's and the platform's are shared
(``tenant_id`` None) and run every bank's products; a bank's are its own. Only the owner deploys new
versions of a key, so no bank can change the process the province and the other banks run, and a
bank's own definitions are invisible to the other banks.

A definition version freezes the forms its user tasks name, as ``forms/`` holds them at deploy time
(``engine.forms.freezing``): its instances keep them. Deploying the same models again after a form
changed is therefore a new version, which new instances start on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.catalog.changes import CATALOG_TRAIL, DEFINITION_DEPLOYED
from engine.catalog.references import ProcessOutline
from engine.errors import Conflict, InvalidInput, NotFound
from engine.forms.definition import FormDefinition
from engine.forms.freezing import digests, frozen_forms
from engine.jobs.start_timers import schedule_start_timers
from engine.runtime.model_check import ModelFile, build_parser, lint, raise_if_problems, read_model_files
from engine.runtime.parser import BPMN_NS, CreditFlowParser
from engine.services.principal import Principal
from engine.services.spec_cache import resources_for
from engine.store.change_trail import record_change
from engine.store.models import Deployment, DeploymentResource, ProcessDefinition, ProductVersion

if TYPE_CHECKING:
    from engine.container import CreditFlow

PROCESS_TAG = f"{{{BPMN_NS}}}process"


@dataclass(frozen=True)
class DeployResult:
    definitions: list[ProcessDefinition]
    created: bool  # False when every process was already deployed with identical content


class DefinitionService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def deploy(self, principal: Principal, files: Iterable[tuple[str, bytes]]) -> DeployResult:
        """Validate and lint the whole bundle, then store new versions; nothing is stored on any problem."""
        models = read_model_files(files, self.platform.settings.max_upload_bytes)
        for model in models:
            try:
                model.content.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(
                    f"{model.name} is not UTF-8 encoded", [{"field": "files", "message": f"{model.name}: not UTF-8"}]
                ) from None
        parser, problems = build_parser(models)
        raise_if_problems(problems)
        with self.platform.db.transaction(write=True) as session:
            owner = self._owner(session, principal)
            external = self._resolve_called_processes(session, parser, owner)
            resolved, problems = lint(
                parser,
                forms=self.platform.forms,
                connectors=self.platform.connectors,
                check_expression=self.platform.check_expression,
            )
            raise_if_problems(problems)
            own = _own_processes(parser, resolved, {m.name for m in models})
            if not own:
                raise InvalidInput(
                    "the upload contains no executable process",
                    [{"field": "files", "message": 'no process with isExecutable="true"'}],
                )
            try:
                return self._store(session, principal, owner, parser, models, own, external, resolved)
            except IntegrityError:
                raise Conflict("another deployment of the same process key is in progress; try again") from None

    def _owner(self, session: Session, principal: Principal) -> int | None:
        """Whose definitions this principal deploys: shared (None) for the platform and the province."""
        province = self.platform.products.is_province(principal, session)
        return None if principal.tenant_id is None or province else principal.tenant_id

    def _resolve_called_processes(
        self, session: Session, parser: CreditFlowParser, owner: int | None
    ) -> dict[str, ProcessDefinition]:
        """Call activities may name processes deployed earlier, shared or the deployer's own: add their
        latest version to the parser."""
        external: dict[str, ProcessDefinition] = {}
        while True:
            missing = sorted(set(parser.get_process_dependencies()) - set(parser.process_parsers) - set(external))
            if not missing:
                return external
            for key in missing:
                definition = self._latest(session, key)
                if definition is None or definition.tenant_id not in (None, owner):
                    continue  # lint reports the unresolved call activity
                external[key] = definition
                dependency_parser, _ = build_parser(resources_for(session, definition.id), validate=False)
                for pid, process_parser in dependency_parser.process_parsers.items():
                    parser.process_parsers.setdefault(pid, process_parser)
            if all(key not in external for key in missing):
                return external

    def _store(
        self,
        session: Session,
        principal: Principal,
        owner: int | None,
        parser: CreditFlowParser,
        models: Sequence[ModelFile],
        own: list[str],
        external: dict[str, ProcessDefinition],
        resolved: dict,
    ) -> DeployResult:
        now = self.platform.clock.now()
        bundle = hashlib.sha256(
            "".join(f"{m.name}\0{m.sha256}\n" for m in sorted(models, key=lambda m: m.name)).encode()
        )
        called_ids = sorted(d.id for d in external.values())
        wanted: dict[str, str] = {}
        forms: dict[str, dict[str, FormDefinition]] = {}
        for pid in own:
            digest = bundle.copy()
            digest.update(f"{pid}\0{called_ids}".encode())
            wanted[pid] = digest.hexdigest()
            spec, subprocesses = resolved[pid]
            outline = ProcessOutline.of(pid, [spec, *subprocesses.values()])
            forms[pid] = frozen_forms(self.platform.forms, outline.task_forms)
        existing = {pid: self._latest(session, pid) for pid in own}
        snapshots = self.platform.form_snapshots
        unchanged = {
            pid
            for pid, d in existing.items()
            if d is not None
            and d.sha256 == wanted[pid]
            and snapshots.digests(session, definition_id=d.id) == digests(forms[pid])
        }
        # identical content answers with what is there only if the caller may see it: another bank's
        # private process came back as a success, telling them that bank had deployed the same thing
        visible = all(d is None or d.tenant_id in (owner, None) for d in existing.values())
        if visible and unchanged == set(own):
            return DeployResult([d for d in existing.values() if d is not None], created=False)
        taken = sorted(pid for pid, d in existing.items() if d is not None and d.tenant_id != owner)
        if taken:  # someone else's process id: neither whose nor what is said
            raise Conflict(
                "a process id of this upload is in use; give your process another id",
                [{"field": "files", "message": f"process id {pid!r} is in use"} for pid in taken],
            )
        deployment = Deployment(
            tenant_id=owner, sha256=bundle.hexdigest(), created_at=now, created_by_id=principal.user_id
        )
        session.add(deployment)
        session.flush()
        for model in models:
            session.add(
                DeploymentResource(
                    deployment_id=deployment.id,
                    name=model.name,
                    kind=model.kind,
                    sha256=model.sha256,
                    content=model.content.decode("utf-8"),
                )
            )
        definitions = []
        for pid in own:
            current = existing[pid]
            if current is not None and pid in unchanged:
                definitions.append(current)
                continue
            definition = ProcessDefinition(
                key=pid,
                version=(current.version + 1) if current else 1,
                name=parser.get_process_parser(pid).get_name(),
                sha256=wanted[pid],
                deployment_id=deployment.id,
                tenant_id=owner,
                called_definition_ids=called_ids,
                created_at=now,
            )
            session.add(definition)
            session.flush()
            self.platform.form_snapshots.freeze(session, forms[pid], now, definition_id=definition.id)
            record_change(
                session,
                CATALOG_TRAIL,
                tenant_id=owner,
                actor_id=principal.user_id,
                at=now,
                action=DEFINITION_DEPLOYED,
                subject=pid,
                version=definition.version,
                details={
                    "sha256": definition.sha256,
                    "files": sorted(m.name for m in models),
                    "forms": digests(forms[pid]),
                },
            )
            self.platform.specs.put(definition, resolved[pid], forms[pid])
            schedule_start_timers(session, definition, resolved[pid][0], now)
            definitions.append(definition)
        return DeployResult(definitions, created=True)

    @staticmethod
    def _latest(session: Session, key: str) -> ProcessDefinition | None:
        return session.scalars(
            select(ProcessDefinition).where(ProcessDefinition.key == key).order_by(ProcessDefinition.version.desc())
        ).first()

    def find(self, session: Session, key: str, version: int | None = None) -> ProcessDefinition | None:
        if version is None:
            return self._latest(session, key)
        return session.scalars(
            select(ProcessDefinition).where(ProcessDefinition.key == key, ProcessDefinition.version == version)
        ).first()

    def list(
        self,
        principal: Principal,
        *,
        key: str | None = None,
        latest_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[ProcessDefinition], int]:
        with self.platform.db.transaction() as session:
            stmt = principal.scope(select(ProcessDefinition), ProcessDefinition.tenant_id)
            if key:
                stmt = stmt.where(ProcessDefinition.key == key)
            if latest_only:
                newest = (
                    select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("v"))
                    .group_by(ProcessDefinition.key)
                    .subquery()
                )
                stmt = stmt.join(
                    newest, (newest.c.key == ProcessDefinition.key) & (newest.c.v == ProcessDefinition.version)
                )
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = session.scalars(
                stmt.order_by(ProcessDefinition.key, ProcessDefinition.version.desc()).limit(limit).offset(offset)
            ).all()
            return list(rows), total

    def get(self, principal: Principal, definition_id: int) -> ProcessDefinition:
        with self.platform.db.transaction() as session:
            definition = session.get(ProcessDefinition, definition_id)
            if definition is None or not principal.sees(definition.tenant_id):
                raise NotFound(f"process definition {definition_id} does not exist")
            return definition

    def start_refusal(self, session: Session, principal: Principal, definition_id: int) -> dict[str, str] | None:
        """Why a person may not start this definition by hand (a problem naming ``definition_key``), or None.

        Another bank's process is answered like a missing one. A process that runs credit products is
        started only as an application of a product, whose parameters, rules and data checks apply.
        """
        definition = session.get(ProcessDefinition, definition_id)
        if definition is None or definition.tenant_id not in (None, principal.tenant_id):
            return {"field": "definition_key", "message": "no such deployed process definition"}
        runs_products = session.scalar(
            select(ProductVersion.id)
            .join(ProcessDefinition, ProductVersion.definition_id == ProcessDefinition.id)
            .where(ProcessDefinition.key == definition.key)
            .limit(1)
        )
        if runs_products is not None:
            return {
                "field": "definition_key",
                "message": "this process runs credit products: apply with POST /products/{code}/applications",
            }
        return None

    def resource(self, principal: Principal, definition_id: int, file: str | None = None) -> DeploymentResource:
        """One XML file of the definition's deployment, as uploaded: ``file`` by name, or by default
        the BPMN file that defines the process."""
        definition = self.get(principal, definition_id)
        with self.platform.db.transaction() as session:
            files = list(
                session.scalars(
                    select(DeploymentResource)
                    .where(DeploymentResource.deployment_id == definition.deployment_id)
                    .order_by(DeploymentResource.name)
                )
            )
        if file is not None:
            chosen = [r for r in files if r.name == file]
        else:
            bpmn = [r for r in files if r.kind == "bpmn"]
            chosen = [r for r in bpmn if f'id="{definition.key}"' in r.content] or bpmn
        if not chosen:
            raise NotFound(f"no file {file!r} in the deployment of definition {definition_id}")
        return chosen[0]


def _own_processes(parser: CreditFlowParser, resolved: dict, names: set[str]) -> list[str]:
    """Top-level processes of this upload: spiff also lists embedded subprocesses and dependencies."""
    return sorted(
        pid
        for pid in resolved
        if (pp := parser.get_process_parser(pid)).filename in names and pp.node.tag == PROCESS_TAG
    )
