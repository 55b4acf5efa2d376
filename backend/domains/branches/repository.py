from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .models import Branch, BranchHoliday, DealerGroup


async def branch_by_id(session: AsyncSession, branch_id: int) -> Branch | None:
    return await session.get(Branch, branch_id)


async def branch_by_code(session: AsyncSession, code: str) -> Branch | None:
    result = await session.execute(select(Branch).where(Branch.code == code.upper()))
    return result.scalar_one_or_none()


async def list_branches(session: AsyncSession, only_id: int | None = None) -> list[Branch]:
    query = select(Branch).order_by(Branch.name)
    if only_id is not None:
        query = query.where(Branch.id == only_id)
    return list((await session.execute(query)).scalars())


async def first_group(session: AsyncSession) -> DealerGroup | None:
    return (await session.execute(select(DealerGroup).order_by(DealerGroup.id).limit(1))).scalar_one_or_none()


async def holidays_between(session: AsyncSession, branch_id: int, first: date, last: date) -> set[date]:
    result = await session.execute(select(BranchHoliday.day).where(BranchHoliday.branch_id == branch_id,
                                                                   BranchHoliday.day.between(first, last)))
    return set(result.scalars())
