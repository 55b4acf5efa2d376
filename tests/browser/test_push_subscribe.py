"""Turning on notifications at a phone viewport: a staff member on "My notifications" and a customer on
their tracking page. The browser vendor's push service is out of reach here, so an init script stubs
``Notification.requestPermission`` (granted) and ``PushManager.prototype.subscribe``, which answers a
subscription as a browser would: an FCM endpoint, a real P-256 public key and a 16-byte auth secret.
Everything else is real: the service worker the page waits for, the page's script, the CSRF header,
the API's validation (the key must be a point on the curve) and the row in the database.
"""

from __future__ import annotations

import base64
import json
import re
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from backend.domains.accounts.models import StaffUser
from backend.domains.customers.models import TrackingLink
from backend.domains.customers.rules import hash_token
from backend.domains.notifications.models import PushSubscription
from backend.seed import DEMO_PASSWORD
from tests.browser.conftest import E2E_DB, database_url_for
from tests.browser.test_service_journeys import book_as_customer

STUB_PUSH = """
(() => {
  const fake = %s;
  window.__push = { permissionAsked: 0, subscribed: [] };
  if (window.Notification) {
    Notification.requestPermission = () => { window.__push.permissionAsked += 1; return Promise.resolve('granted'); };
  }
  if (window.PushManager) {
    PushManager.prototype.subscribe = function (options) {
      const key = new Uint8Array(options.applicationServerKey.buffer || options.applicationServerKey);
      window.__push.subscribed.push({
        userVisibleOnly: options.userVisibleOnly,
        applicationServerKey: btoa(String.fromCharCode.apply(null, key))
          .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, ''),
      });
      return Promise.resolve({
        endpoint: fake.endpoint, expirationTime: null, options: options,
        toJSON() {
          return { endpoint: fake.endpoint, expirationTime: null, keys: { p256dh: fake.p256dh, auth: fake.auth } };
        },
      });
    };
  }
})();
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_subscription() -> dict[str, str]:
    """What Chrome's pushManager.subscribe() gives: an FCM endpoint and the browser's own keys."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": f"https://fcm.googleapis.com/fcm/send/{secrets.token_urlsafe(16)}:{secrets.token_urlsafe(60)}",
            "p256dh": b64url(public), "auth": b64url(secrets.token_bytes(16))}


@pytest.fixture
async def e2e_engine(base_urls):
    engine = create_async_engine(database_url_for(base_urls[0], E2E_DB), poolclass=NullPool)
    yield engine
    await engine.dispose()


async def stored(engine, endpoint: str) -> PushSubscription | None:
    async with engine.connect() as c:
        row = (await c.execute(select(PushSubscription).where(PushSubscription.endpoint == endpoint))).first()
    return row


async def server_vapid_key(page: Page, selector: str) -> str:
    return await page.locator(selector).get_attribute("data-vapid-public-key")


async def test_staff_member_turns_on_notifications_for_this_phone(phone: Page, e2e_engine) -> None:
    page = phone
    fake = fake_subscription()
    await page.add_init_script(STUB_PUSH % json.dumps(fake))
    await page.goto("/sign-in")
    await page.locator("#f-email").fill("dispatch@forecourt.test")
    await page.locator("#f-password").fill(DEMO_PASSWORD)
    await page.locator("form[action='/sign-in'] button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))

    await page.get_by_role("link", name="More").click()
    await page.get_by_role("link", name="My notifications").click()
    await expect(page.get_by_role("heading", name="My notifications")).to_be_visible()
    status = page.locator("#push-status")
    await expect(status).to_contain_text("Turn on notifications to hear about new bookings")

    await page.get_by_test_id("push-enable").click()
    await expect(status).to_have_text("Notifications are on for this phone.")
    assert await page.evaluate("window.__push.permissionAsked") == 1
    [call] = await page.evaluate("window.__push.subscribed")
    assert call == {"userVisibleOnly": True, "applicationServerKey": await server_vapid_key(page, "#push-card")}

    row = await stored(e2e_engine, fake["endpoint"])
    assert row is not None and (row.p256dh, row.auth) == (fake["p256dh"], fake["auth"])
    async with e2e_engine.connect() as c:
        dispatcher = (await c.execute(select(StaffUser.id).where(StaffUser.email == "dispatch@forecourt.test"))
                      ).scalar_one()
    assert (row.owner_kind, row.owner_id) == ("staff", dispatcher)
    assert "HeadlessChrome" in (row.user_agent or "") or "Chrome" in (row.user_agent or "")

    # Back on the page later, the phone is listed by its push service.
    await page.reload()
    await expect(page.get_by_test_id("subscriptions")).to_contain_text("fcm.googleapis.com")


async def test_customer_turns_on_notifications_on_the_tracking_page(phone: Page, e2e_engine) -> None:
    page = phone
    fake = fake_subscription()
    await page.add_init_script(STUB_PUSH % json.dumps(fake))
    tracking = await book_as_customer(page, f"沪P{secrets.randbelow(90000) + 10000}",
                                      f"137{secrets.randbelow(9 * 10**7) + 10**7}")
    await page.goto(tracking)
    button = page.get_by_test_id("track-push")
    await expect(button).to_have_text("Notify me on this phone")
    await button.click()
    status = page.locator("#track-push-status")
    await expect(status).to_have_text("Notifications are on for this phone.")
    await expect(button).to_be_hidden()
    [call] = await page.evaluate("window.__push.subscribed")
    assert call["applicationServerKey"] == await server_vapid_key(page, "[data-testid=track-push]")

    token = tracking.rstrip("/").rsplit("/", 1)[-1]
    async with e2e_engine.connect() as c:
        customer_id = (await c.execute(select(TrackingLink.customer_id)
                                       .where(TrackingLink.token_hash == hash_token(token)))).scalar_one()
    row = await stored(e2e_engine, fake["endpoint"])
    assert row is not None and (row.owner_kind, row.owner_id) == ("customer", customer_id)
    assert (row.p256dh, row.auth) == (fake["p256dh"], fake["auth"])
