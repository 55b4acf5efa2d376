"""Server-side sessions in Redis.

A session is a Redis hash ``session:<id>`` holding who is signed in. The id is 256 random bits, new at
every sign-in (so a session id planted before sign-in is worthless). The key's TTL is the idle timeout,
renewed on each request but never past the absolute timeout. All of a user's sessions are listed in
``user-sessions:<user id>`` so that a role change or deactivation ends them at once.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

SESSION_COOKIE = "fc_session"


@dataclass(slots=True)
class SessionData:
    user_id: int
    name: str
    email: str
    role: str
    branch_id: int | None
    locale: str | None
    created_at: float


def _key(session_id: str) -> str:
    return f"session:{session_id}"


def _user_key(user_id: int) -> str:
    return f"user-sessions:{user_id}"


async def create(redis: Redis, data: SessionData, idle_seconds: int, absolute_seconds: int = 12 * 3600) -> str:
    session_id = secrets.token_urlsafe(32)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(_key(session_id), json.dumps(asdict(data)), ex=idle_seconds)
        pipe.sadd(_user_key(data.user_id), session_id)
        # The list outlives no session: each sign-in pushes its expiry to the longest possible life.
        pipe.expire(_user_key(data.user_id), absolute_seconds)
        await pipe.execute()
    return session_id


async def load(redis: Redis, session_id: str, idle_seconds: int, absolute_seconds: int) -> SessionData | None:
    """Return the session and slide its idle timeout; None when unknown, idle-expired or too old."""
    if not session_id or len(session_id) > 128:
        return None
    raw = await redis.get(_key(session_id))
    if raw is None:
        return None
    data = SessionData(**json.loads(raw))
    remaining = absolute_seconds - (time.time() - data.created_at)
    if remaining <= 0:
        await destroy(redis, session_id, data.user_id)
        return None
    await redis.expire(_key(session_id), int(min(idle_seconds, remaining)) or 1)
    return data


async def update(redis: Redis, session_id: str, **changes) -> None:
    raw = await redis.get(_key(session_id))
    if raw is None:
        return
    data = json.loads(raw) | changes
    await redis.set(_key(session_id), json.dumps(data), keepttl=True)


async def destroy(redis: Redis, session_id: str, user_id: int | None = None) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(_key(session_id))
        if user_id is not None:
            pipe.srem(_user_key(user_id), session_id)
        await pipe.execute()


async def destroy_all_for_user(redis: Redis, user_id: int) -> int:
    """End every live session of a user; returns how many were live."""
    ids = await redis.smembers(_user_key(user_id))
    if not ids:
        return 0
    live = await redis.exists(*[_key(i) for i in ids])
    await redis.delete(*[_key(i) for i in ids], _user_key(user_id))
    return live
