"""A manager on a phone sends a message that could not be sent once more (against the live server).

The test adds its own branch with a manager (English) and a salesperson whose message failed on every
channel, so the delivery log has one failed message of that branch to send again.
"""

from __future__ import annotations

import random
import re

from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.domains.accounts.service import AccountService
from backend.domains.branches import service as branches
from backend.domains.notifications.models import Notification
from backend.domains.notifications.service import NotificationRequest, notify
from backend.lib import db
from backend.seed import DEMO_PASSWORD
from tests.browser.conftest import E2E_DB
from tests.conftest import database_url_for
from tests.showroom import NINE_TO_SIX


async def branch_with_a_failed_message(base_db: str) -> tuple[str, int]:
    """Committed: a branch, its manager and a failed message to its salesperson; (manager e-mail, message id)."""
    engine = db.make_engine(database_url_for(base_db, E2E_DB), pool_size=1)
    suffix = random.randrange(10**5, 10**6)
    try:
        async with db.unit_of_work(db.make_session_maker(engine)) as session:
            group = await branches.create_group(session, "Resend Motors")
            branch = await branches.create_branch(session, group_id=group.id, code=f"RS{suffix}", name="重发门店",
                                                  name_en="Resend branch", timezone="Asia/Shanghai",
                                                  opening_hours=NINE_TO_SIX)
            accounts = AccountService(session, None)
            email = f"resend-manager-{suffix}@forecourt.test"
            await accounts.create_user(email=email, name="Resend Manager", role="manager", password=DEMO_PASSWORD,
                                       branch_code=branch.code, locale="en")
            seller = await accounts.create_user(email=f"resend-seller-{suffix}@forecourt.test", name="Resend Seller",
                                                role="sales", password=DEMO_PASSWORD, branch_code=branch.code,
                                                locale="en")
            failed = await notify(session, NotificationRequest(
                key=f"resend-journey:{suffix}", recipient_kind="staff", recipient_id=seller.id,
                template="system.test", params={"name": "Seller"}, branch_id=branch.id))
            (await session.get(Notification, failed)).status = "failed"
        return email, failed
    finally:
        await engine.dispose()


async def messages_like(base_db: str, key: str) -> list[str]:
    engine = db.make_engine(database_url_for(base_db, E2E_DB), pool_size=1)
    try:
        async with db.unit_of_work(db.make_session_maker(engine)) as session:
            return list((await session.execute(select(Notification.key).where(Notification.key.like(key)))
                         ).scalars())
    finally:
        await engine.dispose()


async def test_manager_sends_a_failed_message_again_on_a_phone(phone: Page, base_urls) -> None:
    email, failed = await branch_with_a_failed_message(base_urls[0])
    page = phone
    await page.goto("/sign-in")
    await page.locator("#f-email").fill(email)
    await page.locator("#f-password").fill(DEMO_PASSWORD)
    await page.locator("form[action='/sign-in'] button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await page.goto("/admin/notifications/")

    messages = page.get_by_test_id("notification")
    await expect(messages).to_have_count(1)  # the branch's one message: failed
    await expect(messages.first.locator(".badge")).to_have_text("Not sent")
    await messages.first.get_by_role("button", name="Send again").click()

    await expect(page.get_by_test_id("log-notice")).to_have_text(
        "Sent again: the new message is at the top of the list.")
    await expect(messages).to_have_count(2)
    await expect(messages.first.locator(".badge")).not_to_have_text("Not sent")  # the new one: pending or sent
    await expect(messages.nth(1).locator(".badge")).to_have_text("Not sent")  # the old one, as it was
    await expect(messages.first.get_by_role("button", name="Send again")).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"/admin/notifications/$"))  # htmx: no page load
    assert len(await messages_like(base_urls[0], "resend-journey:%:again:%")) == 1
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
