"""Stock journeys on a phone (issue 3): a customer filters stock and opens a car; a salesperson finds a car by
the last 6 of its VIN and reserves it; a manager imports a file and watches the progress bar finish.

These need demo cars and a background worker, so they run against a server of their own: its own database
(``forecourt_e2e_stock_<pid>``, seeded with ``forecourt seed --vehicles 300``), Redis database, uvicorn
process and arq worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy.engine import make_url

from backend.lib.db import async_url
from backend.lib.migrate import upgrade
from backend.seed import DEMO_PASSWORD
from tests.browser.conftest import ROOT, _run, _server_env
from tests.conftest import (
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from tests.servers import listening_socket, uvicorn_args
from tests.stock_factories import new_vin

STOCK_DB = f"forecourt_e2e_stock_{os.getpid()}"


async def _stop(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _wait_until_ready(process: asyncio.subprocess.Process, base_url: str, log) -> None:
    """Like the live server's wait, with more patience: this machine may be busy with other tests."""
    import httpx

    deadline = asyncio.get_running_loop().time() + 90
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        while True:
            if process.returncode is not None:
                pytest.fail(f"the stock server exited:\n{log.read_text(errors='replace')}")
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"the stock server was not ready in 90 s:\n{log.read_text(errors='replace')}")
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def stock_server(base_urls, tmp_path_factory) -> AsyncIterator[dict]:
    base_db, base_redis = base_urls
    await recreate_database(base_db, STOCK_DB)
    database_url = database_url_for(base_db, STOCK_DB)
    redis_number = claim_redis_db(base_redis, owner=f"tests-{os.getpid()}")
    redis_url = redis_url_for(base_redis, redis_number)
    server = worker = None
    try:
        await asyncio.to_thread(upgrade, database_url)
        env = _server_env(database_url, redis_url)
        sock = listening_socket()
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env["FORECOURT_BASE_URL"] = base_url
        logs = tmp_path_factory.mktemp("stock_server")
        await _run([sys.executable, "-m", "backend.cli", "seed", "--vehicles", "300"], env)
        with (logs / "server.log").open("wb") as out, sock:
            server = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", *uvicorn_args(sock),
                "--no-access-log", pass_fds=(sock.fileno(),), env=env, cwd=ROOT, stdout=out,
                stderr=asyncio.subprocess.STDOUT)
        with (logs / "worker.log").open("wb") as out:
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "backend.cli", "worker", env=env, cwd=ROOT, stdout=out,
                stderr=asyncio.subprocess.STDOUT)
        await _wait_until_ready(server, base_url, logs / "server.log")
        yield {"base_url": base_url, "database_url": database_url, "logs": logs}
    finally:
        await _stop(worker)
        await _stop(server)
        release_redis_db(base_redis, redis_number)
        await drop_database(base_db, STOCK_DB)


@pytest.fixture
async def stock_phone(browser: Browser, stock_server) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=stock_server["base_url"], viewport={"width": 390, "height": 844},
                                        device_scale_factor=3, is_mobile=True, has_touch=True, locale="en-US",
                                        accept_downloads=True)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    try:
        yield page
    finally:
        await context.close()


async def query(database_url: str, sql: str, *args):
    url = make_url(async_url(database_url))
    kwargs = {"user": url.username, "database": url.database}
    kwargs |= {"host": url.query["host"]} if url.query.get("host") else {"host": url.host, "port": url.port or 5432}
    if url.password:
        kwargs["password"] = url.password
    conn = await asyncpg.connect(**kwargs)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def sign_in_in_english(page: Page, email: str) -> None:
    await page.goto("/sign-in")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    select = page.get_by_label(re.compile(r"^(Language|语言)$"))
    if await page.locator("html").get_attribute("lang") != "en":
        async with page.expect_navigation():
            await select.select_option(label="English")


async def test_customer_filters_stock_and_opens_a_car(stock_phone: Page) -> None:
    page = stock_phone
    await page.goto("/")
    await page.get_by_role("link", name="Browse our cars").click()
    await expect(page).to_have_url(re.compile(r"/stock$"))
    count = page.get_by_test_id("result-count")
    await expect(count).to_have_text(re.compile(r"^[\d,]+ cars$"))
    everything = int((await count.inner_text()).split()[0].replace(",", ""))

    await page.get_by_label("Body").select_option("suv")
    await expect(page).to_have_url(re.compile(r"body=suv"))
    await expect(count).not_to_have_text(f"{everything} cars")
    suvs = int((await count.inner_text()).split()[0].replace(",", ""))
    # Live counts: the powertrain options now count SUVs only.
    bev_option = page.locator("#f-powertrain option[value='bev']")
    await expect(bev_option).to_have_text(re.compile(r"^Electric \(BEV\) \([\d,]+\)$"))
    bev_suvs = int(re.search(r"\(([\d,]+)\)$", await bev_option.inner_text()).group(1).replace(",", ""))
    await page.get_by_label("Powertrain").select_option("bev")
    await expect(page).to_have_url(re.compile(r"body=suv.*powertrain=bev|powertrain=bev.*body=suv"))
    await expect(count).to_have_text(f"{bev_suvs:,} car" + ("" if bev_suvs == 1 else "s"))
    assert 0 < bev_suvs <= suvs

    await page.get_by_label("Sort by").select_option("price_desc")
    await expect(page).to_have_url(re.compile(r"sort=price_desc"))
    cards = page.get_by_test_id("vehicle-card")
    await expect(cards.first).to_be_visible()
    title = (await cards.first.locator(".stock-card__title").inner_text()).strip()
    await cards.first.locator("a").first.click()
    await expect(page).to_have_url(re.compile(r"/stock/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(page.get_by_role("link", name="Book a test drive")).to_be_visible()
    await expect(page.get_by_role("link", name="Ask about this car")).to_be_visible()
    await expect(page.get_by_text("Cost")).to_have_count(0)

    await page.go_back()
    await expect(page).to_have_url(re.compile(r"/stock\?.*powertrain=bev"))
    await expect(count).to_have_text(f"{bev_suvs:,} car" + ("" if bev_suvs == 1 else "s"))
    await expect(page.get_by_label("Powertrain")).to_have_value("bev")


async def test_salesperson_finds_a_car_by_the_last_six_of_its_vin_and_reserves_it(stock_phone: Page,
                                                                                  stock_server) -> None:
    page = stock_phone
    rows = await query(stock_server["database_url"], """
        SELECT v.vin, v.make, v.model FROM vehicle v JOIN branch b ON b.id = v.branch_id
        WHERE b.code = 'SH01' AND v.status = 'in_stock' ORDER BY v.id LIMIT 1""")
    vin = rows[0]["vin"]
    await sign_in_in_english(page, "sales@forecourt.test")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Stock").click()
    await expect(page).to_have_url(re.compile(r"/staff/stock/$"))

    await page.get_by_label("VIN or its last 6 characters").fill(vin[-6:].lower())
    rows_shown = page.get_by_test_id("vehicle-row")
    await expect(page.get_by_test_id("result-count")).to_have_text("1 car")
    await expect(rows_shown).to_have_count(1)
    await expect(rows_shown.first).to_contain_text(vin[-6:])
    await rows_shown.first.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r"/staff/stock/\d+$"))
    await expect(page.get_by_test_id("vehicle-status")).to_contain_text("In stock")

    await page.get_by_label("Reserve for (customer, reason)").fill("Mr Chen, deposit 5,000")
    await page.get_by_role("button", name="Reserve", exact=True).click()
    await expect(page.get_by_test_id("vehicle-status")).to_contain_text("Reserved")
    await expect(page.get_by_test_id("reservation")).to_contain_text("Mr Chen, deposit 5,000")
    await expect(page.get_by_role("button", name="Release")).to_be_visible()

    status = await query(stock_server["database_url"], "SELECT status FROM vehicle WHERE vin = $1", vin)
    assert status[0]["status"] == "reserved"


async def test_manager_imports_a_file_and_sees_the_progress_finish_and_the_rejected_rows(
        stock_phone: Page, stock_server, tmp_path) -> None:
    page = stock_phone
    good = [new_vin("LBRWS") for _ in range(30)]
    bad_digit = good[0][:8] + ("1" if good[0][8] != "1" else "2") + good[0][9:]
    lines = ["车架号,品牌,车型,年款,车身类型,动力类型,车况,售价,门店"]
    lines += [f"{vin},Zeekr,007,2025,轿车,纯电,新车,20.99万,SH01" for vin in good[1:]]
    lines += [f"{bad_digit},Zeekr,007,2025,轿车,纯电,新车,20.99万,SH01",
              f"{new_vin('LBRWS')},Zeekr,007,2025,轿车,蒸汽,新车,1,SH01"]
    file = tmp_path / "到店车辆.csv"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    await sign_in_in_english(page, "admin@forecourt.test")
    await page.goto("/staff/stock/imports/")
    await page.get_by_label("CSV or Excel file (.csv, .xlsx)").set_input_files(str(file))
    await page.get_by_role("button", name="Import", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/staff/stock/imports/\d+$"))
    progress = page.get_by_test_id("import-progress")
    await expect(progress).to_have_attribute("data-state", "done", timeout=60_000)
    await expect(page.get_by_test_id("import-state")).to_have_text("Finished: 31 rows.")
    await expect(page.get_by_test_id("import-inserted")).to_have_text("29")
    await expect(page.get_by_test_id("import-rejected")).to_have_text("2")
    value = await page.locator("progress").get_attribute("value")
    assert value == await page.locator("progress").get_attribute("max")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the rejected rows (CSV)").click()
    download = await download_info.value
    report = (await download.path()).read_text(encoding="utf-8-sig")
    assert bad_digit in report and "check digit" in report and "powertrain" in report
