"""Status changes and reservations: the rules, the audit log, branch scope, and races between two people."""

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from backend.domains.audit.models import AuditEntry
from backend.domains.stock.models import VehicleReservation
from backend.domains.stock.schemas import StatusChange, VehicleCreate, VehicleUpdate
from backend.domains.stock.service import StockService
from backend.lib import i18n
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound
from tests.factories import as_principal, make_branch, make_user
from tests.stock_factories import make_vehicle, new_vin


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


async def audit_actions(session, vehicle_id):
    rows = await session.execute(select(AuditEntry.action, AuditEntry.before, AuditEntry.after)
                                 .where(AuditEntry.entity == "vehicle", AuditEntry.entity_id == str(vehicle_id))
                                 .order_by(AuditEntry.id))
    return rows.all()


async def test_reserve_and_release_are_recorded(session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch, status="in_transit")
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    service = StockService(session)
    reserved = await service.reserve(sales, car.id, "Ms Li, test drive Saturday")
    assert reserved.status == "reserved"
    with pytest.raises(Conflict, match="already reserved"):
        await service.reserve(sales, car.id, "someone else")
    released = await service.release(sales, car.id, "customer chose another car")
    assert released.status == "in_transit"  # back where it was
    reservations = (await session.execute(select(VehicleReservation).where(
        VehicleReservation.vehicle_id == car.id))).scalars().all()
    assert len(reservations) == 1 and reservations[0].released_at is not None
    assert reservations[0].release_reason == "customer chose another car"
    actions = await audit_actions(session, car.id)
    assert [a[0] for a in actions] == ["reserve", "release"]
    assert actions[0][1] == {"status": "in_transit"} and actions[0][2]["reason"] == "Ms Li, test drive Saturday"


async def test_reasons_are_required(session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    with pytest.raises(Invalid) as caught:
        await StockService(session).reserve(sales, car.id, "  ")
    assert "reason" in caught.value.fields
    with pytest.raises(Invalid):
        await StockService(session).reserve(sales, car.id, "x" * 301)
    assert (await StockService(session).staff_vehicle(sales, car.id)).status == "in_stock"


async def test_a_sold_car_cannot_be_reserved(session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch, status="sold")
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    with pytest.raises(Conflict, match="sold"):
        await StockService(session).reserve(sales, car.id, "please")
    assert await audit_actions(session, car.id) == []


async def test_status_changes_follow_the_rules(session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch, status="in_stock", arrival_date=None)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    service = StockService(session)
    with pytest.raises(Forbidden):
        await service.change_status(sales, car.id, StatusChange(status="sold"))
    with pytest.raises(Conflict, match="ETA"):
        await service.change_status(manager, car.id, StatusChange(status="in_transit"))
    eta = date.today() + timedelta(days=5)
    moved = await service.change_status(manager, car.id, StatusChange(status="in_transit", eta=eta, reason="transfer"))
    assert moved.status == "in_transit" and moved.eta == eta
    arrived = await service.change_status(manager, car.id, StatusChange(status="in_stock"))
    assert arrived.status == "in_stock" and arrived.arrival_date == date.today()
    await service.change_status(sales, car.id, StatusChange(status="reserved", reason="deposit"))
    sold = await service.change_status(manager, car.id, StatusChange(status="sold", reason="contract 88"))
    assert sold.status == "sold"
    assert await session.scalar(  # the reservation ended with the sale
        select(VehicleReservation.released_at).where(VehicleReservation.vehicle_id == car.id)) is not None
    with pytest.raises(Conflict, match="sold"):
        await service.change_status(manager, car.id, StatusChange(status="in_stock"))
    assert [a[0] for a in await audit_actions(session, car.id)] == ["status", "status", "reserve", "status"]


async def test_other_branches_cars_are_not_found(session, redis):
    car = await make_vehicle(session, await make_branch(session))
    stranger = as_principal(await make_user(session, redis, role="sales", branch=await make_branch(session)))
    service = StockService(session)
    for attempt in (service.reserve(stranger, car.id, "mine"), service.release(stranger, car.id, "x"),
                    service.staff_details(stranger, car.id),
                    service.update_vehicle(stranger, car.id, VehicleUpdate(list_price=1))):
        with pytest.raises(NotFound):
            await attempt
    with pytest.raises(NotFound):
        await service.public_vehicle(999_999_999)


async def test_create_and_update_validate_and_audit(session, redis):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    service = StockService(session)
    fields = dict(make="BYD", model="Seal", model_year=2025, body="sedan", powertrain="bev", battery_kwh="82.5",
                  range_km=650, condition="new", list_price=189_800, branch_id=branch.id)
    vin = new_vin()
    car = await service.create_vehicle(manager, VehicleCreate(vin=vin.lower(), **fields))
    assert car.vin == vin and car.status == "in_stock" and car.arrival_date == date.today()
    with pytest.raises(Conflict):
        await service.create_vehicle(manager, VehicleCreate(vin=vin, **fields))
    with pytest.raises(Invalid) as caught:
        await service.create_vehicle(manager, VehicleCreate(vin=vin[:8] + ("1" if vin[8] != "1" else "2") + vin[9:],
                                                            **fields))
    assert "check digit" in caught.value.fields["vin"]
    with pytest.raises(Invalid) as caught:
        await service.create_vehicle(manager, VehicleCreate(vin=new_vin(), **{**fields, "powertrain": "petrol"}))
    assert "powertrain" in caught.value.fields
    other_branch = await make_branch(session)
    with pytest.raises(Invalid):
        await service.create_vehicle(manager, VehicleCreate(vin=new_vin(), **{**fields, "branch_id": other_branch.id}))
    updated = await service.update_vehicle(manager, car.id, VehicleUpdate(list_price=179_800, lot_location="B-2"))
    assert updated.list_price == 179_800
    actions = await audit_actions(session, car.id)
    assert actions[-1] == ("update", {"list_price": 189_800, "lot_location": ""},
                           {"list_price": 179_800, "lot_location": "B-2"})


# -- races: real transactions on separate connections -----------------------------------------------


@pytest.fixture
async def committed(engine):
    """A branch, a salesperson and a car committed for real (the races need separate transactions);
    removed again afterwards."""
    maker = async_sessionmaker(engine, expire_on_commit=False)

    class NoRedis:  # creating a user touches no Redis; sessions are not needed here
        pass

    async with maker() as session, session.begin():
        branch = await make_branch(session)
        user = await make_user(session, NoRedis(), role="sales", branch=branch)
        other = await make_user(session, NoRedis(), role="sales", branch=branch)
        car = await make_vehicle(session, branch)
    yield maker, car, as_principal(user), as_principal(other)
    async with maker() as session, session.begin():
        for statement in ("DELETE FROM vehicle_reservation WHERE branch_id = :b",
                          "DELETE FROM audit_log WHERE branch_id = :b",
                          "DELETE FROM vehicle WHERE branch_id = :b",
                          "DELETE FROM staff_user WHERE branch_id = :b",
                          "DELETE FROM branch WHERE id = :b"):
            await session.execute(text(statement), {"b": branch.id})


async def test_two_people_reserving_one_car_at_once_give_exactly_one_reservation(committed):
    maker, car, first, second = committed
    start = asyncio.Event()

    async def attempt(principal, reason):
        async with maker() as session:
            async with session.begin():
                await session.execute(text("SELECT 1"))  # both transactions are open before either writes
                await start.wait()
                try:
                    await StockService(session).reserve(principal, car.id, reason)
                    return "reserved"
                except Conflict:
                    return "conflict"

    tasks = [asyncio.create_task(attempt(p, r)) for p, r in ((first, "customer A"), (second, "customer B"))]
    tasks += [asyncio.create_task(attempt(first, f"again {i}")) for i in range(3)]
    await asyncio.sleep(0.2)
    start.set()
    outcomes = await asyncio.gather(*tasks)
    assert sorted(outcomes) == ["conflict"] * 4 + ["reserved"]
    async with maker() as session:
        open_reservations = (await session.execute(text(
            "SELECT count(*) FROM vehicle_reservation WHERE vehicle_id = :v AND released_at IS NULL"),
            {"v": car.id})).scalar_one()
        status = (await session.execute(text("SELECT status FROM vehicle WHERE id = :v"), {"v": car.id})).scalar_one()
    assert open_reservations == 1 and status == "reserved"
