"""Queries for repair orders. Status changes lock the order's row (``FOR UPDATE``) so that two people
moving it at once are served one after the other, and the second sees the first's change."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .models import (
    RepairOrder,
    RepairOrderClock,
    RepairOrderCounter,
    RepairOrderEvent,
    RepairOrderFinding,
    RepairOrderLabour,
    RepairOrderPart,
    RepairOrderPhoto,
)
from .rules import ACTIVE, Decision

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a bigger number is simply not one of ours


def _plausible(record_id: int) -> bool:
    return 0 < record_id <= MAX_ID


async def next_number(session: AsyncSession, branch_id: int) -> int:
    statement = (insert(RepairOrderCounter).values(branch_id=branch_id, last=1)
                 .on_conflict_do_update(index_elements=["branch_id"],
                                        set_={"last": RepairOrderCounter.last + 1})
                 .returning(RepairOrderCounter.last))
    return int((await session.execute(statement)).scalar_one())


async def order_by_id(session: AsyncSession, order_id: int, *, for_update: bool = False) -> RepairOrder | None:
    if not _plausible(order_id):
        return None
    query = select(RepairOrder).where(RepairOrder.id == order_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def order_by_number(session: AsyncSession, number: str) -> RepairOrder | None:
    return (await session.execute(select(RepairOrder).where(RepairOrder.number == number))).scalar_one_or_none()


async def order_for_appointment(session: AsyncSession, appointment_id: int) -> RepairOrder | None:
    result = await session.execute(select(RepairOrder).where(RepairOrder.appointment_id == appointment_id))
    return result.scalar_one_or_none()


async def active_orders(session: AsyncSession, branch_id: int | None) -> list[RepairOrder]:
    query = (select(RepairOrder).where(RepairOrder.status.in_([s.value for s in ACTIVE]))
             .order_by(RepairOrder.promised_at.nulls_last(), RepairOrder.id))
    if branch_id is not None:
        query = query.where(RepairOrder.branch_id == branch_id)
    return list((await session.execute(query)).scalars())


async def events_of(session: AsyncSession, order_id: int) -> list[RepairOrderEvent]:
    result = await session.execute(select(RepairOrderEvent).where(RepairOrderEvent.repair_order_id == order_id)
                                   .order_by(RepairOrderEvent.at, RepairOrderEvent.id))
    return list(result.scalars())


async def labour_of(session: AsyncSession, order_ids: Iterable[int]) -> list[RepairOrderLabour]:
    ids = list(set(order_ids))
    if not ids:
        return []
    result = await session.execute(select(RepairOrderLabour).where(RepairOrderLabour.repair_order_id.in_(ids))
                                   .order_by(RepairOrderLabour.id))
    return list(result.scalars())


async def parts_of(session: AsyncSession, order_id: int) -> list[RepairOrderPart]:
    result = await session.execute(select(RepairOrderPart).where(RepairOrderPart.repair_order_id == order_id)
                                   .order_by(RepairOrderPart.id))
    return list(result.scalars())


async def findings_of(session: AsyncSession, order_id: int) -> list[RepairOrderFinding]:
    result = await session.execute(select(RepairOrderFinding).where(RepairOrderFinding.repair_order_id == order_id)
                                   .order_by(RepairOrderFinding.id))
    return list(result.scalars())


async def photos_of(session: AsyncSession, order_id: int) -> list[RepairOrderPhoto]:
    result = await session.execute(select(RepairOrderPhoto).where(RepairOrderPhoto.repair_order_id == order_id)
                                   .order_by(RepairOrderPhoto.id))
    return list(result.scalars())


async def photo_by_key(session: AsyncSession, key: str) -> RepairOrderPhoto | None:
    return (await session.execute(select(RepairOrderPhoto).where(RepairOrderPhoto.file_key == key))
            ).scalar_one_or_none()


async def pending_count(session: AsyncSession, order_id: int) -> int:
    result = await session.execute(select(func.count()).select_from(RepairOrderFinding).where(
        RepairOrderFinding.repair_order_id == order_id, RepairOrderFinding.decision == Decision.PENDING))
    return int(result.scalar_one())


async def decide(session: AsyncSession, order_id: int, finding_id: int, decision: str, at: datetime,
                 by: str) -> RepairOrderFinding | None:
    """Record an answer only if the item is still waiting for one (None: already answered or unknown)."""
    if not _plausible(finding_id):
        return None
    result = await session.execute(
        update(RepairOrderFinding)
        .where(RepairOrderFinding.id == finding_id, RepairOrderFinding.repair_order_id == order_id,
               RepairOrderFinding.decision == Decision.PENDING)
        .values(decision=decision, decided_at=at, decided_by=by)
        .returning(RepairOrderFinding)
    )
    return result.scalar_one_or_none()


async def labour_line(session: AsyncSession, line_id: int, *, for_update: bool = False) -> RepairOrderLabour | None:
    if not _plausible(line_id):
        return None
    query = select(RepairOrderLabour).where(RepairOrderLabour.id == line_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def running_clock(session: AsyncSession, technician_id: int) -> RepairOrderClock | None:
    result = await session.execute(select(RepairOrderClock).where(RepairOrderClock.technician_id == technician_id,
                                                                  RepairOrderClock.stopped_at.is_(None)))
    return result.scalar_one_or_none()


async def stop_clock(session: AsyncSession, technician_id: int, at: datetime) -> RepairOrderClock | None:
    result = await session.execute(
        update(RepairOrderClock)
        .where(RepairOrderClock.technician_id == technician_id, RepairOrderClock.stopped_at.is_(None))
        .values(stopped_at=func.greatest(RepairOrderClock.started_at, at))
        .returning(RepairOrderClock)
    )
    return result.scalar_one_or_none()


async def running_clocks_on(session: AsyncSession, order_id: int) -> list[RepairOrderClock]:
    result = await session.execute(
        select(RepairOrderClock).join(RepairOrderLabour, RepairOrderLabour.id == RepairOrderClock.labour_id)
        .where(RepairOrderLabour.repair_order_id == order_id, RepairOrderClock.stopped_at.is_(None)))
    return list(result.scalars())


async def running_clocks_for_lines(session: AsyncSession, line_ids: Iterable[int]) -> dict[int, RepairOrderClock]:
    ids = list(set(line_ids))
    if not ids:
        return {}
    result = await session.execute(select(RepairOrderClock).where(RepairOrderClock.labour_id.in_(ids),
                                                                  RepairOrderClock.stopped_at.is_(None)))
    return {c.labour_id: c for c in result.scalars()}


async def orders_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, RepairOrder]:
    ids = list(set(ids))
    if not ids:
        return {}
    result = await session.execute(select(RepairOrder).where(RepairOrder.id.in_(ids)))
    return {o.id: o for o in result.scalars()}


async def jobs_for(session: AsyncSession, branch_id: int, technician_id: int) -> list[RepairOrderLabour]:
    """A technician's work: lines given to them, and unassigned ones they could take, on active orders."""
    result = await session.execute(
        select(RepairOrderLabour).join(RepairOrder, RepairOrder.id == RepairOrderLabour.repair_order_id)
        .where(RepairOrder.branch_id == branch_id, RepairOrder.status.in_([s.value for s in ACTIVE]),
               (RepairOrderLabour.technician_id == technician_id) | RepairOrderLabour.technician_id.is_(None))
        .order_by(RepairOrder.promised_at.nulls_last(), RepairOrder.id, RepairOrderLabour.id))
    return list(result.scalars())
