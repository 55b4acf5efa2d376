"""The test-drive screens over HTTP: the customer's booking and tracking pages (full page and htmx fragment,
refusals re-rendered with messages, nothing stored), the calendar file, and the salesperson's day, week,
walk-in, check-out, return, no-show and follow-up; roles and branches."""

import io
import os
import re
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from backend.domains.test_drives import photos, rules
from backend.domains.test_drives.models import TestDrive, TestDriveCar
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from tests.factories import make_user
from tests.helpers import csrf_token, signed_in
from tests.showroom import (  # noqa: F401 - media_in_tmp: a fixture
    a_phone,
    booked_now,
    booking,
    check_out_data,
    daytime_showroom,
    demo_car,
    free_start,
    make_showroom,
    media_in_tmp,
)
from tests.stock_factories import make_vehicle

HX = {"HX-Request": "true"}
TRACK = re.compile(r"/test-drive/track/([A-Za-z0-9_-]{43})")
pytestmark = pytest.mark.usefixtures("media_in_tmp")


def form_for(car, at, token, changes=None) -> dict:
    return {"_csrf_token": token, "vehicle_id": str(car.id), "date": at.date().isoformat(),
            "start": at.isoformat(), "name": "Zhou Jie", "phone": a_phone(), "email": "",
            "consent": "on", "idempotency_key": f"form-{a_phone()}"} | (changes or {})


async def count_drives(session, car) -> int:
    return (await session.execute(select(func.count()).select_from(TestDrive)
                                  .where(TestDrive.vehicle_id == car.id))).scalar_one()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 40, 40)).save(out, format="JPEG")
    return out.getvalue()


def big_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (2000, 1000), (40, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


async def test_the_licence_photo_is_served_opened_to_the_branch_staff_only(client, session, redis,
                                                                           media_in_tmp):  # noqa: F811
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom)
    view = await booked_now(session, redis, showroom, car)
    drive = (await TestDriveService(session, redis).check_out(showroom.sales, view.drive.id, check_out_data(),
                                                              big_jpeg())).drive
    key, url = drive.licence_photo_key, f"/test-drives/{drive.id}/licence"
    assert not (media_in_tmp / f"{key}.jpg").exists() and (media_in_tmp / f"{key}.jpg.sealed").is_file()
    await signed_in(client, showroom.salespeople[0])
    full, thumb = await client.get(f"{url}/{key}.jpg"), await client.get(f"{url}/{key}-thumb.jpg")
    for response, stored, size in ((full, photos.read(key, False), (1600, 800)),
                                   (thumb, photos.read(key, True), (480, 240))):
        assert response.status_code == 200 and response.content == stored
        assert response.content.startswith(b"\xff\xd8\xff") and Image.open(io.BytesIO(response.content)).size == size
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-disposition"].startswith("inline")
    for name in (f"{'0' * 32}.jpg", f"{key}.png", f"{key}.jpg.sealed", "..%2F..%2Fetc%2Fpasswd"):
        assert (await client.get(f"{url}/{name}")).status_code == 404
    # A photo that no longer opens (the secret was changed, or a file swapped in) is missing, not a 500.
    os.replace(media_in_tmp / f"{key}-thumb.jpg.sealed", media_in_tmp / f"{key}.jpg.sealed")
    assert (await client.get(f"{url}/{key}.jpg")).status_code == 404
    # Another branch's salesperson and manager see nothing; a technician of the branch is refused.
    other = await make_showroom(session, redis)
    for person, status in ((other.salespeople[0], 404),
                           (await make_user(session, redis, role="manager", branch=other.branch), 404),
                           (await make_user(session, redis, role="technician", branch=showroom.branch), 403)):
        await client.post("/sign-out", data={"_csrf_token": await csrf_token(client, "/dashboard")})
        await signed_in(client, person)
        refused = await client.get(f"{url}/{key}-thumb.jpg")
        assert refused.status_code == status and not refused.content.startswith(b"\xff\xd8\xff")


async def test_a_licence_photo_stored_plain_before_sealing_is_still_served(client, session, redis,
                                                                          media_in_tmp):  # noqa: F811
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom)
    view = await booked_now(session, redis, showroom, car)
    drive = (await TestDriveService(session, redis).check_out(showroom.sales, view.drive.id, check_out_data(),
                                                              big_jpeg())).drive
    key = drive.licence_photo_key
    legacy = photos.process(big_jpeg()).thumbnail
    (media_in_tmp / f"{key}-thumb.jpg.sealed").unlink()
    (media_in_tmp / f"{key}-thumb.jpg").write_bytes(legacy)
    await signed_in(client, showroom.salespeople[0])
    response = await client.get(f"/test-drives/{drive.id}/licence/{key}-thumb.jpg")
    assert response.status_code == 200 and response.content == legacy
    assert response.headers["cache-control"] == "private, no-store"


# -- the customer's pages ------------------------------------------------------------------------


async def test_booking_page_full_fragment_and_the_car_from_the_stock_page(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom, make="XPeng", model="G6")
    empty = await client.get("/test-drive")
    assert empty.status_code == 200 and "<html" in empty.text and "Book a test drive" in empty.text
    assert "HX-Request" in empty.headers["vary"] and "XPeng G6" in empty.text and 'name="start"' not in empty.text
    day = (rules.local_day(utcnow(), showroom.branch.timezone) + timedelta(days=2)).isoformat()
    full = await client.get("/test-drive", params={"vehicle_id": car.id, "date": day})
    assert full.status_code == 200 and full.text.count('type="radio" name="start"') == 18
    assert "test_drives.css" in full.text and "about 30 minutes" in full.text
    fragment = await client.get("/test-drive", params={"vehicle_id": car.id, "date": day}, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="td-step2"' in fragment.text
    for params, words in (({"date": "2001-01-01"}, "already passed"), ({"date": "someday"}, "valid date")):
        response = await client.get("/test-drive", params={"vehicle_id": car.id} | params, headers=HX)
        assert response.status_code == 422 and words in response.text, params
    # From the stock page: the link goes here, and a car that is not a demonstrator is driven as one.
    for_sale = await make_vehicle(session, showroom.branch, status="in_stock", make="XPeng", model="G6")
    stock_page = await client.get(f"/stock/{for_sale.id}")
    assert f'href="/test-drive?vehicle_id={for_sale.id}"' in stock_page.text
    page = await client.get(f"/test-drive?vehicle_id={for_sale.id}")
    assert page.status_code == 200 and "our demonstrator of the XPeng G6" in page.text
    assert f'name="vehicle_id" value="{car.id}"' in page.text and 'name="start"' in page.text
    other = await make_vehicle(session, showroom.branch, status="in_stock", make="Tesla", model="Model Y")
    none = await client.get(f"/test-drive?vehicle_id={other.id}")
    assert "no demonstrator of the Tesla Model Y" in none.text and 'name="start"' not in none.text
    for junk in ("abc", "99999999", "-1", "1" * 30):
        assert (await client.get("/test-drive", params={"vehicle_id": junk})).status_code in (200, 400)


async def test_customer_books_and_lands_on_the_tracking_page(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    token = await csrf_token(client, "/test-drive")
    data = form_for(car, start, token)
    response = await client.post("/test-drive", data=data)
    assert response.status_code == 303
    target = response.headers["location"]
    assert TRACK.fullmatch(target.split("?")[0]) and target.endswith("?booked=1")
    again = await client.post("/test-drive", data=data)  # a double tap books once
    assert again.status_code == 303 and again.headers["location"] == target
    assert await count_drives(session, car) == 1
    page = await client.get(target)
    assert page.status_code == 200 and "your test drive is booked" in page.text
    assert page.headers["cache-control"] == "no-store" and 'data-status="booked"' in page.text
    tracking_token = TRACK.search(target).group(1)
    assert f'data-tracking-token="{tracking_token}"' in page.text and "js/track.js" in page.text
    assert f"/test-drive/track/{tracking_token}/calendar.ics" in page.text and car.model in page.text


async def test_booking_refusals_re_render_with_messages_and_store_nothing(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    token = await csrf_token(client, "/test-drive")
    for change, words in (({"phone": "1234567"}, "mobile number"), ({"consent": ""}, "agree"),
                          ({"start": (start - timedelta(days=4)).isoformat()}, "already passed"),
                          ({"start": (start - timedelta(hours=2)).isoformat()}, "opening hours"),
                          ({"start": (start + timedelta(minutes=5)).isoformat()}, "every 30 minutes"),
                          ({"start": "noon"}, "not valid"), ({"name": ""}, "required"),
                          ({"vehicle_id": "abc"}, "Enter a number")):
        response = await client.post("/test-drive", data=form_for(car, start, token, change))
        assert response.status_code == 422 and words in response.text, change
        assert "flash--error" in response.text
    car_sold = await demo_car(session, showroom)
    sold_start = await free_start(session, car_sold)
    car_sold.status = "sold"
    await session.flush()
    sold = await client.post("/test-drive", data=form_for(car_sold, sold_start, token))
    assert sold.status_code == 422 and "has been sold" in sold.text
    assert await count_drives(session, car) == 0
    assert (await client.post("/test-drive", data=form_for(car, start, token))).status_code == 303
    taken = await client.post("/test-drive", data=form_for(car, start, token))
    assert taken.status_code == 409 and "just taken" in taken.text
    assert taken.text.count('type="radio" name="start"') == 3
    no_csrf = await client.post("/test-drive", data={k: v for k, v in form_for(car, start, token).items()
                                                     if k != "_csrf_token"})
    assert no_csrf.status_code == 403
    assert await count_drives(session, car) == 1


async def test_tracking_page_moves_cancels_and_downloads_the_calendar(client, session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    start = await free_start(session, car, days_ahead=3)
    view = await TestDriveService(session, redis).book(booking(car, start))
    url = f"/test-drive/track/{view.token}"
    fragment = await client.get(url, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="td-drive"' in fragment.text
    calendar = await client.get(f"{url}/calendar.ics")
    assert calendar.status_code == 200 and calendar.headers["content-type"].startswith("text/calendar")
    assert "attachment" in calendar.headers["content-disposition"] and "BEGIN:VEVENT" in calendar.text
    assert view.drive.reference in calendar.text and "BEGIN:VALARM" in calendar.text
    options = await client.get(url, params={"reschedule": start.date().isoformat()})
    offered = re.findall(r'name="start" value="([^"]+)"', options.text)
    assert offered and start.isoformat() not in offered
    token = await csrf_token(client, url)
    bad = await client.post(f"{url}/reschedule", data={"_csrf_token": token, "start": "whenever"}, headers=HX)
    assert bad.status_code == 422 and "offered times" in bad.text
    moved = await client.post(f"{url}/reschedule", data={"_csrf_token": token, "start": offered[0]})
    assert moved.status_code == 303
    await session.refresh(view.drive)
    assert view.drive.starts_at.isoformat() != start.isoformat()
    cancelled = await client.post(f"{url}/cancel", data={"_csrf_token": token})
    assert cancelled.status_code == 303
    page = await client.get(url)
    assert 'data-status="cancelled"' in page.text and "Cancel the test drive" not in page.text
    again = await client.post(f"{url}/cancel", data={"_csrf_token": token}, headers=HX)
    assert again.status_code == 409 and "cannot become" in again.text
    assert "STATUS:CANCELLED" in (await client.get(f"{url}/calendar.ics")).text


async def test_tracking_pages_show_nothing_for_bad_or_foreign_tokens(client, session, redis):
    from tests.workshop import booking as service_booking
    from tests.workshop import free_slot, make_workshop

    workshop = await make_workshop(session)
    from backend.domains.service_booking.service import BookingService

    appointment = await BookingService(session, redis).book(service_booking(workshop, await free_slot(session,
                                                                                                      workshop)))
    showroom = await make_showroom(session, redis)
    view = await TestDriveService(session, redis).book(booking(car := await demo_car(session, showroom),
                                                               await free_start(session, car)))
    for bad in ("nonsense", view.token[:-2], "A" * 43, appointment.token, view.drive.reference, str(view.drive.id)):
        page = await client.get(f"/test-drive/track/{bad}")
        assert page.status_code == 404 and "expired or is not valid" in page.text, bad
        assert view.customer.name not in page.text
        assert (await client.get(f"/test-drive/track/{bad}/calendar.ics")).status_code == 404
    assert (await client.get(f"/test-drive/track/{'x' * 101}")).status_code in (400, 404)
    token = await csrf_token(client, "/test-drive")
    for action in ("cancel", "reschedule", "feedback"):
        refused = await client.post(f"/test-drive/track/{appointment.token}/{action}", data={"_csrf_token": token})
        assert refused.status_code == 404
    await session.refresh(view.drive)
    assert view.drive.status == "booked"


# -- the salesperson's screens -------------------------------------------------------------------


async def test_salesperson_day_week_and_walk_in_screens(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom, make="Li Auto", model="L7")
    await signed_in(client, showroom.salespeople[0])
    day = await client.get("/test-drives/")
    assert day.status_code == 200 and "<html" in day.text and "No test drives on this day" in day.text
    assert 'href="/test-drives/"' in day.text and "Test drives" in day.text  # in the bottom navigation
    assert 'id="td-day"' in (await client.get("/test-drives/", headers=HX)).text
    assert (await client.get("/test-drives/", params={"date": "bad"})).status_code == 200
    walk_in = await client.get("/test-drives/walk-in")
    assert walk_in.status_code == 200 and "Li Auto L7" in walk_in.text and 'name="start"' not in walk_in.text
    chosen = await client.get("/test-drives/walk-in", params={"vehicle_id": car.id}, headers=HX)
    assert chosen.status_code == 200 and "<html" not in chosen.text and 'name="start"' in chosen.text
    first_slot = re.search(r'name="start" value="([^"]+)" checked', chosen.text).group(1)
    token = await csrf_token(client, "/test-drives/walk-in")
    refused = await client.post("/test-drives/walk-in", data={"_csrf_token": token, "vehicle_id": car.id,
                                                              "start": first_slot, "name": "Walk In",
                                                              "phone": "123", "consent": "on"})
    assert refused.status_code == 422 and "at least 5" in refused.text and await count_drives(session, car) == 0
    booked = await client.post("/test-drives/walk-in", data={"_csrf_token": token, "vehicle_id": car.id,
                                                             "start": first_slot, "name": "Walk In",
                                                             "phone": a_phone(), "consent": "on",
                                                             "idempotency_key": "walk-in-000001"})
    assert booked.status_code == 303 and re.fullmatch(r"/test-drives/\d+", booked.headers["location"])
    drive_page = await client.get(booked.headers["location"])
    assert drive_page.status_code == 200 and "Hand over the car" in drive_page.text and "Walk In" in drive_page.text
    day = await client.get("/test-drives/")
    assert day.text.count('data-testid="drive-row"') == 1
    week = await client.get("/test-drives/week", params={"vehicle_id": car.id})
    assert week.status_code == 200 and week.text.count('data-testid="week-day"') == 7 and "Walk In" in week.text
    assert 'id="td-week"' in (await client.get("/test-drives/week", headers=HX)).text


async def test_check_out_return_and_follow_up_on_the_drive_screen(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom)
    view = await booked_now(session, redis, showroom, car)
    await signed_in(client, showroom.salespeople[0])
    url = f"/test-drives/{view.drive.id}"
    token = await csrf_token(client, url)
    checkout = {"_csrf_token": token, "licence_number": "310101199001011234",
                "licence_expiry": (utcnow().date() + timedelta(days=365)).isoformat(), "odometer_out": "1250",
                "key_handed_over": "on"}
    expired = await client.post(f"{url}/check-out", data=checkout | {"licence_expiry": "2020-01-01"},
                                files={"photo": ("licence.jpg", jpeg(), "image/jpeg")}, headers=HX)
    assert expired.status_code == 422 and "expired on" in expired.text and 'id="td-drive"' in expired.text
    no_key = await client.post(f"{url}/check-out", data={k: v for k, v in checkout.items() if k != "key_handed_over"},
                               files={"photo": ("", b"", "application/octet-stream")})
    assert no_key.status_code == 422 and "Key handed over" in no_key.text
    await session.refresh(view.drive)
    assert view.drive.status == "booked"
    out = await client.post(f"{url}/check-out", data=checkout, files={"photo": ("licence.jpg", jpeg(), "image/jpeg")})
    assert out.status_code == 303
    page = await client.get(url)
    assert 'data-status="checked_out"' in page.text and "1234" in page.text and "310101199001011234" not in page.text
    photo = re.search(rf"{url}/licence/([0-9a-f]{{32}}-thumb\.jpg)", page.text).group(1)
    image = await client.get(f"{url}/licence/{photo}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert (await client.get(f"{url}/licence/{'0' * 32}.jpg")).status_code == 404
    back = {"_csrf_token": token, "odometer_in": "1240", "energy_level": "75", "interest": "5", "notes": "Keen"}
    lower = await client.post(f"{url}/return", data=back, headers=HX)
    assert lower.status_code == 422 and "cannot be lower" in lower.text
    returned = await client.post(f"{url}/return", data=back | {"odometer_in": "1263"}, headers=HX)
    assert returned.status_code == 200 and "The car is back." in returned.text and "13 km driven" in returned.text
    done = await client.post(f"{url}/follow-up", data={"_csrf_token": token, "note": "Called, sends offer"})
    assert done.status_code == 303 and 'data-status="followed_up"' in (await client.get(url)).text


async def test_no_show_and_cancel_on_the_drive_screen(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    await signed_in(client, showroom.salespeople[0])
    view = await booked_now(session, redis, showroom, await demo_car(session, showroom))
    token = await csrf_token(client, f"/test-drives/{view.drive.id}")
    if view.drive.starts_at <= utcnow():
        gone = await client.post(f"/test-drives/{view.drive.id}/no-show", data={"_csrf_token": token}, headers=HX)
        assert gone.status_code == 200 and "no-show" in gone.text
    other = await TestDriveService(session, redis).book(
        booking(car := await demo_car(session, showroom), await free_start(session, car)))
    early = await client.post(f"/test-drives/{other.drive.id}/no-show", data={"_csrf_token": token}, headers=HX)
    assert early.status_code == 409 and "once the start time" in early.text
    cancelled = await client.post(f"/test-drives/{other.drive.id}/cancel", data={"_csrf_token": token})
    assert cancelled.status_code == 303
    await session.refresh(other.drive)
    assert other.drive.status == "cancelled"


async def test_staff_screens_refuse_other_roles_branches_and_the_public(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    view = await booked_now(session, redis, showroom, await demo_car(session, showroom))
    anonymous = await client.get("/test-drives/")
    assert anonymous.status_code in (302, 303) and "/sign-in" in anonymous.headers["location"]
    await signed_in(client, await make_user(session, redis, role="service_advisor", branch=showroom.branch))
    assert (await client.get("/test-drives/")).status_code == 403
    assert (await client.get(f"/test-drives/{view.drive.id}")).status_code == 403
    await client.post("/sign-out", data={"_csrf_token": await csrf_token(client, "/dashboard")})
    await signed_in(client, await make_user(session, redis, role="sales", branch=(await make_showroom(session,
                                                                                                      redis)).branch))
    hidden = await client.get(f"/test-drives/{view.drive.id}")
    assert hidden.status_code == 404 and view.customer.name not in hidden.text
    token = await csrf_token(client, "/test-drives/")
    for action in ("no-show", "cancel", "return", "follow-up"):
        assert (await client.post(f"/test-drives/{view.drive.id}/{action}",
                                  data={"_csrf_token": token})).status_code == 404
    assert (await client.get("/test-drives/cars")).status_code == 403  # managers choose the cars
    await session.refresh(view.drive)
    assert view.drive.status == "booked"


async def test_a_manager_offers_an_in_stock_car_for_test_drives(client, session, redis):
    showroom = await make_showroom(session, redis)
    manager = await make_user(session, redis, role="manager", branch=showroom.branch)
    for_sale = await make_vehicle(session, showroom.branch, status="in_stock")
    await signed_in(client, manager)
    page = await client.get("/test-drives/cars")
    assert page.status_code == 200 and "Cars for test drives" in page.text
    token = await csrf_token(client, "/test-drives/cars")
    unknown = await client.post("/test-drives/cars", data={"_csrf_token": token, "vin": "ZZZZZZ"})
    assert unknown.status_code == 422 and "No car of your branch" in unknown.text
    marked = await client.post("/test-drives/cars", data={"_csrf_token": token, "vin": for_sale.vin[-6:]})
    assert marked.status_code == 303 and await session.get(TestDriveCar, for_sale.id) is not None
    assert for_sale.vin[-6:] in (await client.get("/test-drives/cars")).text
    removed = await client.post("/test-drives/cars", data={"_csrf_token": token, "vehicle_id": str(for_sale.id),
                                                            "drivable": "false"})
    assert removed.status_code == 303 and await session.get(TestDriveCar, for_sale.id) is None


async def test_navigation_leads_to_the_test_drives(client, session, redis):
    showroom = await make_showroom(session, redis)
    await signed_in(client, showroom.salespeople[0])
    dashboard = await client.get("/dashboard")
    assert 'data-testid="today-test-drives"' in dashboard.text
    assert dashboard.text.count('class="bottom-nav__item"') <= 5
    menu = await client.get("/menu")
    assert 'href="/test-drives/walk-in"' in menu.text and 'href="/test-drives/cars"' not in menu.text
