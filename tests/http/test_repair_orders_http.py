"""The staff side over HTTP: board, appointment desk and check-in, walk-in, repair order screen and API,
the technician's jobs, photos. Roles and branches: another branch's records are 404, wrong roles 403."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from backend.domains.accounts.service import AccountService
from backend.domains.repair_orders.models import RepairOrder, RepairOrderFinding, RepairOrderLabour
from backend.domains.service_booking.models import ServiceAppointment
from backend.lib.db import utcnow
from tests.factories import as_principal, make_user
from tests.helpers import csrf_token, signed_in
from tests.workshop import ALL_WEEK, book, checked_in, make_workshop, media_in_tmp, png  # noqa: F401 - media_in_tmp: a fixture

HX = {"HX-Request": "true"}

pytestmark = pytest.mark.usefixtures("media_in_tmp")
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the test branches' zone: datetime-local fields are read in it


async def staff_client(client, session, redis, branch, role="service_advisor"):
    user = await make_user(session, redis, role=role, branch=branch)
    if role == "technician":
        from backend.domains.service_booking.models import ServiceTechnician

        session.add(ServiceTechnician(branch_id=branch.id, name=user.name, skills=["general", "ev", "brakes"],
                                      working_hours=ALL_WEEK, staff_user_id=user.id))
        await session.flush()
    await signed_in(client, user)
    return user


async def api_key(session, redis, role, branch):
    creator = as_principal(await make_user(session, redis, role="admin"))
    _key, secret = await AccountService(session, redis).create_api_key(creator, name=f"{role} key", role=role,
                                                                      branch_id=branch.id if branch else None)
    return {"Authorization": f"Bearer {secret}"}


async def test_board_and_appointment_desk_for_advisors_only(client, session, redis):
    branch = await make_workshop(session)
    view = await book(session, branch, redis=redis)
    day = view.appointment.day.isoformat()
    anonymous = await client.get("/service/board")
    assert anonymous.status_code in (302, 303) and "/sign-in" in anonymous.headers["location"]
    await staff_client(client, session, redis, branch)
    full = await client.get("/service/board", params={"day": day})
    assert full.status_code == 200 and "<html" in full.text and 'data-testid="appointment-row"' in full.text
    assert view.vehicle.plate[2:] in full.text and 'hx-trigger="every 30s"' in full.text
    fragment = await client.get("/service/board", params={"day": day}, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="board"' in fragment.text
    assert (await client.get("/service/board", params={"day": "someday"})).status_code == 200
    desk = await client.get(f"/service/appointments/{view.appointment.id}")
    assert desk.status_code == 200 and 'data-testid="check-in-form"' in desk.text
    desk_fragment = await client.get(f"/service/appointments/{view.appointment.id}", headers=HX)
    assert desk_fragment.status_code == 200 and 'id="desk"' in desk_fragment.text and "<html" not in desk_fragment.text
    token = await csrf_token(client, f"/service/appointments/{view.appointment.id}")
    confirmed = await client.post(f"/service/appointments/{view.appointment.id}/status",
                                  data={"_csrf_token": token, "status": "confirmed"})
    assert confirmed.status_code == 303
    again = await client.post(f"/service/appointments/{view.appointment.id}/status",
                              data={"_csrf_token": token, "status": "confirmed"})
    assert again.status_code == 409 and "cannot become" in again.text
    bogus = await client.post(f"/service/appointments/{view.appointment.id}/status",
                              data={"_csrf_token": token, "status": "teleported"})
    assert bogus.status_code == 422 and "offered options" in bogus.text


async def test_staff_of_another_branch_and_other_roles_get_404_or_403(client, session, redis):
    branch, other = await make_workshop(session), await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    await staff_client(client, session, redis, other)
    assert (await client.get(f"/service/appointments/{view.appointment.id}")).status_code == 404
    assert (await client.get(f"/repair-orders/{order.id}")).status_code == 404
    assert (await client.get(f"/api/v1/repair-orders/{order.id}")).status_code == 404
    assert (await client.get(f"/api/v1/service/appointments/{view.appointment.id}")).status_code == 404
    board = await client.get("/service/board")
    assert board.status_code == 200 and order.number not in board.text
    token = await csrf_token(client, "/service/board")
    moved = await client.post(f"/repair-orders/{order.id}/status",
                              data={"_csrf_token": token, "status": "cancelled", "version": "1"})
    assert moved.status_code == 404
    assert (await session.get(RepairOrder, order.id)).status == "open"
    sales_headers = await api_key(session, redis, "sales", branch)
    assert (await client.get(f"/api/v1/repair-orders/{order.id}", headers=sales_headers)).status_code == 403
    client.cookies.clear()
    await staff_client(client, session, redis, branch, role="sales")
    assert (await client.get("/service/board")).status_code == 403
    assert (await client.get(f"/repair-orders/{order.id}")).status_code == 403
    toast = await client.get("/service/board", headers=HX)
    assert toast.status_code == 403 and "toast" in toast.text
    client.cookies.clear()
    assert (await client.get(f"/api/v1/repair-orders/{order.id}")).status_code == 401


async def test_check_in_on_the_screen_with_photos(client, session, redis):
    branch = await make_workshop(session)
    view = await book(session, branch, redis=redis)
    await staff_client(client, session, redis, branch)
    page = f"/service/appointments/{view.appointment.id}"
    token = await csrf_token(client, page)
    promised = (utcnow() + timedelta(hours=6)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    fields = {"_csrf_token": token, "mileage_km": "20500", "energy_level": "75", "concerns": "Squeak",
              "promised_at": promised}
    lower = await client.post(f"{page}/check-in", data=fields | {"mileage_km": "-3"}, files={"photos": ("", b"")})
    assert lower.status_code == 422 and "at least 0" in lower.text
    not_photo = await client.post(f"{page}/check-in", data=fields,
                                  files={"photos": ("damage.jpg", b"MZ\x90\x00 an executable", "image/jpeg")})
    assert not_photo.status_code == 422 and "not a photo we can read" in not_photo.text
    past = await client.post(f"{page}/check-in", data=fields | {"promised_at": "2001-01-01T10:00"},
                             files={"photos": ("", b"")})
    assert past.status_code == 422 and "in the future" in past.text
    assert (await session.get(ServiceAppointment, view.appointment.id)).status == "booked"
    done = await client.post(f"{page}/check-in", data=fields,
                             files=[("photos", ("../../etc/passwd.png", png(), "image/png")),
                                    ("photos", ("b.png", png(30, 30), "image/png"))])
    assert done.status_code == 303, done.text
    order_url = done.headers["location"]
    order_page = await client.get(order_url)
    assert order_page.status_code == 200 and "Existing damage" in order_page.text
    photos = re.findall(r'src="(/media/repair-orders/[0-9a-f]{32}-thumb\.jpg)"', order_page.text)
    assert len(photos) == 2
    image = await client.get(photos[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert (await client.get("/media/repair-orders/passwd.png")).status_code == 404
    twice = await client.post(f"{page}/check-in", data=fields, files={"photos": ("", b"")})
    assert twice.status_code == 409 and "already been checked in" in twice.text
    client.cookies.clear()
    await staff_client(client, session, redis, await make_workshop(session))
    assert (await client.get(photos[0])).status_code == 404


async def test_walk_in_screen(client, session, redis):
    branch = await make_workshop(session)
    await staff_client(client, session, redis, branch)
    form = await client.get("/service/walk-in")
    assert form.status_code == 200 and "Walk-in" in form.text
    token = await csrf_token(client, "/service/walk-in")
    promised = (utcnow() + timedelta(hours=3)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    data = {"_csrf_token": token, "branch": branch.code, "operations": ["OIL"], "plate": "沪F12345",
            "mileage_km": "5000", "name": "Walk In", "phone": "13911112222", "privacy_consent": "on",
            "promised_at": promised}
    bad = await client.post("/service/walk-in", data=data | {"plate": "沪Z1"}, files={"photos": ("", b"")})
    assert bad.status_code == 422 and "mainland plate" in bad.text
    created = await client.post("/service/walk-in", data=data, files={"photos": ("", b"")})
    assert created.status_code == 303 and created.headers["location"].startswith("/repair-orders/")


async def test_repair_order_screen_moves_and_refuses_stale_versions(client, session, redis):
    branch = await make_workshop(session)
    order, _staff, _view = await checked_in(session, redis, branch)
    await staff_client(client, session, redis, branch)
    url = f"/repair-orders/{order.id}"
    full = await client.get(url)
    assert full.status_code == 200 and order.number in full.text and 'data-testid="move-diagnosing"' in full.text
    fragment = await client.get(url, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="order"' in fragment.text
    token = await csrf_token(client, url)
    moved = await client.post(f"{url}/status", data={"_csrf_token": token, "status": "diagnosing", "version": "1"},
                              headers=HX)
    assert moved.status_code == 200 and 'data-status="diagnosing"' in moved.text and 'data-version="2"' in moved.text
    stale = await client.post(f"{url}/status", data={"_csrf_token": token, "status": "cancelled", "version": "1"},
                              headers=HX)
    assert stale.status_code == 409 and "Someone else changed" in stale.text
    assert 'data-status="diagnosing"' in stale.text  # the fragment shows the order as it is now
    illegal = await client.post(f"{url}/status", data={"_csrf_token": token, "status": "delivered", "version": "2"})
    assert illegal.status_code == 409 and "cannot become" in illegal.text
    unknown = await client.post(f"{url}/status", data={"_csrf_token": token, "status": "melted", "version": "2"})
    assert unknown.status_code == 422
    no_version = await client.post(f"{url}/status", data={"_csrf_token": token, "status": "in_progress",
                                                          "version": "x"})
    assert no_version.status_code == 303
    part = await client.post(f"{url}/parts", headers=HX, data={"_csrf_token": token, "part_number": "P-1",
                                                               "description": "Bulb", "quantity": "2",
                                                               "unit_price": "15.5"})
    assert part.status_code == 200 and "Part added." in part.text
    bad_part = await client.post(f"{url}/parts", headers=HX, data={"_csrf_token": token, "part_number": "",
                                                                   "description": "x", "quantity": "-1",
                                                                   "unit_price": "abc"})
    assert bad_part.status_code == 422 and 'aria-invalid="true"' in bad_part.text
    line = (await session.execute(select(RepairOrderLabour).where(RepairOrderLabour.repair_order_id == order.id))
            ).scalar_one()
    bad_tech = await client.post(f"{url}/lines/{line.id}/assign", data={"_csrf_token": token, "technician_id": "x"},
                                 headers=HX)
    assert bad_tech.status_code == 422 and "technician of this branch" in bad_tech.text


async def test_repair_order_api_for_staff_and_api_keys(client, session, redis):
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    headers = await api_key(session, redis, "service_advisor", branch)
    read = await client.get(f"/api/v1/repair-orders/{order.id}", headers=headers)
    body = read.json()
    assert read.status_code == 200 and body["number"] == order.number and body["version"] == 1
    assert body["labour"][0]["name"] == "OIL op" and body["parts"][0]["unit_cost"] == "180.00"
    assert body["timeline"][0]["status"] == "open" and body["totals"]["total"] == "560.00"
    moved = await client.post(f"/api/v1/repair-orders/{order.id}/status", headers=headers,
                              json={"status": "in_progress", "version": 1, "note": "Straight to work"})
    assert moved.status_code == 200 and moved.json()["status"] == "in_progress" and moved.json()["version"] == 2
    stale = await client.post(f"/api/v1/repair-orders/{order.id}/status", headers=headers,
                              json={"status": "cancelled", "version": 1})
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["current_status"] == "in_progress" and error["current_version"] == 2
    illegal = await client.post(f"/api/v1/repair-orders/{order.id}/status", headers=headers,
                                json={"status": "ready_for_pickup"})
    assert illegal.status_code == 409 and "cannot become" in illegal.json()["error"]["message"]
    for bad in ({"status": "melted"}, {"status": "delivered", "version": "one"}, {}, {"status": "open", "x": 1}):
        response = await client.post(f"/api/v1/repair-orders/{order.id}/status", headers=headers, json=bad)
        assert response.status_code == 422 and response.json()["error"]["fields"], bad
    tech_headers = await api_key(session, redis, "technician", branch)
    forbidden = await client.post(f"/api/v1/repair-orders/{order.id}/status", headers=tech_headers,
                                  json={"status": "cancelled"})
    assert forbidden.status_code == 403
    found = await client.post(f"/api/v1/repair-orders/{order.id}/findings", headers=tech_headers,
                              json={"description": "Cracked belt", "labour_hours": "0.5", "parts_price": "200"})
    assert found.status_code == 201 and found.json()["status"] == "awaiting_approval"
    assert found.json()["items"][0]["price"] == "400.00"
    bad_finding = await client.post(f"/api/v1/repair-orders/{order.id}/findings", headers=tech_headers,
                                    json={"description": "x", "labour_hours": "-1"})
    assert bad_finding.status_code == 422
    assert (await client.get("/api/v1/repair-orders/99999999", headers=headers)).status_code == 404
    other_headers = await api_key(session, redis, "service_advisor", await make_workshop(session))
    assert (await client.get(f"/api/v1/repair-orders/{order.id}", headers=other_headers)).status_code == 404
    second = await book(session, branch, redis=redis, index=3)
    created = await client.post("/api/v1/repair-orders", headers=headers, json={
        "appointment_id": second.appointment.id, "mileage_km": 20000,
        "promised_at": (utcnow() + timedelta(hours=5)).isoformat()})
    assert created.status_code == 201 and created.json()["status"] == "open"
    assert created.json()["appointment_id"] == second.appointment.id
    twice = await client.post("/api/v1/repair-orders", headers=headers, json={
        "appointment_id": second.appointment.id, "mileage_km": 20000,
        "promised_at": (utcnow() + timedelta(hours=5)).isoformat()})
    assert twice.status_code == 409
    appointment = await client.get(f"/api/v1/service/appointments/{second.appointment.id}", headers=headers)
    assert appointment.status_code == 200 and appointment.json()["status"] == "checked_in"
    assert appointment.json()["tracking_url"] is None


async def test_technician_phone_screen_start_stop_finding_done(client, session, redis):
    branch = await make_workshop(session)
    order, _staff, _view = await checked_in(session, redis, branch, ["OIL"])
    await staff_client(client, session, redis, branch, role="technician")
    jobs = await client.get("/service/jobs")
    assert jobs.status_code == 200 and order.number in jobs.text and 'data-testid="start-clock"' in jobs.text
    fragment = await client.get("/service/jobs", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="jobs"' in fragment.text
    token = await csrf_token(client, "/service/jobs")
    line = (await session.execute(select(RepairOrderLabour).where(RepairOrderLabour.repair_order_id == order.id))
            ).scalar_one()
    started = await client.post(f"/service/jobs/{line.id}/start", data={"_csrf_token": token}, headers=HX)
    assert started.status_code == 200 and "Clock started." in started.text and "Your clock is running" in started.text
    again = await client.post(f"/service/jobs/{line.id}/start", data={"_csrf_token": token}, headers=HX)
    assert again.status_code == 409 and "already running" in again.text
    url = f"/repair-orders/{order.id}"
    finding = await client.post(f"{url}/findings", data={"_csrf_token": token, "description": "Leaking shock absorber",
                                                          "note": "Oil on the strut", "labour_hours": "1.5",
                                                          "parts_price": "900"},
                                files={"photo": ("leak.png", png(), "image/png")})
    assert finding.status_code == 303
    stored = (await session.execute(select(RepairOrderFinding).where(RepairOrderFinding.repair_order_id == order.id))
              ).scalar_one()
    assert stored.photo_id is not None and stored.decision == "pending"
    bad = await client.post(f"{url}/findings", data={"_csrf_token": token, "description": "", "labour_hours": "x"},
                            files={"photo": ("", b"")})
    assert bad.status_code == 422 and "This field is required." in bad.text
    stopped = await client.post("/service/jobs/stop", data={"_csrf_token": token})
    assert stopped.status_code == 303
    not_running = await client.post("/service/jobs/stop", data={"_csrf_token": token}, headers=HX)
    assert not_running.status_code == 409 and "not running" in not_running.text
    waiting = await client.post(f"/service/jobs/{line.id}/done", data={"_csrf_token": token}, headers=HX)
    assert waiting.status_code == 409 and "Awaiting approval" in waiting.text  # the customer has not answered
    assert (await client.get("/service/board")).status_code == 403  # technicians have their own screen
    assert (await client.post("/service/jobs/99999999/start", data={"_csrf_token": token})).status_code == 404


async def test_a_technician_account_without_a_technician_record_is_told_so(client, session, redis):
    branch = await make_workshop(session)
    user = await make_user(session, redis, role="technician", branch=branch)
    await signed_in(client, user)
    response = await client.get("/service/jobs")
    assert response.status_code == 403 and "not set up as a technician" in response.text


async def test_garbage_anywhere_is_never_a_500(client, session, redis):
    """Odd parameters, bodies and types on every service route: a clear 4xx, never a server error."""
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    await staff_client(client, session, redis, branch)
    token = await csrf_token(client, "/service/board")
    headers = {"x-csrftoken": token}
    gets = [
        "/service/book?operations=" + "&operations=".join(["OIL"] * 12),
        f"/service/book?branch={'X' * 50}&date=2026-13-45&operations=%00",
        "/service/board?day=9999-99-99&branch=-1", "/service/board?branch=999999",
        "/repair-orders/0", "/repair-orders/abc", f"/track/{view.token}?reschedule=not-a-date",
        "/api/v1/service/availability?branch=SH01&date=2026-02-30&operations=OIL",
        "/api/v1/repair-orders/2147483648", "/service/appointments/99999999", "/media/repair-orders/%2e%2e",
    ]
    for url in gets:
        response = await client.get(url)
        assert 200 <= response.status_code < 500, (url, response.status_code, response.text[:300])
    posts = [
        (f"/repair-orders/{order.id}/status", {"_csrf_token": token}),
        (f"/repair-orders/{order.id}/parts", {"_csrf_token": token, "quantity": "1e309", "unit_price": "NaN"}),
        (f"/repair-orders/{order.id}/lines/999999/assign", {"_csrf_token": token, "technician_id": "1"}),
        (f"/service/appointments/{view.appointment.id}/status", {"_csrf_token": token}),
        ("/service/book", {"_csrf_token": token, "operations": ["x" * 500], "slot": "\x00"}),
        (f"/track/{view.token}/approvals", {"_csrf_token": token, "item_id": "9" * 30}),
        (f"/track/{view.token}/survey", {"_csrf_token": token, "score": "11"}),
        (f"/track/{view.token}/reschedule", {"_csrf_token": token, "slot": "2026-01-01T99:00"}),
        ("/track", {"_csrf_token": token, "ro_number": "x" * 41}),
    ]
    for url, data in posts:
        response = await client.post(url, data=data, headers=HX)
        assert 200 <= response.status_code < 500, (url, response.status_code, response.text[:300])
    json_posts = [
        (f"/api/v1/repair-orders/{order.id}/status", {"status": None}),
        (f"/api/v1/repair-orders/{order.id}/parts", {"part_number": "P", "description": "d", "quantity": 0,
                                                     "unit_price": 1}),
        ("/api/v1/repair-orders", {"appointment_id": "x"}),
        ("/api/v1/service/appointments", {"branch": None, "slot": 5, "operations": {"a": 1}}),
        (f"/api/v1/track/{view.token}/approvals", {"decisions": [{"item_id": 2**63, "decision": "approve"}]}),
        ("/api/v1/track/lookup", {"ro_number": "SH01-000001", "phone": "1" * 33}),
    ]
    for url, body in json_posts:
        response = await client.post(url, json=body, headers=headers)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text[:300])
        assert response.json()["error"]["message"]
