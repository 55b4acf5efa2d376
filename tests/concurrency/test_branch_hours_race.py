"""Managers saving the branch's hours at the same time, over two app processes: the row lock makes them take
turns, so the stored week is exactly one of the weeks sent (never a mix), and the audit log reads as a chain
(each change's "before" is the previous one's "after"). The same holiday added at once is stored once: the
primary key decides, the others get a clear 422, nothing answers 5xx."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from functools import partial

import httpx
from sqlalchemy import select

from backend.domains.accounts.service import AccountService
from backend.domains.audit.models import AuditEntry
from backend.domains.branches import rules
from backend.domains.branches.models import Branch, BranchHoliday
from backend.lib.db import utcnow
from tests.concurrency.test_test_drive_race import setup
from tests.factories import as_principal, make_branch, make_user

REQUESTS = 20
START = {d: ["09:00", "18:00"] for d in rules.WEEKDAYS}


def week(n: int) -> dict:
    """A distinct week per request: Saturday closes n minutes after noon, Sunday is closed on odd n."""
    return START | {"sat": ["09:00", f"12:{n:02d}"], "sun": None if n % 2 else ["10:00", f"16:{n:02d}"]}


async def send_all(apps, method: str, path: str, bodies: list[dict], keys: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=90) as client:
        return await asyncio.gather(*(
            client.request(method, apps.urls[n % 2] + path, json=body, headers=keys[n % len(keys)])
            for n, body in enumerate(bodies)))


async def test_two_managers_save_at_once_and_the_week_stays_whole(two_apps):
    async def prepare(session, redis):
        branch = await make_branch(session, opening_hours=START)
        creator = as_principal(await make_user(session, redis, role="admin"))
        keys = []
        for n in range(2):
            _key, secret = await AccountService(session, redis).create_api_key(
                creator, name=f"manager {n}", role="manager", branch_id=branch.id)
            keys.append({"Authorization": f"Bearer {secret}", "Accept-Language": "en"})
        return branch.id, keys, rules.local_today(utcnow(), branch.timezone) + timedelta(days=3)

    branch_id, keys, day = await setup(two_apps, prepare)
    sent = [week(n) for n in range(REQUESTS)]
    answers = await send_all(two_apps, "PUT", f"/api/v1/branches/{branch_id}/opening-hours", sent, keys)
    assert Counter(a.status_code for a in answers) == {200: REQUESTS}, [a.text for a in answers]

    async def check(session, _redis):
        stored = (await session.execute(select(Branch.opening_hours).where(Branch.id == branch_id))).scalar_one()
        entries = (await session.execute(select(AuditEntry).where(
            AuditEntry.branch_id == branch_id, AuditEntry.entity == "opening_hours").order_by(AuditEntry.id)
        )).scalars().all()
        return stored, [(e.before["opening_hours"], e.after["opening_hours"]) for e in entries]

    stored, chain = await setup(two_apps, check)
    assert stored in sent  # one whole week of those sent (JSONB keeps its own key order)
    assert len(chain) == REQUESTS and chain[0][0] == START and chain[-1][1] == stored
    for (_before, after), (next_before, _after) in zip(chain, chain[1:], strict=False):
        assert next_before == after  # each save saw the one before it: they took turns
    as_text = partial(json.dumps, sort_keys=True)
    assert sorted(as_text(after) for _before, after in chain) == sorted(map(as_text, sent))  # each save once

    holiday = {"date": day.isoformat(), "name": "Stocktaking"}
    answers = await send_all(two_apps, "POST", f"/api/v1/branches/{branch_id}/holidays", [holiday] * REQUESTS, keys)
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 422: REQUESTS - 1}, statuses
    refusals = [a.json()["error"]["fields"]["date"] for a in answers if a.status_code == 422]
    assert all("already a holiday" in message for message in refusals), refusals

    async def holidays(session, _redis):
        rows = (await session.execute(select(BranchHoliday).where(BranchHoliday.branch_id == branch_id))).scalars()
        created = (await session.execute(select(AuditEntry).where(
            AuditEntry.branch_id == branch_id, AuditEntry.entity == "branch_holiday"))).scalars().all()
        return [(h.day, h.name) for h in rows], len(created)

    assert await setup(two_apps, holidays) == ([(day, "Stocktaking")], 1)
