"""What the journeys share: committed data in the live server's database, a branch with its staff, and the
sign-in a person does on the phone."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.accounts.service import AccountService
from backend.domains.branches import service as branches
from backend.domains.branches.models import Branch
from backend.lib import db
from backend.seed import DEMO_PASSWORD
from tests.browser.conftest import E2E_DB
from tests.conftest import database_url_for


@asynccontextmanager
async def live_session(base_db: str) -> AsyncIterator[AsyncSession]:
    """A transaction on the live server's database, committed at the end (the server sees it at once)."""
    engine = db.make_engine(database_url_for(base_db, E2E_DB), pool_size=1)
    try:
        async with db.unit_of_work(db.make_session_maker(engine)) as session:
            yield session
    finally:
        await engine.dispose()


@dataclass
class Team:
    branch: Branch
    suffix: int  # makes names, codes and VINs of this test's rows unique in the shared database
    staff: dict[str, StaffUser]  # role -> person (English, the demo password)


async def branch_with_staff(session: AsyncSession, name: str, *, roles: tuple[str, ...] = ("manager", "sales"),
                            timezone: str = "Asia/Shanghai", opening_hours: dict | None = None) -> Team:
    """A branch of its own group (``name`` in English, e.g. "Hours") with one person per role."""
    suffix = random.randrange(10**5, 10**6)
    code = re.sub(r"[^A-Z]", "", name.upper())[:2] + str(suffix)
    group = await branches.create_group(session, f"{name} Motors")
    branch = await branches.create_branch(session, group_id=group.id, code=code, name=f"{name}门店",
                                          name_en=f"{name} branch", timezone=timezone, opening_hours=opening_hours)
    accounts = AccountService(session, None)
    staff = {role: await accounts.create_user(
        email=f"{name.lower()}-{role}-{suffix}@forecourt.test", name=f"{name} {role.title()} {suffix}", role=role,
        password=DEMO_PASSWORD, branch_code=branch.code, locale="en") for role in roles}
    return Team(branch, suffix, staff)


async def sign_in(page: Page, email: str) -> None:
    """The staff sign-in form with the demo password, up to the dashboard."""
    await page.goto("/sign-in")
    await page.locator("#f-email").fill(email)
    await page.locator("#f-password").fill(DEMO_PASSWORD)
    await page.locator("form[action='/sign-in'] button[type=submit]").click()
    await expect(page).to_have_url(re.compile(r"/dashboard$"))
