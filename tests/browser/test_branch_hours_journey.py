"""A manager on a phone sets the branch's hours and adds a holiday (against the live server).

The test adds its own branch (open 09:00-18:00 every day) with a manager, a salesperson, a demonstrator and
one booked test drive to the live server's database, so the count hint after adding a holiday on that day
has something to count.
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.domains.accounts.service import principal_for
from backend.domains.branches.models import Branch
from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import with_check_digit
from backend.domains.test_drives import rules
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from tests.browser.e2e import branch_with_staff, live_session, sign_in
from tests.showroom import NINE_TO_SIX, booking


async def branch_with_a_booked_drive(base_db: str) -> tuple[str, int, str]:
    """Committed: a branch, its manager (English) and a test drive booked two days ahead. Returns the manager's
    e-mail, the branch id and the drive's local date (ISO)."""
    async with live_session(base_db) as session:
        team = await branch_with_staff(session, "Hours", opening_hours=NINE_TO_SIX)
        branch, suffix = team.branch, team.suffix
        car = Vehicle(vin=with_check_digit(f"LHRSX{suffix:06d}R{suffix:06d}"[:17]), make="BYD",
                      model=f"Seal {suffix}", model_year=2025, body="sedan", powertrain="bev", mileage_km=900,
                      condition="demo", list_price=179_800, status="demo", branch_id=branch.id, colour="Blue")
        session.add(car)
        await session.flush()
        drives = TestDriveService(session, None)
        day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)
        start = (await drives.availability(car.id, day)).slots[2].start
        await drives.book(booking(car, start, source="phone"), principal=principal_for(team.staff["sales"]))
    return team.staff["manager"].email, branch.id, day.isoformat()


async def stored_saturday(base_db: str, branch_id: int):
    async with live_session(base_db) as session:
        return (await session.execute(select(Branch.opening_hours).where(Branch.id == branch_id))).scalar_one()["sat"]


async def test_manager_changes_saturday_and_adds_a_holiday_on_a_phone(phone: Page, base_urls) -> None:
    email, branch_id, day = await branch_with_a_booked_drive(base_urls[0])
    page = phone
    await sign_in(page, email)
    await page.locator("nav.bottom-nav a[href='/menu']").click()
    await page.get_by_test_id("menu-branch-hours").click()
    await expect(page).to_have_url(re.compile(r"/branch/hours$"))
    await expect(page.get_by_test_id("bookings-kept")).to_contain_text("not moved or cancelled")

    # Saturday: a closing time before the opening is refused beside the day; then shorter hours are saved.
    saturday = page.get_by_test_id("day-sat")
    await saturday.locator("input[name=sat_open]").fill("10:00")
    await saturday.locator("input[name=sat_close]").fill("09:00")
    await page.get_by_test_id("save-hours").click()
    await expect(page.locator("#f-sat-error")).to_contain_text("closing time must be after the opening time")
    await page.get_by_test_id("day-sat").locator("input[name=sat_close]").fill("15:00")
    await page.get_by_test_id("save-hours").click()
    await expect(page.get_by_test_id("hours-notice")).to_have_text("Opening hours saved.")
    await expect(page.locator("#f-sat-error")).to_have_count(0)
    await expect(page.get_by_test_id("day-sat").locator("input[name=sat_close]")).to_have_value("15:00")
    assert await stored_saturday(base_urls[0], branch_id) == ["10:00", "15:00"]

    # A holiday on the day of the booked drive: listed, and the drive is counted for the manager to call.
    form = page.get_by_test_id("holiday-form")
    await form.get_by_label("Date").fill(day)
    await form.get_by_label("Name (optional)").fill("Team training")
    await page.get_by_test_id("add-holiday").click()
    await expect(page.get_by_test_id("holiday-notice")).to_contain_text("1 booked test drive and 0 booked service")
    holiday = page.locator(f"[data-testid=holiday][data-date='{day}']")
    await expect(holiday).to_contain_text("Team training")
    await expect(page).to_have_url(re.compile(r"/branch/hours$"))  # htmx: no page load
    # The page still fits the phone: nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
