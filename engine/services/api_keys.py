"""API keys for integrations: a long-lived credential that acts as its user (usually a service account).

A key reads ``cfk_<prefix>_<secret>``. The prefix is public (it finds the row and is shown in
lists and logs); of the secret only a SHA-256 is stored, so the plaintext is shown exactly once, on
creation. The secret has 256 bits of randomness, so a fast hash is enough (no password stretching).

Who manages keys: holders of ``org.admin`` for the users of their own tenant; the province's admins
also for the users of its banks (they set up the province-wide integrations). Keys and users of
any other tenant are answered exactly like missing ones. Creating and revoking a key are recorded in
the organisation's change trail (``engine.org.changes``) with the key's prefix, never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound, Unauthorized
from engine.org.changes import API_KEY_CREATED, API_KEY_REVOKED, record_org_change
from engine.org.roles import ORG_ADMIN
from engine.services.auth import load_principal
from engine.services.principal import Principal
from engine.store.models import ApiKey, Tenant, User

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

KEY_PREFIX = "cfk"
_PREFIX_ALPHABET = string.ascii_letters + string.digits  # no "_": it separates the parts
_PREFIX_LENGTH = 8
_SECRET_BYTES = 32
# how stale ``last_used_at`` may get before a request writes it again (not one write per request)
_LAST_USED_RESOLUTION = timedelta(minutes=1)
INVALID_KEY = "invalid API key"


@dataclass(frozen=True)
class KeyView:
    """A key as listed: never the secret or its hash."""

    id: int
    name: str
    prefix: str
    user_id: int
    username: str
    tenant_id: int
    created_by_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    """The created key, with the plaintext that is never shown again."""

    key: KeyView
    plaintext: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _view(key: ApiKey, user: User) -> KeyView:
    return KeyView(
        key.id,
        key.name,
        key.prefix,
        user.id,
        user.username,
        user.tenant_id,
        key.created_by_id,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.last_used_at,
    )


class ApiKeyService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def create(self, principal: Principal, username: str, name: str, expires_at: datetime | None = None) -> NewKey:
        principal.require(ORG_ADMIN)
        now = self.platform.clock.now()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput(
                "the key would be expired already", [{"field": "expires_at", "message": "must be in the future"}]
            )
        prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        with self.platform.db.transaction(write=True) as session:
            user = self._managed_user(session, principal, username)
            if not user.is_service:  # a key for a person would let its holder act, and be audited, as them
                raise InvalidInput(
                    "API keys are for service accounts; a person signs in with their own password",
                    [{"field": "username", "message": "not a service account"}],
                )
            key = ApiKey(
                user_id=user.id,
                name=name,
                prefix=prefix,
                secret_hash=_digest(secret),
                created_by_id=principal.user_id,
                created_at=now,
                expires_at=expires_at,
            )
            session.add(key)
            session.flush()
            view = _view(key, user)
            record_org_change(
                session,
                principal,
                now,
                tenant_id=user.tenant_id,
                action=API_KEY_CREATED,
                subject=str(key.id),
                details={"username": username, "name": name, "prefix": prefix, "expires_at": expires_at},
            )
        log.info("API key %s (%r) created for %r by %r", prefix, name, username, principal.username)
        return NewKey(view, f"{KEY_PREFIX}_{prefix}_{secret}")

    def list(self, principal: Principal, username: str | None = None) -> list[KeyView]:
        """Keys of every user the principal sees (revoked and expired ones too), or of one user."""
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction() as session:
            stmt = principal.scope(select(ApiKey, User).join(User, User.id == ApiKey.user_id), User.tenant_id)
            if username is not None:
                user = session.scalars(select(User).where(User.username == username)).first()
                if user is None or not principal.sees(user.tenant_id):
                    raise NotFound(f"user {username!r} does not exist")
                stmt = stmt.where(User.id == user.id)
            return [_view(key, user) for key, user in session.execute(stmt.order_by(ApiKey.id))]

    def revoke(self, principal: Principal, key_id: int) -> None:
        """Revoke a key; revoking it again changes nothing (the first revocation time stays)."""
        principal.require(ORG_ADMIN)
        with self.platform.db.transaction(write=True) as session:
            found = session.execute(
                select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
            ).first()
            if found is None or not self._manages(session, principal, found.User.tenant_id):
                raise NotFound(f"API key {key_id} does not exist")
            key, user = found.ApiKey, found.User
            if key.revoked_at is None:
                key.revoked_at = self.platform.clock.now()
                record_org_change(
                    session,
                    principal,
                    key.revoked_at,
                    tenant_id=user.tenant_id,
                    action=API_KEY_REVOKED,
                    subject=str(key.id),
                    details={"username": user.username, "name": key.name, "prefix": key.prefix},
                )
                log.info("API key %s revoked by %r", key.prefix, principal.username)

    def authenticate(self, plaintext: str) -> Principal:
        """The principal of a presented key; unknown, revoked, expired keys and inactive users are refused."""
        scheme, _, rest = plaintext.partition("_")
        prefix, _, secret = rest.partition("_")
        if scheme != KEY_PREFIX or not prefix or not secret:
            raise Unauthorized(INVALID_KEY)
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            key = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
            if key is None or not hmac.compare_digest(key.secret_hash, _digest(secret)):
                raise Unauthorized(INVALID_KEY)
            if key.revoked_at is not None:
                raise Unauthorized("this API key was revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized("this API key has expired")
            user = session.get(User, key.user_id)
            if user is None or not user.is_active:
                raise Unauthorized("the user of this API key is no longer active")
            principal = load_principal(session, user)
        if key.last_used_at is None or key.last_used_at <= now - _LAST_USED_RESOLUTION:
            self._touch(key.id, now)
        return principal

    def _touch(self, key_id: int, now: datetime) -> None:
        """Record use; the condition keeps concurrent requests from each writing it."""
        stale = now - _LAST_USED_RESOLUTION
        with self.platform.db.transaction(write=True) as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= stale))
                .values(last_used_at=now)
            )

    def _managed_user(self, session: Session, principal: Principal, username: str) -> User:
        user = session.scalars(select(User).where(User.username == username)).first()
        if user is None or not self._manages(session, principal, user.tenant_id):
            raise NotFound(f"user {username!r} does not exist")
        return user

    @staticmethod
    def _manages(session: Session, principal: Principal, tenant_id: int) -> bool:
        """Changes within the own tenant, and by the province in the banks below it."""
        if principal.acts_in(tenant_id):
            return True
        tenant = session.get(Tenant, tenant_id) if principal.sees(tenant_id) else None
        return tenant is not None and tenant.parent_id == principal.tenant_id
