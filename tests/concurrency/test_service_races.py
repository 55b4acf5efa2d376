"""Races over two app processes: the last technician hours of a day, a retried booking, two advisors on
one repair order. The database decides; no overbooking, no 5xx, a clear 409 for every loser."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from backend.domains.accounts.service import AccountService
from backend.domains.repair_orders.models import RepairOrder, RepairOrderEvent
from backend.domains.service_booking import rules
from backend.domains.service_booking.models import ServiceAppointment, ServiceDayCapacity, ServiceSlotCapacity
from backend.domains.service_booking.service import BookingService
from backend.lib.db import make_session_maker, unit_of_work, utcnow
from backend.lib.redis import make_redis
from tests.factories import as_principal, make_user
from tests.workshop import a_phone, a_plate, booking, checked_in, make_workshop

REQUESTS = 200
MORNING = {d: ["08:00", "13:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}  # 300 minutes
_ip = itertools.count(1)


async def setup(apps, work):
    """Run ``work(session, redis)`` in a committed transaction on the app processes' database."""
    redis = make_redis(apps.redis_url)
    try:
        async with unit_of_work(make_session_maker(apps.engine)) as session:
            return await work(session, redis)
    finally:
        await redis.aclose()


def body(branch_code: str, slot, **changes) -> dict:
    return {"branch": branch_code, "slot": slot.isoformat(), "operations": ["OIL"], "plate": a_plate(),
            "mileage_km": 15000, "name": "Race Customer", "phone": a_phone(), "privacy_consent": True} | changes


def client_address() -> str:
    """A distinct client address per request (uvicorn trusts X-Forwarded-For from 127.0.0.1), so the
    per-address limit on public bookings does not decide the race instead of the capacity."""
    n = next(_ip)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


async def test_200_bookings_for_the_last_technician_hours_never_overbook(two_apps):
    async def prepare(session, redis):
        branch = await make_workshop(session, technicians=(("general",),), tech_hours=MORNING,
                                     checkins_per_slot=100, min_notice=0)
        day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)
        slots = (await BookingService(session).availability(branch.code, day, ["OIL"])).slots
        for slot in slots[:3]:  # 90 of the 300 minutes are already gone: 7 half-hour jobs still fit
            await BookingService(session, redis).book(booking(branch, slot.start), ip="10.255.0.1")
        return branch.id, branch.code, day, [s.start for s in slots[3:13]]

    branch_id, code, day, slots = await setup(two_apps, prepare)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=REQUESTS)) as client:
        async def one(n: int) -> httpx.Response:
            url = two_apps.urls[n % 2] + "/api/v1/service/appointments"
            return await client.post(url, json=body(code, slots[n % len(slots)]),
                                     headers={"X-Forwarded-For": client_address()})

        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(one(n) for n in range(REQUESTS)))
        elapsed = asyncio.get_running_loop().time() - started

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 7, 409: REQUESTS - 7}, statuses
    for answer in answers:
        if answer.status_code == 409:
            error = answer.json()["error"]
            assert error["code"] == "conflict" and error["message"] and error["next_slots"]
            assert all(s["start"][:10] > day.isoformat() for s in error["next_slots"])
    winners_by_process = Counter(a.url.port for a in answers if a.status_code == 201)

    async def check(session, _redis):
        counters = {r.resource: r for r in (await session.execute(select(ServiceDayCapacity).where(
            ServiceDayCapacity.branch_id == branch_id, ServiceDayCapacity.day == day))).scalars()}
        live = (await session.execute(select(ServiceAppointment).where(
            ServiceAppointment.branch_id == branch_id, ServiceAppointment.day == day))).scalars().all()
        per_slot = Counter(a.slot_start for a in live)
        slot_rows = {r.starts_at: r.booked for r in (await session.execute(select(ServiceSlotCapacity).where(
            ServiceSlotCapacity.branch_id == branch_id))).scalars() if r.booked}
        return counters, live, per_slot, slot_rows

    counters, live, per_slot, slot_rows = await setup(two_apps, check)
    labour = counters["labour"]
    assert labour.booked <= labour.capacity and (labour.booked, labour.capacity) == (300, 300)
    assert len(live) == 10 and sum(a.resources["labour"] for a in live) == labour.booked
    assert slot_rows == dict(per_slot)  # every check-in place taken belongs to a booking that exists
    print(f"\n{REQUESTS} bookings over 2 processes in {elapsed:.2f} s; winners per process: "
          f"{dict(winners_by_process)}")


async def test_a_retried_booking_on_both_processes_books_once(two_apps):
    async def prepare(session, redis):
        branch = await make_workshop(session, checkins_per_slot=4, min_notice=0)
        day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=3)
        slot = (await BookingService(session).availability(branch.code, day, ["OIL"])).slots[5].start
        return branch.id, branch.code, slot

    branch_id, code, slot = await setup(two_apps, prepare)
    same = body(code, slot)
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(
            client.post(two_apps.urls[n % 2] + "/api/v1/service/appointments", json=same,
                        headers={"Idempotency-Key": "flaky-network-retry-1", "X-Forwarded-For": client_address()})
            for n in range(20)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["id"] for a in answers}) == 1 and len({a.json()["tracking_url"] for a in answers}) == 1
    assert sum(1 for a in answers if a.headers.get("idempotent-replayed")) == 19

    async def count(session, _redis):
        return (await session.execute(select(func.count()).select_from(ServiceAppointment).where(
            ServiceAppointment.branch_id == branch_id))).scalar_one()

    assert await setup(two_apps, count) == 1


async def test_two_advisors_moving_one_repair_order_leave_it_valid(two_apps):
    async def prepare(session, redis):
        branch = await make_workshop(session, min_notice=0)
        orders = [(await checked_in(session, redis, branch, index=n))[0].id for n in range(8)]
        headers = []
        creator = as_principal(await make_user(session, redis, role="admin"))
        for name in ("first", "second"):
            _key, secret = await AccountService(session, redis).create_api_key(
                creator, name=f"advisor {name}", role="service_advisor", branch_id=branch.id)
            headers.append({"Authorization": f"Bearer {secret}"})
        return orders, headers

    orders, headers = await setup(two_apps, prepare)
    async with httpx.AsyncClient(timeout=30) as client:
        async def move(process: int, order_id: int, target: str, version: int | None):
            payload = {"status": target} | ({"version": version} if version else {})
            return await client.post(f"{two_apps.urls[process]}/api/v1/repair-orders/{order_id}/status",
                                     json=payload, headers=headers[process])

        # With the version they saw: one to diagnosing, the other cancels.
        with_version = await asyncio.gather(*(
            asyncio.gather(move(0, order_id, "diagnosing", 1), move(1, order_id, "cancelled", 1))
            for order_id in orders[:4]))
        # Without a version, both to the same status: the second finds it already there.
        without = await asyncio.gather(*(
            asyncio.gather(move(0, order_id, "in_progress", None), move(1, order_id, "in_progress", None))
            for order_id in orders[4:]))

    winners = {}
    for order_id, pair in zip(orders, [*with_version, *without], strict=True):
        codes = sorted(a.status_code for a in pair)
        assert codes == [200, 409], [a.text for a in pair]
        loser = next(a for a in pair if a.status_code == 409).json()["error"]
        assert loser["message"] and loser["current_version"] == 2
        winners[order_id] = next(a for a in pair if a.status_code == 200).json()["status"]

    async def check(session, _redis):
        found = {}
        for order_id in orders:
            order = await session.get(RepairOrder, order_id)
            events = (await session.execute(select(RepairOrderEvent.to_status).where(
                RepairOrderEvent.repair_order_id == order_id).order_by(RepairOrderEvent.id))).scalars().all()
            found[order_id] = (order.status, order.version, events)
        return found

    for order_id, (status, version, events) in (await setup(two_apps, check)).items():
        assert (status, version) == (winners[order_id], 2) and events == ["open", status]


async def test_the_same_new_car_booked_twice_at_once_is_one_car(two_apps):
    async def prepare(session, redis):
        branch = await make_workshop(session, min_notice=0)
        day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=4)
        slots = (await BookingService(session).availability(branch.code, day, ["OIL"])).slots
        return branch.id, branch.code, [s.start for s in slots[:10]]

    branch_id, code, slots = await setup(two_apps, prepare)
    plate = a_plate()
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(
            client.post(two_apps.urls[n % 2] + "/api/v1/service/appointments",
                        json=body(code, slots[n], plate=plate), headers={"X-Forwarded-For": client_address()})
            for n in range(10)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]

    async def cars(session, _redis):
        return set((await session.execute(select(ServiceAppointment.vehicle_id).where(
            ServiceAppointment.branch_id == branch_id))).scalars())

    assert len(await setup(two_apps, cars)) == 1
