"""A manager on a phone sends a message that could not be sent once more (against the live server).

The test adds its own branch with a manager (English) and a salesperson whose message failed on every
channel, so the delivery log has one failed message of that branch to send again.
"""

from __future__ import annotations

import re

from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.domains.notifications.models import Notification
from backend.domains.notifications.service import NotificationRequest, notify
from tests.browser.e2e import branch_with_staff, live_session, sign_in


async def branch_with_a_failed_message(base_db: str) -> tuple[str, int]:
    """Committed: a branch, its manager and a failed message to its salesperson; (manager e-mail, message id)."""
    async with live_session(base_db) as session:
        team = await branch_with_staff(session, "Resend")
        failed = await notify(session, NotificationRequest(
            key=f"resend-journey:{team.suffix}", recipient_kind="staff", recipient_id=team.staff["sales"].id,
            template="system.test", params={"name": "Seller"}, branch_id=team.branch.id))
        (await session.get(Notification, failed)).status = "failed"
    return team.staff["manager"].email, failed


async def messages_like(base_db: str, key: str) -> list[str]:
    async with live_session(base_db) as session:
        return list((await session.execute(select(Notification.key).where(Notification.key.like(key)))).scalars())


async def test_manager_sends_a_failed_message_again_on_a_phone(phone: Page, base_urls) -> None:
    email, failed = await branch_with_a_failed_message(base_urls[0])
    page = phone
    await sign_in(page, email)
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
