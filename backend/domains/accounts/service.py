"""Use cases for staff accounts: sign-in, sign-out, language, users, API keys.

Speaks in plain values and domain errors; the request boundary commits.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.audit import service as audit
from backend.domains.branches import repository as branches
from backend.lib import ratelimit, sessions
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Invalid, NotFound, RateLimited
from backend.lib.i18n import LOCALES, normalize
from backend.lib.i18n import gettext as _
from backend.lib.settings import Settings, get_settings

from . import repository, rules
from .guards import Principal
from .models import ApiKey, StaffUser
from .passwords import hash_password, needs_rehash, verify_password

API_KEY_PREFIX = "fc_"


class InvalidCredentials(Invalid):
    code = "invalid_credentials"


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def principal_for(user: StaffUser, session_id: str | None = None) -> Principal:
    return Principal(id=user.id, kind="staff", name=user.name, email=user.email, role=user.role,
                     branch_id=user.branch_id, locale=user.locale, session_id=session_id)


class AccountService:
    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings | None = None) -> None:
        self.session = session
        self.redis = redis
        self.settings = settings or get_settings()

    # -- sign-in ----------------------------------------------------------------------------

    async def sign_in(self, email: str, password: str, ip: str) -> tuple[Principal, str]:
        """Check the password and open a new session; the same answer for unknown e-mail and bad password."""
        email = rules.normalize_email(email)
        s = self.settings
        account_key, ip_key = f"signin:account:{email}", f"signin:ip:{ip}"
        for key, limit in ((account_key, s.signin_max_per_account), (ip_key, s.signin_max_per_ip)):
            state = await ratelimit.peek(self.redis, key, limit)
            if not state.allowed:
                raise RateLimited(
                    _("Too many sign-in attempts. Please try again in %(minutes)s minutes.",
                      minutes=max(1, round(state.retry_after / 60))),
                    retry_after=state.retry_after,
                )

        user = await repository.user_by_email(self.session, email)
        ok = await verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            await ratelimit.hit(self.redis, account_key, s.signin_max_per_account, s.signin_window_seconds)
            await ratelimit.hit(self.redis, ip_key, s.signin_max_per_ip, s.signin_window_seconds)
            raise InvalidCredentials(_("That e-mail and password do not match an account."))

        await ratelimit.reset(self.redis, account_key)
        if needs_rehash(user.password_hash):
            user.password_hash = await hash_password(password)
        user.last_sign_in_at = utcnow()
        session_id = await sessions.create(
            self.redis,
            sessions.SessionData(user_id=user.id, name=user.name, email=user.email, role=user.role,
                                 branch_id=user.branch_id, locale=user.locale, created_at=time.time()),
            idle_seconds=s.session_idle_minutes * 60, absolute_seconds=s.session_absolute_hours * 3600,
        )
        principal = principal_for(user, session_id)
        await audit.record_by(self.session, principal, action="sign_in", entity="staff_user",
                              entity_id=user.id, branch_id=user.branch_id)
        return principal, session_id

    async def sign_out(self, principal: Principal) -> None:
        if principal.session_id:
            await sessions.destroy(self.redis, principal.session_id, principal.id)
            await audit.record_by(self.session, principal, action="sign_out", entity="staff_user",
                                  entity_id=principal.id, branch_id=principal.branch_id)

    async def principal_from_session(self, session_id: str) -> Principal | None:
        s = self.settings
        data = await sessions.load(self.redis, session_id, s.session_idle_minutes * 60,
                                   s.session_absolute_hours * 3600)
        if data is None:
            return None
        return Principal(id=data.user_id, kind="staff", name=data.name, email=data.email, role=data.role,
                         branch_id=data.branch_id, locale=data.locale, session_id=session_id)

    # -- preferences ------------------------------------------------------------------------

    async def set_language(self, principal: Principal | None, locale: str) -> str:
        """Remember a language choice; for staff it follows them to every device."""
        chosen = normalize(locale)
        if chosen not in LOCALES:
            raise Invalid(fields={"lang": _("Unknown language.")})
        if principal is not None and principal.kind == "staff":
            user = await repository.user_by_id(self.session, principal.id)
            if user is not None and user.locale != chosen:
                before = user.locale
                user.locale = chosen
                await audit.record_by(self.session, principal, action="update", entity="staff_user",
                                      entity_id=user.id, branch_id=user.branch_id,
                                      before={"locale": before}, after={"locale": chosen})
            if principal.session_id:
                await sessions.update(self.redis, principal.session_id, locale=chosen)
        return chosen

    # -- users ------------------------------------------------------------------------------

    async def create_user(
        self, *, email: str, name: str, role: str, password: str, branch_code: str | None,
        actor: Principal | None = None, locale: str | None = None,
    ) -> StaffUser:
        fields: dict[str, str] = {}
        if role not in {r.value for r in rules.StaffRole}:
            fields["role"] = _("Unknown role.")
        problem = rules.password_problem(password)
        if problem == "too_short":
            fields["password"] = _("Use at least %(n)s characters.", n=rules.PASSWORD_MIN_LENGTH)
        elif problem:
            fields["password"] = _("That password cannot be used.")
        if not name.strip():
            fields["name"] = _("This field is required.")
        if "@" not in email or len(email) > 254:
            fields["email"] = _("Enter a valid e-mail address.")
        branch = None
        if branch_code:
            branch = await branches.branch_by_code(self.session, branch_code)
            if branch is None:
                fields["branch"] = _("Unknown branch.")
        elif rules.needs_branch(role):
            fields["branch"] = _("This role works at a branch: choose one.")
        if fields:
            raise Invalid(fields=fields)
        user = StaffUser(email=rules.normalize_email(email), name=name.strip(), role=role,
                         branch_id=branch.id if branch else None, locale=normalize(locale),
                         password_hash=await hash_password(password))
        try:
            # A savepoint: a duplicate e-mail must not spoil the caller's transaction.
            async with self.session.begin_nested():
                self.session.add(user)
                await self.session.flush()
        except IntegrityError as exc:
            raise Conflict(_("An account with that e-mail already exists."),
                           fields={"email": _("An account with that e-mail already exists.")}) from exc
        await audit.record_by(self.session, actor, action="create", entity="staff_user", entity_id=user.id,
                              branch_id=user.branch_id,
                              after={"email": user.email, "name": user.name, "role": user.role})
        return user

    # -- API keys ---------------------------------------------------------------------------

    async def create_api_key(self, actor: Principal, *, name: str, role: str,
                             branch_id: int | None) -> tuple[ApiKey, str]:
        """Make a key; the secret is returned once and only its hash is kept."""
        fields = {}
        if not name.strip() or len(name) > 120:
            fields["name"] = _("Give the key a name of at most 120 characters.")
        if role not in {r.value for r in rules.StaffRole}:
            fields["role"] = _("Unknown role.")
        if branch_id is not None and await branches.branch_by_id(self.session, branch_id) is None:
            fields["branch_id"] = _("Unknown branch.")
        if fields:
            raise Invalid(fields=fields)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(name=name.strip(), prefix=secret[:10], key_hash=_hash_key(secret), role=role,
                     branch_id=branch_id, created_by_id=actor.id if actor.kind == "staff" else None)
        self.session.add(key)
        await self.session.flush()
        await audit.record_by(self.session, actor, action="create", entity="api_key", entity_id=key.id,
                              branch_id=branch_id, after={"name": key.name, "role": role, "prefix": key.prefix})
        return key, secret

    async def revoke_api_key(self, actor: Principal, key_id: int) -> ApiKey:
        key = await repository.api_key_by_id(self.session, key_id)
        if key is None:
            raise NotFound()
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await audit.record_by(self.session, actor, action="revoke", entity="api_key", entity_id=key.id,
                                  branch_id=key.branch_id, before={"revoked": False}, after={"revoked": True})
        return key

    async def list_api_keys(self) -> list[ApiKey]:
        return await repository.list_api_keys(self.session)

    async def principal_from_api_key(self, token: str) -> Principal | None:
        if not token.startswith(API_KEY_PREFIX) or len(token) > 100:
            return None
        key = await repository.active_api_key_by_hash(self.session, _hash_key(token))
        if key is None:
            return None
        await repository.touch_api_key(self.session, key.id, utcnow())
        return Principal(id=key.id, kind="api_key", name=key.name, role=key.role, branch_id=key.branch_id)
