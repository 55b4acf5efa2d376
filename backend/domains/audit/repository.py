from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import AuditEntry


async def recent(session: AsyncSession, *, branch_id: int | None, limit: int, before_id: int | None):
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if branch_id is not None:
        query = query.where(AuditEntry.branch_id == branch_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list((await session.execute(query)).scalars())
