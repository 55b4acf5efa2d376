"""Fixed-window rate limits kept in Redis, so they hold across app processes."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Limit:
    allowed: bool
    count: int
    retry_after: int


async def hit(redis: Redis, key: str, limit: int, window_seconds: int) -> Limit:
    """Count one attempt against ``key``; refuse when more than ``limit`` happened in the window."""
    full_key = f"ratelimit:{key}"
    async with redis.pipeline(transaction=True) as pipe:
        # SET NX starts the window; works on Redis 6.2 (embedded) where EXPIRE NX does not exist.
        pipe.set(full_key, 0, ex=window_seconds, nx=True)
        pipe.incr(full_key)
        pipe.ttl(full_key)
        _, count, ttl = await pipe.execute()
    return Limit(allowed=count <= limit, count=count, retry_after=max(int(ttl), 1))


async def enforce(redis: Redis, key: str, limit: int, window_seconds: int) -> None:
    """:func:`hit`, raising RateLimited (429 with Retry-After) when the limit is passed."""
    from backend.lib.errors import RateLimited

    found = await hit(redis, key, limit, window_seconds)
    if not found.allowed:
        raise RateLimited(retry_after=found.retry_after)


async def peek(redis: Redis, key: str, limit: int) -> Limit:
    """Look without counting (so a locked-out account is refused before its password is checked)."""
    full_key = f"ratelimit:{key}"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(full_key)
        pipe.ttl(full_key)
        raw, ttl = await pipe.execute()
    count = int(raw or 0)
    return Limit(allowed=count < limit, count=count, retry_after=max(int(ttl or 0), 1))


async def reset(redis: Redis, key: str) -> None:
    await redis.delete(f"ratelimit:{key}")
