"""Four-eyes publication of credit products (双人复核): one product manager submits, another approves.

Banking regulators expect dual control over a credit product's parameters (amount and rate limits,
rule thresholds, time limits). A publication request pins exactly the draft its submitter saw
(``draft_pin``: the draft and the template version it applies to). A second product manager of the
same owner approves it, someone who neither submitted nor prepared it, and only the approval
publishes, exactly the pinned draft. A draft changed after submission supersedes the request. Each
step is in the catalog's change trail in its own transaction. The other people who can approve hear
of a new request, and the submitter of the decision.

Whether publishing needs a request is the installation's setting (``Settings.four_eyes``): with it on,
``ProductService.publish`` refuses a publish by anyone but the shipped catalog's loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.catalog.changes import (
    PRODUCT_DRAFT_CHANGED,
    PRODUCT_PUBLISHED,
    PRODUCT_REBASED,
    PRODUCT_VARIANT_CREATED,
    PUBLICATION_APPROVED,
    PUBLICATION_REJECTED,
    PUBLICATION_SUBMITTED,
    PUBLICATION_WITHDRAWN,
)
from engine.catalog.publication_notices import checkers, people, tell
from engine.errors import Conflict, Forbidden, InvalidInput, NotFound
from engine.forms.freezing import digests
from engine.services.principal import Principal
from engine.services.products import Checked, check_on_sale, draft_pin, open_request
from engine.store.change_trail import json_diff
from engine.store.models import REQUEST_SUBMITTED, CatalogChange, ProcessDefinition, Product, PublicationRequest, User

if TYPE_CHECKING:
    from engine.container import CreditFlow

CHINA = ZoneInfo("Asia/Shanghai")
# what prepares a product's next version: whoever did one of these since its last publication is no checker
PREPARING = (PRODUCT_VARIANT_CREATED, PRODUCT_DRAFT_CHANGED, PRODUCT_REBASED)


@dataclass(frozen=True)
class RequestView:
    request: PublicationRequest
    product: str  # the product's code
    submitted_by: str  # usernames
    decided_by: str | None


class PublicationRequestService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def submit(self, principal: Principal, code: str, note: str | None = None) -> RequestView:
        """Pin the product's draft for a second product manager's approval; refused (with publish's own
        problems) if it could not be published, and while another request of the product is open."""
        _person(principal)
        note = (note or "").strip() or None
        products = self.platform.products
        with self.platform.db.transaction(write=True) as session:
            product = products.owned(session, principal, code)
            check_on_sale(product)
            found = open_request(session, product.id)
            if found is not None:
                who = session.get(User, found.submitted_by_id)
                at = found.submitted_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
                raise Conflict(
                    f"product {code} has an open publication request ({found.id}, submitted by "
                    f"{who.username if who else '?'} at {at}): it is approved, rejected or withdrawn first",
                    [{"field": "code", "message": f"has the open publication request {found.id}"}],
                )
            checked = products.check(session, product, product.draft)
            latest = products.latest(session, product.id)
            if latest is not None and latest.sha256 == checked.sha256:
                raise Conflict(f"the draft of product {code} is what version {latest.version} runs: nothing to publish")
            # what a checker compares: the version on sale, or for a variant never published, its template
            before = latest or checked.base
            changes = json_diff(before.config if before is not None else {}, checked.config)
            request = PublicationRequest(
                product_id=product.id,
                tenant_id=principal.tenant_id,
                status=REQUEST_SUBMITTED,
                sha256=draft_pin(product.draft, product.base_version_id),
                draft=product.draft,
                base_version_id=product.base_version_id,
                compared_to_version=latest.version if latest is not None else None,
                changes=changes,
                publishes=_publishes(session, checked),
                note=note,
                submitted_by_id=principal.user_id,
                submitted_at=self.platform.clock.now(),
            )
            session.add(request)
            session.flush()
            details = {"request": request.id, "sha256": request.sha256, "note": note, "changes": changes}
            products.record(session, principal, product.tenant_id, PUBLICATION_SUBMITTED, code, details=details)
            others = [u for u in checkers(session, principal.tenant_id) if u != principal.user_id]
            tell(session, request.submitted_at, "product.publication_submitted", others, product, request, note=note)
            return self._view(session, product, request)

    def approve(self, principal: Principal, code: str, request_id: int) -> RequestView:
        """Publish exactly the draft the request pinned, by someone who neither submitted nor prepared
        it. A draft changed since supersedes the request (409, nothing published); a product withdrawn
        from sale, or one publishing refuses, leaves the request open and nothing written."""
        _person(principal)
        products = self.platform.products
        with self.platform.db.transaction(write=True) as session:
            product, request = self._open(session, principal, code, request_id)
            if request.submitted_by_id == principal.user_id:
                raise Forbidden(
                    f"you submitted publication request {request_id}: another product manager approves it (双人复核)"
                )
            self._check_not_preparer(session, principal, product)
            if products.supersede_stale(session, principal, product) is not None:
                why = f"the draft of product {code} changed"
            else:
                check_on_sale(product)
                checked = products.check(session, product, request.draft)
                moved = _moved(request.publishes, _publishes(session, checked))
                if not moved:
                    version = products.freeze(session, principal, product, request.draft, checked)
                    request.published_version = version.version
                    self._decide(
                        session, principal, product, request, "approved", PUBLICATION_APPROVED, version.version
                    )
                    return self._view(session, product, request)
                products.supersede(session, principal, product, request, moved)
                why = f"what the draft of product {code} would publish on changed ({', '.join(moved)})"
        # committed as superseded: the submitter may submit again, and a checker sees what is published
        raise Conflict(
            f"{why} after publication request {request_id} was submitted: the request is superseded and "
            "nothing was published; submit the draft again"
        )

    def reject(self, principal: Principal, code: str, request_id: int, reason: str) -> RequestView:
        """Send the request back to its submitter with the reason; nothing is published."""
        reason = reason.strip()
        if not reason:
            raise InvalidInput("say why the request is rejected", [{"field": "reason", "message": "blank"}])
        _person(principal)
        with self.platform.db.transaction(write=True) as session:
            product, request = self._open(session, principal, code, request_id)
            if request.submitted_by_id == principal.user_id:
                raise Forbidden(f"you submitted publication request {request_id}: withdraw it instead")
            request.reason = reason
            self._decide(session, principal, product, request, "rejected", PUBLICATION_REJECTED, reason=reason)
            return self._view(session, product, request)

    def withdraw(self, principal: Principal, code: str, request_id: int) -> RequestView:
        """The submitter takes the request back (to change the draft, say); a checker rejects instead."""
        with self.platform.db.transaction(write=True) as session:
            product, request = self._open(session, principal, code, request_id)
            if request.submitted_by_id != principal.user_id:
                raise Forbidden(f"only its submitter withdraws publication request {request_id}; reject it instead")
            self._decide(session, principal, product, request, "withdrawn", PUBLICATION_WITHDRAWN)
            return self._view(session, product, request)

    def list(
        self,
        principal: Principal,
        code: str | None = None,
        *,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[RequestView], int]:
        """The publication requests the caller may see, newest first: a bank its own, the province its
        templates' and its banks'. ``code`` None: across every product, a checker's worklist."""
        with self.platform.db.transaction() as session:
            joined = select(PublicationRequest, Product).join(Product, Product.id == PublicationRequest.product_id)
            stmt = principal.scope(joined, PublicationRequest.tenant_id)
            if code is not None:
                product = self.platform.products.find(session, principal, code)
                stmt = stmt.where(PublicationRequest.product_id == product.id)
            if status:
                stmt = stmt.where(PublicationRequest.status == status)
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            found = session.execute(stmt.order_by(PublicationRequest.id.desc()).limit(limit).offset(offset)).all()
            names = _usernames(session, [u for r, _ in found for u in (r.submitted_by_id, r.decided_by_id)])
            return [_view(product, r, names) for r, product in found], total

    def get(self, principal: Principal, code: str, request_id: int) -> RequestView:
        with self.platform.db.transaction() as session:
            product = self.platform.products.find(session, principal, code)
            request = session.get(PublicationRequest, request_id)
            if request is None or request.product_id != product.id or not principal.sees(request.tenant_id):
                raise NotFound(f"publication request {request_id} of product {code} does not exist")
            return self._view(session, product, request)

    # -- helpers -------------------------------------------------------------------------------

    def _open(
        self, session: Session, principal: Principal, code: str, request_id: int
    ) -> tuple[Product, PublicationRequest]:
        """The caller's product and its open request, locked: two checkers deciding at once queue."""
        product = self.platform.products.owned(session, principal, code)
        request = session.scalars(
            select(PublicationRequest)
            .where(PublicationRequest.id == request_id, PublicationRequest.product_id == product.id)
            .with_for_update()
        ).first()
        if request is None:
            raise NotFound(f"publication request {request_id} of product {code} does not exist")
        if request.status != REQUEST_SUBMITTED:
            raise Conflict(f"publication request {request_id} is {request.status}: only a submitted one is decided")
        return product, request

    def _check_not_preparer(self, session: Session, principal: Principal, product: Product) -> None:
        """Whoever changed the draft since the product's last publication prepared what is approved, and
        checks none of it: the maker is not only who pressed submit."""
        owner = (
            CatalogChange.tenant_id.is_(None)
            if product.tenant_id is None
            else CatalogChange.tenant_id == product.tenant_id
        )
        published = (
            select(func.coalesce(func.max(CatalogChange.seq), 0))
            .where(owner, CatalogChange.subject == product.code, CatalogChange.action == PRODUCT_PUBLISHED)
            .scalar_subquery()
        )
        prepared = session.scalar(
            select(CatalogChange.id)
            .where(
                owner,
                CatalogChange.subject == product.code,
                CatalogChange.action.in_(PREPARING),
                CatalogChange.actor_id == principal.user_id,
                CatalogChange.seq > published,
            )
            .limit(1)
        )
        if prepared is not None:
            raise Forbidden(
                f"you changed product {product.code} since it was last published: a product manager who did "
                "not prepare the draft approves it (双人复核)"
            )

    def _decide(
        self,
        session: Session,
        principal: Principal,
        product: Product,
        request: PublicationRequest,
        status: str,
        action: str,
        version: int | None = None,
        reason: str | None = None,
    ) -> None:
        """Close the request, record it in the change trail, and tell the submitter of a checker's decision
        (or, when the submitter withdrew it, the checkers)."""
        request.status, request.decided_by_id, request.decided_at = status, principal.user_id, self.platform.clock.now()
        details = {"request": request.id, "sha256": request.sha256, "submitted_by": request.submitted_by_id}
        if reason is not None:
            details["reason"] = reason
        self.platform.products.record(session, principal, product.tenant_id, action, product.code, version, details)
        topic = f"product.publication_{status}"
        if request.decided_by_id != request.submitted_by_id:
            fields = {"version": version} if version is not None else {"reason": reason}
            tell(session, request.decided_at, topic, [request.submitted_by_id], product, request, **fields)
        else:  # withdrawn: the request the checkers were told of is gone
            others = [u for u in checkers(session, product.tenant_id) if u != principal.user_id]
            tell(session, request.decided_at, topic, others, product, request)

    @staticmethod
    def _view(session: Session, product: Product, request: PublicationRequest) -> RequestView:
        return _view(product, request, _usernames(session, [request.submitted_by_id, request.decided_by_id]))


def _person(principal: Principal) -> None:
    """Dual control is between two people: the system has no name to stand for, and an integration
    account submits and reads while a person decides."""
    if principal.user_id is None or principal.is_service:
        raise Forbidden("a publication request is submitted and decided by product managers in person")


def _publishes(session: Session, checked: Checked) -> dict[str, Any]:
    """What publishing a checked draft freezes besides its config: the process version it runs, its
    rule decisions (content-addressed) and its forms' digests, as the checker is shown them."""
    definition = session.get(ProcessDefinition, checked.definition_id)
    return {
        "process": f"{definition.key}:{definition.version}" if definition is not None else None,
        "decisions": checked.decisions,
        "forms": digests(checked.forms),
        "version_sha256": checked.sha256,
    }


def _moved(pinned: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """What differs between what a request pinned and what approving it would publish now (nothing
    for a request submitted before requests pinned it)."""
    if pinned is None:
        return []
    return [part for part in ("process", "decisions", "forms", "version_sha256") if pinned.get(part) != now[part]]


def _usernames(session: Session, user_ids: list[int | None]) -> dict[int, str]:
    return {user_id: person[0] for user_id, person in people(session, user_ids).items()}


def _view(product: Product, request: PublicationRequest, names: dict[int, str]) -> RequestView:
    decided = names.get(request.decided_by_id) if request.decided_by_id is not None else None
    return RequestView(request, product.code, names.get(request.submitted_by_id, ""), decided)
