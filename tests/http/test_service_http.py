"""The customer's side over HTTP: the booking screen and API, the tracking page and API, the lookup.
Every refusal has a clear message and changes nothing; nothing answers 500."""

import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from backend.domains.repair_orders.models import RepairOrderFinding
from backend.domains.repair_orders.service import RepairOrderService
from backend.domains.service_booking import rules
from backend.domains.service_booking.models import ServiceAppointment
from backend.lib.db import utcnow
from tests.helpers import csrf_token, signed_in
from tests.workshop import a_phone, a_plate, checked_in, free_slot, make_workshop, media_in_tmp, technician_user  # noqa: F401 - media_in_tmp: a fixture

HX = {"HX-Request": "true"}

pytestmark = pytest.mark.usefixtures("media_in_tmp")


def day_after_tomorrow(branch):
    return (rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)).isoformat()


def form_for(branch, at, token, **changes):
    data = {"_csrf_token": token, "branch": branch.code, "date": at.date().isoformat(), "operations": ["OIL"],
            "slot": at.isoformat(), "plate": a_plate(), "mileage_km": "21000", "name": "Zhang Wei",
            "phone": a_phone(), "email": "zw@example.test", "transport": "waiting", "privacy_consent": "on",
            "idempotency_key": f"form-{a_phone()}"}
    return data | changes


def api_body(branch, at, **changes):
    body = {"branch": branch.code, "slot": at.isoformat(), "operations": ["OIL"], "plate": a_plate(),
            "mileage_km": 21000, "name": "Li Na", "phone": a_phone(), "privacy_consent": True}
    return body | changes


async def count_appointments(session, branch):
    return (await session.execute(select(func.count()).select_from(ServiceAppointment)
                                  .where(ServiceAppointment.branch_id == branch.id))).scalar_one()


async def test_booking_screen_full_page_fragment_and_bad_parameters(client, session):
    branch = await make_workshop(session)
    empty = await client.get("/service/book")
    assert empty.status_code == 200 and "<html" in empty.text and "Book a service" in empty.text
    assert "service.css" in empty.text and "HX-Request" in empty.headers["vary"]
    query = {"branch": branch.code, "date": day_after_tomorrow(branch), "operations": ["OIL", "EVCHECK"]}
    full = await client.get("/service/book", params=query)
    assert full.status_code == 200 and 'name="slot"' in full.text and "Estimated price" in full.text
    assert full.text.count('type="radio" name="slot"') == 45
    fragment = await client.get("/service/book", params=query, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="step2"' in fragment.text
    for bad, words in (({"operations": ["NOPE"]}, "Unknown operation"), ({"date": "2001-01-01"}, "already passed"),
                       ({"date": "yesterday"}, "valid date"), ({"branch": "ZZ99"}, "Choose one of our branches")):
        response = await client.get("/service/book", params=query | bad, headers=HX)
        assert response.status_code == 422 and words in response.text, bad


async def test_customer_books_on_the_screen_and_lands_on_the_tracking_page(client, session):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch)
    token = await csrf_token(client, "/service/book")
    data = form_for(branch, slot, token)
    response = await client.post("/service/book", data=data)
    assert response.status_code == 303
    target = response.headers["location"]
    assert re.fullmatch(r"/track/[A-Za-z0-9_-]{43}\?booked=1", target)
    # A double submit (same form, same idempotency key) books once and lands on the same page.
    again = await client.post("/service/book", data=data)
    assert again.status_code == 303 and again.headers["location"] == target
    assert await count_appointments(session, branch) == 1
    # Back, change the time, submit the same form again: told so, and given a fresh form to book anew.
    changed = await client.post("/service/book", data=data | {"mileage_km": "21001"})
    assert changed.status_code == 422 and "already used for a different booking" in changed.text
    fresh_key = re.search(r'name="idempotency_key" value="([^"]+)"', changed.text).group(1)
    assert fresh_key != data["idempotency_key"] and await count_appointments(session, branch) == 1
    page = await client.get(target)
    assert page.status_code == 200 and "your service is booked" in page.text
    assert page.headers["cache-control"] == "no-store" and 'data-status="booked"' in page.text
    assert "OIL op" in page.text and "Cancel the appointment" in page.text


async def test_booking_screen_refusals_re_render_with_messages(client, session):
    branch = await make_workshop(session, checkins_per_slot=1)
    slot = await free_slot(session, branch)
    token = await csrf_token(client, "/service/book")
    for change, words in (({"plate": "沪A1234"}, "mainland plate"), ({"privacy_consent": ""}, "agree"),
                          ({"mileage_km": "lots"}, "Enter a number"), ({"phone": "12345678"}, "mobile number"),
                          ({"phone": "12"}, "at least 5"),
                          ({"slot": (slot - timedelta(days=5)).isoformat()}, "already passed")):
        response = await client.post("/service/book", data=form_for(branch, slot, token, **change))
        assert response.status_code == 422 and words in response.text, change
        assert 'aria-invalid="true"' in response.text or "flash--error" in response.text
    assert await count_appointments(session, branch) == 0
    assert (await client.post("/service/book", data=form_for(branch, slot, token))).status_code == 303
    taken = await client.post("/service/book", data=form_for(branch, slot, token))
    assert taken.status_code == 409 and "just taken" in taken.text
    assert taken.text.count('type="radio" name="slot"') == 3  # the next free times, to choose again
    assert await count_appointments(session, branch) == 1
    no_csrf = await client.post("/service/book", data={k: v for k, v in form_for(branch, slot, token).items()
                                                        if k != "_csrf_token"})
    assert no_csrf.status_code == 403


async def test_availability_api(client, session):
    branch = await make_workshop(session)
    catalogue = await client.get("/api/v1/service/operations")
    assert catalogue.status_code == 200 and {"OIL", "EVCHECK"} <= {op["code"] for op in catalogue.json()}
    query = {"branch": branch.code, "date": day_after_tomorrow(branch), "operations": "OIL,evcheck"}
    found = await client.get("/api/v1/service/availability", params=query)
    body = found.json()
    assert found.status_code == 200 and body["estimated_minutes"] == 90 and body["estimated_price"] == "860.00"
    assert len(body["slots"]) == 45 and body["slots"][0]["start"].endswith("+08:00")
    for bad in ({"branch": "NOPE"}, {"operations": "OIL,NOPE"}, {"date": "2020-01-01"}, {"date": "soon"},
                {"operations": ""}, {"branch": "x" * 40}):
        response = await client.get("/api/v1/service/availability", params=query | bad)
        assert response.status_code == 422, bad
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["message"] and error["fields"], bad
    missing = await client.get("/api/v1/service/availability", params={"branch": branch.code})
    assert missing.status_code == 422 and missing.json()["error"]["fields"]


async def test_booking_api_201_409_422_and_idempotency(client, session):
    branch = await make_workshop(session, checkins_per_slot=1)
    slot = await free_slot(session, branch)
    body = api_body(branch, slot)
    created = await client.post("/api/v1/service/appointments", json=body, headers={"Idempotency-Key": "k-000001"})
    assert created.status_code == 201, created.text
    appointment = created.json()
    assert appointment["status"] == "booked" and appointment["tracking_url"].startswith("http")
    assert created.headers["location"] == appointment["tracking_url"]
    replay = await client.post("/api/v1/service/appointments", json=body, headers={"Idempotency-Key": "k-000001"})
    assert replay.status_code == 201 and replay.json() == appointment
    assert replay.headers["idempotent-replayed"] == "true"
    reused = await client.post("/api/v1/service/appointments", json=body | {"mileage_km": 1},
                               headers={"Idempotency-Key": "k-000001"})
    assert reused.status_code == 422 and "different booking" in reused.json()["error"]["message"]

    taken = await client.post("/api/v1/service/appointments", json=api_body(branch, slot))
    assert taken.status_code == 409
    error = taken.json()["error"]
    assert error["code"] == "conflict" and len(error["next_slots"]) == 3 and "taken" in error["message"]

    tracking = await client.get("/api/v1/track/" + urlsplit(appointment["tracking_url"]).path.rsplit("/", 1)[1])
    assert tracking.status_code == 200 and tracking.json()["kind"] == "appointment"
    assert tracking.json()["reference"] == appointment["reference"]
    assert await count_appointments(session, branch) == 1


async def test_booking_api_bad_input_never_500(client, session, settings):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch)
    cases = [
        ({"plate": "ABC"}, "plate"), ({"vin": "1M8GDM9A1KP042788", "plate": None}, "vin"),
        ({"operations": ["NOPE"]}, "operations"), ({"operations": []}, "operations"),
        ({"slot": (slot - timedelta(days=4)).isoformat()}, "slot"), ({"slot": "tomorrow"}, "slot"),
        ({"slot": slot.replace(tzinfo=None).isoformat()}, "slot"), ({"mileage_km": "many"}, "mileage_km"),
        ({"mileage_km": -5}, "mileage_km"), ({"name": ""}, "name"), ({"surprise": 1}, "surprise"),
        ({"privacy_consent": False}, "privacy_consent"), ({"source": "walk_in"}, "source"),
        ({"branch": "ZZ99"}, "branch"), ({"operations": "OIL"}, "operations"), ({"name": "x" * 500}, "name"),
    ]
    for change, field in cases:
        response = await client.post("/api/v1/service/appointments", json=api_body(branch, slot) | change)
        assert response.status_code == 422, (change, response.text)
        error = response.json()["error"]
        assert field in error["fields"] and error["message"], change
    malformed = await client.post("/api/v1/service/appointments", content=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"]
    for shape in (b"[1, 2]", b'"text"', b""):
        response = await client.post("/api/v1/service/appointments", content=shape,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["message"], shape
    huge = await client.post("/api/v1/service/appointments", json=api_body(branch, slot, notes="x" * 20000))
    assert huge.status_code == 413
    bad_key = await client.post("/api/v1/service/appointments", json=api_body(branch, slot),
                                headers={"Idempotency-Key": "x"})
    assert bad_key.status_code == 422
    assert await count_appointments(session, branch) == 0


async def test_a_browser_session_books_as_the_public_through_the_api(client, session, redis):
    """The JSON booking needs no CSRF cookie, so a session cookie must not make it a staff booking."""
    from tests.factories import make_user

    branch = await make_workshop(session)
    await signed_in(client, await make_user(session, redis, role="service_advisor", branch=branch))
    slot = await free_slot(session, branch)
    response = await client.post("/api/v1/service/appointments", json=api_body(branch, slot, source="phone"))
    assert response.status_code == 422 and "source" in response.json()["error"]["fields"]
    public = await client.post("/api/v1/service/appointments", json=api_body(branch, slot))
    assert public.status_code == 201 and public.json()["source"] == "online"


async def test_tracking_page_full_fragment_and_nothing_for_bad_tokens(client, session, redis, push_receiver):
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    full = await client.get(f"/track/{view.token}")
    assert full.status_code == 200 and order.number in full.text and 'hx-trigger="every 15s"' in full.text
    assert "checked in and waiting" in full.text
    # The customer can turn on push for this phone: the token authorises the subscription.
    assert f'data-tracking-token="{view.token}"' in full.text and "js/track.js" in full.text
    fake = push_receiver.subscription()
    subscribed = await client.post("/api/v1/push/subscriptions", json=fake.as_json() | {"tracking_token": view.token},
                                   headers={"x-csrftoken": await csrf_token(client, f"/track/{view.token}")})
    assert subscribed.status_code == 201
    from backend.domains.notifications.models import PushSubscription

    owner = (await session.execute(select(PushSubscription.owner_kind, PushSubscription.owner_id).where(
        PushSubscription.endpoint == fake.endpoint))).one()
    assert tuple(owner) == ("customer", order.customer_id)
    fragment = await client.get(f"/track/{view.token}", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="progress"' in fragment.text
    for bad in ("nonsense", view.token[:-2], "A" * 43, "x" * 100, order.number, str(order.id)):
        page = await client.get(f"/track/{bad}")
        assert page.status_code == 404 and "expired or is not valid" in page.text
        assert view.vehicle.plate[2:] not in page.text and view.customer.name not in page.text
        api = await client.get(f"/api/v1/track/{bad}")
        assert api.status_code == 404 and order.number not in api.text
    assert (await client.get(f"/track/{'x' * 101}")).status_code in (400, 404)
    data = (await client.get(f"/api/v1/track/{view.token}")).json()
    assert data["kind"] == "repair_order" and data["reference"] == order.number and data["status"] == "open"
    assert "phone" not in data and "cost" not in str(data) and data["total_so_far"] == "560.00"


async def test_customer_approves_and_declines_items_on_the_tracking_page(client, session, redis):
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch, ["INSPECT"])
    tech = await technician_user(session, redis, branch)
    orders = RepairOrderService(session, redis)
    from backend.domains.repair_orders.models import RepairOrderLabour
    from tests.service.test_repair_orders import finding
    from tests.workshop import png

    line = (await session.execute(select(RepairOrderLabour).where(RepairOrderLabour.repair_order_id == order.id))
            ).scalar_one()
    await orders.start_clock(tech, line.id)
    await orders.stop_clock(tech)
    discs = await orders.report_finding(tech, order.id, finding(), png())
    wipers = await orders.report_finding(tech, order.id, finding("Wiper blades", "0.1", "120"))
    discs_id, wipers_id = discs.id, wipers.id
    page = await client.get(f"/track/{view.token}")
    assert page.text.count('data-testid="pending-item"') == 2 and "Waiting for your answer" in page.text
    photo_path = re.search(rf'src="(/track/{view.token}/photos/[0-9a-f]{{32}}-thumb\.jpg)"', page.text).group(1)
    photo = await client.get(photo_path)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content[:2] == b"\xff\xd8"
    token = await csrf_token(client, f"/track/{view.token}")
    approved = await client.post(f"/track/{view.token}/approvals", headers=HX,
                                 data={"_csrf_token": token, "item_id": str(discs_id), "decision": "approve"})
    assert approved.status_code == 200 and "Thank you: approved." in approved.text and "<html" not in approved.text
    twice = await client.post(f"/track/{view.token}/approvals", headers=HX,
                              data={"_csrf_token": token, "item_id": str(discs_id), "decision": "decline"})
    assert twice.status_code == 409 and "already answered" in twice.text
    bad = await client.post(f"/track/{view.token}/approvals",
                            data={"_csrf_token": token, "item_id": "abc", "decision": "approve"}, headers=HX)
    assert bad.status_code == 422
    api = await client.post(f"/api/v1/track/{view.token}/approvals",
                            json={"decisions": [{"item_id": wipers_id, "decision": "decline"}]})
    assert api.status_code == 200 and api.json()["status"] == "in_progress"
    again = await client.post(f"/api/v1/track/{view.token}/approvals",
                              json={"decisions": [{"item_id": wipers_id, "decision": "approve"}]})
    assert again.status_code == 409 and "already answered" in again.json()["error"]["message"]
    unknown = await client.post(f"/api/v1/track/{view.token}/approvals",
                                json={"decisions": [{"item_id": 987654, "decision": "approve"}]})
    assert unknown.status_code == 404
    for body in ({"decisions": []}, {"decisions": [{"item_id": "x", "decision": "approve"}]}, {},
                 {"decisions": [{"item_id": wipers_id, "decision": "perhaps"}]}):
        response = await client.post(f"/api/v1/track/{view.token}/approvals", json=body)
        assert response.status_code == 422, body
    decisions = dict((await session.execute(select(RepairOrderFinding.id, RepairOrderFinding.decision)
                                            .where(RepairOrderFinding.repair_order_id == order.id))).all())
    assert decisions == {discs_id: "approved", wipers_id: "declined"}
    done = await client.get(f"/track/{view.token}")
    assert "Work on your car is in progress." in done.text and done.text.count('data-testid="answered-item"') == 2
    no_photo = await client.get(f"/track/{view.token}/photos/{'0' * 32}.jpg")
    assert no_photo.status_code == 404
    traversal = await client.get(f"/track/{view.token}/photos/..%2F..%2Fetc%2Fpasswd")
    assert traversal.status_code == 404


async def test_customer_moves_and_cancels_the_appointment(client, session, redis):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch)
    token = await csrf_token(client, "/service/book")
    target = (await client.post("/service/book", data=form_for(branch, slot, token))).headers["location"]
    link = target.split("?")[0]
    later_day = (slot + timedelta(days=1)).date().isoformat()
    options = await client.get(link, params={"reschedule": later_day})
    assert options.status_code == 200 and "Move to this time" in options.text
    new_slot = re.findall(r'name="slot" value="([^"]+)"', options.text)[2]
    moved = await client.post(f"{link}/reschedule", data={"_csrf_token": token, "slot": new_slot})
    assert moved.status_code == 303
    appointment = (await session.execute(select(ServiceAppointment).where(ServiceAppointment.branch_id == branch.id))
                   ).scalar_one()
    assert appointment.slot_start == datetime.fromisoformat(new_slot)
    bad = await client.post(f"{link}/reschedule", data={"_csrf_token": token, "slot": "never"}, headers=HX)
    assert bad.status_code == 422 and "offered times" in bad.text
    cancelled = await client.post(f"{link}/cancel", data={"_csrf_token": token})
    assert cancelled.status_code == 303
    await session.refresh(appointment)
    assert appointment.status == "cancelled"
    twice = await client.post(f"{link}/cancel", data={"_csrf_token": token}, headers=HX)
    assert twice.status_code in (409, 422) and "can no longer be changed" in twice.text


async def test_lookup_form_and_api_answer_alike_and_are_rate_limited(client, session, redis):
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    form = await client.get("/track")
    assert form.status_code == 200 and "Repair order number" in form.text
    token = await csrf_token(client, "/track")
    found = await client.post("/track", data={"_csrf_token": token, "ro_number": order.number,
                                              "phone": view.customer.phone})
    assert found.status_code == 303 and found.headers["location"].startswith("/track/")
    assert (await client.get(found.headers["location"])).status_code == 200
    texts = set()
    for wrong in ({"ro_number": order.number, "phone": "13000000000"},
                  {"ro_number": "SH99-999999", "plate": "沪A12345"},
                  {"ro_number": order.number, "plate": "nonsense"}):
        response = await client.post("/track", data={"_csrf_token": token} | wrong)
        assert response.status_code == 404
        texts.add(re.search(r'data-testid="form-error">([^<]+)<', response.text).group(1))
    assert texts == {"We could not find a repair order with these details."}
    neither = await client.post("/track", data={"_csrf_token": token, "ro_number": order.number})
    assert neither.status_code == 422
    api = await client.post("/api/v1/track/lookup", json={"ro_number": order.number, "plate": view.vehicle.plate})
    assert api.status_code == 200 and "/track/" in api.json()["tracking_url"]
    miss = await client.post("/api/v1/track/lookup", json={"ro_number": order.number, "phone": "13000000000"})
    assert miss.status_code == 404 and miss.json()["error"]["message"] == texts.pop()
    assert (await client.post("/api/v1/track/lookup", json={"ro_number": order.number})).status_code == 422
    assert (await client.post("/api/v1/track/lookup", json={"ro_number": 5, "phone": []})).status_code == 422
    for _ in range(10):
        last = await client.post("/api/v1/track/lookup", json={"ro_number": order.number, "phone": "13000000000"})
    assert last.status_code == 429 and last.headers.get("retry-after")
    limited = await client.post("/track", data={"_csrf_token": token, "ro_number": order.number,
                                                "phone": view.customer.phone})
    assert limited.status_code == 429 and "Too many attempts" in limited.text
