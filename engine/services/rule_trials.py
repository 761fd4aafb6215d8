"""Trying a product's rule decision on a sample applicant (规则试算) before and after publishing.

A product manager who moves a threshold (``rule_parameters``) wants to see what the access rule, the
scorecard or the pricing then says of an applicant, without publishing a version and without
starting an application. A trial evaluates exactly what publishing the draft would freeze (the
rule template with the draft's parameters written in), or what a published version froze, on the
input given, and writes nothing. A draft's decision is compiled in an engine of its own for the
call, so trying many drafts leaves nothing behind in the shared one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound
from engine.rules.engine import RuleEngine, RuleResult
from engine.rules.errors import RuleEvaluationError
from engine.services.principal import Principal
from engine.services.products import content_hash, decision_key, resolved_config, rule_files
from engine.store.models import Product, ProductVersion

if TYPE_CHECKING:
    from engine.container import CreditFlow


@dataclass(frozen=True)
class Trial:
    decision: str  # rule@content-hash: what a version publishing this draft binds, or what it bound
    version: int | None  # None: the draft
    outcome: RuleResult


class RuleTrials:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def run(
        self, principal: Principal, code: str, slot: str, context: dict[str, Any], version: int | None = None
    ) -> Trial:
        """Evaluate the decision bound to ``slot`` on ``context``; 422 naming ``input.<field>`` for an
        input the decision cannot take, 404 for a slot the product (or the version) does not bind."""
        products = self.platform.products
        with self.platform.db.transaction() as session:
            product = products.find(session, principal, code)
            if version is None:
                key, content = self._draft_decision(session, product, slot)
                engine = RuleEngine()
                engine.register(key, content)
            else:
                frozen = session.scalars(
                    select(ProductVersion).where(
                        ProductVersion.product_id == product.id, ProductVersion.version == version
                    )
                ).first()
                if frozen is None:
                    raise NotFound(f"product {code} has no version {version}")
                key = frozen.decisions.get(slot)
                if key is None:
                    raise NotFound(f"version {version} of product {code} binds no decision to slot {slot!r}")
                products.binding(session, frozen.id)  # registers the version's decisions in the shared engine
                engine = self.platform.rules
        try:
            return Trial(key, version, engine.evaluate(key, context))
        except RuleEvaluationError as exc:
            field = f"input.{exc.field}" if exc.field else "input"
            raise InvalidInput(str(exc), [{"field": field, "message": str(exc)}]) from None

    def _draft_decision(self, session: Session, product: Product, slot: str) -> tuple[str, dict[str, Any]]:
        """What publishing the draft would bind to ``slot``: its key and content. A draft is any JSON
        until it is published, so its shape is checked here as far as the trial reads it."""
        products = self.platform.products
        _, config = resolved_config(session, product, product.draft)
        bindings = config.get("bindings") if isinstance(config, dict) else None
        decisions = bindings.get("decisions") if isinstance(bindings, dict) else None
        rule = decisions.get(slot) if isinstance(decisions, dict) else None
        if not isinstance(rule, str):
            raise NotFound(f"the draft of product {product.code} binds no decision to slot {slot!r}")
        if rule not in rule_files(products.rules_dir):
            raise InvalidInput(
                f"the draft binds slot {slot!r} to {rule!r}, which is no rule",
                [{"field": f"draft.bindings.decisions.{slot}", "message": "names no rule"}],
            )
        if not isinstance(config.get("rule_parameters") or {}, dict):
            raise InvalidInput(
                "the draft's rule_parameters are not an object",
                [{"field": "draft.rule_parameters", "message": "not an object"}],
            )
        content = products.decision_content(config, rule)
        return decision_key(rule, content_hash(content)), content
