"""Credit products: the province's templates, publishing immutable versions, starting applications.

Publishing resolves a product's config, validates it (schema, cross-checks, the archetype being
deployed; a bank's variant only narrows its template; bindings name the tasks, lanes and decision
slots of the deployed process, catalogue roles, and users and groups of the product's bank),
writes the product's rule parameters into each bound rule decision, lints those decisions against
the product's data dictionary (fail closed), and freezes the result under a content hash, with the
forms its tasks and applications are checked against (``engine.forms.freezing``). An application
is a process instance bound to one product version for its whole life, forms included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.changes import (
    CATALOG_TRAIL,
    PRODUCT_CREATED,
    PRODUCT_DRAFT_CHANGED,
    PRODUCT_PUBLISHED,
    PRODUCT_REBASED,
    PRODUCT_REINSTATED,
    PRODUCT_RETIRED,
    PRODUCT_VARIANT_CREATED,
    PUBLICATION_SUPERSEDED,
)
from engine.catalog.config import (
    DEFAULT_STANDARD_DIR,
    clone_problems,
    committee_threshold,
    load_product_configs,
    validate_product_config,
)
from engine.catalog.data_paths import archetype_data_paths
from engine.catalog.merge_patch import dotted, leaves, merge_patch, value_at
from engine.catalog.publication_notices import checkers, tell
from engine.catalog.references import (
    Organisation,
    ProcessOutline,
    named_candidates,
    organisation_problems,
    process_problems,
    role_problems,
    rule_choice_problems,
    undefined_required,
)
from engine.catalog.variants import widening_problems
from engine.config import REPO_ROOT
from engine.errors import Conflict, Forbidden, InvalidInput, InvalidModel, NotFound
from engine.forms.catalog import InvalidFormDefinition
from engine.forms.definition import FormDefinition, form_name
from engine.forms.formats import FORMAT_CHECKER, age_on, resident_id_problem
from engine.forms.freezing import START_FORM, digests, frozen_forms, published_form
from engine.forms.opinion_fields import opinion_problems
from engine.forms.overrides import loosening_problems, unsafe_keywords
from engine.forms.validation import FormValidator, bound_problems, unknown_fields, validate_form_data
from engine.inbox.applicant import application_key
from engine.inbox.assignment import holders
from engine.notify.outbox import publish
from engine.rules.jdm import input_schema
from engine.rules.lint import lint_decision
from engine.rules.parameters import apply_parameters
from engine.rules.templates import RuleTemplates
from engine.services.principal import Principal
from engine.sla.calendar import BusinessCalendar, WorkingHours
from engine.sla.deadlines import (
    DEFAULT_LADDER,
    Ladder,
    Pause,
    Thresholds,
    TimeLimit,
    after_pause,
    parse_limit,
    thresholds,
)
from engine.store.change_trail import json_diff, record_change
from engine.store.models import (
    OPEN_STATUSES,
    REQUEST_SUBMITTED,
    ProcessDefinition,
    ProcessInstance,
    Product,
    ProductVersion,
    PublicationRequest,
    RuleDecision,
    Tenant,
    User,
    UserGroup,
)

if TYPE_CHECKING:
    from engine.container import CreditFlow
    from engine.services.instances import Idempotency, InstanceView

RULES_DIR = REPO_ROOT / "product_configs" / "rules"
COMMITTEE_STEP = "committee_vote"  # the archetype step each credit committee member votes in (a4)
CHINA = ZoneInfo("Asia/Shanghai")  # the business calendar's zone: a birthday starts at midnight there


@dataclass(frozen=True)
class Binding:
    """What an application runs: the product version's process, and how it fills the archetype's
    slots: rule decisions per business-rule task, the form per user task, the role per lane, and
    the forms the version froze by form name (its ``form_overrides`` applied; ``START_FORM``: what
    its applications start with)."""

    version_id: int
    definition_id: int
    decisions: dict[str, str]
    task_forms: dict[str, str]
    roles: dict[str, str]
    forms: dict[str, FormDefinition]
    time_limits: dict[str, Any] = field(default_factory=dict)  # the config's time_limits section
    assignment: dict[str, dict[str, Any]] = field(default_factory=dict)  # lane -> scope, priority, candidates
    contract: dict[str, Any] = field(default_factory=dict)  # code, name, contract_template, parameters
    # end event id -> approved | rejected | aborted | withdrawn
    end_outcomes: dict[str, str] = field(default_factory=dict)
    # rule name -> the input schema of the decision the version froze (not the rule file as it is now)
    rule_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def limit(self, step: str | None, hours: WorkingHours) -> TimeLimit | None:
        """A step's (or, for ``None``, the process's) limit; a working day lasts the tenant's hours."""
        text = self.time_limits.get("process") if step is None else (self.time_limits.get("steps") or {}).get(step)
        return parse_limit(text, self.time_limits.get("calendar", "working"), hours=hours) if text else None

    @property
    def working_time(self) -> bool:
        """Whether the product's limits count working time (the default) rather than natural time."""
        return self.time_limits.get("calendar", "working") == "working"

    @property
    def ladder(self) -> Ladder:
        found = self.time_limits.get("ladder")
        return Ladder(found["yellow"], found["orange"], found["red"]) if found else DEFAULT_LADDER

    def deadlines(
        self, step: str | None, started: datetime, calendar: BusinessCalendar, paused: Iterable[Pause] = ()
    ) -> Thresholds | None:
        """Yellow/orange/red times of a step (or, for ``None``, the whole process) in the tenant's
        calendar, with paused time not charged, or None when the product sets no limit.
        UnknownCalendarYear propagates: a year nobody entered is never guessed."""
        limit = self.limit(step, calendar.hours)
        return None if limit is None else thresholds(calendar, started, limit, paused, self.ladder)

    def after_pause(
        self,
        step: str | None,
        stored: Mapping[str, datetime | None],
        paused: datetime,
        resumed: datetime,
        calendar: BusinessCalendar,
    ) -> dict[str, datetime | None]:
        """A clock's stored thresholds (by name) once a pause from ``paused`` to ``resumed`` ends."""
        limit = self.limit(step, calendar.hours)
        if limit is None:
            return dict(stored)
        return {name: after_pause(calendar, limit, at, paused, resumed) for name, at in stored.items()}


@dataclass(frozen=True)
class Checked:
    """A draft that passed every check publishing makes: what its version would hold."""

    config: dict[str, Any]
    definition_id: int
    decisions: dict[str, str]
    sha256: str
    base: ProductVersion | None  # the template version a bank's variant narrows
    forms: dict[str, FormDefinition]  # what it freezes: each task's form (overrides applied), the start form


@dataclass(frozen=True)
class ProductView:
    product: Product
    current: ProductVersion | None
    forms: list[dict[str, Any]] = field(default_factory=list)  # ``form_changes`` of ``current`` (one product's view)


class ProductService:
    def __init__(self, platform: CreditFlow, rules_dir: Path = RULES_DIR) -> None:
        self.platform = platform
        self.rules_dir = rules_dir
        self._bindings: dict[int, Binding] = {}
        self._lint_results: dict[str, list[dict[str, Any]]] = {}
        self._templates = RuleTemplates(rules_dir)
        self._lock = threading.Lock()

    # -- the standard catalog ------------------------------------------------------------------

    def load_standard(
        self,
        principal: Principal,
        directory: Path = DEFAULT_STANDARD_DIR,
        progress: Callable[[str], None] = lambda _message: None,
    ) -> list[ProductVersion]:
        """Create or update the province templates from files and publish those that changed."""
        configs = load_product_configs(directory)
        now = self.platform.clock.now()
        with self.platform.db.transaction(write=True) as session:
            existing = {p.code: p for p in session.scalars(select(Product).where(Product.template_id.is_(None)))}
            for code, config in configs.items():
                product = existing.get(code) or Product(code=code, tenant_id=None, created_at=now)
                changes = json_diff(product.draft if code in existing else {}, config)
                _describe(product, config)  # published just below
                product.draft, product.updated_at = config, now
                session.add(product)
                if changes:
                    action = PRODUCT_DRAFT_CHANGED if code in existing else PRODUCT_CREATED
                    self.record(session, principal, None, action, code, details={"changes": changes})
                    self.supersede_stale(session, principal, product)
        versions = []
        for index, code in enumerate(sorted(configs), 1):
            # the shipped templates: files released with the platform and loaded by its operator, not a
            # draft someone edited; four-eyes control is for what people change
            versions.append(self._publish(principal, code, alone=True))
            if index % 10 == 0 or index == len(configs):
                progress(f"published {index}/{len(configs)} products")
        return versions

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, principal: Principal, code: str) -> ProductVersion:
        """Freeze the product's current config as a new version, or return the identical latest one.

        Under four-eyes control (``Settings.four_eyes``, on unless switched off) nobody publishes alone:
        one product manager submits a publication request and another's approval publishes it."""
        return self._publish(principal, code, alone=not self.platform.settings.four_eyes)

    def _publish(self, principal: Principal, code: str, *, alone: bool) -> ProductVersion:
        with self.platform.db.transaction(write=True) as session:
            product = self.owned(session, principal, code)
            if not alone:
                raise Conflict(
                    f"product {code} is published under four-eyes control (双人复核): submit a publication request "
                    f"(POST /api/v1/products/{code}/publication-requests) and another product manager approves it"
                )
            return self.freeze(session, principal, product, product.draft)

    def freeze(
        self,
        session: Session,
        principal: Principal,
        product: Product,
        draft: dict[str, Any],
        checked: Checked | None = None,
    ) -> ProductVersion:
        """Freeze ``draft`` (the product's, or the one a publication request pinned) as a new version, or
        return the identical latest one; what refuses it is raised, and the caller's transaction then
        writes nothing. ``checked``: ``check`` of the same draft in this transaction, when the caller
        has it."""
        checked = checked or self.check(session, product, draft)
        latest = self.latest(session, product.id)
        snapshots = self.platform.form_snapshots
        before = snapshots.digests(session, product_version_id=latest.id) if latest is not None else {}
        if latest is not None and latest.sha256 == checked.sha256 and before == digests(checked.forms):
            return latest
        base = checked.base
        version = ProductVersion(
            product_id=product.id,
            version=(latest.version + 1) if latest else 1,
            sha256=checked.sha256,
            config=checked.config,
            definition_id=checked.definition_id,
            decisions=checked.decisions,
            template_version_id=base.id if base is not None else None,
            published_at=self.platform.clock.now(),
            published_by_id=principal.user_id,
        )
        session.add(version)
        _describe(product, checked.config)  # the catalog lists what applications get, not an unpublished draft
        session.flush()
        snapshots.freeze(session, checked.forms, version.published_at, product_version_id=version.id)
        published = {
            "sha256": checked.sha256,
            **({"template_version": base.version} if base is not None else {}),
            "forms": digests(checked.forms),
        }
        self.record(session, principal, product.tenant_id, PRODUCT_PUBLISHED, product.code, version.version, published)
        if product.tenant_id is None and latest is not None:  # the banks decide whether to rebase
            changed = [c["path"] for c in json_diff(latest.config, checked.config)]
            new_forms = sorted(name for name, sha256 in digests(checked.forms).items() if before.get(name) != sha256)
            self._tell_variants(
                session,
                product,
                "product.template_published",
                version=version.version,
                changed=changed,
                changed_forms=new_forms,
            )
        return version

    def check(self, session: Session, product: Product, draft: dict[str, Any]) -> Checked:
        """What publishing ``draft`` would freeze, or every problem that refuses it (raised): the config
        schema, the template it narrows, its process, roles, people, form overrides, rule decisions and
        contract template. The rule decisions it writes are content-addressed: a later publish of the
        same draft uses them."""
        code = product.code
        base, config = resolved_config(session, product, draft)
        problems = validate_product_config(
            config,
            archetypes=self._deployed_archetypes(session, product.tenant_id),
            forms=self.platform.forms,
            rule_files=rule_files(self.rules_dir),
        )
        if problems:
            raise InvalidInput(f"product {code} cannot be published", problems)
        definition = self.platform.definitions.find(session, config["archetype"])
        loaded = self.platform.specs.get(session, definition.id)
        process = ProcessOutline.of(definition.key, [loaded.spec, *loaded.subprocess_specs.values()])
        problems = [
            *(widening_problems(base.config, config, self._default_parameters) if base is not None else []),
            *self._reference_problems(session, config, process, product.tenant_id),
            *self._form_override_problems(config),
        ]
        if problems:
            raise InvalidInput(f"product {code} cannot be published", problems)
        forms = self._frozen_forms(config, process)
        decisions, rule_problems = self._build_decisions(session, config)
        if rule_problems:
            raise InvalidModel(f"the rule decisions of product {code} do not pass", rule_problems)
        problems = (
            self.platform.documents.template_problems(config, self._data_paths(config, forms))
            if self.signs_contract(config["archetype"])
            else []
        )
        if problems:
            raise InvalidInput(f"the contract template of product {code} cannot be filled", problems)
        digest = content_hash(
            {"config": config, "definition": definition.id, "decisions": decisions, "base": product.base_version_id}
        )
        return Checked(config, definition.id, decisions, digest, base, forms)

    def _tell_variants(self, session: Session, template: Product, topic: str, **details: Any) -> None:
        """Tell the product managers of each bank whose variant (on sale) is based on ``template``:
        a new version to compare and rebase onto, or a withdrawal to follow or not."""
        variants = session.execute(
            select(Product.code, Product.tenant_id, ProductVersion.version)
            .join(ProductVersion, ProductVersion.id == Product.base_version_id)
            .where(Product.template_id == template.id, Product.retired_at.is_(None))
        )
        for code, tenant_id, based_on in variants:
            publish(
                session,
                self.platform.clock.now(),
                tenant_id=tenant_id,
                topic=topic,
                recipients=holders(session, tenant_id, "product_manager", None),
                payload={
                    "template": template.code,
                    "template_name": template.name,
                    "product": code,
                    "based_on": based_on,
                    **details,
                },
            )

    def _build_decisions(self, session: Session, config: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """Write the product's parameters into each bound rule file and lint it; keys carry the content hash."""
        decisions: dict[str, str] = {}
        problems: list[dict[str, Any]] = []
        dictionary = config.get("data_dictionary") or {}
        for slot, rule_name in sorted(config["bindings"].get("decisions", {}).items()):
            try:
                content = self.decision_content(config, rule_name)
            except Exception as exc:  # ParameterError lists every missing or unusable value
                problems.append({"location": f"bindings.decisions.{slot}", "message": str(exc)})
                continue
            digest = content_hash(content)
            linted = self._lint(content, digest, dictionary)
            problems.extend({**p, "location": f"{slot}:{p['location']}"} for p in linted)
            key = decision_key(rule_name, digest)
            if session.get(RuleDecision, key) is None:
                session.add(RuleDecision(key=key, content=content, created_at=self.platform.clock.now()))
            decisions[slot] = key
        return decisions, problems

    def decision_content(self, config: dict[str, Any], rule_name: str) -> dict[str, Any]:
        """Rule ``rule_name`` as a product with ``config`` freezes it: its template with the product's
        parameters (over the rule's defaults) written in; ParameterError lists what does not fit."""
        template = self._templates.get(rule_name)
        params = {**self._default_parameters(rule_name), **(config.get("rule_parameters") or {})}
        return apply_parameters(template.content, {k: v for k, v in params.items() if k in template.placeholders})

    def _lint(self, content: dict[str, Any], digest: str, dictionary: dict[str, str]) -> list[dict[str, Any]]:
        """Lint once per distinct decision (``digest``, its hash) and dictionary: many products share both,
        and the 1,000-row access table takes a tenth of a second to lint."""
        key = f"{digest}:{content_hash(dictionary)}"
        found = self._lint_results.get(key)
        if found is None:
            found = self._lint_results[key] = lint_decision(content, dictionary)
        return found

    def _reference_problems(
        self, session: Session, config: dict[str, Any], process: ProcessOutline, tenant_id: int | None
    ) -> list[dict[str, str]]:
        """What the config names in its deployed process (task ids, lanes, decision slots), in the
        role catalogue, among the bound rules' placeholders, and among the users and groups of the
        product's own bank."""
        return [
            *process_problems(config, process),
            *role_problems(config),
            *self._rule_parameter_problems(config),
            *rule_choice_problems(config, self._rule_inputs(config), self._segment_mapping),
            *organisation_problems(config, self._organisation(session, config, tenant_id)),
        ]

    def _rule_parameter_problems(self, config: dict[str, Any]) -> list[dict[str, str]]:
        """A rule parameter no bound rule reads would be dropped silently (a misspelt threshold)."""
        rules = sorted(set(config["bindings"].get("decisions", {}).values()))
        wanted: set[str] = set()
        for rule in rules:
            wanted |= self._templates.get(rule).placeholders
        message = f"no bound rule reads it (rules: {', '.join(rules)})" if rules else "the product binds no rule"
        return [
            {"field": f"rule_parameters.{name}", "message": message}
            for name in sorted(config.get("rule_parameters") or {})
            if name not in wanted
        ]

    @property
    def _segment_mapping(self) -> dict[str, str]:
        """Product segments in the rules' vocabulary (``bpmn/archetypes.json`` conventions)."""
        return self.manifest["conventions"]["rule_segments"]["mapping"]

    def _rule_inputs(self, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The input schema of each bound rule (a rule without one is reported by the rule lint)."""
        rules = sorted(set(config["bindings"].get("decisions", {}).values()))
        schemas = {rule: self._templates.get(rule).input_schema for rule in rules}
        return {rule: schema for rule, schema in schemas.items() if schema is not None}

    @staticmethod
    def _rule_value_problems(
        binding: Binding, config: dict[str, Any], start_data: dict[str, Any]
    ) -> list[dict[str, str]]:
        """Each rule input the application gives, against the input schemas of the decisions its product
        version froze: a credit rating of "优秀" for AAA…C was taken, and the application failed at its
        first decision with nobody able to correct it."""
        problems: list[dict[str, str]] = []
        for rule, schema in binding.rule_inputs.items():
            for name, spec in (schema.get("properties") or {}).items():
                if name not in start_data or name not in (config.get("data_dictionary") or {}):
                    continue
                if FormValidator(spec, format_checker=FORMAT_CHECKER).is_valid(start_data[name]):
                    continue
                allowed = f": one of {', '.join(map(str, spec['enum']))}" if "enum" in spec else ""
                problems.append({"field": f"data.{name}", "message": f"is not a value rule {rule} reads{allowed}"})
        return list({p["field"]: p for p in problems}.values())

    @staticmethod
    def _organisation(session: Session, config: dict[str, Any], tenant_id: int | None) -> Organisation:
        """The users and groups of the product's bank that its assignment names (none for a template)."""
        if tenant_id is None:
            return Organisation(None, {}, frozenset())
        usernames, codes = named_candidates(config)
        tenant = session.get(Tenant, tenant_id)
        users: dict[str, bool] = {}
        if usernames:
            found = select(User.username, User.is_active).where(
                User.tenant_id == tenant_id, User.username.in_(usernames)
            )
            users = {name: bool(active) for name, active in session.execute(found)}
        groups: frozenset[str] = frozenset()
        if codes:
            groups = frozenset(
                session.scalars(
                    select(UserGroup.code).where(UserGroup.tenant_id == tenant_id, UserGroup.code.in_(codes))
                )
            )
        return Organisation(tenant.code if tenant else str(tenant_id), users, groups)

    def _form_override_problems(self, config: dict[str, Any]) -> list[dict[str, str]]:
        problems: list[dict[str, str]] = []
        for name, patch in (config.get("form_overrides") or {}).items():
            field = f"form_overrides.{name}"
            if name not in self.platform.forms:
                problems.append({"field": field, "message": f"no form {name!r} in the form catalog"})
                continue
            base = self.platform.forms.get(name).schema
            derived = merge_patch(base, patch)
            try:
                self.platform.forms.derive(name, derived, field)
            except InvalidFormDefinition as exc:
                problems.append({"field": field, "message": exc.detail})
                continue
            found = [*loosening_problems(base, derived), *unsafe_keywords(patch, set(self.platform.forms.schema_files))]
            found += opinion_problems(derived)  # a field a bank adds may state a part of the opinion, one each
            problems.extend({"field": field, "message": m} for m in found)
            problems.extend(undefined_required(derived, field))
        return problems

    def _frozen_forms(self, config: dict[str, Any], process: ProcessOutline) -> dict[str, FormDefinition]:
        """The forms a version of ``config`` freezes: its tasks' (its overrides applied) and its start form."""
        try:
            return frozen_forms(
                self.platform.forms,
                process.task_forms,
                bound=(config.get("bindings") or {}).get("forms") or {},
                overrides=config.get("form_overrides") or {},
                start_data=self._start_data(config["archetype"]),
            )
        except KeyError as missing:  # a form the process was deployed with, gone from forms/ since
            message = f"{missing.args[0]}: deploy {process.key} again with the forms it needs"
            raise InvalidInput(
                f"product {config['code']} cannot be published", [{"field": "archetype", "message": message}]
            ) from None

    def stale_forms(self, principal: Principal) -> dict[str, list[str]]:
        """Form name -> the products on sale (``CODE vN``) whose current version froze that form other
        than publishing it again would now: after new form files, what still needs a publish."""
        newest = (
            select(ProductVersion.product_id, func.max(ProductVersion.version).label("v"))
            .group_by(ProductVersion.product_id)
            .subquery()
        )
        on_sale = (
            principal.scope(select(Product.code, ProductVersion), Product.tenant_id)
            .join(ProductVersion, ProductVersion.product_id == Product.id)
            .join(newest, (newest.c.product_id == Product.id) & (newest.c.v == ProductVersion.version))
            .where(Product.retired_at.is_(None))
            .order_by(Product.code)
        )
        stale: dict[str, list[str]] = {}
        with self.platform.db.transaction() as session:
            for code, version in session.execute(on_sale):
                for form in self.form_changes(session, version):
                    if form["changed"]:
                        stale.setdefault(form["name"], []).append(f"{code} v{version.version}")
        return dict(sorted(stale.items()))

    def _start_data(self, key: str) -> dict[str, Any] | None:
        """The JSON Schema of what an archetype's applications start with (the manifest's ``start_data``)."""
        entry = self._archetype(key)
        return entry["start_data"] if entry else None

    def form_changes(self, session: Session, version: ProductVersion) -> list[dict[str, Any]]:
        """Each form ``version`` froze, with what publishing it again would freeze from the form files
        now (``current_sha256``, null when the form is gone or its override no longer fits): a product
        manager republishes when they differ, and new applications get the new forms."""
        overrides = version.config.get("form_overrides") or {}
        start_data = self._start_data(version.config["archetype"])
        found = []
        for name, sha256 in sorted(
            self.platform.form_snapshots.digests(session, product_version_id=version.id).items()
        ):
            try:
                current: str | None = published_form(self.platform.forms, name, overrides, start_data).sha256
            except (KeyError, InvalidFormDefinition):
                current = None
            found.append({"name": name, "sha256": sha256, "current_sha256": current, "changed": current != sha256})
        return found

    def _default_parameters(self, rule_name: str) -> dict[str, Any]:
        path = self.rules_dir / f"{rule_name}.params.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    @staticmethod
    def _deployed_archetypes(session: Session, tenant_id: int | None) -> set[str]:
        """The processes a product of this owner may run: the shared ones and its own bank's."""
        owned = ProcessDefinition.tenant_id.is_(None)
        if tenant_id is not None:
            owned = owned | (ProcessDefinition.tenant_id == tenant_id)
        return set(session.scalars(select(ProcessDefinition.key).where(owned).distinct()))

    # -- local products: clone, edit, diff, rebase -----------------------------------------------

    def clone(
        self, principal: Principal, template_code: str, *, code: str, name: str | None, overrides: dict[str, Any]
    ) -> ProductView:
        """A bank's local product: the template's current version plus the bank's merge patch."""
        if principal.tenant_id is None or self.is_province(principal):
            raise Forbidden("only a bank clones templates into local products")
        problems = clone_problems(code, overrides)
        if problems:
            raise InvalidInput(f"cannot clone {template_code} into {code!r}", problems)
        with self.platform.db.transaction(write=True) as session:
            template = self.find(session, principal, template_code)
            check_on_sale(template)
            base = self.latest(session, template.id)
            if template.template_id is not None or base is None:
                raise InvalidInput(
                    f"{template_code} is not a published province template",
                    [{"field": "code", "message": "clone a published province template"}],
                )
            if session.scalars(select(Product.id).where(Product.code == code)).first() is not None:
                raise Conflict(f"product code {code} is taken", [{"field": "code", "message": "already exists"}])
            draft = merge_patch(overrides, {"code": code, **({"name": name} if name else {})})
            product = Product(
                code=code,
                tenant_id=principal.tenant_id,
                template_id=template.id,
                base_version_id=base.id,
                draft=draft,
                created_at=self.platform.clock.now(),
                updated_at=self.platform.clock.now(),
            )
            resolved = merge_patch(base.config, draft)
            _describe(product, resolved)
            session.add(product)
            session.flush()
            changes = json_diff(base.config, resolved)  # the bank's values against the template's
            details = {"template": template_code, "template_version": base.version, "changes": changes}
            self.record(session, principal, principal.tenant_id, PRODUCT_VARIANT_CREATED, code, details=details)
            return ProductView(product, None)

    def set_draft(self, principal: Principal, code: str, draft: dict[str, Any]) -> ProductView:
        """Replace the editable config (a local product's overrides); running applications are untouched."""
        with self.platform.db.transaction(write=True) as session:
            product = self.owned(session, principal, code)
            if draft.get("code", code) != code:
                raise InvalidInput("the code of a product cannot change", [{"field": "code", "message": "must stay"}])
            base = session.get(ProductVersion, product.base_version_id) if product.base_version_id else None
            before = product.draft
            product.draft = {**draft, "code": code} if base is not None else draft
            latest = self.latest(session, product.id)
            if latest is None:  # listed by its draft until it is first published, then by what it runs
                _describe(product, _resolved(base, product.draft))
            product.updated_at = self.platform.clock.now()
            if json_diff(before, product.draft):  # recorded as what it changes in the config publishing resolves
                details = {"changes": json_diff(_resolved(base, before), _resolved(base, product.draft))}
                self.record(session, principal, product.tenant_id, PRODUCT_DRAFT_CHANGED, code, details=details)
            self.supersede_stale(session, principal, product)
            return self._view(session, product)

    def retire(self, principal: Principal, code: str, reason: str) -> ProductView:
        """Withdraw a product from sale (下架): it takes no new applications, and a retired template no
        new variants; applications already running go on to their end on the version they started on.
        A bank's variant of a retired template is the bank's own product: it stays on sale until the
        bank withdraws it too, and the bank's product managers are told."""
        reason = reason.strip()
        if not reason:
            raise InvalidInput("say why the product is withdrawn", [{"field": "reason", "message": "blank"}])
        return self._set_retired(principal, code, reason)

    def reinstate(self, principal: Principal, code: str) -> ProductView:
        """Put a retired product back on sale."""
        return self._set_retired(principal, code, None)

    def _set_retired(self, principal: Principal, code: str, reason: str | None) -> ProductView:
        with self.platform.db.transaction(write=True) as session:
            product = self.owned(session, principal, code)
            if (product.retired_at is not None) == (reason is not None):
                state = "withdrawn from sale" if reason is not None else "on sale"
                raise Conflict(f"product {code} is already {state}")
            now = self.platform.clock.now()
            product.retired_at, product.retired_reason = (now, reason) if reason is not None else (None, None)
            product.updated_at = now
            action = PRODUCT_RETIRED if reason is not None else PRODUCT_REINSTATED
            self.record(session, principal, product.tenant_id, action, code, details={"reason": reason})
            if product.tenant_id is None and reason is not None:  # each bank decides for its own variant
                self._tell_variants(session, product, "product.template_retired", reason=reason)
            return self._view(session, product)

    def diff(self, principal: Principal, code: str) -> dict[str, Any]:
        """A local product's overrides against its template base, and whether the template moved on."""
        with self.platform.db.transaction() as session:
            product = self.find(session, principal, code)
            if product.base_version_id is None:
                raise InvalidInput(
                    f"{code} is a template, not a local product", [{"field": "code", "message": "template"}]
                )
            base = session.get(ProductVersion, product.base_version_id)
            newest = self.latest(session, product.template_id)
            published = self.latest(session, product.id)
            resolved = merge_patch(base.config, product.draft)
            changes = [
                {"path": dotted(path), "template": value_at(base.config, path), "local": value_at(resolved, path)}
                for path, _ in sorted(leaves(product.draft))
                if value_at(base.config, path) != value_at(resolved, path)
            ]
            return {
                "code": code,
                "template": session.get(Product, product.template_id).code,
                "base_version": base.version,
                "latest_template_version": newest.version,
                "changes": changes,
                "forms": self.form_changes(session, published) if published else [],
            }

    def rebase(self, principal: Principal, code: str) -> dict[str, Any]:
        """Move a local product onto the template's newest version, keeping the bank's overrides.

        Where the province changed a value the bank had overridden, the bank's value stays and the
        change is reported as a conflict for a person to decide, never silently overwritten.
        """
        with self.platform.db.transaction(write=True) as session:
            product = self.owned(session, principal, code)
            if product.base_version_id is None:
                raise InvalidInput(
                    f"{code} is a template, not a local product", [{"field": "code", "message": "template"}]
                )
            old = session.get(ProductVersion, product.base_version_id)
            new = self.latest(session, product.template_id)
            conflicts = [
                {
                    "path": dotted(path),
                    "template_before": value_at(old.config, path),
                    "template_after": value_at(new.config, path),
                    "local": value,
                }
                for path, value in sorted(leaves(product.draft))
                if path != ("code",)
                and value_at(old.config, path) != value_at(new.config, path)
                and value_at(new.config, path) != value  # the province came round to the bank's value: no conflict
            ]
            product.base_version_id, product.updated_at = new.id, self.platform.clock.now()
            if self.latest(session, product.id) is None:
                _describe(product, merge_patch(new.config, product.draft))
            if new.id != old.id:  # what the draft's config gains from the template (the bank's values stay)
                changes = json_diff(merge_patch(old.config, product.draft), merge_patch(new.config, product.draft))
                details = {"from_version": old.version, "to_version": new.version, "changes": changes}
                self.record(session, principal, product.tenant_id, PRODUCT_REBASED, code, details=details)
                self.supersede_stale(session, principal, product)  # the same overrides on another template
            return {"code": code, "from_version": old.version, "to_version": new.version, "conflicts": conflicts}

    def record(
        self,
        session: Session,
        principal: Principal,
        tenant_id: int | None,
        action: str,
        code: str,
        version: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """The change's entry in the catalog's change trail, in the change's own transaction."""
        record_change(
            session,
            CATALOG_TRAIL,
            tenant_id=tenant_id,
            actor_id=principal.user_id,
            at=self.platform.clock.now(),
            action=action,
            subject=code,
            version=version,
            details=details,
        )

    def supersede_stale(self, session: Session, principal: Principal, product: Product) -> PublicationRequest | None:
        """The product's open publication request, superseded (and recorded) once the product's draft or
        template version is no longer what it pinned: nothing the checker did not see is published, and
        the submitter may submit the new draft. None when nothing was open or it still pins the draft."""
        found = open_request(session, product.id)
        if found is None or found.sha256 == draft_pin(product.draft, product.base_version_id):
            return None
        self.supersede(session, principal, product, found, ["draft"])
        return found

    def supersede(
        self, session: Session, principal: Principal, product: Product, request: PublicationRequest, changed: list[str]
    ) -> None:
        """Void an open publication request because what it would publish ``changed`` (its draft, or
        the process, rule decisions or forms it would run on); recorded, and told to its submitter and
        the checkers, but not to whoever changed it."""
        request.status, request.decided_by_id = "superseded", principal.user_id
        request.decided_at = self.platform.clock.now()
        details = {"request": request.id, "submitted_by": request.submitted_by_id, "changed": changed}
        self.record(session, principal, product.tenant_id, PUBLICATION_SUPERSEDED, product.code, details=details)
        told = {request.submitted_by_id, *checkers(session, product.tenant_id)} - {principal.user_id}
        why = "草稿已修改" if changed == ["draft"] else "所依据的流程、规则或表单已更新"
        tell(
            session,
            request.decided_at,
            "product.publication_superseded",
            told,
            product,
            request,
            why=why,
            changed=changed,
        )

    def owned(self, session: Session, principal: Principal, code: str) -> Product:
        """A product the caller may change: its bank's own, or a template for the province."""
        product = self.find(session, principal, code)
        self._check_owner(session, principal, product)
        return product

    def _check_owner(self, session: Session, principal: Principal, product: Product) -> None:
        """Banks edit and publish only their own products; the province owns the templates."""
        if principal.tenant_id is None:
            return
        if product.tenant_id is None:
            if not self.is_province(principal, session):
                raise Forbidden(f"{product.code} is a province template; clone it to make a local product")
        elif product.tenant_id != principal.tenant_id:
            raise NotFound(f"product {product.code} does not exist")

    def is_province(self, principal: Principal, session: Session | None = None) -> bool:
        if principal.tenant_id is None:
            return False
        if session is None:
            with self.platform.db.transaction() as own:
                return self.is_province(principal, own)
        tenant = session.get(Tenant, principal.tenant_id)
        return tenant is not None and tenant.kind == "province"

    # -- reads ---------------------------------------------------------------------------------

    def list(
        self,
        principal: Principal,
        *,
        system: str | None = None,
        series: str | None = None,
        archetype: str | None = None,
        tenant: str | None = None,
        text: str | None = None,
        on_sale: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ProductView], int]:
        """Products the caller may see; ``tenant`` (a tenant code) narrows to one bank's products,
        or to the province templates for the province's code; ``text``: each of its words is in the
        code or the name; ``on_sale``: only those on sale (or only those withdrawn)."""
        with self.platform.db.transaction() as session:
            stmt = principal.scope(select(Product), Product.tenant_id)
            if tenant:
                owner = session.scalars(select(Tenant).where(Tenant.code == tenant)).first()
                if owner is None:
                    raise InvalidInput(f"no tenant {tenant!r}", [{"field": "tenant", "message": "unknown tenant"}])
                stmt = stmt.where(
                    Product.tenant_id.is_(None) if owner.kind == "province" else Product.tenant_id == owner.id
                )
            for column, value in ((Product.system, system), (Product.series, series)):
                if value:
                    stmt = stmt.where(column == value)
            for word in (text or "").split():
                stmt = stmt.where(
                    Product.code.icontains(word, autoescape=True) | Product.name.icontains(word, autoescape=True)
                )
            if on_sale is not None:
                stmt = stmt.where(Product.retired_at.is_(None) if on_sale else Product.retired_at.is_not(None))
            if archetype:  # the key (a1_instant_online) or its short code (A1, a1)
                short = archetype.lower()
                stmt = stmt.where(
                    (Product.archetype == archetype) | Product.archetype.startswith(f"{short}_", autoescape=True)
                )
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            products = session.scalars(stmt.order_by(Product.code).limit(limit).offset(offset)).all()
            newest = (
                select(ProductVersion.product_id, func.max(ProductVersion.version).label("v"))
                .where(ProductVersion.product_id.in_([p.id for p in products]))
                .group_by(ProductVersion.product_id)
                .subquery()
            )
            current = {
                v.product_id: v
                for v in session.scalars(
                    select(ProductVersion).join(
                        newest,
                        (newest.c.product_id == ProductVersion.product_id) & (newest.c.v == ProductVersion.version),
                    )
                )
            }
            return [ProductView(p, current.get(p.id)) for p in products], total

    def get(self, principal: Principal, code: str) -> ProductView:
        with self.platform.db.transaction() as session:
            product = self.find(session, principal, code)
            return self._view(session, product)

    def _view(self, session: Session, product: Product) -> ProductView:
        """One product with its current version and what that version's forms are next to the files."""
        current = self.latest(session, product.id)
        return ProductView(product, current, self.form_changes(session, current) if current else [])

    def versions(self, principal: Principal, code: str) -> list[ProductVersion]:
        with self.platform.db.transaction() as session:
            product = self.find(session, principal, code)
            return list(
                session.scalars(
                    select(ProductVersion)
                    .where(ProductVersion.product_id == product.id)
                    .order_by(ProductVersion.version.desc())
                )
            )

    # -- applications --------------------------------------------------------------------------

    def apply(
        self,
        principal: Principal,
        code: str,
        *,
        applicant: dict[str, Any],
        data: dict[str, Any],
        business_key: str | None = None,
        org_unit: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> InstanceView:
        """Start an application on the product's current published version, within its limits."""
        replay = self.platform.instances.replayed(principal, idempotency)
        if replay is not None:  # a retried submission: what it started, not a second loan
            return replay
        with self.platform.db.transaction() as session:
            if self.is_province(principal, session):  # its staff hold no role that could work one
                raise Forbidden("the province reads its banks' applications but takes none: a bank's staff apply")
            product = self.find(session, principal, code)
            check_on_sale(product)
            version = self.latest(session, product.id)
            if version is None:
                raise InvalidInput(
                    f"product {code} has no published version", [{"field": "code", "message": "not published"}]
                )
            binding = self.binding(session, version.id)
            config = version.config
            authority = self._authority(session, principal, config, binding)
            second = self._second_application(session, principal, code, applicant)
        # every problem in one answer: an officer fixed the amount and the ID number, only to be told then
        # about the mobile number and the card
        limits = (
            _limit_problems(config["parameters"], data)
            + _choice_problems(config, data, self._segment_mapping)
            + _applicant_problems(applicant)
            + _guarantor_problems(applicant, data)
        )
        valid_id = "id_number" in applicant and not any(p["field"] == "applicant.id_number" for p in limits)
        start_data = {
            **data,
            # the age the rules read is derived from the ID number, never taken from the client
            **(
                {"age": age_on(applicant["id_number"], self.platform.clock.now().astimezone(CHINA).date())}
                if valid_id
                else {}
            ),
            "applicant": applicant,
            "product": {"code": code, "version": version.version, "name": config["name"]},
        }
        start_form = binding.forms.get(START_FORM)  # as the version froze it
        if start_form is None and limits:
            raise InvalidInput(f"the application is outside the limits of product {code}", limits)
        if start_form is not None:
            archetype = self._archetype(config["archetype"])
            computed = _computed_inputs(archetype)
            problems = [
                {**p, "field": p["field"] if p["field"].startswith("applicant") else f"data.{p['field']}"}
                for p in [*validate_form_data(start_form, start_data), *unknown_fields(start_form, data)]
                if p.get("code") != "unknown" or (p["field"] not in _application_extras(config) - computed)
            ]
            problems = [  # a credit report the channel writes itself decided instant loans
                {**p, "message": COMPUTED, "code": "computed"} if p["field"].removeprefix("data.") in computed else p
                for p in problems
            ]
            problems += _rule_input_problems(config, archetype, start_data)
            named = {p["field"] for p in problems}
            problems += [p for p in self._rule_value_problems(binding, config, start_data) if p["field"] not in named]
            if self.signs_contract(config["archetype"]):  # and what only the applicant can give the contract
                fields = set(start_form.schema.get("properties") or {})
                named = {p["field"] for p in problems}
                contract = self.platform.documents.application_problems(config, start_data, fields)
                problems += [p for p in contract if p["field"] not in named]
            taken = {q["field"] for q in limits} | ({"data.age"} if not valid_id else set())  # age comes from the ID
            problems = [*limits, *(p for p in problems if p["field"] not in taken)]
            if problems:
                raise InvalidInput(f"the application does not meet what product {code} needs", problems)
            bounds = bound_problems(start_form, start_data, config["parameters"], start_data)
            if bounds:  # a renewal renews the old loan's balance, never more (no new money)
                problems = [{**p, "field": f"data.{p['field']}"} for p in bounds]
                raise InvalidInput(f"the application is outside the limits of product {code}", problems)
        members, threshold = authority.get("committee_members"), authority.get("committee_threshold")
        if members == [] and Decimal(str(data.get("amount", 0))) > Decimal(threshold):
            raise Conflict(
                f"the amount goes above the credit committee's threshold ({threshold}) and the bank has no "
                "active credit committee member (贷审会委员): an administrator grants the role first"
            )
        if second is not None:  # looked up with the product; told after the input's own problems
            raise second
        try:
            return self.platform.instances.start(
                principal,
                binding=binding,
                business_key=business_key,
                data={**start_data, **authority},
                org_unit=org_unit,
                idempotency=idempotency,
            )
        except Conflict as raced:  # a parallel submission by the same borrower won the unique index
            with self.platform.db.transaction() as session:
                second = self._second_application(session, principal, code, applicant)
            if second is not None:
                raise second from raced
            raise

    def _second_application(
        self, session: Session, principal: Principal, code: str, applicant: dict[str, Any]
    ) -> Conflict | None:
        """The 409 for a borrower who already has an open (running or failed) application on the product
        in this bank: five parallel submissions of one borrower, each with its own Idempotency-Key, were
        five instant loans. None when there is none."""
        number = applicant.get("id_number") or applicant.get("uscc") if isinstance(applicant, dict) else None
        if not isinstance(number, str) or not number:
            return None
        found = session.scalar(
            select(ProcessInstance.id).where(
                ProcessInstance.tenant_id == principal.tenant_id,
                ProcessInstance.application_key == application_key(code, number),
                ProcessInstance.status.in_(OPEN_STATUSES),
            )
        )
        if found is None:
            return None
        field = "applicant.id_number" if "id_number" in applicant else "applicant.uscc"
        return Conflict(
            f"this borrower already has an open application on product {code} ({found}); it must end first",
            [{"field": field, "message": f"has an open application on {code}: {found}"}],
        )

    def _authority(
        self, session: Session, principal: Principal, config: dict[str, Any], binding: Binding
    ) -> dict[str, Any]:
        """Who decides above the product's threshold, for an archetype with a credit committee: the
        product's threshold and every active holder of the committee's role in the applying bank (each
        votes once). Never the application's: its own threshold or members would skip the committee."""
        entry = self._archetype(config["archetype"]) or {"user_tasks": []}
        lane = next((t["lane"] for t in entry["user_tasks"] if t["id"] == COMMITTEE_STEP), None)
        if lane is None:
            return {}
        voters = holders(session, principal.tenant_id, binding.roles.get(lane, lane), None)
        members = sorted(session.scalars(select(User.username).where(User.id.in_(voters)))) if voters else []
        return {"committee_threshold": committee_threshold(config), "committee_members": members}

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The archetype manifest (``bpmn/archetypes.json``)."""
        return json.loads((self.platform.settings.bpmn_dir / "archetypes.json").read_text(encoding="utf-8"))

    def _archetype(self, key: str) -> dict[str, Any] | None:
        """The manifest's entry for an archetype process key (None for other processes)."""
        return next((a for a in self.manifest["archetypes"] if a["key"] == key), None)

    def end_outcomes(self, key: str) -> dict[str, str]:
        """End event id -> approved | rejected | aborted | withdrawn, for an archetype (empty for other processes)."""
        entry = self._archetype(key)
        return {e["id"]: e["outcome"] for e in entry["end_events"]} if entry else {}

    def signs_contract(self, key: str) -> bool:
        """Whether the archetype has a signing step (``contract.generate``): a2 grants village credit
        lines (授信) and prints no loan contract; its drawdowns are applications that sign one."""
        entry = self._archetype(key)
        return entry is not None and any(c["connector"] == "contract.generate" for c in entry["connectors"])

    def _time_limits(self, config: dict[str, Any]) -> dict[str, Any]:
        """The config's time limits, with the archetype's default limit for every step the config leaves
        out: every step has a clock (no standard product set step limits, so no task was ever late)."""
        limits = dict(config.get("time_limits") or {})
        entry = self._archetype(config["archetype"]) or {"user_tasks": []}
        defaults = {task["id"]: task["time_limit"] for task in entry["user_tasks"] if "time_limit" in task}
        return {**limits, "steps": {**defaults, **(limits.get("steps") or {})}}

    def message_schema(self, key: str, message: str) -> dict[str, Any] | None:
        """The JSON Schema of what an outside party's message to an archetype carries (None: unknown)."""
        entry = self._archetype(key)
        found = next((m for m in entry["messages"] if m["message"] == message), None) if entry else None
        return found["payload"]["schema"] if found else None

    def _data_paths(self, config: dict[str, Any], forms: dict[str, FormDefinition]) -> set[str]:
        """What the product's applications carry at signing: what its contract template may use."""

        def schema(name: str) -> dict[str, Any]:
            return (forms.get(form_name(name)) or self.platform.forms.get(name)).schema

        entry = next(a for a in self.manifest["archetypes"] if a["key"] == config["archetype"])
        xml = (self.platform.settings.bpmn_dir / entry["file"]).read_bytes()
        return archetype_data_paths(self.manifest, config["archetype"], config, schema, xml)

    def label(self, version_id: int | None) -> tuple[str, str] | None:
        """A product version's code and name, for list rows: from the binding cache, which the
        application's own steps have filled (a version never changes once published)."""
        if version_id is None:
            return None
        found = self._bindings.get(version_id)
        if found is None:
            with self.platform.db.transaction() as session:
                found = self.binding(session, version_id)
        return found.contract["code"], found.contract["name"]

    def binding(self, session: Session, version_id: int) -> Binding:
        """The (immutable) binding of a product version; its decisions are registered with the rule engine."""
        found = self._bindings.get(version_id)
        if found is None:
            version = session.get(ProductVersion, version_id)
            bindings = version.config["bindings"]
            decisions = {key: session.get(RuleDecision, key).content for key in set(version.decisions.values())}
            found = Binding(
                version.id,
                version.definition_id,
                dict(version.decisions),
                dict(bindings.get("forms") or {}),
                dict(bindings.get("roles") or {}),
                self.platform.form_snapshots.load(session, product_version_id=version.id),
                self._time_limits(version.config),
                dict(bindings.get("assignment") or {}),
                {k: version.config[k] for k in ("code", "name", "contract_template", "parameters")},
                self.end_outcomes(session.get(ProcessDefinition, version.definition_id).key),
                _input_schemas(decisions),
            )
            rules = self.platform.rules
            for key, content in decisions.items():
                if key not in rules:
                    rules.register(key, content)
            with self._lock:
                found = self._bindings.setdefault(version_id, found)
        return found

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def find(session: Session, principal: Principal, code: str) -> Product:
        """A product the caller may read; another bank's answers like a missing one."""
        product = session.scalars(select(Product).where(Product.code == code)).first()
        if product is None or not principal.sees(product.tenant_id):
            raise NotFound(f"product {code} does not exist")
        return product

    @staticmethod
    def latest(session: Session, product_id: int) -> ProductVersion | None:
        """The product's newest published version (what new applications start on), or None."""
        return session.scalars(
            select(ProductVersion)
            .where(ProductVersion.product_id == product_id)
            .order_by(ProductVersion.version.desc())
        ).first()


def rule_files(rules_dir: Path) -> set[str]:
    """Rule decision names (file stems), leaving out their ``.fields``/``.params`` companions."""
    return {p.stem for p in rules_dir.glob("*.json") if not p.name.endswith((".fields.json", ".params.json"))}


def archetype_keys(bpmn_dir: Path) -> set[str]:
    """The archetype process keys the shipped manifest declares (for checks without a database)."""
    manifest = json.loads((bpmn_dir / "archetypes.json").read_text(encoding="utf-8"))
    return {entry["key"] for entry in manifest["archetypes"]}


def _describe(product: Product, config: dict[str, Any]) -> None:
    """Copy the listing columns from a config; a draft may still be incomplete or wrong (publishing
    validates it), so only well-formed values are taken and the columns never get a non-text value."""
    for column in ("name", "system", "series", "archetype"):
        value = config.get(column)
        if isinstance(value, str) and value:
            setattr(product, column, value[:200])
        elif getattr(product, column) is None:
            setattr(product, column, "")


def open_request(session: Session, product_id: int) -> PublicationRequest | None:
    """The product's open (submitted) publication request, locked, or None: there is at most one."""
    return session.scalars(
        select(PublicationRequest)
        .where(PublicationRequest.product_id == product_id, PublicationRequest.status == REQUEST_SUBMITTED)
        .with_for_update()
    ).first()


def draft_pin(draft: dict[str, Any], base_version_id: int | None) -> str:
    """What a publication request pins: the draft and, for a bank's variant, the template version its
    overrides apply to (a rebase changes what the same overrides publish)."""
    return content_hash({"draft": draft, "base_version_id": base_version_id})


def _input_schemas(decisions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rule name -> input schema of each decision (by its content-addressed key, ``rule@hash``) that has one."""
    schemas: dict[str, dict[str, Any]] = {}
    for key, content in sorted(decisions.items()):
        with contextlib.suppress(ValueError):  # none: the rule lint refused it at publish
            schemas[key.partition("@")[0]] = input_schema(content)
    return schemas


def resolved_config(
    session: Session, product: Product, draft: dict[str, Any]
) -> tuple[ProductVersion | None, dict[str, Any]]:
    """The template version a product narrows (None for a template) and the config publishing ``draft``
    would freeze, before any check."""
    base = session.get(ProductVersion, product.base_version_id) if product.base_version_id else None
    return base, _resolved(base, draft)


def _resolved(base: ProductVersion | None, draft: dict[str, Any]) -> dict[str, Any]:
    """The config publishing freezes from a draft: a local product's is its template version with the overrides."""
    return merge_patch(base.config, draft) if base is not None else draft


def decision_key(rule_name: str, digest: str) -> str:
    """A rule decision's key: its rule and its content hash, so that a key never names two contents."""
    return f"{rule_name}@{digest[:16]}"


def content_hash(value: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys): what keys rule decisions and product versions."""
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()


def _applicant_problems(applicant: dict[str, Any]) -> list[dict[str, str]]:
    """The ID number, when given, must be a real one: rules read the age derived from it."""
    number = applicant.get("id_number")
    if number is None:
        return []
    problem = resident_id_problem(number) if isinstance(number, str) else "must be text"
    return [{"field": "applicant.id_number", "message": problem}] if problem else []


def _guarantor_problems(applicant: dict[str, Any], data: dict[str, Any]) -> list[dict[str, str]]:
    """A guarantor is someone else, each once: a borrower listed as their own guarantor was taken, and
    the contract would have bound them twice to the same debt."""
    guarantors = data.get("guarantors")
    if not isinstance(guarantors, list):
        return []
    borrower = str(applicant.get("id_number") or "").upper()
    seen: dict[str, int] = {}
    problems = []
    for index, guarantor in enumerate(guarantors):
        number = str(guarantor.get("id_number") or "").upper() if isinstance(guarantor, dict) else ""
        field = f"data.guarantors[{index}].id_number"
        if number and number == borrower:
            problems.append(
                {"field": field, "message": "is the borrower's: a borrower cannot guarantee their own loan"}
            )
        elif number in seen:
            problems.append({"field": field, "message": f"names the same person as guarantors[{seen[number]}]"})
        if number:
            seen.setdefault(number, index)
    return problems


def _limit_problems(parameters: dict[str, Any], data: dict[str, Any]) -> list[dict[str, str]]:
    """The requested amount and term must lie within the product's ranges."""
    problems = []
    amount, term = data.get("amount"), data.get("term_months")
    if amount is not None:
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            value = None
        low, high = Decimal(parameters["amount"]["min"]), Decimal(parameters["amount"]["max"])
        if value is None or not value.is_finite() or not low <= value <= high:
            problems.append({"field": "data.amount", "message": f"must be between {low} and {high}"})
    if term is not None:
        low_t, high_t = parameters["term_months"]["min"], parameters["term_months"]["max"]
        if not isinstance(term, int) or isinstance(term, bool) or not low_t <= term <= high_t:
            problems.append(
                {"field": "data.term_months", "message": f"must be a whole number from {low_t} to {high_t}"}
            )
    return problems


RULE_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
}


def _rule_input_problems(
    config: dict[str, Any], archetype: dict[str, Any] | None, start_data: dict[str, Any]
) -> list[dict[str, str]]:
    """The rule inputs of the product's data dictionary that the application gives (all but those the
    archetype computes before a decision), each of its kind: a missing or mistyped one failed the
    application after it was taken, with the credit bureau already queried."""
    derived = _computed_inputs(archetype)
    problems = []
    for name, kind in (config.get("data_dictionary") or {}).items():
        value, types = start_data.get(name), RULE_INPUT_TYPES.get(kind, (object,))
        if name in derived:
            continue
        if name not in start_data:
            problems.append({"field": f"data.{name}", "message": f"is required: a {kind} the product's rules read"})
        elif not isinstance(value, types) or (kind != "boolean" and isinstance(value, bool)):
            problems.append({"field": f"data.{name}", "message": f"must be a {kind}"})
    return problems


CHOICES = ("guarantee_type", "repayment_method", "segment")  # what an application picks among a product's offers
COMPUTED = "is computed by the process (from the credit bureau, or an earlier step): an application does not give it"


def _computed_inputs(archetype: dict[str, Any] | None) -> set[str]:
    """The rule inputs the archetype computes before its decisions (the decision slots' ``inputs``)."""
    return {name for slot in (archetype or {}).get("decision_slots", []) for name in slot.get("inputs", {})}


def _application_extras(config: dict[str, Any]) -> set[str]:
    """What an application may give besides the archetype's start data: the rule inputs of the
    product's data dictionary and its choices. Anything else is refused, since the process reads the
    data as a whole (an applicant's own ``committee_threshold`` or ``votes`` would decide for the bank)."""
    return {*config.get("data_dictionary", {}), *CHOICES}


def check_on_sale(product: Product) -> None:
    """A product withdrawn from sale takes no new applications and gives no new variants (409)."""
    if product.retired_at is not None:
        on = product.retired_at.astimezone(CHINA).date().isoformat()
        raise Conflict(f"product {product.code} was withdrawn from sale on {on} ({product.retired_reason})")


def _choice_problems(
    config: dict[str, Any], data: dict[str, Any], rule_segments: dict[str, str]
) -> list[dict[str, str]]:
    """What the application chooses among the product's enumerated parameters must be offered by
    it: the guarantee type, the repayment method, and the customer segment (in the rules'
    vocabulary, which each product segment maps to; ``bpmn/archetypes.json`` conventions)."""
    parameters = config["parameters"]
    offered = {
        "guarantee_type": list(parameters["guarantee_types"]),
        "repayment_method": list(parameters["repayment_methods"]),
        "segment": list(dict.fromkeys(rule_segments.get(s, s) for s in config["segments"])),
    }
    return [
        {"field": f"data.{name}", "message": f"must be one the product offers: {', '.join(choices)}"}
        for name, choices in offered.items()
        if name in data and data[name] not in choices
    ]
