"""Password login and bearer tokens (JWT, HS256, with expiry)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from engine.errors import Unauthorized
from engine.services.principal import Principal
from engine.store.models import Tenant, User, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

ISSUER = "creditflow"
_HASHER = PasswordHasher()
# Verifying against a real hash when the user does not exist keeps response times alike, so a
# caller cannot tell "no such user" from "wrong password" by the clock.
_DUMMY_HASH = _HASHER.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


class AuthService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def issue_token(self, username: str, password: str) -> tuple[str, int]:
        """Return ``(token, expires_in_seconds)`` or raise Unauthorized without saying which part was wrong."""
        with self.platform.db.transaction() as session:
            user = session.scalars(select(User).where(User.username == username)).first()
            try:
                _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                user = None
            if user is None or not user.is_active:
                raise Unauthorized("invalid username or password")
            roles = sorted(session.scalars(select(UserRole.role).where(UserRole.user_id == user.id)))
        ttl = self.platform.settings.token_ttl_seconds
        now = self.platform.clock.now()
        claims = {
            "iss": ISSUER,
            "sub": str(user.id),
            "name": user.username,
            "tenant": user.tenant_id,
            "roles": roles,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        }
        return jwt.encode(claims, self.platform.settings.secret_key, algorithm="HS256"), ttl

    def authenticate(self, token: str) -> Principal:
        """Check signature, expiry and that the user still exists and is active."""
        try:
            claims = jwt.decode(
                token,
                self.platform.settings.secret_key,
                algorithms=["HS256"],
                issuer=ISSUER,
                # expiry is checked against the injectable clock below, not PyJWT's wall clock
                options={"require": ["exp", "sub", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if claims["exp"] <= self.platform.clock.now().timestamp():
            raise Unauthorized("token has expired")
        with self.platform.db.transaction() as session:
            user = session.get(User, int(claims["sub"]))
            if user is None or not user.is_active:
                raise Unauthorized("the user of this token is no longer active")
            roles = frozenset(session.scalars(select(UserRole.role).where(UserRole.user_id == user.id)))
            scope = frozenset(
                session.scalars(
                    select(Tenant.id).where((Tenant.id == user.tenant_id) | (Tenant.parent_id == user.tenant_id))
                )
            )
            return Principal(user.id, user.username, user.tenant_id, roles, scope)
