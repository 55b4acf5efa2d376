from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.service_booking.models import ServiceAppointment
from backend.domains.service_booking.rules import AppointmentStatus
from backend.domains.test_drives.models import TestDrive
from backend.domains.test_drives.rules import UPCOMING

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


async def branch_for_update(session: AsyncSession, branch_id: int) -> Branch | None:
    """The branch row, locked until the transaction ends: two managers saving at once take turns, and each
    sees the other's week as "before"."""
    query = select(Branch).where(Branch.id == branch_id).with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def holidays_of(session: AsyncSession, branch_id: int) -> list[BranchHoliday]:
    result = await session.execute(select(BranchHoliday).where(BranchHoliday.branch_id == branch_id)
                                   .order_by(BranchHoliday.day))
    return list(result.scalars())


async def add_holiday(session: AsyncSession, branch_id: int, day: date, name: str) -> BranchHoliday | None:
    """Insert a holiday; None when the branch has one on that day already (the primary key decides, so two
    people adding the same day at once get one row and one refusal)."""
    inserted = await session.execute(
        insert(BranchHoliday).values(branch_id=branch_id, day=day, name=name)
        .on_conflict_do_nothing(index_elements=["branch_id", "day"]).returning(BranchHoliday.day))
    if inserted.scalar_one_or_none() is None:
        return None
    return BranchHoliday(branch_id=branch_id, day=day, name=name)


async def remove_holiday(session: AsyncSession, branch_id: int, day: date) -> BranchHoliday | None:
    removed = await session.execute(
        delete(BranchHoliday).where(BranchHoliday.branch_id == branch_id, BranchHoliday.day == day)
        .returning(BranchHoliday.name))
    name = removed.scalar_one_or_none()
    return None if name is None else BranchHoliday(branch_id=branch_id, day=day, name=name)


async def booked_test_drives_between(session: AsyncSession, branch_id: int, first: datetime, last: datetime) -> int:
    """Test drives still to happen (booked or confirmed) that start in [first, last)."""
    result = await session.execute(select(func.count()).select_from(TestDrive).where(
        TestDrive.branch_id == branch_id, TestDrive.status.in_([s.value for s in UPCOMING]),
        TestDrive.starts_at >= first, TestDrive.starts_at < last))
    return result.scalar_one()


async def booked_service_appointments_on(session: AsyncSession, branch_id: int, day: date) -> int:
    """Service appointments still to happen (booked or confirmed) on a local day."""
    result = await session.execute(select(func.count()).select_from(ServiceAppointment).where(
        ServiceAppointment.branch_id == branch_id, ServiceAppointment.day == day,
        ServiceAppointment.status.in_([AppointmentStatus.BOOKED.value, AppointmentStatus.CONFIRMED.value])))
    return result.scalar_one()
