"""Browser tests: the real app served by uvicorn, driven by the system Chromium through Playwright.

The app runs as a separate process, as in production, against its own database (``forecourt_e2e_<pid>``)
and its own Redis database number on the servers under test, seeded with the demo data. One
Chromium is started per test session; every test gets a fresh browser context (no shared cookies,
storage or service workers) sized like a phone.

No browser is ever downloaded: Debian's ``chromium`` package is used. Without it the tests are
skipped locally and fail in CI (where it is installed on purpose).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from backend.lib.migrate import upgrade
from backend.lib.redis import make_redis
from tests.conftest import (
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from tests.servers import listening_socket, uvicorn_args

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root (containers, CI)
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
E2E_DB = f"forecourt_e2e_{os.getpid()}"  # per run, like the service-test database
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
HERE = Path(__file__).resolve().parent
SERVER_START_TIMEOUT = 30.0


def _chromium_missing_message() -> str:
    return f"{CHROMIUM} not found: install it with `apt-get install chromium` to run the browser tests"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``browser``; skip them all (outside CI) without Chromium."""
    skip = None
    if not HAVE_CHROMIUM and not os.environ.get("CI"):
        skip = pytest.mark.skip(reason=_chromium_missing_message())
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.browser)
            if skip is not None:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _server_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = os.environ.copy()
    # The prefixed names win over the plain ones in Settings, so set both.
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        env[name] = env[f"FORECOURT_{name}"] = value
    env |= {
        "FORECOURT_ENV": "development",  # local http: cookies are not Secure
        "FORECOURT_LOG_JSON": "false",
        "FORECOURT_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _run(argv: list[str], env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    if process.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited with {process.returncode}:\n{output.decode(errors='replace')}")


async def _wait_until_healthy(process: asyncio.subprocess.Process, base_url: str, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + SERVER_START_TIMEOUT
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while True:
            if process.returncode is not None:
                pytest.fail(f"the web server exited with {process.returncode} before answering:\n"
                            f"{_read(log)}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"the web server did not answer /health within {SERVER_START_TIMEOUT:.0f} s:\n"
                            f"{_read(log)}")
            await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
async def live_server(base_urls, tmp_path_factory) -> AsyncIterator[str]:
    """The app in its own uvicorn process on a free port, on a freshly migrated and seeded database."""
    base_db, base_redis = base_urls
    await recreate_database(base_db, E2E_DB)
    database_url = database_url_for(base_db, E2E_DB)
    redis_number = claim_redis_db(base_redis, owner=f"tests-{os.getpid()}")
    redis_url = redis_url_for(base_redis, redis_number)
    process = None
    try:
        await asyncio.to_thread(upgrade, database_url)  # Alembic's async env runs its own loop
        redis = make_redis(redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()
        env = _server_env(database_url, redis_url)

        sock = listening_socket()
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env["FORECOURT_BASE_URL"] = base_url
        log = tmp_path_factory.mktemp("live_server") / "server.log"
        with log.open("wb") as out, sock:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory",
                *uvicorn_args(sock), "--no-access-log", pass_fds=(sock.fileno(),),
                env=env, cwd=ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT)
        # Seeding and the server's start-up (mostly imports) overlap; both must finish before any test.
        seeding = asyncio.ensure_future(_run([sys.executable, "-m", "backend.cli", "seed"], env))
        try:
            await _wait_until_healthy(process, base_url, log)
        finally:
            await seeding
        yield base_url
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        redis = make_redis(redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()
        release_redis_db(base_redis, redis_number)
        await drop_database(base_db, E2E_DB)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium for the browser tests")
        pytest.skip(_chromium_missing_message())
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def phone(browser: Browser, live_server: str, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A fresh page in a phone-sized context (fresh cookies, storage and service workers).

    Context options can be changed per test with indirect parametrisation, e.g.
    ``@pytest.mark.parametrize("phone", [{"java_script_enabled": False}], indirect=True)``.
    """
    options = {
        "base_url": live_server,
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
        "locale": "en-US",
    } | getattr(request, "param", {})
    context = await browser.new_context(**options)
    # Actions and assertions wait up to 10 s: a loaded 2-core machine (CI, or a second test run beside this
    # one) can take longer than Playwright's 5 s default for a sign-in (argon2) and the next screen.
    context.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and not page.is_closed():
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
            try:
                await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
            except Exception as exc:  # noqa: BLE001 - a screenshot must not hide the real failure
                print(f"could not save a screenshot: {exc}")
        await context.close()
