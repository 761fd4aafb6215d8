"""Credit products: browse the catalog, publish versions, start applications."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema, fields, validate

from api.blueprint import Blueprint
from api.idempotency import DOC as IDEMPOTENCY_DOC
from api.idempotency import idempotency, replay_headers
from api.integers import Integer
from api.schemas import (
    ApplicationSchema,
    CloneSchema,
    DiffSchema,
    DraftSchema,
    InstanceSchema,
    ProductDetailSchema,
    ProductListSchema,
    ProductQuerySchema,
    ProductVersionListSchema,
    ProductVersionSchema,
    RebaseSchema,
    RetireSchema,
)
from api.security import current_principal, requires
from api.views.instances import instance_body
from engine.org.roles import APPLICATIONS_CREATE, PRODUCTS_PUBLISH, PRODUCTS_READ, PRODUCTS_WRITE
from engine.services.products import ProductView

blp = Blueprint("products", __name__, url_prefix="/api/v1/products", description="Credit products")


def _service() -> Any:
    return current_app.extensions["creditflow"].products


def product_body(view: ProductView) -> dict[str, Any]:
    """A product as the catalog lists it; its unpublished draft only for those who edit products
    (a loan officer saw a draft's new name and archetype before anyone had published it)."""
    p, current = view.product, view.current
    editor = current_principal().can(PRODUCTS_WRITE)
    return {
        "code": p.code,
        "name": p.name,
        "system": p.system,
        "series": p.series,
        "archetype": p.archetype,
        "tenant_id": p.tenant_id,
        "template_id": p.template_id,
        "current_version": current.version if current else None,
        "retired_at": p.retired_at,
        "retired_reason": p.retired_reason,
        "config": current.config if current else None,
        "draft": p.draft if editor else None,
        "forms": view.forms,
    }


@blp.route("", methods=["GET"])
@blp.arguments(ProductQuerySchema, location="query")
@blp.response(200, ProductListSchema)
@requires(PRODUCTS_READ)
def list_products(query: dict[str, Any]) -> dict[str, Any]:
    items, total = _service().list(
        current_principal(),
        system=query.get("system"),
        series=query.get("series"),
        archetype=query.get("archetype"),
        tenant=query.get("tenant"),
        text=query.get("q"),
        on_sale=query.get("on_sale"),
        limit=query["limit"],
        offset=query["offset"],
    )
    return {"items": [product_body(view) for view in items], "total": total}


@blp.route("/<code>", methods=["GET"])
@blp.response(200, ProductDetailSchema)
@requires(PRODUCTS_READ)
def get_product(code: str) -> dict[str, Any]:
    return product_body(_service().get(current_principal(), code))


@blp.route("/<code>/versions", methods=["GET"])
@blp.response(200, ProductVersionListSchema)
@requires(PRODUCTS_READ)
def versions(code: str) -> dict[str, Any]:
    return {"items": _service().versions(current_principal(), code)}


@blp.route("/<code>/publish", methods=["POST"])
@blp.response(200, ProductVersionSchema)
@blp.alt_response(422, description="the config or its rule decisions do not pass; `errors` lists every problem")
@blp.alt_response(409, description="four-eyes control is on: submit a publication request instead")
@requires(PRODUCTS_PUBLISH)
def publish(code: str) -> Any:
    """Publish alone, where the installation does not require four-eyes control (``CREDITFLOW_FOUR_EYES=off``);
    otherwise 409: submit a publication request, which another product manager approves."""
    return _service().publish(current_principal(), code)


class TrialSchema(Schema):
    input = fields.Dict(
        required=True,
        metadata={"description": "the decision's input, as the application's data would give it (e.g. age, score)"},
    )
    version = Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "a published version's decision; absent or null: what publishing the draft binds"},
    )


class TrialResultSchema(Schema):
    decision = fields.String(metadata={"description": "the decision's key: rule@content-hash"})
    version = Integer(allow_none=True, metadata={"description": "null: the draft"})
    result = fields.Dict(metadata={"description": "the decision's output (access: outcome, level, hits)"})
    hits = fields.List(
        fields.Dict(), metadata={"description": "the access rules that matched: id, level, action, reason"}
    )
    elapsed_ms = fields.Float()


@blp.route("/<code>/decisions/<slot>/trial", methods=["POST"])
@blp.arguments(TrialSchema)
@blp.response(200, TrialResultSchema)
@blp.alt_response(404, description="the product, the version, or a decision bound to the slot does not exist")
@blp.alt_response(
    422, description="an input the decision cannot take (`input.<field>`), or a draft that cannot bind it"
)
@requires(PRODUCTS_WRITE)
def trial(body: dict[str, Any], code: str, slot: str) -> dict[str, Any]:
    """规则试算: what the decision bound to ``slot`` says of ``input``, for the draft (before publishing it)
    or for a published version; nothing is written."""
    platform = current_app.extensions["creditflow"]
    done = platform.rule_trials.run(current_principal(), code, slot, body["input"], body.get("version"))
    outcome = done.outcome
    return {
        "decision": done.decision,
        "version": done.version,
        "result": outcome.result,
        "hits": outcome.hits,
        "elapsed_ms": outcome.elapsed_ms,
    }


@blp.route("/<code>/retire", methods=["POST"])
@blp.arguments(RetireSchema)
@blp.response(200, ProductDetailSchema)
@blp.alt_response(409, description="already withdrawn")
@requires(PRODUCTS_PUBLISH)
def retire(body: dict[str, Any], code: str) -> dict[str, Any]:
    """Withdraw the product from sale (下架): new applications and new variants are refused (409);
    applications already running go on."""
    return product_body(_service().retire(current_principal(), code, body["reason"]))


@blp.route("/<code>/reinstate", methods=["POST"])
@blp.response(200, ProductDetailSchema)
@blp.alt_response(409, description="on sale already")
@requires(PRODUCTS_PUBLISH)
def reinstate(code: str) -> dict[str, Any]:
    """Put a withdrawn product back on sale."""
    return product_body(_service().reinstate(current_principal(), code))


@blp.route("/<code>/applications", methods=["POST"])
@blp.arguments(ApplicationSchema)
@blp.response(201, InstanceSchema)
@blp.alt_response(422, description="outside the product's limits, or the product is not published")
@blp.alt_response(409, description="a request with the same Idempotency-Key is still being handled")
@blp.doc(**IDEMPOTENCY_DOC)
@requires(APPLICATIONS_CREATE)
def apply(body: dict[str, Any], code: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    view = _service().apply(
        current_principal(),
        code,
        applicant=body["applicant"],
        data=body["data"],
        business_key=body.get("business_key"),
        org_unit=body.get("org_unit"),
        idempotency=idempotency(body),
    )
    return instance_body(view), 201, replay_headers(view)


@blp.route("/<code>/clone", methods=["POST"])
@blp.arguments(CloneSchema)
@blp.response(201, ProductDetailSchema)
@blp.alt_response(403, description="only banks clone province templates")
@requires(PRODUCTS_WRITE)
def clone(body: dict[str, Any], code: str) -> dict[str, Any]:
    view = _service().clone(
        current_principal(), code, code=body["code"], name=body.get("name"), overrides=body["overrides"]
    )
    return product_body(view)


@blp.route("/<code>/draft", methods=["PUT"])
@blp.arguments(DraftSchema)
@blp.response(200, ProductDetailSchema)
@requires(PRODUCTS_WRITE)
def set_draft(body: dict[str, Any], code: str) -> dict[str, Any]:
    return product_body(_service().set_draft(current_principal(), code, body["draft"]))


@blp.route("/<code>/diff", methods=["GET"])
@blp.response(200, DiffSchema)
@requires(PRODUCTS_READ)
def diff(code: str) -> dict[str, Any]:
    return _service().diff(current_principal(), code)


@blp.route("/<code>/rebase", methods=["POST"])
@blp.response(200, RebaseSchema)
@requires(PRODUCTS_WRITE)
def rebase(code: str) -> dict[str, Any]:
    return _service().rebase(current_principal(), code)
