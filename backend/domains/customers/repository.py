from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Customer, TrackingLink


async def customer_by_id(session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.get(Customer, customer_id)


async def search(session: AsyncSession, *, branch_id: int | None, q: str | None, limit: int = 50) -> list[Customer]:
    query = select(Customer).order_by(Customer.created_at.desc()).limit(limit)
    if branch_id is not None:
        query = query.where(Customer.branch_id == branch_id)
    if q:
        like = f"%{q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(Customer.name.ilike(like), Customer.phone.ilike(like), Customer.email.ilike(like)))
    return list((await session.execute(query)).scalars())


async def live_link_by_hash(session: AsyncSession, token_hash: str, now: datetime) -> TrackingLink | None:
    result = await session.execute(
        select(TrackingLink).where(TrackingLink.token_hash == token_hash, TrackingLink.revoked_at.is_(None),
                                   TrackingLink.expires_at > now)
    )
    return result.scalar_one_or_none()
