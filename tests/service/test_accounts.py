"""Account use cases against the real PostgreSQL (rolled back) and Redis (flushed)."""

import asyncio
import time

import pytest
from sqlalchemy import select

from backend.domains.accounts.service import AccountService, InvalidCredentials
from backend.domains.audit.models import AuditEntry
from backend.lib import sessions
from backend.lib.errors import Conflict, Invalid, NotFound, RateLimited
from tests.factories import PASSWORD, as_principal, make_branch, make_user


async def audit_actions(session, entity_id):
    rows = await session.execute(select(AuditEntry.action).where(AuditEntry.entity_id == str(entity_id))
                                 .order_by(AuditEntry.id))
    return list(rows.scalars())


async def test_sign_in_opens_a_new_session_each_time(session, redis):
    user = await make_user(session, redis, email="Li.Na@Example.test")
    accounts = AccountService(session, redis)
    principal, first = await accounts.sign_in("li.na@example.test", PASSWORD, "198.51.100.1")
    _, second = await accounts.sign_in("LI.NA@example.test ", PASSWORD, "198.51.100.1")
    assert first != second and len(first) >= 43  # 256 random bits, url-safe
    assert principal.id == user.id and principal.role == "sales" and principal.branch_id == user.branch_id
    assert (await accounts.principal_from_session(first)).id == user.id
    assert "sign_in" in await audit_actions(session, user.id)


async def test_unknown_email_and_wrong_password_answer_the_same(session, redis):
    await make_user(session, redis, email="known@example.test")
    accounts = AccountService(session, redis)
    with pytest.raises(InvalidCredentials) as wrong_password:
        await accounts.sign_in("known@example.test", "not-the-password", "198.51.100.2")
    with pytest.raises(InvalidCredentials) as unknown:
        await accounts.sign_in("nobody@example.test", "not-the-password", "198.51.100.2")
    assert wrong_password.value.message == unknown.value.message


async def test_inactive_accounts_cannot_sign_in(session, redis):
    user = await make_user(session, redis)
    user.is_active = False
    with pytest.raises(InvalidCredentials):
        await AccountService(session, redis).sign_in(user.email, PASSWORD, "198.51.100.3")


async def test_sign_in_is_limited_per_account_even_with_the_right_password(session, redis, settings):
    user = await make_user(session, redis)
    accounts = AccountService(session, redis)
    for _ in range(settings.signin_max_per_account):
        with pytest.raises(InvalidCredentials):
            await accounts.sign_in(user.email, "wrong-password", "198.51.100.4")
    with pytest.raises(RateLimited) as limited:
        await accounts.sign_in(user.email, PASSWORD, "198.51.100.5")
    assert limited.value.extra["retry_after"] > 0


async def test_sign_in_is_limited_per_ip_across_accounts(session, redis, settings):
    accounts = AccountService(session, redis)
    for n in range(settings.signin_max_per_ip):
        with pytest.raises(InvalidCredentials):
            await accounts.sign_in(f"guess{n}@example.test", "wrong-password", "198.51.100.6")
    user = await make_user(session, redis)
    with pytest.raises(RateLimited):
        await accounts.sign_in(user.email, PASSWORD, "198.51.100.6")
    # Another address is not affected.
    principal, _ = await accounts.sign_in(user.email, PASSWORD, "198.51.100.7")
    assert principal.id == user.id


async def test_session_idle_and_absolute_timeouts(session, redis, settings):
    user = await make_user(session, redis)
    accounts = AccountService(session, redis)
    _, session_id = await accounts.sign_in(user.email, PASSWORD, "198.51.100.8")
    ttl = await redis.ttl(f"session:{session_id}")
    assert 0 < ttl <= settings.session_idle_minutes * 60

    # Idle: the key expires in Redis.
    await redis.pexpire(f"session:{session_id}", 1)
    await asyncio.sleep(0.05)
    assert await accounts.principal_from_session(session_id) is None

    # Absolute: a session older than 12 h is refused even while it is being used.
    _, old_id = await accounts.sign_in(user.email, PASSWORD, "198.51.100.8")
    await sessions.update(redis, old_id, created_at=time.time() - settings.session_absolute_hours * 3600 - 1)
    assert await accounts.principal_from_session(old_id) is None
    assert await redis.exists(f"session:{old_id}") == 0


async def test_sign_out_ends_the_session(session, redis):
    user = await make_user(session, redis)
    accounts = AccountService(session, redis)
    principal, session_id = await accounts.sign_in(user.email, PASSWORD, "198.51.100.9")
    await accounts.sign_out(principal)
    assert await accounts.principal_from_session(session_id) is None
    assert "sign_out" in await audit_actions(session, user.id)


async def test_ending_all_of_a_users_sessions(session, redis):
    user = await make_user(session, redis)
    accounts = AccountService(session, redis)
    ids = [(await accounts.sign_in(user.email, PASSWORD, "198.51.100.10"))[1] for _ in range(3)]
    assert await sessions.destroy_all_for_user(redis, user.id) == 3
    for session_id in ids:
        assert await accounts.principal_from_session(session_id) is None


async def test_language_choice_is_kept_on_the_account_and_audited(session, redis):
    user = await make_user(session, redis, locale="en")
    accounts = AccountService(session, redis)
    principal, session_id = await accounts.sign_in(user.email, PASSWORD, "198.51.100.11")
    assert await accounts.set_language(principal, "zh-CN") == "zh_CN"
    assert user.locale == "zh_CN"
    assert (await accounts.principal_from_session(session_id)).locale == "zh_CN"
    entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "update"))).scalar_one()
    assert entry.before == {"locale": "en"} and entry.after == {"locale": "zh_CN"}
    with pytest.raises(Invalid):
        await accounts.set_language(principal, "fr")


async def test_create_user_validates_and_refuses_duplicates(session, redis):
    branch = await make_branch(session)
    accounts = AccountService(session, redis)
    with pytest.raises(Invalid) as invalid:
        await accounts.create_user(email="nope", name="", role="janitor", password="short", branch_code="ZZZZ")
    assert set(invalid.value.fields) == {"email", "name", "role", "password", "branch"}
    with pytest.raises(Invalid) as no_branch:
        await accounts.create_user(email="a@example.test", name="A", role="sales", password=PASSWORD,
                                   branch_code=None)
    assert "branch" in no_branch.value.fields

    await accounts.create_user(email="dup@example.test", name="A", role="sales", password=PASSWORD,
                               branch_code=branch.code)
    with pytest.raises(Conflict):
        await accounts.create_user(email="DUP@example.test", name="B", role="sales", password=PASSWORD,
                                   branch_code=branch.code)
    # The failed insert did not spoil the transaction.
    user = await accounts.create_user(email="other@example.test", name="C", role="manager", password=PASSWORD,
                                      branch_code=None)
    assert user.id is not None and user.password_hash.startswith("$argon2id$")


async def test_api_keys_store_only_a_hash_and_can_be_revoked(session, redis):
    admin = as_principal(await make_user(session, redis, role="admin"))
    accounts = AccountService(session, redis)
    key, secret = await accounts.create_api_key(admin, name="DMS bridge", role="sales", branch_id=None)
    assert secret.startswith("fc_") and secret not in key.key_hash and key.prefix == secret[:10]
    caller = await accounts.principal_from_api_key(secret)
    assert caller.kind == "api_key" and caller.role == "sales" and caller.name == "DMS bridge"
    assert await accounts.principal_from_api_key(secret + "x") is None
    assert await accounts.principal_from_api_key("not-a-key") is None
    await accounts.revoke_api_key(admin, key.id)
    assert await accounts.principal_from_api_key(secret) is None
    assert await audit_actions(session, key.id) == ["create", "revoke"]
    with pytest.raises(NotFound):
        await accounts.revoke_api_key(admin, 987654)
    with pytest.raises(Invalid) as invalid:
        await accounts.create_api_key(admin, name=" ", role="owner", branch_id=987654)
    assert set(invalid.value.fields) == {"name", "role", "branch_id"}
