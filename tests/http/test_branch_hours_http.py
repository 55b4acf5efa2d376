"""The branch's opening hours and holidays over HTTP: the manager's screen (full page and htmx fragments,
refusals re-rendered beside the fields, forms without JavaScript), the JSON API (API keys and sessions with
CSRF), bad input of every kind, wrong roles and other branches: every refusal changes nothing."""

import re
from datetime import timedelta

from sqlalchemy import func, select

from backend.domains.accounts.service import AccountService
from backend.domains.audit.models import AuditEntry
from backend.domains.branches import rules
from backend.domains.branches.models import Branch, BranchHoliday
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from tests.factories import as_principal, make_branch, make_user
from tests.helpers import csrf_token, signed_in
from tests.showroom import booking, demo_car, free_start, make_showroom

HX = {"HX-Request": "true"}
API = "/api/v1/branches"
WEEK = {"mon": ["09:00", "18:00"], "tue": ["09:00", "18:00"], "wed": ["09:00", "18:00"], "thu": ["09:00", "18:00"],
        "fri": ["09:00", "18:00"], "sat": ["10:00", "16:00"], "sun": None}
CSRF_HEADER = re.compile(r'"x-csrftoken": "([^"]+)"')


def hours_form(token: str, branch, week: dict, **changes) -> dict:
    form = {"_csrf_token": token, "branch": str(branch.id)}
    for day, hours in week.items():
        if hours is None:
            form[f"{day}_closed"] = "on"
        else:
            form[f"{day}_open"], form[f"{day}_close"] = hours
    return form | changes


def in_days(branch, n: int):
    return rules.local_today(utcnow(), branch.timezone) + timedelta(days=n)


async def stored_hours(session, branch) -> dict:
    return (await session.execute(select(Branch.opening_hours).where(Branch.id == branch.id))).scalar_one()


async def stored_holidays(session, branch) -> list[tuple]:
    rows = await session.execute(select(BranchHoliday.day, BranchHoliday.name)
                                 .where(BranchHoliday.branch_id == branch.id).order_by(BranchHoliday.day))
    return [tuple(r) for r in rows]


async def audit_count(session, branch) -> int:
    return (await session.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.branch_id == branch.id, AuditEntry.entity.in_(["opening_hours", "branch_holiday"])))).scalar_one()


async def manager_of(client, session, redis, branch):
    user = await make_user(session, redis, role="manager", branch=branch, locale="en")
    await signed_in(client, user)
    return user


async def api_key(session, redis, role: str, branch) -> dict:
    creator = as_principal(await make_user(session, redis, role="admin"))
    _key, secret = await AccountService(session, redis).create_api_key(creator, name=f"{role} key", role=role,
                                                                       branch_id=branch.id if branch else None)
    return {"Authorization": f"Bearer {secret}"}


# -- the screen ------------------------------------------------------------------------------------------


async def test_screen_full_page_and_fragment(client, session, redis):
    branch = await make_branch(session, opening_hours=WEEK)
    session.add(BranchHoliday(branch_id=branch.id, day=in_days(branch, 30), name="National Day"))
    session.add(BranchHoliday(branch_id=branch.id, day=in_days(branch, -30), name="Spring Festival"))
    await session.flush()
    await manager_of(client, session, redis, branch)
    full = await client.get("/branch/hours")
    assert full.status_code == 200 and "<html" in full.text and "HX-Request" in full.headers["vary"]
    assert "Opening hours and holidays" in full.text and "branches.css" in full.text
    assert full.text.count('data-testid="day-') == 7 and "Saturday" in full.text
    assert 'name="sat_open" type="time" step="60" value="10:00"' in full.text
    assert 'name="sun_closed" data-testid="closed-sun" checked' in full.text
    assert "are not moved or cancelled" in full.text
    # Upcoming first, then the past.
    assert full.text.index("National Day") < full.text.index("Spring Festival")
    fragment = await client.get("/branch/hours", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="bh-screen"' in fragment.text
    assert "National Day" in fragment.text
    menu = await client.get("/menu")
    assert 'href="/branch/hours"' in menu.text


async def test_saving_hours_with_and_without_htmx_and_refusals_beside_the_fields(client, session, redis):
    branch = await make_branch(session)
    await manager_of(client, session, redis, branch)
    token = await csrf_token(client, "/branch/hours")
    saturday = WEEK | {"sat": ["09:30", "14:00"]}
    plain = await client.post("/branch/hours", data=hours_form(token, branch, saturday))
    assert plain.status_code == 303 and plain.headers["location"] == f"/branch/hours?branch={branch.id}&saved=1"
    assert await stored_hours(session, branch) == saturday
    shown = await client.get(plain.headers["location"])
    assert "Opening hours saved." in shown.text and 'value="09:30"' in shown.text
    htmx = await client.post("/branch/hours", data=hours_form(token, branch, WEEK), headers=HX)
    assert htmx.status_code == 200 and "<html" not in htmx.text and 'id="bh-hours"' in htmx.text
    assert "Opening hours saved." in htmx.text and await stored_hours(session, branch) == WEEK
    changes = await audit_count(session, branch)
    assert changes == 2

    for change, day, words in (({"sat_close": "08:00"}, "sat", "must be after the opening time"),
                               ({"mon_open": "9am"}, "mon", "HH:MM"), ({"tue_open": ""}, "tue", "HH:MM"),
                               ({"wed_close": "25:00"}, "wed", "HH:MM"), ({"thu_open": "x" * 5000}, "thu", "HH:MM")):
        response = await client.post("/branch/hours", data=hours_form(token, branch, WEEK, **change), headers=HX)
        assert response.status_code == 422 and f'id="f-{day}-error"' in response.text, change
        assert words in response.text and 'data-testid="hours-error"' in response.text, change
    full = await client.post("/branch/hours", data=hours_form(token, branch, WEEK, sat_close="08:00"))
    assert full.status_code == 422 and "<html" in full.text and 'value="08:00"' in full.text
    assert await stored_hours(session, branch) == WEEK and await audit_count(session, branch) == changes
    no_csrf = await client.post("/branch/hours", data={k: v for k, v in hours_form(token, branch, WEEK).items()
                                                       if k != "_csrf_token"})
    assert no_csrf.status_code == 403


async def test_holidays_on_the_screen_with_the_count_of_bookings_kept(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    await TestDriveService(session, redis).book(booking(car, await free_start(session, car, days_ahead=2)))
    await manager_of(client, session, redis, showroom.branch)
    token = await csrf_token(client, "/branch/hours")
    day = in_days(showroom.branch, 2)
    form = {"_csrf_token": token, "branch": str(showroom.branch.id), "date": day.isoformat(), "name": "Qingming"}
    added = await client.post("/branch/hours/holidays", data=form, headers=HX)
    assert added.status_code == 200 and 'id="bh-holidays"' in added.text and "<html" not in added.text
    assert "1 booked test drive and 0 booked service appointments" in added.text
    assert "please call those customers" in added.text and "Qingming" in added.text
    later = in_days(showroom.branch, 9)
    plain = await client.post("/branch/hours/holidays", data=form | {"date": later.isoformat(), "name": ""})
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/branch/hours?branch={showroom.branch.id}&added={later.isoformat()}"
    page = await client.get(plain.headers["location"])
    assert "0 booked test drives and 0 booked service appointments" in page.text

    for change, field, words in (({"date": in_days(showroom.branch, -1).isoformat()}, "date", "has passed"),
                                 ({"date": day.isoformat()}, "date", "already a holiday"),
                                 ({"date": "someday"}, "date", "valid date"), ({"date": ""}, "date", "required"),
                                 ({"name": "x" * 121}, "name", "at most 120 characters")):
        response = await client.post("/branch/hours/holidays", data=form | {"date": in_days(showroom.branch, 5)
                                                                            .isoformat()} | change, headers=HX)
        assert response.status_code == 422 and f'id="f-{field}-error"' in response.text, change
        assert words in response.text, change
    assert await stored_holidays(session, showroom.branch) == [(day, "Qingming"), (later, "")]

    removed = await client.post(f"/branch/hours/holidays/{later.isoformat()}/remove",
                                data={"_csrf_token": token, "branch": str(showroom.branch.id)}, headers=HX)
    assert removed.status_code == 200 and "Holiday removed." in removed.text
    again = await client.post(f"/branch/hours/holidays/{later.isoformat()}/remove",
                              data={"_csrf_token": token, "branch": str(showroom.branch.id)}, headers=HX)
    assert again.status_code == 404 and "no holiday on that date" in again.text
    junk = await client.post("/branch/hours/holidays/not-a-day/remove", data={"_csrf_token": token}, headers=HX)
    assert junk.status_code == 422
    assert await stored_holidays(session, showroom.branch) == [(day, "Qingming")]


async def test_messages_in_the_users_language(client, session, redis):
    branch = await make_branch(session)
    user = await make_user(session, redis, role="manager", branch=branch, locale="zh_CN")
    await signed_in(client, user)
    token = await csrf_token(client, "/branch/hours")
    response = await client.post("/branch/hours/holidays", headers=HX, data={
        "_csrf_token": token, "branch": str(branch.id), "date": in_days(branch, 3).isoformat(), "name": "节" * 121})
    assert response.status_code == 422 and "最多 120 个字符。" in response.text


async def test_screen_roles_and_other_branches(client, session, redis):
    branch, other = await make_branch(session, opening_hours=WEEK), await make_branch(session, opening_hours=WEEK)
    sales = await make_user(session, redis, role="sales", branch=branch)
    await signed_in(client, sales)
    assert (await client.get("/branch/hours")).status_code == 403
    assert 'href="/branch/hours"' not in (await client.get("/menu")).text
    await client.post("/sign-out", data={"_csrf_token": await csrf_token(client, "/dashboard")})
    await manager_of(client, session, redis, branch)
    assert (await client.get(f"/branch/hours?branch={other.id}")).status_code == 404
    token = await csrf_token(client, "/branch/hours")
    changed = await client.post("/branch/hours", data=hours_form(token, other, WEEK | {"sun": ["10:00", "12:00"]}))
    assert changed.status_code == 404
    holiday = await client.post("/branch/hours/holidays", data={"_csrf_token": token, "branch": str(other.id),
                                                                "date": in_days(other, 3).isoformat()})
    assert holiday.status_code == 404
    assert await stored_hours(session, other) == WEEK and await stored_holidays(session, other) == []
    # An admin chooses the branch.
    await client.post("/sign-out", data={"_csrf_token": await csrf_token(client, "/dashboard")})
    await signed_in(client, await make_user(session, redis, role="admin"))
    chosen = await client.get(f"/branch/hours?branch={other.id}")
    assert chosen.status_code == 200 and f'name="branch" value="{other.id}"' in chosen.text
    assert 'id="f-branch"' in chosen.text


# -- the JSON API ----------------------------------------------------------------------------------------


async def test_api_reads_and_sets_the_week_and_holidays(client, session, redis):
    branch = await make_branch(session)
    key = await api_key(session, redis, "manager", branch)
    url = f"{API}/{branch.id}"
    read = await client.get(f"{url}/opening-hours", headers=key)
    assert read.status_code == 200 and read.json() == await stored_hours(session, branch)
    put = await client.put(f"{url}/opening-hours", json=WEEK, headers=key)
    assert put.status_code == 200 and put.json() == WEEK and await stored_hours(session, branch) == WEEK
    day = in_days(branch, 4)
    created = await client.post(f"{url}/holidays", json={"date": day.isoformat(), "name": " Stocktaking "},
                                headers=key)
    assert created.status_code == 201
    assert created.json() == {"date": day.isoformat(), "name": "Stocktaking", "booked_test_drives": 0,
                              "booked_service_appointments": 0}
    listed = await client.get(f"{url}/holidays", headers=key)
    assert listed.status_code == 200 and listed.json() == [{"date": day.isoformat(), "name": "Stocktaking"}]
    deleted = await client.delete(f"{url}/holidays/{day.isoformat()}", headers=key)
    assert deleted.status_code == 200 and deleted.json() == {"date": day.isoformat(), "name": "Stocktaking"}
    assert (await client.delete(f"{url}/holidays/{day.isoformat()}", headers=key)).status_code == 404
    assert await stored_holidays(session, branch) == []
    assert await audit_count(session, branch) == 3
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert set(paths[f"{API}/{{branch_id}}/opening-hours"]) == {"get", "put"}
    assert "delete" in paths[f"{API}/{{branch_id}}/holidays/{{day}}"]


async def test_api_with_a_session_needs_the_csrf_token(client, session, redis):
    branch = await make_branch(session)
    await manager_of(client, session, redis, branch)
    url = f"{API}/{branch.id}/opening-hours"
    assert (await client.get(url)).json() == await stored_hours(session, branch)
    before = await stored_hours(session, branch)
    assert (await client.put(url, json=WEEK)).status_code == 403
    assert await stored_hours(session, branch) == before
    page = await client.get("/dashboard")
    token = CSRF_HEADER.search(page.text).group(1)
    assert (await client.put(url, json=WEEK, headers={"x-csrftoken": token})).status_code == 200
    assert await stored_hours(session, branch) == WEEK


async def test_api_bad_input_is_a_422_with_fields_and_changes_nothing(client, session, redis):
    branch = await make_branch(session, opening_hours=WEEK)
    key = await api_key(session, redis, "manager", branch)
    hours, holidays = f"{API}/{branch.id}/opening-hours", f"{API}/{branch.id}/holidays"
    cases = [
        (WEEK | {"sat": ["16:00", "10:00"]}, "sat", "must be after the opening time"),
        (WEEK | {"mon": ["9:00", "18:00"]}, "mon", "HH:MM"),
        (WEEK | {"mon": ["09:00:00", "18:00"]}, "mon", "HH:MM"),
        (WEEK | {"mon": "09:00-18:00"}, "mon", "not valid"),
        (WEEK | {"mon": ["09:00"]}, "mon", "not valid"),
        (WEEK | {"mon": ["09:00", "12:00", "13:00"]}, "mon", "not valid"),
        (WEEK | {"mon": [9, 18]}, "mon", "not valid"),
        (WEEK | {"mon": {"open": "09:00"}}, "mon", "not valid"),
        (WEEK | {"holiday": None}, "holiday", "not valid"),
        ({k: v for k, v in WEEK.items() if k != "sun"}, "sun", "required"),
    ]
    for body, field, words in cases:
        response = await client.put(hours, json=body, headers=key)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["message"] and words in error["fields"][field], (body, error)
    for shape in (b"{not json", b"[1, 2]", b'"text"', b""):
        response = await client.put(hours, content=shape, headers=key | {"Content-Type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["message"], shape
    assert (await client.put(hours, json=WEEK | {"mon": ["0" * 20000, "1"]}, headers=key)).status_code == 413

    day = in_days(branch, 3).isoformat()
    holiday_cases = [
        ({"date": in_days(branch, -1).isoformat()}, "date", "has passed"),
        ({"date": "2026-13-40"}, "date", "valid date"),
        ({"date": 20261001}, "date", ""),
        ({"name": "Day"}, "date", "required"),
        ({"date": day, "name": "x" * 121}, "name", "at most 120"),
        ({"date": day, "name": 5}, "name", ""),
        ({"date": day, "extra": True}, "extra", ""),
    ]
    for body, field, words in holiday_cases:
        response = await client.post(holidays, json=body, headers=key)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["error"]["fields"][field], body
    assert (await client.post(holidays, content=b"{oops", headers=key | {"Content-Type": "application/json"})
            ).status_code == 400
    assert (await client.post(holidays, json={"date": day}, headers=key)).status_code == 201
    duplicate = await client.post(holidays, json={"date": day, "name": "Again"}, headers=key)
    assert duplicate.status_code == 422 and "already a holiday" in duplicate.json()["error"]["fields"]["date"]
    bad_delete = await client.delete(f"{holidays}/tomorrow", headers=key)
    assert bad_delete.status_code == 422 and "date" in bad_delete.json()["error"]["fields"]
    assert (await client.get(f"{API}/{2**40}/opening-hours", headers=key)).status_code in (400, 422)
    assert (await client.get(f"{API}/0/holidays", headers=key)).status_code in (400, 422)
    assert await stored_hours(session, branch) == WEEK
    assert await stored_holidays(session, branch) == [(in_days(branch, 3), "")]
    assert await audit_count(session, branch) == 1


async def test_api_roles_and_other_branches(client, session, redis):
    branch, other = await make_branch(session, opening_hours=WEEK), await make_branch(session, opening_hours=WEEK)
    day = in_days(other, 3)
    session.add(BranchHoliday(branch_id=other.id, day=day, name="Theirs"))
    await session.flush()
    url = f"{API}/{other.id}"
    assert (await client.get(f"{url}/opening-hours")).status_code == 401
    for role in ("sales", "service_advisor", "technician"):
        key = await api_key(session, redis, role, other)
        refused = await client.put(f"{url}/opening-hours", json=WEEK | {"sun": ["10:00", "12:00"]}, headers=key)
        assert refused.status_code == 403 and refused.json()["error"]["message"], role
        assert (await client.get(f"{url}/holidays", headers=key)).status_code == 403
    elsewhere = await api_key(session, redis, "manager", branch)
    hidden = await client.get(f"{url}/holidays", headers=elsewhere)
    assert hidden.status_code == 404 and "Theirs" not in hidden.text
    assert (await client.get(f"{url}/opening-hours", headers=elsewhere)).status_code == 404
    assert (await client.put(f"{url}/opening-hours", json=WEEK | {"sun": ["10:00", "12:00"]},
                             headers=elsewhere)).status_code == 404
    assert (await client.post(f"{url}/holidays", json={"date": in_days(other, 5).isoformat()},
                              headers=elsewhere)).status_code == 404
    assert (await client.delete(f"{url}/holidays/{day.isoformat()}", headers=elsewhere)).status_code == 404
    assert (await client.get(f"{API}/999999/opening-hours", headers=elsewhere)).status_code == 404
    assert await stored_hours(session, other) == WEEK and await stored_holidays(session, other) == [(day, "Theirs")]
    assert await audit_count(session, other) == 0
    admin = await api_key(session, redis, "admin", None)
    assert (await client.get(f"{url}/holidays", headers=admin)).json() == [{"date": day.isoformat(),
                                                                            "name": "Theirs"}]
