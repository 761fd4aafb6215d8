"""Password login and bearer tokens (JWT, HS256, with expiry), lockout, sign-out and password change.

A token names its user (``sub``), when it was issued (``iat``, float seconds, to compare with the
user's ``tokens_valid_after``) and carries a random ``jti`` so that one session can be signed out
on its own. A token is refused once expired, signed out (its jti is in ``revoked_token``), issued
before the user's ``tokens_valid_after`` (password change, "sign out everywhere", an admin ending
the sessions) or when its user is inactive.

After an administrator's reset the password is temporary (``temporary_password_expires_at``): a
session signed in with it holds no permissions, so the user can do nothing but change it (and ask
who they are, or sign out), and once it expires it opens nothing at all. The state is the user
row's, not the token's, so the change takes effect for every session at once.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from engine.errors import InvalidInput, NotFound, Unauthorized
from engine.org.roles import ROLES, TASKS_WORK, permissions_of
from engine.services.principal import Grant, Principal
from engine.store.models import OrgUnit, RevokedToken, Tenant, User, UserGroupMember, UserRole

if TYPE_CHECKING:
    from engine.container import CreditFlow

log = logging.getLogger(__name__)

ISSUER = "creditflow"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200  # what the login endpoint accepts
# One answer for every refused login: "locked" only for accounts that exist would tell a guesser which do.
INVALID_LOGIN = "invalid username or password (after repeated failed logins an account is locked for a while)"
# Said only to someone who typed the temporary password right: it tells nothing to a guesser.
TEMPORARY_PASSWORD_EXPIRED = "the temporary password has expired; ask an administrator to reset it again"  # noqa: S105 - a message
# Generated passwords are read out or copied by hand: no 0/O, 1/l/I to confuse.
_PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # noqa: S105
_HASHER = PasswordHasher()
# Verifying against a real hash when the user does not exist keeps response times alike, so a
# caller cannot tell "no such user" from "wrong password" by the clock.
_DUMMY_HASH = _HASHER.hash("not-a-real-password")


def use_password_hasher(hasher: PasswordHasher) -> None:
    """Hash and verify with other argon2 parameters from now on, in this process.

    The test suite logs in over a thousand times; it uses argon2's CHEAPEST profile (the same
    argon2id and hash format at a thousandth of the cost). Hashes carry their parameters, so a hash
    made under either setting verifies under the other."""
    global _HASHER, _DUMMY_HASH
    _HASHER = hasher
    _DUMMY_HASH = hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    """Why a password cannot be set, None when it can: long enough that, with the login lockout,
    guessing it online is hopeless; short enough that hashing it is not a way to load the server."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
    return None


def generate_password() -> str:
    """A password the platform hands out once (a new user's, a reset's): 20 random characters of 57
    (about 117 bits), in groups of five so that it can be read out and typed without slips."""
    return "-".join("".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(5)) for _ in range(4))


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int  # seconds
    password_change_required: bool  # the session may only change the password (``auth/password``)


def password_change_required(user: User, now: datetime) -> bool:
    """Signed in with a temporary password; an expired one is refused before this is asked."""
    if user.temporary_password_expires_at is None:
        return False
    if user.temporary_password_expires_at <= now:
        raise Unauthorized(TEMPORARY_PASSWORD_EXPIRED)
    return True


class AuthService:
    def __init__(self, platform: CreditFlow) -> None:
        self.platform = platform

    def issue_token(self, username: str, password: str) -> IssuedToken:
        """Return a token or raise Unauthorized without saying which part was wrong.

        Service accounts and inactive users get the same answer as a wrong password: the response
        must not tell an outsider which accounts exist or what they are.
        """
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            user = session.scalars(select(User).where(User.username == username)).first()
        if not self._check_password(username, user, password, now) or user is None:
            raise Unauthorized(INVALID_LOGIN)
        if user.is_service or not user.is_active:
            kind = "a service account (API keys only)" if user.is_service else "inactive"
            log.warning("login refused for %r: the account is %s", username, kind)
            raise Unauthorized(INVALID_LOGIN)
        try:
            restricted = password_change_required(user, now)
        except Unauthorized:
            log.warning("login refused for %r: the temporary password has expired", username)
            raise
        with self.platform.db.transaction() as session:
            return self._sign(session, user, now, restricted)

    def authenticate(self, token: str) -> Principal:
        """Check signature, expiry, sign-outs and that the user still exists and is active."""
        claims = self._decode(token)
        with self.platform.db.transaction() as session:
            user = session.get(User, int(claims["sub"]))
            if user is None or not user.is_active:
                raise Unauthorized("the user of this token is no longer active")
            if user.tokens_valid_after is not None and claims["iat"] < user.tokens_valid_after.timestamp():
                raise Unauthorized("this session has ended (password changed or signed out everywhere); log in again")
            if session.get(RevokedToken, claims["jti"]) is not None:
                raise Unauthorized("this token was signed out; log in again")
            principal = load_principal(session, user)
        if password_change_required(user, self.platform.clock.now()):
            # the roles stay the person's (tasks are still offered to them); this session may use none
            return replace(principal, permissions=frozenset(), password_change_required=True)
        return principal

    def logout(self, token: str, *, everywhere: bool = False) -> None:
        """Sign out this token (and with ``everywhere`` every session of its user).

        Signed-out tokens whose expiry has passed are purged here: they would be refused anyway.
        """
        claims = self._decode(token)
        now = self.platform.clock.now()
        with self.platform.db.transaction(write=True) as session:
            session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
            self._revoke(session, claims)
            if everywhere:
                self._end_sessions(session, int(claims["sub"]), now)

    def revoke_sessions(self, user_id: int) -> None:
        """End every session of a user (an admin disabling an account, a suspected leak)."""
        with self.platform.db.transaction(write=True) as session:
            self._end_sessions(session, user_id, self.platform.clock.now())

    def change_password(self, principal: Principal, token: str, old_password: str, new_password: str) -> IssuedToken:
        """Set a new password, end every session (including ``token``) and return a fresh token; a
        temporary password becomes the user's own.

        A wrong old password counts towards the lockout like a failed login, so a stolen token
        cannot be used to guess the password either.
        """
        if (problem := password_problem(new_password)) is not None:
            raise InvalidInput(f"the new password must have {problem}", [{"field": "new_password", "message": problem}])
        if new_password == old_password:
            raise InvalidInput(
                "the new password must differ from the old one",
                [{"field": "new_password", "message": "must differ from the old password"}],
            )
        claims = self._decode(token)
        now = self.platform.clock.now()
        with self.platform.db.transaction() as session:
            user = session.get(User, principal.user_id)
        if user is None or not self._check_password(user.username, user, old_password, now):
            raise InvalidInput(
                "the old password is wrong", [{"field": "old_password", "message": "is not your current password"}]
            )
        with self.platform.db.transaction(write=True) as session:
            session.execute(
                update(User)
                .where(User.id == user.id)
                .values(password_hash=hash_password(new_password), temporary_password_expires_at=None)
            )
            self._end_sessions(session, user.id, now)
            self._revoke(session, claims)
            log.info("user %r changed the password; every other session has ended", user.username)
            return self._sign(session, user, now, restricted=False)

    def me(self, principal: Principal) -> dict[str, Any]:
        """The signed-in user as a client shows it: who, where, which roles and what they allow."""
        with self.platform.db.transaction() as session:
            user = session.get(User, principal.user_id)
            if user is None:
                raise NotFound("the signed-in user no longer exists")
            tenant = session.get(Tenant, user.tenant_id)
        return {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "tenant": tenant.code if tenant else None,
            "org_unit_id": user.org_unit_id,
            "roles": [{"role": g.role, "org_unit_id": g.org_unit_id} for g in principal.grants],
            "permissions": sorted(principal.permissions),
            "password_change_required": principal.password_change_required,
            "temporary_password_expires_at": user.temporary_password_expires_at,
        }

    # -- internals -------------------------------------------------------------------------------

    def _check_password(self, username: str, user: User | None, password: str, now: datetime) -> bool:
        """Verify a password under the lockout rules; the failure is recorded before the caller refuses.

        A locked account is refused without looking at the password. A failure after an expired
        lock starts a fresh count, and the failure that reaches the limit locks the account.
        """
        if user is not None and user.locked_until is not None and user.locked_until > now:
            log.warning("login refused for %r: locked until %s", username, user.locked_until.isoformat())
            raise Unauthorized(INVALID_LOGIN)
        correct = _verify(user.password_hash if user else _DUMMY_HASH, password)
        if user is None:
            log.warning("login failed for unknown user %r", username)
            return False
        if correct:
            self._after_correct_password(user, password)
            return True
        settings = self.platform.settings
        with self.platform.db.transaction(write=True) as session:
            row = session.scalars(select(User).where(User.id == user.id).with_for_update()).one()
            if row.locked_until is not None and row.locked_until <= now:
                row.failed_logins, row.locked_until = 0, None
            row.failed_logins += 1
            if row.failed_logins >= settings.login_max_failures:
                row.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            failures, locked = row.failed_logins, row.locked_until is not None
        log.warning("login failed for %r: wrong password, %d failed in a row", username, failures)
        if locked:
            log.warning("account %r locked for %d minutes", username, settings.lockout_minutes)
            raise Unauthorized(INVALID_LOGIN)
        return False

    def _after_correct_password(self, user: User, password: str) -> None:
        """Clear the failure count, and re-hash a password stored under other argon2 parameters (an
        installation that raised them upgrades each account at its next login). The update matches
        the old hash, so a password changed meanwhile is never overwritten."""
        values: dict[str, Any] = {}
        if user.failed_logins or user.locked_until is not None:
            values.update(failed_logins=0, locked_until=None)
        if _HASHER.check_needs_rehash(user.password_hash):
            values["password_hash"] = hash_password(password)
            log.info("password hash of %r upgraded to the installation's argon2 parameters", user.username)
        if values:
            with self.platform.db.transaction(write=True) as session:
                session.execute(
                    update(User).where(User.id == user.id, User.password_hash == user.password_hash).values(**values)
                )

    def _sign(self, session: Session, user: User, now: datetime, restricted: bool) -> IssuedToken:
        roles = sorted(session.scalars(select(UserRole.role).where(UserRole.user_id == user.id)))
        ttl = self.platform.settings.token_ttl_seconds
        claims = {
            "iss": ISSUER,
            "sub": str(user.id),
            "jti": secrets.token_urlsafe(16),
            "name": user.username,
            "tenant": user.tenant_id,
            "roles": roles,
            "iat": now.timestamp(),
            "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        }
        token = jwt.encode(claims, self.platform.settings.secret_key, algorithm="HS256")
        return IssuedToken(token, ttl, restricted)

    def _decode(self, token: str) -> dict[str, Any]:
        """Signature, issuer, the claims we rely on, and expiry."""
        try:
            claims = jwt.decode(
                token,
                self.platform.settings.secret_key,
                algorithms=["HS256"],
                issuer=ISSUER,
                # expiry is checked against the injectable clock below, not PyJWT's wall clock
                options={
                    "require": ["exp", "iat", "jti", "sub", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if claims["exp"] <= self.platform.clock.now().timestamp():
            raise Unauthorized("token has expired")
        return claims

    @staticmethod
    def _revoke(session: Session, claims: dict[str, Any]) -> None:
        if session.get(RevokedToken, claims["jti"]) is None:
            expires_at = datetime.fromtimestamp(claims["exp"], UTC)
            session.add(RevokedToken(jti=claims["jti"], user_id=int(claims["sub"]), expires_at=expires_at))

    @staticmethod
    def _end_sessions(session: Session, user_id: int, now: datetime) -> None:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        user.tokens_valid_after = now


def load_principal(session: Session, user: User) -> Principal:
    """Everything a request needs to know about its user: roles where, groups, tenant scope."""
    grants = tuple(
        Grant(role, unit_id, path)
        for role, unit_id, path in session.execute(
            select(UserRole.role, UserRole.org_unit_id, OrgUnit.path)
            .outerjoin(OrgUnit, OrgUnit.id == UserRole.org_unit_id)
            .where(UserRole.user_id == user.id)
            .order_by(UserRole.role, UserRole.org_unit_id)
        )
    )
    roles = frozenset(g.role for g in grants)
    scope = frozenset(
        session.scalars(select(Tenant.id).where((Tenant.id == user.tenant_id) | (Tenant.parent_id == user.tenant_id)))
    )
    groups = frozenset(session.scalars(select(UserGroupMember.group_id).where(UserGroupMember.user_id == user.id)))
    supervising = sorted(g.org_path for g in grants if g.org_path and g.role in ROLES and ROLES[g.role].supervises)
    supervised = (
        frozenset(session.scalars(select(OrgUnit.id).where(or_(*(OrgUnit.path.startswith(p) for p in supervising)))))
        if supervising
        else frozenset()
    )
    return Principal(
        user.id,
        user.username,
        user.tenant_id,
        roles,
        scope,
        # an integration account holds a role for what it submits and reads: the human work of the
        # role (investigating, reviewing, approving a loan) stays with people
        permissions=permissions_of(roles) - ({TASKS_WORK} if user.is_service else set()),
        grants=grants,
        group_ids=groups,
        org_unit_id=user.org_unit_id,
        supervised_unit_ids=supervised,
        is_service=user.is_service,
    )
