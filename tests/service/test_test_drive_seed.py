"""`forecourt seed` gives test drives something to show: demonstrators, salespeople with hours, bookable slots."""

from datetime import timedelta

from sqlalchemy import func, select

from backend.domains.accounts import repository as accounts
from backend.domains.branches import repository as branches
from backend.domains.stock.models import Vehicle
from backend.domains.test_drives import rules
from backend.domains.test_drives.models import SalespersonHours, TestDrive, TestDriveModelLength
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from backend.seed import seed_demo


async def test_the_demo_data_has_bookable_test_drives(session, redis):
    assert await accounts.count_users(session) == 0  # the test's own, empty transaction
    assert await seed_demo(session, redis) is True
    service = TestDriveService(session, redis)
    sh01 = await branches.branch_by_code(session, "SH01")
    hz01 = await branches.branch_by_code(session, "HZ01")
    cars = {f"{v.make} {v.model}": (v, minutes) for v, minutes in await service.cars(branch_id=sh01.id)}
    assert {"BYD Han", "BYD Seal", "Li Auto L7", "Tesla Model Y"} <= set(cars)
    assert cars["Li Auto L7"][1] == 45 and cars["BYD Han"][1] == 30
    assert cars["Tesla Model Y"][0].status == "in_stock"  # marked drivable by a manager
    lengths = (await session.execute(select(TestDriveModelLength.branch_id, TestDriveModelLength.model))).all()
    assert sorted(lengths) == [(sh01.id, "L7"), (sh01.id, "Model Y")]  # SH01's own: HZ01 keeps its default
    tomorrow = rules.local_day(utcnow(), sh01.timezone) + timedelta(days=1)
    for vehicle, _minutes in cars.values():
        assert (await service.availability(vehicle.id, tomorrow)).slots, vehicle.model
    for vehicle, _minutes in await service.cars(branch_id=hz01.id):  # HZ01 has a salesperson now
        assert (await service.availability(vehicle.id, tomorrow)).slots, vehicle.model
    # The Seal for sale (found in the stock search) is test-driven as the demonstrator Seal.
    for_sale = (await session.execute(select(Vehicle).where(Vehicle.model == "Seal", Vehicle.status == "in_stock"))
                ).scalar_one()
    chosen, asked = await service.choose_car(for_sale.id)
    assert asked.id == for_sale.id and chosen.id == cars["BYD Seal"][0].id and chosen.status == "demo"
    assert len((await session.execute(select(TestDrive.id))).scalars().all()) == 2  # two demo bookings
    hours = (await session.execute(select(func.count()).select_from(SalespersonHours))).scalar_one()
    assert hours == 2
