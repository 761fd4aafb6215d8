"""Webhooks: a tenant's HTTP endpoints for notifications, managed by its administrators.

Each administrator manages the webhooks of their own tenant only; another tenant's answer exactly
like missing ones. A bank's webhooks receive the bank's messages, the province's receive every
bank's (see ``engine.notify.outbox.publish``). The signing secret (see ``engine.notify.delivery``)
is shown exactly once, on creation, and never logged nor recorded in the organisation's change trail
(``engine.org.changes``), where every creation and change of a webhook goes: it is stored in plaintext
because signing needs it, so the API is the only thing guarding it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound
from engine.masking import mask_text
from engine.notify.destinations import DestinationPolicy
from engine.org.changes import (
    WEBHOOK_CREATED,
    WEBHOOK_DEACTIVATED,
    WEBHOOK_UPDATED,
    record_org_change,
    record_org_update,
)
from engine.org.roles import WEBHOOKS_ADMIN
from engine.services.principal import Principal
from engine.store.models import Delivery, OutboxMessage, Webhook

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 32
MAX_SECRET_LENGTH = 200
_SECRET_BYTES = 32  # a generated secret: 43 URL-safe characters
MAX_URL_LENGTH = 500


@dataclass(frozen=True)
class WebhookView:
    """A webhook as listed: never its secret."""

    id: int
    tenant_id: int | None
    url: str
    topics: list[str]
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class NewWebhook:
    """The created webhook, with the secret that is never shown again."""

    webhook: WebhookView
    secret: str


@dataclass(frozen=True)
class DeliveryView:
    id: int
    message_id: int
    topic: str
    created_at: datetime  # the message's
    status: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(hook.id, hook.tenant_id, hook.url, list(hook.topics or []), hook.active, hook.created_at)


def _recorded(view: WebhookView) -> dict[str, Any]:
    """What the change trail keeps of a webhook: what it is, never its secret."""
    return {"url": view.url, "topics": view.topics, "active": view.active}


def check_url(url: str, destinations: DestinationPolicy) -> None:
    """http or https to a host webhooks may reach, no credentials: requests are signed, and URLs
    are listed to admins."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is no number, or out of range, raises here rather than at delivery
    except ValueError as exc:  # e.g. brackets around an IPv4 address, an unclosed IPv6 literal
        message = f"not a valid URL: {exc}"
        raise InvalidInput(f"invalid webhook URL: {exc}", [{"field": "url", "message": message}]) from None
    problem = None
    if any(ord(character) < 0x21 or ord(character) == 0x7F for character in url):
        problem = "must not contain spaces or control characters"  # a CR LF would split the request
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "must be an http or https URL with a host"
    elif parts.username is not None or parts.password is not None:
        problem = "must not contain credentials; receivers verify the signature instead"
    elif len(url) > MAX_URL_LENGTH:
        problem = f"must be at most {MAX_URL_LENGTH} characters"
    else:
        problem = destinations.url_host_refusal(parts.hostname)
    if problem is not None:
        raise InvalidInput(f"invalid webhook URL: {problem}", [{"field": "url", "message": problem}])


def _check_secret(secret: str) -> None:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        message = f"must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters"
        raise InvalidInput(f"invalid webhook secret: {message}", [{"field": "secret", "message": message}])


class WebhookService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def list(self, principal: Principal) -> list[WebhookView]:
        """The own tenant's webhooks, deactivated ones too."""
        principal.require(WEBHOOKS_ADMIN)
        with self.platform.db.transaction() as session:
            stmt = select(Webhook).where(Webhook.tenant_id == principal.tenant_id).order_by(Webhook.id)
            return [_view(hook) for hook in session.scalars(stmt)]

    def create(self, principal: Principal, url: str, topics: list[str], secret: str | None = None) -> NewWebhook:
        """A webhook of the principal's tenant; ``topics`` are prefixes, none meaning every topic."""
        principal.require(WEBHOOKS_ADMIN)
        check_url(url, self.platform.webhook_destinations)
        if secret is None:
            secret = secrets.token_urlsafe(_SECRET_BYTES)
        else:
            _check_secret(secret)
        with self.platform.db.transaction(write=True) as session:
            hook = Webhook(
                tenant_id=principal.tenant_id,
                url=url,
                secret=secret,
                topics=topics,
                active=True,
                created_at=self.platform.clock.now(),
            )
            session.add(hook)
            session.flush()
            view = _view(hook)
            record_org_change(
                session,
                principal,
                hook.created_at,
                tenant_id=hook.tenant_id,
                action=WEBHOOK_CREATED,
                subject=str(hook.id),
                details=_recorded(view),
            )
        log.info("webhook %s to %s created by %r", view.id, mask_text(url), principal.username)
        return NewWebhook(view, secret)

    def update(
        self,
        principal: Principal,
        webhook_id: int,
        *,
        url: str | None = None,
        topics: list[str] | None = None,
        active: bool | None = None,
    ) -> WebhookView:
        """Change what is given; a message already published keeps the deliveries it had. Recorded as a
        deactivation when it turns an active webhook off, else as an update."""
        principal.require(WEBHOOKS_ADMIN)
        if url is not None:
            check_url(url, self.platform.webhook_destinations)
        with self.platform.db.transaction(write=True) as session:
            hook = self._own(session, principal, webhook_id)
            before = _recorded(_view(hook))
            if url is not None:
                hook.url = url
            if topics is not None:
                hook.topics = topics
            if active is not None:
                hook.active = active
            view = _view(hook)
            record_org_update(
                session,
                principal,
                self.platform.clock.now(),
                tenant_id=hook.tenant_id,
                action=WEBHOOK_DEACTIVATED if before["active"] and not view.active else WEBHOOK_UPDATED,
                subject=str(hook.id),
                before=before,
                after=_recorded(view),
            )
        log.info("webhook %s changed by %r", webhook_id, principal.username)
        return view

    def deactivate(self, principal: Principal, webhook_id: int) -> None:
        """Deactivate rather than delete: its deliveries stay listed, and pending ones are dropped."""
        self.update(principal, webhook_id, active=False)

    def deliveries(self, principal: Principal, webhook_id: int, limit: int, offset: int = 0) -> list[DeliveryView]:
        """The webhook's deliveries, newest first."""
        principal.require(WEBHOOKS_ADMIN)
        with self.platform.db.transaction() as session:
            self._own(session, principal, webhook_id)
            rows = session.execute(
                select(Delivery, OutboxMessage.topic, OutboxMessage.created_at)
                .join(OutboxMessage, OutboxMessage.id == Delivery.message_id)
                .where(Delivery.webhook_id == webhook_id)
                .order_by(Delivery.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [
                DeliveryView(d.id, d.message_id, topic, created_at, d.status, d.attempts, d.last_error, d.delivered_at)
                for d, topic, created_at in rows
            ]

    @staticmethod
    def _own(session: Session, principal: Principal, webhook_id: int) -> Webhook:
        hook = session.get(Webhook, webhook_id)
        if hook is None or hook.tenant_id != principal.tenant_id:
            raise NotFound(f"webhook {webhook_id} does not exist")
        return hook
