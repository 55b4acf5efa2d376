"""The service journeys at a phone viewport, three people on three phones against one live server:

a customer books a service; the advisor (advisor@forecourt.test, SH01) checks it in; the technician
(tech@forecourt.test) starts the job and reports two findings with photos; the customer approves one and
declines the other on the tracking page; the work is finished, the advisor releases the car, and the
customer's tracking page shows "ready for pickup" by itself (htmx polling). Plus the lookup form and a
booking without JavaScript.

The staff accounts' saved language is Chinese, so their screens are driven through data-testid hooks;
the customer's phone is in English.
"""

from __future__ import annotations

import io
import random
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, expect

from backend.seed import DEMO_PASSWORD

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True,
         "locale": "en-US"}


def photo_file(name: str) -> dict:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (random.randrange(256), 90, 60)).save(out, format="JPEG")
    return {"name": name, "mimeType": "image/jpeg", "buffer": out.getvalue()}


async def staff_phone(browser: Browser, live_server: str, email: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=live_server, **PHONE)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto("/sign-in")
    await page.locator("#f-email").fill(email)
    await page.locator("#f-password").fill(DEMO_PASSWORD)
    await page.locator("form[action='/sign-in'] button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    return context, page


async def book_as_customer(page: Page, plate: str, phone: str) -> str:
    """From the home page to the confirmation; returns the tracking URL (path)."""
    await page.goto("/")
    await page.get_by_test_id("book-service").click()
    await expect(page.get_by_role("heading", name="Book a service")).to_be_visible()
    await page.get_by_label("Branch").select_option("SH01")
    await page.get_by_test_id("operation-OIL_SERVICE").check()
    slots = page.get_by_test_id("slots")
    await expect(slots.locator("input[name=slot]").first).to_be_visible()  # htmx brought the free times
    await expect(page.get_by_test_id("estimate")).to_contain_text("Estimated price")
    await slots.locator("label.svc-slot").nth(2).click()
    await page.get_by_label("Licence plate").fill(plate)
    await page.get_by_label("Mileage (km)").fill("23456")
    await page.get_by_label("Name", exact=True).fill("Test Customer 测试")
    await page.get_by_label("Mobile number").fill(phone)
    await page.get_by_test_id("privacy-consent").check()
    await page.get_by_test_id("book-submit").click()
    await expect(page.get_by_test_id("booked")).to_contain_text("your service is booked")
    await expect(page.get_by_test_id("appointment-status")).to_have_text("Booked")
    return re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]


async def test_booking_check_in_finding_approval_and_pickup(phone: Page, browser: Browser, live_server: str):
    customer = phone
    plate = f"沪K{random.randrange(10000, 99999)}"
    tracking = await book_as_customer(customer, plate, f"139{random.randrange(10**7, 10**8)}")

    # The advisor finds the appointment on the board of its day and checks the car in.
    advisor_context, advisor = await staff_phone(browser, live_server, "advisor@forecourt.test")
    tomorrow = datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)  # the form's default day
    await advisor.goto(f"/service/board?day={tomorrow.isoformat()}")
    await advisor.locator(f'[data-testid=appointment-row][data-plate="{plate}"] a').click()
    await expect(advisor.get_by_test_id("check-in-form")).to_be_visible()
    await advisor.locator("#f-photos").set_input_files([photo_file("scratch.jpg")])
    await advisor.get_by_test_id("check-in-submit").click()
    await expect(advisor).to_have_url(re.compile(r"/repair-orders/\d+$"))
    order = advisor.get_by_test_id("repair-order")
    await expect(order).to_have_attribute("data-status", "open")
    number = re.search(r"SH01-\d{6}", await advisor.locator("h1").text_content()).group(0)
    order_url = re.sub(r"^https?://[^/]+", "", advisor.url)

    # The customer's link now follows the repair.
    await customer.goto(tracking)
    await expect(customer.get_by_test_id("status-text")).to_have_text(
        "Your car is checked in and waiting for a technician.")

    # The technician starts the oil service and reports two findings with photos.
    tech_context, tech = await staff_phone(browser, live_server, "tech@forecourt.test")
    await tech.goto("/service/jobs")
    if await tech.get_by_test_id("stop-clock").count():  # still clocked on another car
        await tech.get_by_test_id("stop-clock").click()
        await expect(tech.get_by_test_id("stop-clock")).to_have_count(0)
    job = tech.locator(f'[data-testid=job][data-order="{number}"]').first
    await job.get_by_test_id("start-clock").click()
    await expect(tech.locator(f'[data-testid=job][data-order="{number}"]').first).to_have_class(
        re.compile("svc-job--running"))
    for description, hours, parts, picture in (("Brake discs worn", "1.2", "860", "discs.jpg"),
                                               ("Wiper blades cracked", "0.1", "120", "wipers.jpg")):
        await tech.goto(order_url)
        await tech.locator("[data-testid=finding-form] summary").click()
        await tech.locator("#f-description").fill(description)
        await tech.locator("#f-note").fill("Seen during the service")
        await tech.locator("#f-labour_hours").fill(hours)
        await tech.locator("#f-parts_price").fill(parts)
        await tech.locator("#f-photo").set_input_files([photo_file(picture)])
        await tech.get_by_test_id("finding-submit").click()
        await expect(tech.get_by_test_id("repair-order")).to_have_attribute("data-status", "awaiting_approval")
    await expect(tech.get_by_test_id("finding")).to_have_count(2)

    # The customer approves one item and declines the other, item by item.
    await customer.reload()
    await expect(customer.get_by_test_id("status-text")).to_contain_text("please approve or decline")
    await expect(customer.get_by_test_id("pending-item")).to_have_count(2)
    discs = customer.get_by_test_id("pending-item").filter(has_text="Brake discs worn")
    await expect(discs.get_by_role("img")).to_be_visible()
    await discs.get_by_role("button", name="Approve").click()
    await expect(customer.get_by_test_id("notice")).to_have_text("Thank you: approved.")
    await expect(customer.get_by_test_id("pending-item")).to_have_count(1)
    await customer.get_by_test_id("pending-item").filter(has_text="Wiper blades").get_by_role(
        "button", name="Decline").click()
    await expect(customer.get_by_test_id("notice")).to_have_text("Thank you: declined.")
    await expect(customer.get_by_test_id("status-text")).to_have_text("Work on your car is in progress.")
    await expect(customer.locator("[data-testid=answered-item][data-decision=approved]")).to_contain_text(
        "Brake discs worn")
    await expect(customer.locator("[data-testid=answered-item][data-decision=declined]")).to_contain_text(
        "Wiper blades cracked")

    # The technician finishes the booked work and the approved extra; the order goes to quality check.
    await tech.goto("/service/jobs")
    jobs = tech.locator(f'[data-testid=job][data-order="{number}"]')
    await expect(jobs).to_have_count(2)
    for remaining in (1, 0):
        await jobs.get_by_test_id("mark-done").first.click()
        await expect(jobs.get_by_test_id("mark-done")).to_have_count(remaining)
    await tech.goto(order_url)
    await expect(tech.get_by_test_id("repair-order")).to_have_attribute("data-status", "quality_check")

    # The advisor releases the car; the customer's page updates itself.
    await advisor.goto(order_url)
    await advisor.get_by_test_id("move-ready_for_pickup").click()
    await expect(advisor.get_by_test_id("repair-order")).to_have_attribute("data-status", "ready_for_pickup")
    await expect(customer.get_by_test_id("status-text")).to_have_text("Your car is ready for pickup.",
                                                                     timeout=20_000)
    await expect(customer.get_by_test_id("timeline")).to_contain_text("Ready for pickup")
    await advisor_context.close()
    await tech_context.close()


async def test_customer_finds_a_repair_with_the_lookup_form(phone: Page) -> None:
    page = phone
    await page.goto("/")
    await page.get_by_role("link", name="Track my repair").click()
    await page.get_by_label("Repair order number").fill("SH01-000002")
    await page.get_by_label("Licence plate").fill("沪A·D12345")
    await page.get_by_test_id("lookup-submit").click()
    await expect(page).to_have_url(re.compile(r"/track/[A-Za-z0-9_-]{43}$"))
    await expect(page.get_by_role("heading", name="Repair order SH01-000002")).to_be_visible()
    await expect(page.get_by_test_id("pending-item")).to_have_count(1)

    await page.goto("/track")
    await page.get_by_label("Repair order number").fill("SH01-000002")
    await page.get_by_label("Mobile number").fill("13900000000")
    await page.get_by_test_id("lookup-submit").click()
    await expect(page.get_by_test_id("form-error")).to_have_text("We could not find a repair order with these details.")


@pytest.mark.parametrize("phone", [{"java_script_enabled": False}], ids=["no-js"], indirect=True)
async def test_booking_works_without_javascript(phone: Page) -> None:
    page = phone
    await page.goto("/service/book")
    await page.get_by_label("Branch").select_option("SH01")
    await page.locator("input[name=operations][value=INSPECT_20K]").check()
    await page.get_by_role("button", name="Show free times").click()
    await page.locator("label.svc-slot").first.click()
    await page.get_by_label("Licence plate").fill(f"沪J{random.randrange(10000, 99999)}")
    await page.get_by_label("Mileage (km)").fill("40000")
    await page.get_by_label("Name", exact=True).fill("No Script")
    await page.get_by_label("Mobile number").fill(f"137{random.randrange(10**7, 10**8)}")
    await page.get_by_test_id("privacy-consent").check()
    await page.get_by_test_id("book-submit").click()
    await expect(page.get_by_test_id("booked")).to_be_visible()
    await expect(page.get_by_test_id("appointment-status")).to_have_text("Booked")
