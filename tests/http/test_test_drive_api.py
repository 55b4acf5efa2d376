"""The test-drive JSON API over HTTP: cars and availability, booking (201, 409 with the next slots, 422,
idempotency, rate limit), the customer's token endpoints, and the staff's check-out and return. Every
refusal has a clear message, stores nothing, and nothing answers 500."""

from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from backend.domains.accounts.service import AccountService
from backend.domains.customers.models import Customer
from backend.domains.test_drives import rules
from backend.domains.test_drives.models import TestDrive
from backend.lib.db import utcnow
from tests.factories import as_principal, make_user
from tests.showroom import a_phone, booked_now, daytime_showroom, demo_car, free_start, make_showroom, media_in_tmp  # noqa: F401 - media_in_tmp: a fixture
from tests.stock_factories import make_vehicle

pytestmark = pytest.mark.usefixtures("media_in_tmp")
API = "/api/v1/test-drives"


def body(car, start, **changes) -> dict:
    return {"vehicle_id": car.id, "start": start.isoformat(), "name": "Wang Fang", "phone": a_phone(),
            "consent": True} | changes


async def count_drives(session, car) -> int:
    return (await session.execute(select(func.count()).select_from(TestDrive)
                                  .where(TestDrive.vehicle_id == car.id))).scalar_one()


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


async def api_key(session, redis, role: str, branch) -> dict:
    creator = as_principal(await make_user(session, redis, role="admin"))
    _key, secret = await AccountService(session, redis).create_api_key(creator, name=f"{role} key", role=role,
                                                                       branch_id=branch.id)
    return {"Authorization": f"Bearer {secret}"}


async def test_cars_and_availability(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom, make="NIO", model="ET5")
    await make_vehicle(session, showroom.branch, status="in_stock")  # not drivable: not listed
    listed = await client.get(f"{API}/cars", params={"branch": showroom.branch.code})
    assert listed.status_code == 200
    assert [(c["id"], c["make"], c["model"], c["drive_minutes"]) for c in listed.json()] == [(car.id, "NIO", "ET5", 30)]
    assert (await client.get(f"{API}/cars", params={"branch": "NOPE"})).json() == []
    day = (rules.local_day(utcnow(), showroom.branch.timezone) + timedelta(days=2)).isoformat()
    found = await client.get(f"{API}/availability", params={"vehicle_id": car.id, "date": day})
    data = found.json()
    assert found.status_code == 200 and data["timezone"] == "Asia/Shanghai" and data["drive_minutes"] == 30
    assert len(data["slots"]) == 18 and data["slots"][0]["start"] == f"{day}T09:00:00+08:00"
    assert data["slots"][0]["end"] == f"{day}T09:30:00+08:00" and data["next_available"] == []
    sold = await make_vehicle(session, showroom.branch, status="sold")
    for params, field in (({"vehicle_id": sold.id, "date": day}, "vehicle_id"),
                          ({"vehicle_id": 99999999, "date": day}, "vehicle_id"),
                          ({"vehicle_id": car.id, "date": "2001-01-01"}, "date"),
                          ({"vehicle_id": car.id, "date": "soon"}, "date"),
                          ({"vehicle_id": "one", "date": day}, "vehicle_id"),
                          ({"vehicle_id": 2**40, "date": day}, "vehicle_id"),
                          ({"date": day}, "vehicle_id")):
        response = await client.get(f"{API}/availability", params=params)
        assert response.status_code == 422, (params, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["message"] and field in error["fields"], params


async def test_booking_201_409_422_and_idempotency(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car, index=3)
    payload = body(car, start)
    created = await client.post(f"{API}/", json=payload, headers={"Idempotency-Key": "td-key-0001"})
    assert created.status_code == 201, created.text
    drive = created.json()
    assert drive["status"] == "booked" and drive["source"] == "online" and drive["branch"] == showroom.branch.code
    assert drive["start"] == start.isoformat() and drive["end"] == (start + timedelta(minutes=30)).isoformat()
    assert drive["car"]["id"] == car.id and drive["salesperson"] == showroom.salespeople[0].name
    assert drive["tracking_url"].startswith("http") and "/test-drive/track/" in drive["tracking_url"]
    assert created.headers["location"] == drive["tracking_url"]
    replay = await client.post(f"{API}/", json=payload, headers={"Idempotency-Key": "td-key-0001"})
    assert replay.status_code == 201 and replay.json() == drive and replay.headers["idempotent-replayed"] == "true"
    reused = await client.post(f"{API}/", json=payload | {"name": "Other"}, headers={"Idempotency-Key": "td-key-0001"})
    assert reused.status_code == 422 and "different booking" in reused.json()["error"]["message"]

    taken = await client.post(f"{API}/", json=body(car, start))
    assert taken.status_code == 409
    error = taken.json()["error"]
    assert error["code"] == "conflict" and "taken" in error["message"] and len(error["next_slots"]) == 3
    assert all(s["start"] != start.isoformat() for s in error["next_slots"])
    again = await client.post(f"{API}/", json=body(car, datetime.fromisoformat(error["next_slots"][0]["start"])))
    assert again.status_code == 201  # one of the offered times books
    assert await count_drives(session, car) == 2


async def test_booking_bad_input_is_refused_with_a_message_and_stores_nothing(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    sold = await make_vehicle(session, showroom.branch, status="sold")
    start = await free_start(session, car)
    customers_before = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
    cases = [
        ({"start": (start - timedelta(days=4)).isoformat()}, "start", "already passed"),
        ({"start": (start - timedelta(hours=1)).isoformat()}, "start", "opening hours"),
        ({"start": (start + timedelta(minutes=10)).isoformat()}, "start", "every 30 minutes"),
        ({"start": start.replace(tzinfo=None).isoformat()}, "start", "time zone"),
        ({"start": "tomorrow"}, "start", ""),
        ({"phone": "12345678"}, "phone", "mobile number"),
        ({"phone": "+86 123 4567 8901"}, "phone", "mobile number"),
        ({"vehicle_id": sold.id}, "vehicle_id", "sold"),
        ({"vehicle_id": 0}, "vehicle_id", ""),
        ({"vehicle_id": "car"}, "vehicle_id", ""),
        ({"consent": False}, "consent", "agree"),
        ({"name": ""}, "name", ""),
        ({"name": "x" * 500}, "name", ""),
        ({"source": "walk_in"}, "source", "Only staff"),
        ({"surprise": 1}, "surprise", ""),
        ({"email": "nope"}, "email", "e-mail"),
    ]
    for change, field, words in cases:
        response = await client.post(f"{API}/", json=body(car, start) | change)
        assert response.status_code == 422, (change, response.text)
        error = response.json()["error"]
        assert field in error["fields"] and error["message"] and words in error["fields"][field], change
    missing = await client.post(f"{API}/", json={"vehicle_id": car.id})
    assert missing.status_code == 422 and {"start", "name", "phone"} <= set(missing.json()["error"]["fields"])
    malformed = await client.post(f"{API}/", content=b"{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"]
    for shape in (b"[1, 2]", b'"text"', b""):
        response = await client.post(f"{API}/", content=shape, headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["message"], shape
    huge = await client.post(f"{API}/", json=body(car, start, name="x" * 20000))
    assert huge.status_code == 413
    bad_key = await client.post(f"{API}/", json=body(car, start), headers={"Idempotency-Key": "x"})
    assert bad_key.status_code == 422
    assert await count_drives(session, car) == 0
    assert (await session.execute(select(func.count()).select_from(Customer))).scalar_one() == customers_before


async def test_public_booking_is_rate_limited_and_a_session_books_as_the_public(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    for _ in range(20):
        assert (await client.post(f"{API}/", json=body(car, start, phone="12345678"))).status_code == 422
    limited = await client.post(f"{API}/", json=body(car, start))
    assert limited.status_code == 429 and limited.headers["retry-after"] and limited.json()["error"]["message"]
    assert await count_drives(session, car) == 0
    # A salesperson's API key is staff: not limited, and may record a walk-in or phone booking.
    headers = await api_key(session, redis, "sales", showroom.branch)
    staff = await client.post(f"{API}/", json=body(car, start, source="phone"), headers=headers)
    assert staff.status_code == 201 and staff.json()["source"] == "phone"


async def test_the_customers_token_reads_moves_and_cancels(client, session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    start = await free_start(session, car, days_ahead=3)
    booked = (await client.post(f"{API}/", json=body(car, start))).json()
    token = token_of(booked["tracking_url"])
    read = await client.get(f"{API}/track/{token}")
    assert read.status_code == 200 and read.json()["reference"] == booked["reference"]
    assert read.headers["cache-control"] == "no-store" and "phone" not in read.text
    assert read.json()["tracking_url"] is None
    later = start + timedelta(hours=3)
    moved = await client.patch(f"{API}/track/{token}", json={"start": later.isoformat()})
    assert moved.status_code == 200 and moved.json()["start"] == later.isoformat()
    for bad, status in (({"start": "later"}, 422), ({"start": (later + timedelta(minutes=5)).isoformat()}, 422),
                        ({"start": later.isoformat()}, 422), ({"when": later.isoformat()}, 422)):
        response = await client.patch(f"{API}/track/{token}", json=bad)
        assert response.status_code == status and response.json()["error"]["message"], bad
    # Someone else takes a time: moving onto it is a 409 with the next free times.
    other = await client.post(f"{API}/", json=body(car, start))
    assert other.status_code == 201
    clash = await client.patch(f"{API}/track/{token}", json={"start": start.isoformat()})
    assert clash.status_code == 409 and clash.json()["error"]["next_slots"]
    cancelled = await client.delete(f"{API}/track/{token}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"{API}/track/{token}")
    assert again.status_code == 409 and again.json()["error"]["current_status"] == "cancelled"
    for bad in ("nonsense", token[:-2], "A" * 43, str(booked["id"]), booked["reference"]):
        for method in ("GET", "DELETE"):
            response = await client.request(method, f"{API}/track/{bad}")
            assert response.status_code == 404 and booked["reference"] not in response.text, (bad, method)
    assert (await client.get(f"{API}/track/{'x' * 101}")).status_code in (400, 404, 422)


async def test_staff_check_out_and_return_over_the_api(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom)
    view = await booked_now(session, redis, showroom, car)
    headers = await api_key(session, redis, "sales", showroom.branch)
    drive_url = f"{API}/{view.drive.id}"
    checkout = {"licence_number": "310101199001011234", "licence_expiry": (utcnow().date() + timedelta(days=90))
                .isoformat(), "key_handed_over": True, "odometer_out": 1250}
    for change, field in (({"licence_expiry": (utcnow().date() - timedelta(days=1)).isoformat()}, "licence_expiry"),
                          ({"key_handed_over": False}, "key_handed_over"), ({"odometer_out": -3}, "odometer_out"),
                          ({"odometer_out": "far"}, "odometer_out"), ({"licence_number": ""}, "licence_number"),
                          ({"licence_expiry": "never"}, "licence_expiry")):
        refused = await client.post(f"{drive_url}/check-out", json=checkout | change, headers=headers)
        assert refused.status_code == 422 and field in refused.json()["error"]["fields"], change
    assert (await client.get(drive_url, headers=headers)).json()["status"] == "booked"
    out = await client.post(f"{drive_url}/check-out", json=checkout, headers=headers)
    assert out.status_code == 200 and out.json()["status"] == "checked_out"
    assert out.json()["licence_number"].endswith("1234") and "310101" not in out.text
    twice = await client.post(f"{drive_url}/check-out", json=checkout, headers=headers)
    assert twice.status_code == 409 and twice.json()["error"]["current_status"] == "checked_out"
    back = {"odometer_in": 1249, "energy_level": 70, "notes": "", "interest": 3}
    assert (await client.post(f"{drive_url}/return", json=back, headers=headers)).status_code == 422
    assert (await client.post(f"{drive_url}/return", json=back | {"interest": 9, "odometer_in": 1260},
                              headers=headers)).status_code == 422
    returned = await client.post(f"{drive_url}/return", json=back | {"odometer_in": 1262}, headers=headers)
    assert returned.status_code == 200 and returned.json()["odometer_in"] == 1262
    day = await client.get(f"{API}/day", headers=headers)
    assert day.status_code == 200 and [d["id"] for d in day.json()] == [view.drive.id]


async def test_staff_endpoints_refuse_other_roles_branches_and_the_public(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    view = await booked_now(session, redis, showroom, await demo_car(session, showroom))
    drive_url = f"{API}/{view.drive.id}"
    advisor = await api_key(session, redis, "service_advisor", showroom.branch)
    elsewhere = await api_key(session, redis, "sales", (await make_showroom(session, redis)).branch)
    assert (await client.get(drive_url)).status_code == 401
    assert (await client.post(f"{drive_url}/no-show")).status_code in (401, 403)
    forbidden = await client.get(drive_url, headers=advisor)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["message"]
    assert (await client.post(f"{drive_url}/no-show", headers=advisor)).status_code == 403
    hidden = await client.get(drive_url, headers=elsewhere)
    assert hidden.status_code == 404 and view.customer.name not in hidden.text
    assert (await client.post(f"{drive_url}/cancel", headers=elsewhere)).status_code == 404
    assert (await client.get(f"{API}/999999", headers=elsewhere)).status_code == 404
    await session.refresh(view.drive)
    assert view.drive.status == "booked"
