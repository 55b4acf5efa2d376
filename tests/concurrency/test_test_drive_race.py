"""Test-drive races over two app processes: 200 customers want the same car at the same time; ten cars at
the same time share the salespeople; a retried booking. The exclusion constraints decide: exactly the
possible bookings succeed, every loser gets a 409 with the next free slots, nothing answers 5xx."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import httpx
from sqlalchemy import func, select

from backend.domains.customers.models import Customer
from backend.domains.test_drives.models import Lead, TestDrive
from backend.lib.db import make_session_maker, unit_of_work
from backend.lib.redis import make_redis
from tests.showroom import a_phone, demo_car, free_start, make_showroom

REQUESTS = 200
API = "/api/v1/test-drives"
_ip = itertools.count(1)


async def setup(apps, work):
    """Run ``work(session, redis)`` in a committed transaction on the app processes' database."""
    redis = make_redis(apps.redis_url)
    try:
        async with unit_of_work(make_session_maker(apps.engine)) as session:
            return await work(session, redis)
    finally:
        await redis.aclose()


def client_address() -> str:
    """A distinct client address per request (uvicorn trusts X-Forwarded-For from 127.0.0.1), so the
    per-address limit on public bookings does not decide the race instead of the database."""
    n = next(_ip)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def body(vehicle_id: int, start, phone: str | None = None) -> dict:
    return {"vehicle_id": vehicle_id, "start": start.isoformat(), "name": "Race Driver", "phone": phone or a_phone(),
            "consent": True}


async def post_all(apps, bodies: list[dict], headers: dict | None = None,
                   languages: tuple[str, ...] = ("en",)) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=90, limits=httpx.Limits(max_connections=len(bodies))) as client:
        return await asyncio.gather(*(
            client.post(apps.urls[n % 2] + f"{API}/", json=b,
                        headers={"X-Forwarded-For": client_address(), "Accept-Language": languages[n % len(languages)],
                                 **(headers or {})})
            for n, b in enumerate(bodies)))


async def flight_joins(apps) -> Counter:
    """What became of the public bookings that joined a single flight, over both processes (their metrics)."""
    found: Counter = Counter()
    async with httpx.AsyncClient(timeout=10) as client:
        for url in apps.urls:
            for line in (await client.get(url + "/metrics")).text.splitlines():
                if line.startswith("forecourt_single_flight_joins_total{"):
                    labels, value = line.rsplit(" ", 1)
                    found[labels.split('result="')[1].split('"')[0]] += int(float(value))
    return found


def flight_joins_since(before: Counter, after: Counter) -> Counter:
    return Counter({result: after[result] - before[result] for result in after if after[result] > before[result]})


def check_losers(answers: list[httpx.Response], start_iso: str) -> None:
    for answer in answers:
        if answer.status_code == 409:
            error = answer.json()["error"]
            assert error["code"] == "conflict" and error["message"] and error["next_slots"], answer.text
            assert all(s["start"] != start_iso for s in error["next_slots"])


async def test_200_customers_want_the_same_car_at_the_same_time(two_apps):
    async def prepare(session, redis):
        showroom = await make_showroom(session, redis, salespeople=3, min_notice_minutes=0)
        car = await demo_car(session, showroom)
        return car.id, await free_start(session, car, index=6)

    car_id, start = await setup(two_apps, prepare)
    phones = [a_phone() for _ in range(REQUESTS)]
    joins_before = await flight_joins(two_apps)
    started = asyncio.get_running_loop().time()
    answers = await post_all(two_apps, [body(car_id, start, phone) for phone in phones], languages=("en", "zh-CN"))
    elapsed = asyncio.get_running_loop().time() - started

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: REQUESTS - 1}, statuses
    check_losers(answers, start.isoformat())
    # Each loser is told in its own language, also when it was answered from another request's outcome.
    messages = {a.request.headers["accept-language"]: a.json()["error"]["message"]
                for a in answers if a.status_code == 409}
    assert messages == {"en": "That time was just taken. These are the next free times.",
                        "zh-CN": "该时间刚刚被约满。以下是最近可预约的时间。"}, messages
    # Most of the rush was answered from the leaders' outcomes (single flight) without its own database work.
    joins = flight_joins_since(joins_before, await flight_joins(two_apps))
    assert sum(joins.values()) == REQUESTS and joins["answered"] > 0, joins
    [winner] = [a.json() for a in answers if a.status_code == 201]

    async def check(session, _redis):
        drives = (await session.execute(select(TestDrive).where(TestDrive.vehicle_id == car_id))).scalars().all()
        customers = (await session.execute(select(func.count()).select_from(Customer)
                                           .where(Customer.phone.in_(phones)))).scalar_one()
        leads = (await session.execute(select(func.count()).select_from(Lead).join(
            Customer, Customer.id == Lead.customer_id).where(Customer.phone.in_(phones)))).scalar_one()
        return drives, customers, leads

    drives, customers, leads = await setup(two_apps, check)
    assert [d.id for d in drives] == [winner["id"]] and drives[0].starts_at == start
    assert (customers, leads) == (1, 1)  # the losers left nothing behind
    print(f"\n{REQUESTS} bookings of one car and slot over 2 processes in {elapsed:.2f} s: {dict(statuses)}; "
          f"single flight: {dict(joins)}")


async def test_ten_cars_at_the_same_time_share_the_salespeople(two_apps):
    """Every booking is auto-assigned a salesperson: with one salesperson only one of ten cars can go at
    that time; with three, three go, each with a different salesperson."""
    async def prepare(session, redis):
        results = []
        for salespeople in (1, 3):
            showroom = await make_showroom(session, redis, salespeople=salespeople, min_notice_minutes=0)
            cars = [await demo_car(session, showroom) for _ in range(10)]
            results.append(([c.id for c in cars], await free_start(session, cars[0], index=4),
                            [p.id for p in showroom.salespeople]))
        return results

    for cars, start, salespeople in await setup(two_apps, prepare):
        bodies = [body(car_id, start) for car_id in cars for _ in range(3)]  # three customers per car
        answers = await post_all(two_apps, bodies)
        statuses = Counter(a.status_code for a in answers)
        assert statuses == {201: len(salespeople), 409: len(bodies) - len(salespeople)}, statuses
        check_losers(answers, start.isoformat())

        async def check(session, _redis, cars=cars):
            return (await session.execute(select(TestDrive).where(TestDrive.vehicle_id.in_(cars),
                                                                  TestDrive.status == "booked"))).scalars().all()

        drives = await setup(two_apps, check)
        assert sorted(d.salesperson_id for d in drives) == sorted(salespeople)
        assert len({d.vehicle_id for d in drives}) == len(drives)


async def test_a_retried_booking_on_both_processes_books_once(two_apps):
    async def prepare(session, redis):
        showroom = await make_showroom(session, redis, salespeople=2, min_notice_minutes=0)
        car = await demo_car(session, showroom)
        return car.id, await free_start(session, car, index=2)

    car_id, start = await setup(two_apps, prepare)
    same = body(car_id, start)
    answers = await post_all(two_apps, [same] * 20, headers={"Idempotency-Key": "flaky-phone-network-1"})
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["id"] for a in answers}) == 1 and len({a.json()["tracking_url"] for a in answers}) == 1
    assert sum(1 for a in answers if a.headers.get("idempotent-replayed")) == 19

    async def count(session, _redis):
        return (await session.execute(select(func.count()).select_from(TestDrive)
                                      .where(TestDrive.vehicle_id == car_id))).scalar_one()

    assert await setup(two_apps, count) == 1
