"""Confirming a test drive over HTTP: the customer's "Yes, I'm coming" on the tracking page (full page and htmx
fragment), the JSON endpoint on their token, the salesperson's button on the drive screen and the "Confirmed"
badge on their day; refusals (a cancelled or past drive, a bad token, the wrong role, another branch) with a
clear message and nothing changed."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from backend.domains.audit.models import AuditEntry
from backend.domains.test_drives.models import TestDrive
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from tests.factories import make_user
from tests.helpers import csrf_token, signed_in
from tests.http.test_test_drive_api import api_key
from tests.showroom import booking, daytime_showroom, demo_car, free_start, make_showroom, media_in_tmp  # noqa: F401 - media_in_tmp: a fixture

pytestmark = pytest.mark.usefixtures("media_in_tmp")
HX = {"HX-Request": "true"}
API = "/api/v1/test-drives"


async def booked(session, redis, showroom=None, days_ahead: int = 3):
    showroom = showroom or await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    view = await TestDriveService(session, redis).book(booking(car, await free_start(session, car,
                                                                                      days_ahead=days_ahead)))
    return showroom, view


async def status_of(session, drive_id: int) -> str:
    return (await session.execute(select(TestDrive.status).where(TestDrive.id == drive_id)
                                  .execution_options(populate_existing=True))).scalar_one()


async def confirmations(session, drive_id: int) -> int:
    return (await session.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.entity == "test_drive", AuditEntry.entity_id == str(drive_id),
        AuditEntry.action == "confirm"))).scalar_one()


async def test_the_customer_taps_yes_im_coming_on_the_tracking_page(client, session, redis):
    _showroom, view = await booked(session, redis)
    url = f"/test-drive/track/{view.token}"
    page = await client.get(url)
    assert page.status_code == 200 and 'data-testid="confirm-drive">Yes, I\'m coming</button>' in page.text
    assert 'data-testid="confirmed-note"' not in page.text
    token = await csrf_token(client, url)
    fragment = await client.post(f"{url}/confirm", data={"_csrf_token": token}, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="td-drive"' in fragment.text
    assert 'data-status="confirmed"' in fragment.text and "Thank you for confirming" in fragment.text
    assert "You confirmed that you are coming" in fragment.text and 'data-testid="confirm-drive"' not in fragment.text
    assert ">Confirmed<" in fragment.text  # the status badge
    assert "Cancel the test drive" in fragment.text and "Move the test drive" in fragment.text  # still changeable
    again = await client.post(f"{url}/confirm", data={"_csrf_token": token})  # no JavaScript: a redirect
    assert again.status_code == 303 and again.headers["location"] == url
    assert await status_of(session, view.drive.id) == "confirmed" and await confirmations(session, view.drive.id) == 1
    full = await client.get(url)
    assert "You confirmed that you are coming" in full.text and "<html" in full.text
    no_csrf = await client.post(f"{url}/confirm", data={})
    assert no_csrf.status_code == 403


async def test_the_tracking_page_refuses_to_confirm_a_cancelled_drive_or_a_bad_link(client, session, redis):
    _showroom, view = await booked(session, redis)
    url = f"/test-drive/track/{view.token}"
    token = await csrf_token(client, url)
    await TestDriveService(session, redis).cancel(view.drive.id)
    page = await client.get(url)
    assert 'data-testid="confirm-drive"' not in page.text
    refused = await client.post(f"{url}/confirm", data={"_csrf_token": token}, headers=HX)
    assert refused.status_code == 409 and "can no longer be confirmed" in refused.text
    assert 'data-status="cancelled"' in refused.text and await confirmations(session, view.drive.id) == 0
    for bad in ("nonsense", view.token[:-2], "A" * 43, str(view.drive.id)):
        missing = await client.post(f"/test-drive/track/{bad}/confirm", data={"_csrf_token": token})
        assert missing.status_code == 404 and "expired or is not valid" in missing.text, bad


async def test_the_json_endpoint_confirms_once_and_refuses_with_409_or_404(client, session, redis):
    _showroom, view = await booked(session, redis)
    confirmed = await client.post(f"{API}/track/{view.token}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert confirmed.headers["cache-control"] == "no-store"
    assert confirmed.json()["reference"] == view.drive.reference
    twice = await client.post(f"{API}/track/{view.token}/confirm")
    assert twice.status_code == 200 and twice.json()["status"] == "confirmed"
    assert await confirmations(session, view.drive.id) == 1
    assert (await client.get(f"{API}/track/{view.token}")).json()["status"] == "confirmed"
    for bad in ("nonsense", view.token[:-2], "A" * 43, str(view.drive.id), view.drive.reference):
        response = await client.post(f"{API}/track/{bad}/confirm")
        assert response.status_code == 404 and view.drive.reference not in response.text, bad
        assert response.json()["error"]["message"]
    assert (await client.post(f"{API}/track/{'x' * 101}/confirm")).status_code in (400, 404, 422)
    cancelled = await client.delete(f"{API}/track/{view.token}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"  # confirmed, then cancelled
    refused = await client.post(f"{API}/track/{view.token}/confirm")
    error = refused.json()["error"]
    assert refused.status_code == 409 and error["current_status"] == "cancelled"
    assert "can no longer be confirmed" in error["message"]


async def test_a_drive_whose_time_has_passed_cannot_be_confirmed_over_the_api(client, session, redis):
    _showroom, view = await booked(session, redis)
    start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    view.drive.starts_at, view.drive.ends_at, view.drive.blocked_until = (
        start, start + timedelta(minutes=30), start + timedelta(minutes=45))
    await session.flush()
    refused = await client.post(f"{API}/track/{view.token}/confirm")
    assert refused.status_code == 409 and "has passed" in refused.json()["error"]["message"]
    assert await status_of(session, view.drive.id) == "booked"


async def test_the_salesperson_confirms_on_the_drive_screen_and_sees_the_badge_on_their_day(client, session, redis):
    showroom = await daytime_showroom(session, redis)
    car = await demo_car(session, showroom)
    service = TestDriveService(session, redis)
    options = await service.walk_in_options(showroom.sales, car.id)
    later = [s.start for s in options["slots"] if s.start > utcnow() + timedelta(minutes=5)]
    if not later:  # pragma: no cover - daytime_showroom leaves hours in the day
        pytest.skip("no slot left today")
    view = await service.book(booking(car, later[0], source="phone"), principal=showroom.sales)
    await signed_in(client, showroom.salespeople[0])
    url = f"/test-drives/{view.drive.id}"
    screen = await client.get(url)
    assert screen.status_code == 200 and "Mark as confirmed" in screen.text and "Not confirmed yet" in screen.text
    token = await csrf_token(client, url)
    fragment = await client.post(f"{url}/confirm", data={"_csrf_token": token}, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-status="confirmed"' in fragment.text and "Confirmed: the customer is coming." in fragment.text
    assert "Mark as confirmed" not in fragment.text and ">Confirmed<" in fragment.text
    assert "Cancel the test drive" in fragment.text  # everything else as before
    again = await client.post(f"{url}/confirm", data={"_csrf_token": token})
    assert again.status_code == 303 and again.headers["location"] == url
    assert await confirmations(session, view.drive.id) == 1
    day = await client.get("/test-drives/", params={"date": later[0].astimezone(
        ZoneInfo(showroom.branch.timezone)).date().isoformat()})
    row = re.search(rf'data-reference="{view.drive.reference}".*?</li>', day.text, re.S).group(0)
    assert 'data-status="confirmed"' in row and ">Confirmed<" in row
    key = await api_key(session, redis, "sales", showroom.branch)
    over_api = await client.post(f"{API}/{view.drive.id}/confirm", headers=key)
    assert over_api.status_code == 200 and over_api.json()["status"] == "confirmed"


async def test_staff_confirm_refuses_the_wrong_role_another_branch_and_a_finished_drive(client, session, redis):
    showroom, view = await booked(session, redis)
    url = f"/test-drives/{view.drive.id}"
    await signed_in(client, await make_user(session, redis, role="service_advisor", branch=showroom.branch))
    token = await csrf_token(client, "/dashboard")
    assert (await client.post(f"{url}/confirm", data={"_csrf_token": token})).status_code == 403
    advisor = await api_key(session, redis, "service_advisor", showroom.branch)
    assert (await client.post(f"{API}/{view.drive.id}/confirm", headers=advisor)).status_code == 403
    elsewhere = await api_key(session, redis, "sales", (await make_showroom(session, redis)).branch)
    hidden = await client.post(f"{API}/{view.drive.id}/confirm", headers=elsewhere)
    assert hidden.status_code == 404 and view.customer.name not in hidden.text
    assert (await client.post(f"{API}/{view.drive.id}/confirm")).status_code in (401, 403)
    assert await status_of(session, view.drive.id) == "booked"
    await client.post("/sign-out", data={"_csrf_token": token})
    await signed_in(client, showroom.salespeople[0])
    token = await csrf_token(client, url)
    await TestDriveService(session, redis).cancel(view.drive.id)
    assert "Mark as confirmed" not in (await client.get(url)).text
    refused = await client.post(f"{url}/confirm", data={"_csrf_token": token}, headers=HX)
    assert refused.status_code == 409 and "can no longer be confirmed" in refused.text
    mine = await api_key(session, redis, "sales", showroom.branch)
    over_api = await client.post(f"{API}/{view.drive.id}/confirm", headers=mine)
    assert over_api.status_code == 409 and over_api.json()["error"]["current_status"] == "cancelled"
