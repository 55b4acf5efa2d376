"""Test-drive journeys on a phone (issue 5), against the live server and its seeded demo data:

- a customer finds a car in the stock search, books a test drive of it (driving its demonstrator), lands on
  the confirmation and opens the tracking link, which offers the calendar file, and taps "Yes, I'm coming";
- a salesperson books a walk-in in three taps, checks the drive out (licence, photo, key, odometer) and takes
  the car back.

The walk-in needs a slot running *now*, whenever the suite runs: the test adds its own branch in a time zone
where it is daytime, open all day, with a salesperson (English) and a demonstrator, to the live server's
database before it starts.
"""

from __future__ import annotations

import io
import random
import re
from datetime import date, timedelta

from PIL import Image
from playwright.async_api import Page, expect

from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import with_check_digit
from tests.browser.e2e import branch_with_staff, live_session, sign_in
from tests.showroom import ALL_DAY, daytime_zone


def photo_file(name: str) -> dict:
    out = io.BytesIO()
    Image.new("RGB", (800, 500), (30, 80, random.randrange(256))).save(out, format="JPEG")
    return {"name": name, "mimeType": "image/jpeg", "buffer": out.getvalue()}


async def test_customer_books_from_a_stock_page_and_opens_the_tracking_link(phone: Page) -> None:
    page = phone
    await page.goto("/stock")
    await page.locator("a[href^='/stock/']", has_text="Seal").first.click()
    await expect(page.get_by_test_id("vehicle-detail")).to_be_visible()
    await page.get_by_test_id("book-test-drive").click()
    await expect(page).to_have_url(re.compile(r"/test-drive\?vehicle_id=\d+$"))
    await expect(page.get_by_test_id("car-note")).to_contain_text("our demonstrator of the BYD Seal")
    slots = page.get_by_test_id("slots")
    await expect(slots.locator("input[name=start]").first).to_be_attached()
    # Another day: htmx brings that day's free times without a page load.
    day_after = (await page.locator("[data-testid=days] input[name=date]").nth(2).get_attribute("value"))
    await page.locator("[data-testid=days] label.td-day").nth(2).click()
    await expect(page.locator("#td-book input[name=date]")).to_have_value(day_after)
    await page.get_by_test_id("slots").locator("label.td-slot").nth(3).click()
    await page.get_by_label("Name", exact=True).fill("Test Driver 试驾")
    await page.get_by_label("Mobile number").fill(f"135{random.randrange(10**7, 10**8)}")
    await page.get_by_test_id("consent").check()
    await page.get_by_test_id("book-submit").click()

    await expect(page.get_by_test_id("booked")).to_contain_text("your test drive is booked")
    await expect(page.get_by_test_id("drive-status")).to_have_text("Booked")
    await expect(page.get_by_test_id("car")).to_contain_text("BYD Seal")
    link = (await page.get_by_test_id("tracking-link").text_content()).strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/test-drive/track/[A-Za-z0-9_-]{43}", link), link

    # The link, opened again (later, from the message): the booking, and its calendar file.
    await page.goto(link)
    await expect(page.get_by_test_id("tracking")).to_have_attribute("data-status", "booked")
    await expect(page.get_by_test_id("booked")).to_have_count(0)
    async with page.expect_download() as download_info:
        await page.get_by_test_id("ics").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".ics")
    assert "BEGIN:VEVENT" in (await download.path()).read_text()

    # "Yes, I'm coming": one tap, and the page says so (the salesperson sees "Confirmed" on their day).
    await page.get_by_test_id("confirm-drive").click()
    await expect(page.get_by_test_id("tracking")).to_have_attribute("data-status", "confirmed")
    await expect(page.get_by_test_id("notice")).to_contain_text("Thank you for confirming")
    await expect(page.get_by_test_id("confirmed-note")).to_contain_text("You confirmed that you are coming")
    await expect(page.get_by_test_id("drive-status")).to_have_text("Confirmed")
    await expect(page.get_by_test_id("confirm-drive")).to_have_count(0)
    await page.reload()  # it stays confirmed, and the drive can still be moved or cancelled
    await expect(page.get_by_test_id("drive-status")).to_have_text("Confirmed")
    await expect(page.get_by_test_id("cancel-drive")).to_be_visible()


async def make_daytime_showroom(base_db: str) -> tuple[str, str]:
    """A branch where it is daytime now, open all day, with a salesperson and a demonstrator (committed in the
    live server's database). Returns the salesperson's e-mail and the car's model."""
    async with live_session(base_db) as session:
        team = await branch_with_staff(session, "Daytime", roles=("sales",), timezone=daytime_zone(),
                                       opening_hours=ALL_DAY)
        suffix, model = team.suffix, f"Dolphin {team.suffix}"
        session.add(Vehicle(vin=with_check_digit(f"LWALK{suffix:06d}R{suffix:06d}"[:17]), make="BYD", model=model,
                            model_year=2025, body="hatchback", powertrain="bev", mileage_km=3400, condition="demo",
                            list_price=99_800, status="demo", branch_id=team.branch.id, colour="Pink"))
    return team.staff["sales"].email, model


async def test_salesperson_books_a_walk_in_checks_it_out_and_takes_it_back(phone: Page, base_urls) -> None:
    email, model = await make_daytime_showroom(base_urls[0])
    page = phone
    await sign_in(page, email)
    await page.locator("nav.bottom-nav a[href='/test-drives/']").click()
    await expect(page.get_by_test_id("walk-in")).to_be_visible()

    # Three taps: the car, the time (the slot running now is chosen already), book.
    await page.get_by_test_id("walk-in").click()
    await page.get_by_test_id("walk-in-car").filter(has_text=model).click()
    form = page.get_by_test_id("walk-in-form")
    await expect(form.locator("input[name=start]").first).to_be_checked()
    await form.get_by_label("Customer name").fill("Walk-in Customer")
    await form.get_by_label("Mobile number").fill(f"138{random.randrange(10**7, 10**8)}")
    await page.get_by_test_id("walk-in-submit").click()
    await expect(page).to_have_url(re.compile(r"/test-drives/\d+$"))
    drive = page.get_by_test_id("drive")
    await expect(drive).to_have_attribute("data-status", "booked")

    # Check-out: an expired licence is refused; a valid one, the key and the odometer let the car go.
    checkout = page.get_by_test_id("check-out-form")
    await checkout.get_by_label("Driving licence number").fill("310101199001011234")
    await checkout.get_by_label("Licence valid until").fill((date.today() - timedelta(days=2)).isoformat())
    await page.get_by_test_id("key-handed-over").check()
    await page.get_by_test_id("check-out-submit").click()
    await expect(page.get_by_test_id("form-error")).to_be_visible()
    await expect(page.locator("#f-licence_expiry-error")).to_contain_text("expired on")
    await expect(page.get_by_test_id("drive")).to_have_attribute("data-status", "booked")
    checkout = page.get_by_test_id("check-out-form")
    await checkout.get_by_label("Licence valid until").fill((date.today() + timedelta(days=800)).isoformat())
    await expect(checkout.get_by_label("Odometer (km)")).to_have_value("3400")
    await page.locator("#f-photo").set_input_files([photo_file("licence.jpg")])
    if not await page.get_by_test_id("key-handed-over").is_checked():
        await page.get_by_test_id("key-handed-over").check()
    await page.get_by_test_id("check-out-submit").click()
    await expect(page.get_by_test_id("drive")).to_have_attribute("data-status", "checked_out")
    await expect(page.get_by_test_id("notice")).to_contain_text("Checked out")
    await expect(page.locator("img.svc-photo")).to_be_visible()
    # The licence photo is sealed on disk; the browser gets it opened (a picture, not a broken image).
    await page.locator("img.svc-photo").scroll_into_view_if_needed()
    await page.wait_for_function(
        "() => { const i = document.querySelector('img.svc-photo'); return i && i.complete && i.naturalWidth > 0; }")

    # Return: odometer, charge, interest.
    back = page.get_by_test_id("return-form")
    await back.get_by_label("Odometer on return (km)").fill("3417")
    await back.get_by_label("Fuel or charge level").select_option("75")
    await page.get_by_test_id("interest-4").check()
    await page.get_by_test_id("return-submit").click()
    await expect(page.get_by_test_id("drive")).to_have_attribute("data-status", "returned")
    await expect(page.get_by_test_id("returned")).to_contain_text("17 km driven")

    # The salesperson's day shows it, in order.
    await page.goto("/test-drives/")
    await expect(page.get_by_test_id("drive-row")).to_have_count(1)
    await expect(page.get_by_test_id("drive-row").get_by_test_id("drive-status")).to_have_text("Returned")
