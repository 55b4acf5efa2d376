"""Queries for the catalogue, capacity counters, vehicles and appointments.

The counter updates are the heart of "no overbooking": one statement that adds the minutes only where
they still fit and says (RETURNING) whether it did. Concurrent bookings queue on the row lock and each
re-checks the condition against the committed value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.customers.models import Customer

from .models import (
    BookingIdempotency,
    ServiceAppointment,
    ServiceAppointmentOperation,
    ServiceBay,
    ServiceDayCapacity,
    ServiceOperation,
    ServiceSettings,
    ServiceSlotCapacity,
    ServiceTechnician,
    ServiceVehicle,
)

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a bigger number is simply not one of ours

# -- catalogue and resources ---------------------------------------------------------------------


async def settings_for(session: AsyncSession, branch_id: int) -> ServiceSettings | None:
    return await session.get(ServiceSettings, branch_id)


async def active_operations(session: AsyncSession) -> list[ServiceOperation]:
    result = await session.execute(select(ServiceOperation).where(ServiceOperation.active)
                                   .order_by(ServiceOperation.position, ServiceOperation.code))
    return list(result.scalars())


async def operations_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, ServiceOperation]:
    if not codes:
        return {}
    result = await session.execute(select(ServiceOperation).where(ServiceOperation.code.in_(list(codes)),
                                                                  ServiceOperation.active))
    return {op.code: op for op in result.scalars()}


async def operation_by_id(session: AsyncSession, operation_id: int) -> ServiceOperation | None:
    return await session.get(ServiceOperation, operation_id)


async def technicians_of(session: AsyncSession, branch_id: int) -> list[ServiceTechnician]:
    result = await session.execute(select(ServiceTechnician).where(ServiceTechnician.branch_id == branch_id,
                                                                   ServiceTechnician.active)
                                   .order_by(ServiceTechnician.name))
    return list(result.scalars())


async def technician_for_staff(session: AsyncSession, staff_user_id: int) -> ServiceTechnician | None:
    result = await session.execute(select(ServiceTechnician).where(ServiceTechnician.staff_user_id == staff_user_id,
                                                                   ServiceTechnician.active))
    return result.scalar_one_or_none()


async def technician_by_id(session: AsyncSession, technician_id: int) -> ServiceTechnician | None:
    return await session.get(ServiceTechnician, technician_id) if 0 < technician_id <= MAX_ID else None


async def bay_count(session: AsyncSession, branch_id: int) -> int:
    result = await session.execute(select(func.count()).select_from(ServiceBay)
                                   .where(ServiceBay.branch_id == branch_id, ServiceBay.active))
    return int(result.scalar_one())


# -- capacity counters ----------------------------------------------------------------------------


async def day_counters(session: AsyncSession, branch_id: int, first: date, last: date) -> list[ServiceDayCapacity]:
    result = await session.execute(select(ServiceDayCapacity).where(
        ServiceDayCapacity.branch_id == branch_id, ServiceDayCapacity.day.between(first, last)))
    return list(result.scalars())


async def slot_counters(session: AsyncSession, branch_id: int, first: datetime,
                        last: datetime) -> list[ServiceSlotCapacity]:
    result = await session.execute(select(ServiceSlotCapacity).where(
        ServiceSlotCapacity.branch_id == branch_id, ServiceSlotCapacity.starts_at.between(first, last)))
    return list(result.scalars())


async def has_counters(session: AsyncSession, branch_id: int, day: date) -> bool:
    result = await session.execute(select(ServiceDayCapacity.day).where(
        ServiceDayCapacity.branch_id == branch_id, ServiceDayCapacity.day == day,
        ServiceDayCapacity.resource == "labour").limit(1))
    return result.first() is not None


async def ensure_day_counters(session: AsyncSession, branch_id: int,
                              rows: Iterable[tuple[date, str, int]], *, replan: bool = False) -> None:
    """Create missing counters (sorted, like every counter write). ``replan`` also moves the capacity of
    existing rows, never below what is already booked."""
    values = [{"branch_id": branch_id, "day": day, "resource": resource, "capacity": capacity, "booked": 0}
              for day, resource, capacity in sorted(rows)]
    if not values:
        return
    statement = insert(ServiceDayCapacity).values(values)
    if replan:
        statement = statement.on_conflict_do_update(
            index_elements=["branch_id", "day", "resource"],
            set_={"capacity": func.greatest(statement.excluded.capacity, ServiceDayCapacity.booked)})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["branch_id", "day", "resource"])
    await session.execute(statement)


async def ensure_slot_counters(session: AsyncSession, branch_id: int, rows: Iterable[tuple[datetime, int]],
                               *, replan: bool = False) -> None:
    values = [{"branch_id": branch_id, "starts_at": at, "capacity": capacity, "booked": 0}
              for at, capacity in sorted(rows)]
    if not values:
        return
    statement = insert(ServiceSlotCapacity).values(values)
    if replan:
        statement = statement.on_conflict_do_update(
            index_elements=["branch_id", "starts_at"],
            set_={"capacity": func.greatest(statement.excluded.capacity, ServiceSlotCapacity.booked)})
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["branch_id", "starts_at"])
    await session.execute(statement)


async def take_day_minutes(session: AsyncSession, branch_id: int, day: date, resource: str, minutes: int) -> bool:
    """Add ``minutes`` to the day's counter if they fit; False (nothing changed) if they do not."""
    result = await session.execute(
        update(ServiceDayCapacity)
        .where(ServiceDayCapacity.branch_id == branch_id, ServiceDayCapacity.day == day,
               ServiceDayCapacity.resource == resource,
               ServiceDayCapacity.booked + minutes <= ServiceDayCapacity.capacity)
        .values(booked=ServiceDayCapacity.booked + minutes)
        .returning(ServiceDayCapacity.booked)
    )
    return result.first() is not None


async def give_back_day_minutes(session: AsyncSession, branch_id: int, day: date, resource: str,
                                minutes: int) -> None:
    await session.execute(
        update(ServiceDayCapacity)
        .where(ServiceDayCapacity.branch_id == branch_id, ServiceDayCapacity.day == day,
               ServiceDayCapacity.resource == resource)
        .values(booked=func.greatest(ServiceDayCapacity.booked - minutes, 0))
    )


async def take_checkin(session: AsyncSession, branch_id: int, starts_at: datetime) -> bool:
    result = await session.execute(
        update(ServiceSlotCapacity)
        .where(ServiceSlotCapacity.branch_id == branch_id, ServiceSlotCapacity.starts_at == starts_at,
               ServiceSlotCapacity.booked < ServiceSlotCapacity.capacity)
        .values(booked=ServiceSlotCapacity.booked + 1)
        .returning(ServiceSlotCapacity.booked)
    )
    return result.first() is not None


async def give_back_checkin(session: AsyncSession, branch_id: int, starts_at: datetime) -> None:
    await session.execute(
        update(ServiceSlotCapacity)
        .where(ServiceSlotCapacity.branch_id == branch_id, ServiceSlotCapacity.starts_at == starts_at)
        .values(booked=func.greatest(ServiceSlotCapacity.booked - 1, 0))
    )


# -- customers and vehicles ----------------------------------------------------------------------


async def customer_by_phone(session: AsyncSession, branch_id: int, phone: str) -> Customer | None:
    result = await session.execute(select(Customer).where(Customer.branch_id == branch_id, Customer.phone == phone)
                                   .order_by(Customer.id).limit(1))
    return result.scalar_one_or_none()


async def vehicle_by_plate(session: AsyncSession, plate: str) -> ServiceVehicle | None:
    result = await session.execute(select(ServiceVehicle).where(ServiceVehicle.plate == plate))
    return result.scalar_one_or_none()


async def vehicle_by_vin(session: AsyncSession, vin: str) -> ServiceVehicle | None:
    result = await session.execute(select(ServiceVehicle).where(ServiceVehicle.vin == vin))
    return result.scalar_one_or_none()


async def add_vehicle(session: AsyncSession, *, plate: str | None, vin: str | None,
                      customer_id: int) -> ServiceVehicle:
    """A new car, or the one a concurrent booking has just added with the same plate or VIN (no error)."""
    statement = (insert(ServiceVehicle).values(plate=plate, vin=vin, customer_id=customer_id)
                 .on_conflict_do_nothing().returning(ServiceVehicle.id))
    new_id = (await session.execute(statement)).scalar_one_or_none()
    if new_id is not None:
        return await vehicle_by_id(session, new_id)
    return (await vehicle_by_vin(session, vin) if vin else None) or await vehicle_by_plate(session, plate)


async def vehicle_by_id(session: AsyncSession, vehicle_id: int, *, for_update: bool = False) -> ServiceVehicle | None:
    if not 0 < vehicle_id <= MAX_ID:
        return None
    query = select(ServiceVehicle).where(ServiceVehicle.id == vehicle_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def vehicles_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, ServiceVehicle]:
    ids = list(set(ids))
    if not ids:
        return {}
    result = await session.execute(select(ServiceVehicle).where(ServiceVehicle.id.in_(ids)))
    return {v.id: v for v in result.scalars()}


async def customers_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Customer]:
    ids = list(set(ids))
    if not ids:
        return {}
    result = await session.execute(select(Customer).where(Customer.id.in_(ids)))
    return {c.id: c for c in result.scalars()}


# -- appointments --------------------------------------------------------------------------------


async def appointment_by_id(session: AsyncSession, appointment_id: int, *,
                            for_update: bool = False) -> ServiceAppointment | None:
    if not 0 < appointment_id <= MAX_ID:
        return None
    query = select(ServiceAppointment).where(ServiceAppointment.id == appointment_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def appointment_operations(session: AsyncSession,
                                 appointment_ids: Iterable[int]) -> dict[int, list[ServiceAppointmentOperation]]:
    ids = list(set(appointment_ids))
    found: dict[int, list[ServiceAppointmentOperation]] = {i: [] for i in ids}
    if not ids:
        return found
    result = await session.execute(select(ServiceAppointmentOperation)
                                   .where(ServiceAppointmentOperation.appointment_id.in_(ids))
                                   .order_by(ServiceAppointmentOperation.id))
    for row in result.scalars():
        found[row.appointment_id].append(row)
    return found


async def appointments_on(session: AsyncSession, branch_id: int | None, day: date) -> list[ServiceAppointment]:
    query = select(ServiceAppointment).where(ServiceAppointment.day == day).order_by(ServiceAppointment.slot_start,
                                                                                  ServiceAppointment.id)
    if branch_id is not None:
        query = query.where(ServiceAppointment.branch_id == branch_id)
    return list((await session.execute(query)).scalars())


async def booked_minutes_by_day(session: AsyncSession, branch_id: int, first: date, last: date) -> dict[date, int]:
    """What the live appointments hold of labour, per day (for consistency checks and reports)."""
    result = await session.execute(
        select(ServiceAppointment.day, func.sum(ServiceAppointment.resources["labour"].as_integer()))
        .where(ServiceAppointment.branch_id == branch_id, ServiceAppointment.day.between(first, last),
               ServiceAppointment.status.in_(("booked", "confirmed", "checked_in", "no_show")))
        .group_by(ServiceAppointment.day))
    return {day: int(total or 0) for day, total in result.all()}


# -- idempotency ---------------------------------------------------------------------------------


async def claim_idempotency_key(session: AsyncSession, scope: str, key_hash: str, request_hash: str) -> int | None:
    """Take the key for this transaction; None when another (committed) request already holds it.

    A concurrent request with the same key waits here until the first one commits or rolls back."""
    statement = (insert(BookingIdempotency)
                 .values(scope=scope, key_hash=key_hash, request_hash=request_hash, status_code=0, response=b"")
                 .on_conflict_do_nothing(index_elements=["scope", "key_hash"])
                 .returning(BookingIdempotency.id))
    return (await session.execute(statement)).scalar_one_or_none()


async def idempotency_record(session: AsyncSession, scope: str, key_hash: str) -> BookingIdempotency | None:
    result = await session.execute(select(BookingIdempotency).where(
        and_(BookingIdempotency.scope == scope, BookingIdempotency.key_hash == key_hash)))
    return result.scalar_one_or_none()


async def store_idempotent_answer(session: AsyncSession, record_id: int, status_code: int, response: bytes) -> None:
    await session.execute(update(BookingIdempotency).where(BookingIdempotency.id == record_id)
                          .values(status_code=status_code, response=response))


async def prune_idempotency(session: AsyncSession, older_than: datetime) -> int:
    """Forget answers to ``Idempotency-Key``s older than the retention window (no phone retries that late)."""
    result = await session.execute(delete(BookingIdempotency).where(BookingIdempotency.created_at < older_than))
    return result.rowcount or 0
