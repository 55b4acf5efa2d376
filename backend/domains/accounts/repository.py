"""Queries about staff users and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import ApiKey, StaffUser


async def user_by_email(session: AsyncSession, email: str) -> StaffUser | None:
    result = await session.execute(select(StaffUser).where(func.lower(StaffUser.email) == email.lower()))
    return result.scalar_one_or_none()


async def user_by_id(session: AsyncSession, user_id: int) -> StaffUser | None:
    return await session.get(StaffUser, user_id)


async def count_users(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(StaffUser))).scalar_one()


async def active_api_key_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return result.scalar_one_or_none()


async def touch_api_key(session: AsyncSession, key_id: int, at: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    result = await session.execute(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc()))
    return list(result.scalars())


async def api_key_by_id(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)
