"""Application-kept settings: the VAPID key pair for Web Push, health checks."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import SystemSetting

VAPID_KEY = "vapid"


def generate_vapid_pair() -> dict[str, str]:
    vapid = Vapid02()
    vapid.generate_keys()
    private_pem = vapid.private_pem().decode()
    public_raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "private_pem": private_pem,
        # The form browsers want for pushManager.subscribe({applicationServerKey}).
        "public_key": base64.urlsafe_b64encode(public_raw).rstrip(b"=").decode(),
    }


async def ensure_vapid_keys(session: AsyncSession, *, replace: bool = False) -> dict[str, str]:
    """Create the VAPID pair once; concurrent first starts agree on one pair (ON CONFLICT)."""
    pair = generate_vapid_pair()
    statement = insert(SystemSetting).values(key=VAPID_KEY, value=pair)
    if replace:
        statement = statement.on_conflict_do_update(index_elements=["key"], set_={"value": pair})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["key"])
    await session.execute(statement)
    stored = await session.execute(select(SystemSetting.value).where(SystemSetting.key == VAPID_KEY))
    return stored.scalar_one()


async def vapid_public_key(session: AsyncSession) -> str | None:
    stored = await session.execute(select(SystemSetting.value).where(SystemSetting.key == VAPID_KEY))
    value = stored.scalar_one_or_none()
    return value["public_key"] if value else None


async def readiness(session: AsyncSession, redis: Redis) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: this is the health endpoint
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    return checks
