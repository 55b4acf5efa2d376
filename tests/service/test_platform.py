"""Branch scoping, the dashboard, VAPID keys, readiness and the rate limiter."""

import asyncio

from backend.domains.dashboard.service import dashboard_for
from backend.domains.system import service as system
from backend.lib import ratelimit
from backend.seed import seed_demo
from tests.factories import as_principal, make_branch, make_user


async def test_dashboard_is_scoped_to_the_users_branch(session, redis):
    mine, other = await make_branch(session), await make_branch(session)
    sales = as_principal(await make_user(session, redis, role="sales", branch=mine))
    admin = as_principal(await make_user(session, redis, role="admin"))
    branch_manager = as_principal(await make_user(session, redis, role="manager", branch=other))

    assert [s.branch.id for s in (await dashboard_for(session, sales)).branches] == [mine.id]
    assert [s.branch.id for s in (await dashboard_for(session, branch_manager)).branches] == [other.id]
    seen_by_admin = {s.branch.id for s in (await dashboard_for(session, admin)).branches}
    assert {mine.id, other.id} <= seen_by_admin


async def test_vapid_keys_are_made_once(session):
    first = await system.ensure_vapid_keys(session)
    again = await system.ensure_vapid_keys(session)
    assert first == again
    assert len(first["public_key"]) == 87  # 65-byte uncompressed P-256 point, base64url without padding
    assert await system.vapid_public_key(session) == first["public_key"]
    rotated = await system.ensure_vapid_keys(session, replace=True)
    assert rotated["public_key"] != first["public_key"]


async def test_readiness_reports_both_servers(session, redis):
    assert await system.readiness(session, redis) == {"database": "ok", "redis": "ok"}


async def test_rate_limit_counts_atomically_under_concurrency(redis):
    results = await asyncio.gather(*[ratelimit.hit(redis, "burst", 10, 60) for _ in range(50)])
    assert sum(r.allowed for r in results) == 10
    assert sorted(r.count for r in results) == list(range(1, 51))


async def test_demo_seed_only_fills_an_empty_database(session, redis):
    from backend.domains.accounts import repository

    if await repository.count_users(session) == 0:
        assert await seed_demo(session, redis) is True
    assert await seed_demo(session, redis) is False
    assert await repository.user_by_email(session, "sales@forecourt.test") is not None
