"""A manager configures test drives on a phone: from the "More" menu to the settings, a model's drive length
set to 45 minutes and a salesperson taken off online bookings, both still there after a reload.

The test adds its own branch (manager, salesperson, a demonstrator of a model no other test uses) to the live
server's database, so it changes nothing the other journeys rely on."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import with_check_digit
from tests.browser.e2e import branch_with_staff, live_session, sign_in


async def make_branch_with_a_team(base_db: str) -> tuple[str, str, str]:
    """(the manager's e-mail, the salesperson's name, the demonstrator's model), committed."""
    async with live_session(base_db) as session:
        team = await branch_with_staff(session, "Settings")
        suffix, model = team.suffix, f"Atto {team.suffix}"
        session.add(Vehicle(vin=with_check_digit(f"LSETT{suffix:06d}R{suffix:06d}"[:17]), make="BYD",
                            model=model, model_year=2025, body="suv", powertrain="bev", mileage_km=800,
                            condition="demo", list_price=119_800, status="demo", branch_id=team.branch.id,
                            colour="Grey"))
    return team.staff["manager"].email, team.staff["sales"].name, model


async def test_manager_sets_a_models_drive_length_and_a_salesperson_off_online_bookings(phone: Page,
                                                                                        base_urls) -> None:
    manager, seller, model = await make_branch_with_a_team(base_urls[0])
    page = phone
    await sign_in(page, manager)
    await page.locator("nav.bottom-nav a[href='/menu']").click()
    await page.get_by_role("link", name="Test-drive settings").click()
    await expect(page).to_have_url(re.compile(r"/test-drives/settings$"))
    await expect(page.get_by_test_id("not-moved-hint")).to_contain_text("already booked keep their times")

    # The model's drive length: 45 minutes.
    lengths = page.get_by_test_id("lengths")
    await lengths.get_by_label("Model", exact=True).select_option(label=f"BYD {model}")
    await lengths.get_by_label("Drive length of this model (minutes)").fill("45")
    await page.get_by_test_id("length-submit").click()
    await expect(page.get_by_test_id("lengths").get_by_test_id("notice")).to_contain_text("45 minutes saved")
    await expect(page.get_by_test_id("length-row")).to_contain_text(f"BYD {model} · 45 min")

    # The salesperson: no online bookings.
    person = page.get_by_test_id("person").filter(has_text=seller)
    await expect(person.get_by_test_id("online-badge")).to_have_text("Takes online bookings")
    await person.get_by_test_id("takes-online").uncheck()
    await person.get_by_test_id("person-submit").click()
    await expect(page.get_by_test_id("people").get_by_test_id("notice")).to_contain_text(f"Saved for {seller}")
    person = page.get_by_test_id("person").filter(has_text=seller)
    await expect(person.get_by_test_id("online-badge")).to_have_text("No online bookings")

    # Saved: both are still there when the page is opened again.
    await page.reload()
    await expect(page.get_by_test_id("length-row")).to_contain_text(f"BYD {model} · 45 min")
    person = page.get_by_test_id("person").filter(has_text=seller)
    await expect(person.get_by_test_id("takes-online")).not_to_be_checked()
    await expect(person.get_by_test_id("online-badge")).to_have_text("No online bookings")
    # The page fits the phone: nothing wider than the screen.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
