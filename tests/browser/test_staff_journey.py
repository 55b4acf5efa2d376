"""A staff member on a phone: sign in, see the dashboard, change the language, sign out (issue 2).

Assertions are about what the person sees: visible text, the address bar, the page language.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from backend.seed import DEMO_PASSWORD

SALES_EMAIL = "sales@forecourt.test"
SALES_NAME = "李娜 Li Na"
SALES_BRANCH = "上海浦东店"  # SH01 in the demo data


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def choose_language(page: Page, label: str) -> None:
    """Pick a language in the header; with JavaScript the form submits itself on change."""
    select = page.get_by_label(re.compile(r"^(Language|语言)$"))
    async with page.expect_navigation():
        await select.select_option(label=label)


async def test_staff_member_signs_in_switches_to_chinese_and_signs_out(phone: Page) -> None:
    page = phone
    await page.goto("/sign-in")
    await expect(page.get_by_role("heading", name="Staff sign-in")).to_be_visible()

    await sign_in(page, SALES_EMAIL, DEMO_PASSWORD)

    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text(SALES_NAME)
    await expect(page.get_by_test_id("branch-card").filter(has_text=SALES_BRANCH)).to_be_visible()
    bottom_nav = page.get_by_role("navigation", name=re.compile(r"^(Main|主导航)$"))
    await expect(bottom_nav).to_be_visible()
    await expect(bottom_nav.get_by_role("link")).not_to_have_count(0)

    # The demo account's saved language is Chinese and a staff member's choice beats the browser's,
    # so start from English to see the switch to 中文 really change the screen.
    await choose_language(page, "English")
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {SALES_NAME}")
    await expect(bottom_nav.get_by_text("Dashboard", exact=True)).to_be_visible()
    # JavaScript submits the language form on change, so its button is hidden.
    await expect(page.get_by_role("button", name="Change")).to_be_hidden()

    await choose_language(page, "中文")
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("您好")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(SALES_NAME)
    await expect(bottom_nav.get_by_text("工作台", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("branch-card").filter(has_text=SALES_BRANCH)).to_be_visible()

    await page.get_by_test_id("sign-out").click()
    await expect(page).to_have_url(re.compile(r"/sign-in$"))
    await expect(page.get_by_role("heading", name="员工登录")).to_be_visible()
    await expect(page.get_by_test_id("sign-out")).to_have_count(0)
    await expect(page.get_by_role("navigation", name="主导航")).to_have_count(0)

    # The session is gone: the dashboard sends them back to the sign-in page.
    await page.goto("/dashboard")
    await expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fdashboard$"))
    await expect(page.get_by_role("heading", name="员工登录")).to_be_visible()
    await expect(page.get_by_text(SALES_NAME)).to_have_count(0)


async def test_wrong_password_shows_an_error_beside_the_form(phone: Page) -> None:
    page = phone
    await page.goto("/sign-in")

    await sign_in(page, "advisor@forecourt.test", "not-the-password")

    form = page.locator("form", has=page.get_by_role("button", name="Sign in", exact=True))
    await expect(form.get_by_role("alert")).to_have_text("That e-mail and password do not match an account.")
    await expect(page).to_have_url(re.compile(r"/sign-in$"))
    await expect(page.get_by_role("heading", name="Staff sign-in")).to_be_visible()
    await expect(page.get_by_label("E-mail")).to_have_value("advisor@forecourt.test")
    await expect(page.get_by_label("Password")).to_have_value("")
    await expect(page.get_by_test_id("sign-out")).to_have_count(0)


@pytest.mark.parametrize("phone", [{"java_script_enabled": False}], ids=["no-js"], indirect=True)
async def test_language_switch_works_without_javascript(phone: Page) -> None:
    page = phone
    await page.goto("/sign-in")
    await expect(page.get_by_role("heading", name="Staff sign-in")).to_be_visible()

    await page.get_by_label("Language").select_option(label="中文")
    await page.get_by_role("button", name="Change").click()

    await expect(page).to_have_url(re.compile(r"/sign-in$"))
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.get_by_role("heading", name="员工登录")).to_be_visible()
