"""Installability basics in Chromium: a clean console, the manifest and its icons, the service worker
and the offline page."""

from __future__ import annotations

import asyncio
import re
import struct
from urllib.parse import urljoin

from playwright.async_api import ConsoleMessage, Error, Page, expect

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SERVICE_WORKER_TIMEOUT = 10

# Collects CSP violations as the page sees them (init scripts are not subject to the page's CSP).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} ` +
                              `(${e.sourceFile || ''}:${e.lineNumber || 0})`);
});
"""


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def wait_for_active_service_worker(page: Page) -> str:
    """Wait until /sw.js is registered and activated for the page; return its script URL."""
    activated = page.evaluate("""async () => {
        const worker = (await navigator.serviceWorker.ready).active;
        if (worker.state !== 'activated') {
            await new Promise((resolve) => worker.addEventListener('statechange', () => {
                if (worker.state === 'activated') resolve();
            }));
        }
        return worker.scriptURL;
    }""")
    try:  # page.evaluate itself never times out, and `ready` never resolves if registering failed
        return await asyncio.wait_for(activated, timeout=SERVICE_WORKER_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"no service worker was activated within {SERVICE_WORKER_TIMEOUT} s") from None


async def test_home_page_loads_without_console_errors_or_csp_violations(phone: Page) -> None:
    page = phone
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(f"console {message.type}: {message.text} ({message.location.get('url')})")

    def on_page_error(error: Error) -> None:
        problems.append(f"uncaught: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    await page.add_init_script(WATCH_CSP)

    response = await page.goto("/", wait_until="load")
    assert response is not None and response.ok, response and response.status
    await expect(page.locator("h1")).to_be_visible()
    await expect(page.get_by_role("link", name="Staff sign-in")).to_be_visible()
    # app.js ran (it marks <html>), and its service worker registration (on load) went through.
    await expect(page.locator("html")).to_have_class(re.compile(r"(^|\s)js(\s|$)"))
    await wait_for_active_service_worker(page)

    problems += [f"CSP: {v}" for v in await page.evaluate("window.__cspViolations")]
    assert problems == []


async def test_service_worker_and_manifest_make_the_app_installable(phone: Page) -> None:
    page = phone
    await page.goto("/")

    script_url = await wait_for_active_service_worker(page)
    assert script_url == urljoin(page.url, "/sw.js")

    manifest_url = await page.locator("link[rel=manifest]").evaluate("link => link.href")
    response = await page.request.get(manifest_url)
    assert response.ok, response.status
    assert "json" in response.headers["content-type"]
    manifest = await response.json()

    assert manifest["name"] and manifest["short_name"]
    assert manifest["start_url"].startswith("/")
    assert manifest["display"] == "standalone"
    icons = manifest["icons"]
    assert any(icon["sizes"] == "192x192" for icon in icons)
    assert any(icon["sizes"] == "512x512" for icon in icons)
    assert any("maskable" in icon.get("purpose", "").split() for icon in icons)

    for icon in icons:
        icon_response = await page.request.get(urljoin(manifest_url, icon["src"]))
        assert icon_response.ok, (icon["src"], icon_response.status)
        assert icon_response.headers["content-type"] == "image/png", icon["src"]
        width, height = png_size(await icon_response.body())
        assert f"{width}x{height}" == icon["sizes"], icon["src"]


async def test_offline_navigation_shows_the_offline_page(phone: Page) -> None:
    page = phone
    await page.goto("/")
    await wait_for_active_service_worker(page)
    # Load once more so the page is surely controlled by the active worker.
    await page.reload()
    assert await page.evaluate("navigator.serviceWorker.controller !== null")

    await page.context.set_offline(True)
    try:
        await page.goto("/some-page-that-is-not-cached")
        await expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
        await expect(page.get_by_role("link", name="Try again")).to_be_visible()
    finally:
        await page.context.set_offline(False)
