"""Demo data for test drives: demonstrators at SH01 and HZ01 (plus in-stock twins, so a customer who finds
one in the stock search books its demonstrator), one in-stock car a manager marked drivable, salespeople
with working hours (one more at HZ01, which had none), SH01's drive lengths per model and two bookings.

Bookings go through the real use case, so they obey the same rules and constraints as real ones.
"""

from __future__ import annotations

from datetime import date, timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.accounts.service import AccountService, principal_for
from backend.domains.branches import repository as branch_repository
from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import with_check_digit
from backend.lib.db import utcnow

from . import repository, rules
from .models import TestDriveCar, TestDriveModelLength, TestDriveSettings
from .schemas import BookingIn
from .service import TestDriveService

EVERY_DAY = {day: ["09:00", "18:00"] for day in rules.WEEKDAYS}
# branch, VIN serial, make, model, trim, body, powertrain, battery, range, colour, status, price
CARS = [
    ("SH01", 1, "BYD", "Han", "EV Premium", "sedan", "bev", 85.4, 715, "Black", "demo", 209_800),
    ("SH01", 2, "BYD", "Seal", "AWD Performance", "sedan", "bev", 82.5, 650, "Aurora White", "demo", 189_800),
    ("SH01", 3, "Li Auto", "L7", "Pro", "suv", "phev", 42.8, 210, "Grey", "demo", 301_800),
    ("SH01", 4, "BYD", "Seal", "AWD Performance", "sedan", "bev", 82.5, 650, "Blue", "in_stock", 189_800),
    ("SH01", 5, "Tesla", "Model Y", "Long Range", "suv", "bev", 60.0, 554, "Red", "in_stock", 249_900),
    ("HZ01", 6, "XPeng", "G6", "580 Pro", "suv", "bev", 66.0, 580, "White", "demo", 176_900),
    ("HZ01", 7, "Geely", "Galaxy L7", "Max", "suv", "phev", 18.7, 115, "Green", "demo", 138_700),
]
MARKED_DRIVABLE = 5  # the in-stock Model Y: a manager offers it for test drives
LENGTHS = [("SH01", "Li Auto", "L7", 45), ("SH01", "Tesla", "Model Y", 40)]  # per branch
HZ_SALES = ("sales.hz@forecourt.test", "吴磊 Wu Lei", "zh_CN")


def demo_vin(serial: int) -> str:
    return with_check_digit(f"LTDRV{serial:03d}0R{serial:07d}"[:17])


async def seed_test_drives(session: AsyncSession, redis: Redis, password: str) -> None:
    branches = {b.code: b for b in await branch_repository.list_branches(session)}
    for branch in branches.values():
        session.add(TestDriveSettings(branch_id=branch.id))
    for code, make, model, minutes in LENGTHS:
        if code in branches:
            session.add(TestDriveModelLength(branch_id=branches[code].id, make=make, model=model,
                                             drive_minutes=minutes))
    cars: dict[int, Vehicle] = {}
    for code, serial, make, model, trim, body, powertrain, battery, range_km, colour, status, price in CARS:
        if code not in branches:
            continue
        cars[serial] = Vehicle(vin=demo_vin(serial), make=make, model=model, trim=trim, model_year=2025, body=body,
                               powertrain=powertrain, battery_kwh=battery, range_km=range_km, colour=colour,
                               mileage_km=1200 if status == "demo" else 15, condition="new", list_price=price,
                               status=status, arrival_date=date.today() - timedelta(days=20),
                               branch_id=branches[code].id, lot_location="Showroom" if status == "demo" else "B-04")
        session.add(cars[serial])
    await session.flush()
    if MARKED_DRIVABLE in cars:
        session.add(TestDriveCar(vehicle_id=cars[MARKED_DRIVABLE].id, marked_by_label="manager@forecourt.test"))

    if "HZ01" in branches:
        email, name, locale = HZ_SALES
        await AccountService(session, redis).create_user(email=email, name=name, role="sales", password=password,
                                                         branch_code="HZ01", locale=locale)
    salespeople = (await session.execute(select(StaffUser).where(StaffUser.role == "sales"))).scalars().all()
    for person in salespeople:
        await repository.set_hours(session, person.id, EVERY_DAY)
    await session.flush()
    await _demo_bookings(session, redis, cars)


async def _demo_bookings(session: AsyncSession, redis: Redis, cars: dict[int, Vehicle]) -> None:
    """Tomorrow: an online booking of the Han and a phone booking of the L7 (if the branch is open then)."""
    sales = (await session.execute(select(StaffUser).where(StaffUser.email == "sales@forecourt.test"))
             ).scalar_one_or_none()
    service = TestDriveService(session, redis)
    by_phone = principal_for(sales) if sales else None
    for serial, name, phone, principal in ((1, "周杰 Zhou Jie", "13600136001", None),
                                           (3, "林芳 Lin Fang", "13600136002", by_phone)):
        car = cars.get(serial)
        if car is None:
            continue
        plan = await service.plan_for(car)
        tomorrow = rules.local_day(utcnow(), plan.tz) + timedelta(days=1)
        found = await service.availability(car.id, tomorrow, principal=principal)
        if not found.slots:
            continue
        start = found.slots[min(len(found.slots) - 1, 2 + 4 * (serial // 3))].start
        await service.book(BookingIn(vehicle_id=car.id, start=start, name=name, phone=phone, consent=True,
                                     locale="zh_CN"), principal=principal, ip="seed")
