"""Queries for test drives: the cars that may be driven, salespeople and their hours, the drives that keep
cars and people busy, and the lead.

Nothing here decides a race: the exclusion constraints on ``test_drive`` do (see ``models``). The busy
intervals read here are only used to *offer* slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.accounts.rules import StaffRole
from backend.domains.customers.models import Customer
from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import VehicleStatus

from .models import Lead, SalespersonHours, TestDrive, TestDriveCar, TestDriveModelLength, TestDriveSettings
from .rules import ACTIVE, CLOSED_LEAD

MAX_ID = 2**31 - 1  # ids are PostgreSQL integers: a bigger number is simply not one of ours
OPEN_LEAD_SQL = "stage NOT IN ('delivered', 'lost')"  # the predicate of uq_lead_open_per_customer


# -- settings, cars, salespeople ---------------------------------------------------------------------


async def settings_for(session: AsyncSession, branch_id: int) -> TestDriveSettings | None:
    return await session.get(TestDriveSettings, branch_id)


async def drive_minutes_for(session: AsyncSession, branch_id: int, make: str, model: str) -> int | None:
    """The model's own drive length at the branch, or None (the branch's default applies)."""
    row = await session.get(TestDriveModelLength, (branch_id, make, model))
    return row.drive_minutes if row else None


async def model_lengths(session: AsyncSession, branch_id: int | None = None) -> dict[tuple[int, str, str], int]:
    """{(branch id, make, model): minutes}, of one branch or of every branch."""
    query = select(TestDriveModelLength)
    if branch_id is not None:
        query = query.where(TestDriveModelLength.branch_id == branch_id)
    rows = (await session.execute(query)).scalars()
    return {(r.branch_id, r.make, r.model): r.drive_minutes for r in rows}


def _drivable():
    """Demonstrators, and cars in stock that a manager marked drivable."""
    return or_(Vehicle.status == VehicleStatus.DEMO,
               and_(Vehicle.status == VehicleStatus.IN_STOCK, TestDriveCar.vehicle_id.is_not(None)))


async def vehicle_by_id(session: AsyncSession, vehicle_id: int) -> tuple[Vehicle, bool] | None:
    """The car and whether a manager marked it drivable, or None."""
    if not 0 < vehicle_id <= MAX_ID:
        return None
    row = (await session.execute(
        select(Vehicle, TestDriveCar.vehicle_id.is_not(None))
        .outerjoin(TestDriveCar, TestDriveCar.vehicle_id == Vehicle.id).where(Vehicle.id == vehicle_id))).first()
    return (row[0], bool(row[1])) if row else None


async def vehicle_plan(session: AsyncSession, vehicle_id: int) -> tuple | None:
    """(car, marked drivable?, branch, the branch's settings or None, the model's drive length at the car's
    branch or None), in one query: what every booking and availability needs first."""
    from backend.domains.branches.models import Branch

    if not 0 < vehicle_id <= MAX_ID:
        return None
    row = (await session.execute(
        select(Vehicle, TestDriveCar.vehicle_id.is_not(None), Branch, TestDriveSettings,
               TestDriveModelLength.drive_minutes)
        .join(Branch, Branch.id == Vehicle.branch_id)
        .outerjoin(TestDriveCar, TestDriveCar.vehicle_id == Vehicle.id)
        .outerjoin(TestDriveSettings, TestDriveSettings.branch_id == Vehicle.branch_id)
        .outerjoin(TestDriveModelLength, and_(TestDriveModelLength.branch_id == Vehicle.branch_id,
                                              TestDriveModelLength.make == Vehicle.make,
                                              TestDriveModelLength.model == Vehicle.model))
        .where(Vehicle.id == vehicle_id))).first()
    return tuple(row) if row else None


async def drivable_vehicles(session: AsyncSession, *, branch_id: int | None = None, make: str | None = None,
                            model: str | None = None, limit: int = 200) -> list[Vehicle]:
    query = (select(Vehicle).outerjoin(TestDriveCar, TestDriveCar.vehicle_id == Vehicle.id).where(_drivable())
             .order_by(Vehicle.make, Vehicle.model, Vehicle.model_year.desc(), Vehicle.id).limit(limit))
    if branch_id is not None:
        query = query.where(Vehicle.branch_id == branch_id)
    if make is not None:
        query = query.where(Vehicle.make == make)
    if model is not None:
        query = query.where(Vehicle.model == model)
    return list((await session.execute(query)).scalars())


async def mark_drivable(session: AsyncSession, vehicle_id: int, label: str) -> bool:
    """True when the mark is new."""
    statement = (insert(TestDriveCar).values(vehicle_id=vehicle_id, marked_by_label=label)
                 .on_conflict_do_nothing().returning(TestDriveCar.vehicle_id))
    return (await session.execute(statement)).first() is not None


async def unmark_drivable(session: AsyncSession, vehicle_id: int) -> bool:
    row = await session.get(TestDriveCar, vehicle_id)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True


async def record_mileage(session: AsyncSession, vehicle_id: int, km: int) -> None:
    """A demonstrator's odometer, as read on return (never lowered)."""
    await session.execute(update(Vehicle).where(Vehicle.id == vehicle_id, Vehicle.mileage_km < km)
                          .values(mileage_km=km, updated_at=func.now()).execution_options(synchronize_session=False))


async def salespeople_of(session: AsyncSession, branch_id: int) -> list[tuple[StaffUser, SalespersonHours | None]]:
    result = await session.execute(
        select(StaffUser, SalespersonHours)
        .outerjoin(SalespersonHours, SalespersonHours.staff_user_id == StaffUser.id)
        .where(StaffUser.branch_id == branch_id, StaffUser.role == StaffRole.SALES, StaffUser.is_active)
        .order_by(StaffUser.id))
    return [(user, hours) for user, hours in result.all()]


async def staff_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, StaffUser]:
    ids = list(set(ids))
    if not ids:
        return {}
    return {u.id: u for u in (await session.execute(select(StaffUser).where(StaffUser.id.in_(ids)))).scalars()}


async def set_hours(session: AsyncSession, staff_user_id: int, working_hours: dict, takes_online: bool = True) -> None:
    statement = insert(SalespersonHours).values(staff_user_id=staff_user_id, working_hours=working_hours,
                                                takes_online=takes_online)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["staff_user_id"], set_={"working_hours": working_hours, "takes_online": takes_online}))


# -- what managers configure ------------------------------------------------------------------------
# Each write is one INSERT ... ON CONFLICT statement: two managers saving at once both succeed (the later one
# wins), where a check-then-insert would fail one of them on the primary key. ``populate_existing`` refreshes
# an object the session already holds, so the rest of the request reads what was saved.

SETTINGS_FIELDS = ("slot_minutes", "drive_minutes", "buffer_minutes", "min_notice_minutes", "horizon_days")


async def settings_values(session: AsyncSession, branch_id: int, *, lock: bool = False) -> dict | None:
    """The saved booking rules as plain values (for the audit's "before"), or None; ``lock`` holds the row."""
    query = select(*(getattr(TestDriveSettings, name) for name in SETTINGS_FIELDS)).where(
        TestDriveSettings.branch_id == branch_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return dict(zip(SETTINGS_FIELDS, row, strict=True)) if row else None


async def upsert_settings(session: AsyncSession, branch_id: int, values: dict) -> TestDriveSettings:
    statement = (insert(TestDriveSettings).values(branch_id=branch_id, **values)
                 .on_conflict_do_update(index_elements=["branch_id"], set_=values).returning(TestDriveSettings))
    return (await session.execute(statement, execution_options={"populate_existing": True})).scalar_one()


async def upsert_model_length(session: AsyncSession, branch_id: int, make: str, model: str, minutes: int) -> None:
    statement = (insert(TestDriveModelLength)
                 .values(branch_id=branch_id, make=make, model=model, drive_minutes=minutes)
                 .on_conflict_do_update(index_elements=["branch_id", "make", "model"],
                                        set_={"drive_minutes": minutes})
                 .returning(TestDriveModelLength))
    await session.execute(statement, execution_options={"populate_existing": True})


async def delete_model_length(session: AsyncSession, branch_id: int, make: str, model: str) -> int | None:
    """The removed length (of the branch) in minutes, or None when there was none."""
    row = await session.get(TestDriveModelLength, (branch_id, make, model), with_for_update=True)
    if row is None:
        return None
    minutes = row.drive_minutes
    await session.delete(row)
    await session.flush()
    return minutes


async def salesperson_hours(session: AsyncSession, staff_user_id: int, *,
                            lock: bool = False) -> tuple[StaffUser, dict | None, bool] | None:
    """(the active salesperson, their stored hours or None without a row, takes_online), or None."""
    if not 0 < staff_user_id <= MAX_ID:
        return None
    query = (select(StaffUser, SalespersonHours.working_hours, SalespersonHours.takes_online)
             .outerjoin(SalespersonHours, SalespersonHours.staff_user_id == StaffUser.id)
             .where(StaffUser.id == staff_user_id, StaffUser.role == StaffRole.SALES, StaffUser.is_active))
    if lock:
        query = query.with_for_update(of=StaffUser)
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return row[0], row[1], True if row[2] is None else row[2]


async def upsert_hours(session: AsyncSession, staff_user_id: int, working_hours: dict,
                       takes_online: bool) -> SalespersonHours:
    statement = (insert(SalespersonHours)
                 .values(staff_user_id=staff_user_id, working_hours=working_hours, takes_online=takes_online)
                 .on_conflict_do_update(index_elements=["staff_user_id"],
                                        set_={"working_hours": working_hours, "takes_online": takes_online})
                 .returning(SalespersonHours))
    return (await session.execute(statement, execution_options={"populate_existing": True})).scalar_one()


# -- queueing for a car and a salesperson ------------------------------------------------------------


async def queue_for(session: AsyncSession, keys: list[int]) -> None:
    """Wait for the transaction-level advisory locks ``keys`` (see ``rules.lock_keys``), in ascending order so
    that two bookings never wait for each other in a circle. Held until commit; a savepoint's rollback
    releases those taken in it."""
    await session.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                          {"keys": sorted(keys)})


async def try_queue_for(session: AsyncSession, keys: list[int]) -> bool:
    """``queue_for`` without waiting: True when every lock was free (and is now held); False when another
    transaction holds one. Call it in a savepoint and roll that back on False, which releases those taken."""
    result = await session.execute(
        text("SELECT bool_and(pg_try_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": sorted(keys)})
    return bool(result.scalar())


# -- busy intervals ----------------------------------------------------------------------------------


async def busy_between(session: AsyncSession, *, first: datetime, last: datetime, vehicle_id: int | None = None,
                       salesperson_ids: Sequence[int] = ()) -> list[tuple[int, int, datetime, datetime, int]]:
    """(vehicle_id, salesperson_id, starts_at, blocked_until, id) of the drives that hold the car or one of the
    salespeople at some point in [first, last)."""
    holders = []
    if vehicle_id is not None:
        holders.append(TestDrive.vehicle_id == vehicle_id)
    if salesperson_ids:
        holders.append(TestDrive.salesperson_id.in_(list(salesperson_ids)))
    if not holders:
        return []
    result = await session.execute(
        select(TestDrive.vehicle_id, TestDrive.salesperson_id, TestDrive.starts_at, TestDrive.blocked_until,
               TestDrive.id)
        .where(or_(*holders), TestDrive.status.in_([s.value for s in ACTIVE]),
               TestDrive.starts_at < last, TestDrive.blocked_until > first))
    return [tuple(row) for row in result.all()]


# The statuses are ``rules.ACTIVE`` (literals, so that the plan is generic-friendly; a unit test keeps them equal).
TEAM_AND_BUSY_SQL = text("""
SELECT 's' AS kind, u.id AS a, NULL::int AS b, NULL::int AS c, NULL::timestamptz AS t1, NULL::timestamptz AS t2,
       u.name AS name, h.working_hours AS hours, coalesce(h.takes_online, true) AS online, NULL::date AS day
  FROM staff_user u LEFT JOIN test_drive_salesperson h ON h.staff_user_id = u.id
 WHERE u.branch_id = :branch_id AND u.role = 'sales' AND u.is_active
UNION ALL
SELECT 'b', d.vehicle_id, d.salesperson_id, d.id, d.starts_at, d.blocked_until, NULL, NULL, NULL, NULL
  FROM test_drive d
 WHERE (d.vehicle_id = :vehicle_id OR d.salesperson_id IN (
            SELECT s.id FROM staff_user s WHERE s.branch_id = :branch_id AND s.role = 'sales' AND s.is_active))
   AND d.status IN ('booked', 'confirmed', 'checked_out') AND d.starts_at < :last AND d.blocked_until > :first
UNION ALL
SELECT 'h', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, bh.day
  FROM branch_holiday bh
 WHERE bh.branch_id = :branch_id AND bh.day BETWEEN :first_day AND :last_day
""")


async def team_and_busy(session: AsyncSession, *, branch_id: int, vehicle_id: int, first: datetime, last: datetime,
                        first_day: date, last_day: date) -> tuple[list[tuple], list[tuple], set[date]]:
    """What a booking decides from, in one round trip and without loading ORM objects: the branch's active
    salespeople ``(id, name, working_hours or None, takes_online)`` by id, the drives that hold the car or one of
    them in [first, last) ``(vehicle_id, salesperson_id, starts_at, blocked_until, id)``, and the branch's
    holidays from ``first_day`` to ``last_day``."""
    rows = (await session.execute(TEAM_AND_BUSY_SQL, {
        "branch_id": branch_id, "vehicle_id": vehicle_id, "first": first, "last": last, "first_day": first_day,
        "last_day": last_day})).all()
    team = sorted((r.a, r.name, r.hours, r.online) for r in rows if r.kind == "s")
    busy = [(r.a, r.b, r.t1, r.t2, r.c) for r in rows if r.kind == "b"]
    return team, busy, {r.day for r in rows if r.kind == "h"}


# -- drives -------------------------------------------------------------------------------------------


async def drive_by_id(session: AsyncSession, drive_id: int, *, for_update: bool = False) -> TestDrive | None:
    if not 0 < drive_id <= MAX_ID:
        return None
    query = select(TestDrive).where(TestDrive.id == drive_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def drives_between(session: AsyncSession, *, first: datetime, last: datetime, branch_id: int | None = None,
                         salesperson_id: int | None = None, vehicle_id: int | None = None,
                         include_closed: bool = True) -> list[TestDrive]:
    query = (select(TestDrive).where(TestDrive.starts_at >= first, TestDrive.starts_at < last)
             .order_by(TestDrive.starts_at, TestDrive.id))
    if branch_id is not None:
        query = query.where(TestDrive.branch_id == branch_id)
    if salesperson_id is not None:
        query = query.where(TestDrive.salesperson_id == salesperson_id)
    if vehicle_id is not None:
        query = query.where(TestDrive.vehicle_id == vehicle_id)
    if not include_closed:
        query = query.where(TestDrive.status != "cancelled")
    return list((await session.execute(query)).scalars())


async def follow_ups_due(session: AsyncSession, *, day: date, branch_id: int | None = None,
                         salesperson_id: int | None = None) -> list[TestDrive]:
    query = (select(TestDrive).where(TestDrive.follow_up_due_on <= day, TestDrive.followed_up_at.is_(None),
                                     TestDrive.status == "returned")
             .order_by(TestDrive.follow_up_due_on, TestDrive.id))
    if branch_id is not None:
        query = query.where(TestDrive.branch_id == branch_id)
    if salesperson_id is not None:
        query = query.where(TestDrive.salesperson_id == salesperson_id)
    return list((await session.execute(query)).scalars())


async def vehicles_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Vehicle]:
    ids = list(set(ids))
    if not ids:
        return {}
    return {v.id: v for v in (await session.execute(select(Vehicle).where(Vehicle.id.in_(ids)))).scalars()}


async def customers_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Customer]:
    ids = list(set(ids))
    if not ids:
        return {}
    return {c.id: c for c in (await session.execute(select(Customer).where(Customer.id.in_(ids)))).scalars()}


async def customer_by_phone(session: AsyncSession, branch_id: int, phone: str) -> Customer | None:
    result = await session.execute(select(Customer).where(Customer.branch_id == branch_id, Customer.phone == phone)
                                   .order_by(Customer.id).limit(1))
    return result.scalar_one_or_none()


# -- leads ---------------------------------------------------------------------------------------------


async def open_lead(session: AsyncSession, customer_id: int, *, for_update: bool = False) -> Lead | None:
    query = select(Lead).where(Lead.customer_id == customer_id, Lead.stage.not_in([s.value for s in CLOSED_LEAD]))
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def start_lead(session: AsyncSession, values: dict) -> Lead | None:
    """Insert an open lead unless the customer already has one (a concurrent booking may just have made it):
    the new lead, or None."""
    statement = (insert(Lead).values(**values)
                 # The partial index's predicate as a literal: PostgreSQL cannot match bound parameters to it
                 # once it switches to a generic plan for the prepared statement.
                 .on_conflict_do_nothing(index_elements=["customer_id"], index_where=text(OPEN_LEAD_SQL))
                 .returning(Lead))
    return (await session.execute(statement)).scalar_one_or_none()


async def lead_by_id(session: AsyncSession, lead_id: int) -> Lead | None:
    return await session.get(Lead, lead_id)
