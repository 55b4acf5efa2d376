"""The Redis client, made once per process."""

from __future__ import annotations

from redis.asyncio import Redis


def make_redis(url: str, db: int | None = None) -> Redis:
    kwargs = {"decode_responses": True, "health_check_interval": 30}
    if db is not None:
        kwargs["db"] = db
    return Redis.from_url(url, **kwargs)
