"""The catalog's change trail (变更留痕): who changed which product or process, when, and from what to what.

A regulator or a bank's internal audit asks who raised a product's maximum amount, when, and what it
was before. Every service that changes the catalog records the change in this trail
(``engine.store.change_trail``), in its own transaction. Its owners are a bank, or none for the
province's templates and the shared processes. Product managers, risk managers and administrators
read it (``catalog.changes.read``): a bank its own changes and the province's (its products derive
from the templates, and run the shared processes); the province every bank's.
"""

from __future__ import annotations

from engine.org.roles import CATALOG_CHANGES_READ
from engine.store.change_trail import Trail
from engine.store.models import CatalogChange, CatalogChangeHead

CATALOG_TRAIL = Trail(CatalogChange, CatalogChangeHead, CATALOG_CHANGES_READ)

PRODUCT_CREATED = "product.created"  # a province template first loaded from its file
PRODUCT_DRAFT_CHANGED = "product.draft_changed"
PRODUCT_PUBLISHED = "product.published"
PRODUCT_VARIANT_CREATED = "product.variant_created"  # a bank cloned a template
PRODUCT_REBASED = "product.rebased"  # a bank's product moved onto a newer template version
PRODUCT_RETIRED = "product.retired"  # withdrawn from sale (下架)
PRODUCT_REINSTATED = "product.reinstated"
# publication requests (双人复核): submitted by one product manager, approved (published) or rejected by
# another, withdrawn by the submitter, superseded when the draft they pinned changed
PUBLICATION_SUBMITTED = "product.publication_submitted"
PUBLICATION_APPROVED = "product.publication_approved"
PUBLICATION_REJECTED = "product.publication_rejected"
PUBLICATION_WITHDRAWN = "product.publication_withdrawn"
PUBLICATION_SUPERSEDED = "product.publication_superseded"
DEFINITION_DEPLOYED = "definition.deployed"
ACTIONS = (
    PRODUCT_CREATED,
    PRODUCT_DRAFT_CHANGED,
    PRODUCT_PUBLISHED,
    PRODUCT_VARIANT_CREATED,
    PRODUCT_REBASED,
    PRODUCT_RETIRED,
    PRODUCT_REINSTATED,
    PUBLICATION_SUBMITTED,
    PUBLICATION_APPROVED,
    PUBLICATION_REJECTED,
    PUBLICATION_WITHDRAWN,
    PUBLICATION_SUPERSEDED,
    DEFINITION_DEPLOYED,
)
