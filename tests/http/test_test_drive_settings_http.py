"""Test-drive settings over HTTP: the manager's screen (full page, htmx fragments, refusals re-rendered with
messages beside the fields) and the JSON API (each endpoint; malformed, missing, oversized and wrongly typed
input; wrong roles; another branch's salesperson). A refusal changes nothing and nothing answers 500."""

import re

from sqlalchemy import func, select

from backend.domains.audit.models import AuditEntry
from backend.domains.test_drives.models import SalespersonHours, TestDriveModelLength, TestDriveSettings
from tests.factories import make_user
from tests.helpers import csrf_token, signed_in
from tests.http.test_test_drive_api import api_key
from tests.showroom import demo_car, make_showroom

HX = {"HX-Request": "true"}
PAGE = "/test-drives/settings"
API = "/api/v1/test-drives"
RULES = {"slot_minutes": 30, "drive_minutes": 30, "buffer_minutes": 15, "min_notice_minutes": 60, "horizon_days": 30}
AFTERNOONS = {d: ["13:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def count(session, model, *where) -> int:
    return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def saved_settings(session, branch) -> TestDriveSettings | None:
    return (await session.execute(select(TestDriveSettings).where(TestDriveSettings.branch_id == branch.id)
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


async def length_of(session, branch, car) -> TestDriveModelLength | None:
    return (await session.execute(select(TestDriveModelLength).where(
        TestDriveModelLength.branch_id == branch.id, TestDriveModelLength.make == car.make,
        TestDriveModelLength.model == car.model).execution_options(populate_existing=True))).scalar_one_or_none()


async def hours_of(session, person) -> SalespersonHours | None:
    return (await session.execute(select(SalespersonHours).where(SalespersonHours.staff_user_id == person.id)
                                  .execution_options(populate_existing=True))).scalar_one_or_none()


def hours_form(token, *, mode="own", online=True, **days) -> dict:
    form = {"_csrf_token": token, "mode": mode}
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        start, end = days.get(day, ("", ""))
        form |= {f"{day}_start": start, f"{day}_end": end}
    return form | ({"takes_online": "on"} if online else {})


# -- the screen ---------------------------------------------------------------------------------------


async def test_the_settings_page_full_and_fragment_with_defaults_models_and_salespeople(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom, make="NIO", model="ET5 Touring")
    await signed_in(client, showroom.manager)
    full = await client.get(PAGE)
    assert full.status_code == 200 and "HX-Request" in full.headers["vary"]
    html = full.text
    assert "<html" in html and 'href="/test-drives/settings" aria-current="page"' in html
    assert "uses the default rules until you save" in html and "Test drives already booked keep their times" in html
    assert re.search(r'<option value="30" selected>30 min</option>', html)
    assert f'value="{car.make}|{car.model}"' in html and "No model has a length of its own." in html
    assert showroom.salespeople[0].name in html and "Takes online bookings" in html
    assert 'name="branch"' not in html  # a branch manager has no branch to choose
    fragment = await client.get(PAGE, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="td-settings"' in fragment.text
    menu = await client.get("/menu")
    assert menu.status_code == 200 and 'href="/test-drives/settings"' in menu.text


async def test_saving_booking_rules_on_the_screen_and_field_errors(client, session, redis):
    showroom = await make_showroom(session, redis)
    await signed_in(client, showroom.manager)
    token = await csrf_token(client, PAGE)
    bad = await client.post(PAGE, data={"_csrf_token": token, **RULES, "slot_minutes": "20", "drive_minutes": "abc",
                                        "horizon_days": "400"}, headers=HX)
    assert bad.status_code == 422 and "<html" not in bad.text and 'id="td-rules"' in bad.text
    # Every message at once, each beside its field.
    assert "every 15, 30, 45" in bad.text and "Enter a number." in bad.text and "1 to 90 days ahead" in bad.text
    assert 'id="f-drive_minutes-error"' in bad.text and 'id="f-horizon_days-error"' in bad.text
    assert await saved_settings(session, showroom.branch) is None
    range_error = await client.post(PAGE, data={"_csrf_token": token, **RULES, "horizon_days": "400"}, headers=HX)
    assert range_error.status_code == 422 and "1 to 90 days ahead" in range_error.text
    assert 'value="400"' in range_error.text  # what was typed stays in the form

    done = await client.post(PAGE, data={"_csrf_token": token, **RULES, "buffer_minutes": "25"}, headers=HX)
    assert done.status_code == 200 and "Booking rules saved." in done.text and 'value="25"' in done.text
    assert (await saved_settings(session, showroom.branch)).buffer_minutes == 25
    plain = await client.post(PAGE, data={"_csrf_token": token, **RULES, "horizon_days": "60"})
    assert plain.status_code == 303 and plain.headers["location"] == PAGE
    assert (await saved_settings(session, showroom.branch)).horizon_days == 60
    assert await count(session, AuditEntry, AuditEntry.entity == "test_drive_settings") == 2


async def test_drive_length_per_model_on_the_screen(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    other = await demo_car(session, await make_showroom(session, redis))
    await signed_in(client, showroom.manager)
    token = await csrf_token(client, PAGE)
    key = f"{car.make}|{car.model}"
    theirs = f"{other.make}|{other.model}"
    for form, field, words in (({"model": key, "minutes": "500"}, "minutes", "15 to 240"),
                               ({"model": key, "minutes": ""}, "minutes", "Enter a number."),
                               ({"model": theirs, "minutes": "45"}, "model", "models your branch")):
        refused = await client.post(f"{PAGE}/lengths", data={"_csrf_token": token, **form}, headers=HX)
        assert refused.status_code == 422 and f'id="f-{field}-error"' in refused.text and words in refused.text, form
    assert await count(session, TestDriveModelLength, TestDriveModelLength.model.in_([car.model, other.model])) == 0

    saved = await client.post(f"{PAGE}/lengths", data={"_csrf_token": token, "model": key, "minutes": "45"},
                              headers=HX)
    assert saved.status_code == 200 and f"{car.make} {car.model}: 45 minutes saved." in saved.text
    assert 'data-testid="length-row"' in saved.text and "45 min" in saved.text
    assert (await length_of(session, showroom.branch, car)).drive_minutes == 45
    removed = await client.post(f"{PAGE}/lengths/remove", data={"_csrf_token": token, "model": key}, headers=HX)
    assert removed.status_code == 200 and "now takes the default length" in removed.text
    assert await count(session, TestDriveModelLength, TestDriveModelLength.model == car.model) == 0
    again = await client.post(f"{PAGE}/lengths/remove", data={"_csrf_token": token, "model": key}, headers=HX)
    assert again.status_code == 404


async def test_salespeople_hours_on_the_screen(client, session, redis):
    showroom = await make_showroom(session, redis)
    person = showroom.salespeople[0]
    theirs = (await make_showroom(session, redis)).salespeople[0]
    await signed_in(client, showroom.manager)
    token = await csrf_token(client, PAGE)
    url = f"{PAGE}/salespeople/{person.id}"
    wrong = await client.post(url, data=hours_form(token, mon=("18:00", "09:00"), tue=("09:00", "")), headers=HX)
    assert wrong.status_code == 422 and 'id="td-people"' in wrong.text
    assert "must be after its start" in wrong.text and "e.g. 09:00 and 18:00" in wrong.text
    assert await hours_of(session, person) is None

    days = {d: ("13:00", "18:00") for d in AFTERNOONS}
    saved = await client.post(url, data=hours_form(token, online=False, **days), headers=HX)
    assert saved.status_code == 200 and f"Saved for {person.name}." in saved.text and "No online bookings" in saved.text
    stored = await hours_of(session, person)
    assert stored.working_hours == AFTERNOONS and stored.takes_online is False
    branch_hours = await client.post(url, data=hours_form(token, mode="branch"))
    assert branch_hours.status_code == 303
    stored = await hours_of(session, person)
    assert stored.working_hours == {} and stored.takes_online is True
    hidden = await client.post(f"{PAGE}/salespeople/{theirs.id}", data=hours_form(token, online=False), headers=HX)
    assert hidden.status_code == 404 and await hours_of(session, theirs) is None


async def test_who_may_open_the_screen_and_an_admin_picks_the_branch(client, session, redis):
    showroom = await make_showroom(session, redis)
    elsewhere = await make_showroom(session, redis)
    await signed_in(client, showroom.salespeople[0])
    assert (await client.get(PAGE)).status_code == 403
    await client.post("/sign-out", data={"_csrf_token": await csrf_token(client, "/dashboard")})
    client.cookies.clear()
    await signed_in(client, showroom.manager)
    assert (await client.get(PAGE, params={"branch": elsewhere.branch.id})).status_code == 403
    client.cookies.clear()
    admin = await make_user(session, redis, role="admin")
    await signed_in(client, admin)
    picked = await client.get(PAGE, params={"branch": elsewhere.branch.id})
    assert picked.status_code == 200 and f'data-branch="{elsewhere.branch.id}"' in picked.text
    assert f'<input type="hidden" name="branch" value="{elsewhere.branch.id}">' in picked.text
    token = await csrf_token(client, PAGE)
    saved = await client.post(PAGE, data={"_csrf_token": token, "branch": str(elsewhere.branch.id), **RULES,
                                          "slot_minutes": "45"})
    assert saved.status_code == 303 and saved.headers["location"] == f"{PAGE}?branch={elsewhere.branch.id}"
    assert (await saved_settings(session, elsewhere.branch)).slot_minutes == 45
    assert await saved_settings(session, showroom.branch) is None
    assert (await client.get(PAGE, params={"branch": "x"})).status_code in (400, 422)
    # A branch number beyond the column's range (a form takes any ten digits) is not found, not a 500.
    beyond = await client.post(PAGE, data={"_csrf_token": token, "branch": "9999999999", **RULES})
    assert beyond.status_code == 404
    assert (await client.get(PAGE, params={"branch": 999999})).status_code == 404


# -- the JSON API ---------------------------------------------------------------------------------------


async def test_settings_api_read_and_write(client, session, redis):
    showroom = await make_showroom(session, redis)
    manager = await api_key(session, redis, "manager", showroom.branch)
    sales = await api_key(session, redis, "sales", showroom.branch)
    read = await client.get(f"{API}/settings", headers=sales)
    assert read.status_code == 200
    assert read.json() == RULES | {"branch_id": showroom.branch.id, "branch": showroom.branch.code, "is_default": True}
    refused = await client.put(f"{API}/settings", json=RULES, headers=sales)
    assert refused.status_code == 403 and refused.json()["error"]["message"]
    saved = await client.put(f"{API}/settings", json=RULES | {"drive_minutes": 45}, headers=manager)
    assert saved.status_code == 200 and saved.json()["drive_minutes"] == 45 and saved.json()["is_default"] is False
    assert (await client.get(f"{API}/settings", headers=sales)).json()["drive_minutes"] == 45
    elsewhere = await make_showroom(session, redis)
    other = await client.get(f"{API}/settings", params={"branch_id": elsewhere.branch.id}, headers=manager)
    assert other.status_code == 403
    assert (await client.get(f"{API}/settings")).status_code == 401


async def test_settings_api_bad_input_changes_nothing(client, session, redis):
    showroom = await make_showroom(session, redis)
    manager = await api_key(session, redis, "manager", showroom.branch)
    cases = [
        (RULES | {"slot_minutes": 20}, "slot_minutes", "every 15, 30"),
        (RULES | {"buffer_minutes": 121}, "buffer_minutes", "0 to 120"),
        (RULES | {"min_notice_minutes": 3000}, "min_notice_minutes", "2880"),
        (RULES | {"horizon_days": 0}, "horizon_days", "1 to 90"),
        (RULES | {"drive_minutes": "half an hour"}, "drive_minutes", ""),
        (RULES | {"drive_minutes": None}, "drive_minutes", ""),
        (RULES | {"horizon_days": 10**12}, "horizon_days", ""),
        (RULES | {"colour": "red"}, "colour", ""),
        ({"slot_minutes": 30}, "drive_minutes", ""),
    ]
    for payload, field, words in cases:
        response = await client.put(f"{API}/settings", json=payload, headers=manager)
        assert response.status_code == 422, (payload, response.text)
        error = response.json()["error"]
        assert error["message"] and field in error["fields"] and words in error["fields"][field], payload
    malformed = await client.put(f"{API}/settings", content=b"{not json",
                                 headers=manager | {"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"]
    for shape in (b"[1, 2]", b'"text"', b""):
        response = await client.put(f"{API}/settings", content=shape,
                                    headers=manager | {"Content-Type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["message"], shape
    huge = await client.put(f"{API}/settings", json=RULES | {"padding": "x" * 20000}, headers=manager)
    assert huge.status_code == 413
    assert await saved_settings(session, showroom.branch) is None
    assert await count(session, AuditEntry, AuditEntry.entity == "test_drive_settings") == 0


async def test_a_browser_session_needs_the_csrf_token_to_change_settings(client, session, redis):
    showroom = await make_showroom(session, redis)
    await signed_in(client, showroom.manager)
    forged = await client.put(f"{API}/settings", json=RULES)
    assert forged.status_code == 403 and await saved_settings(session, showroom.branch) is None
    token = await csrf_token(client, PAGE)
    saved = await client.put(f"{API}/settings", json=RULES | {"slot_minutes": 60}, headers={"x-csrftoken": token})
    assert saved.status_code == 200 and (await saved_settings(session, showroom.branch)).slot_minutes == 60


async def test_model_lengths_api(client, session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    other = await demo_car(session, await make_showroom(session, redis))
    manager = await api_key(session, redis, "manager", showroom.branch)
    sales = await api_key(session, redis, "sales", showroom.branch)
    assert (await client.get(f"{API}/model-lengths", headers=sales)).json() == []
    body = {"make": car.make, "model": car.model, "minutes": 45}
    assert (await client.put(f"{API}/model-lengths", json=body, headers=sales)).status_code == 403
    saved = await client.put(f"{API}/model-lengths", json=body, headers=manager)
    assert saved.status_code == 200 and saved.json() == body
    assert (await client.get(f"{API}/model-lengths", headers=sales)).json() == [body]
    cars = (await client.get(f"{API}/cars", params={"branch": showroom.branch.code})).json()
    assert [c["drive_minutes"] for c in cars] == [45]
    for payload, field in (({**body, "minutes": 5}, "minutes"), ({**body, "minutes": "long"}, "minutes"),
                           ({**body, "model": other.model, "make": other.make}, "model"),
                           ({**body, "model": ""}, "model"), ({**body, "model": "x" * 61}, "model"),
                           ({"make": car.make, "minutes": 45}, "model")):
        response = await client.put(f"{API}/model-lengths", json=payload, headers=manager)
        assert response.status_code == 422 and field in response.json()["error"]["fields"], payload
    malformed = await client.put(f"{API}/model-lengths", content=b'{"make": ',
                                 headers=manager | {"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["message"]
    huge = await client.put(f"{API}/model-lengths", json={**body, "model": "x" * 20000}, headers=manager)
    assert huge.status_code == 413
    assert (await length_of(session, showroom.branch, car)).drive_minutes == 45

    params = {"make": car.make, "model": car.model}
    assert (await client.delete(f"{API}/model-lengths", params=params, headers=sales)).status_code == 403
    missing = await client.delete(f"{API}/model-lengths", params={"make": car.make}, headers=manager)
    assert missing.status_code == 422 and "model" in missing.json()["error"]["fields"]
    gone = await client.delete(f"{API}/model-lengths", params=params, headers=manager)
    assert gone.status_code == 204
    assert (await client.delete(f"{API}/model-lengths", params=params, headers=manager)).status_code == 404
    assert (await client.get(f"{API}/model-lengths", headers=sales)).json() == []


async def test_a_manager_cannot_set_or_remove_another_branchs_model_length(client, session, redis):
    """Both branches drive the same model; B has its own 60 minutes. A's manager (API key and screen) cannot
    touch B's length, and setting A's own changes only A's; an admin may set B's with ``?branch_id=``."""
    mine = await make_showroom(session, redis)
    theirs = await make_showroom(session, redis)
    car = await demo_car(session, mine)
    their_car = await demo_car(session, theirs, model=car.model)
    session.add(TestDriveModelLength(branch_id=theirs.branch.id, make=car.make, model=car.model, drive_minutes=60))
    await session.flush()
    manager = await api_key(session, redis, "manager", mine.branch)
    body = {"make": car.make, "model": car.model, "minutes": 45}
    params = {"make": car.make, "model": car.model}
    other = {"branch_id": theirs.branch.id}

    put = await client.put(f"{API}/model-lengths", json=body, params=other, headers=manager)
    assert put.status_code == 403 and put.json()["error"]["message"]
    delete = await client.delete(f"{API}/model-lengths", params=params | other, headers=manager)
    assert delete.status_code == 403
    assert (await client.get(f"{API}/model-lengths", params=other, headers=manager)).status_code == 403
    # Without naming B: A has no length of its own to remove, and B's stays.
    assert (await client.delete(f"{API}/model-lengths", params=params, headers=manager)).status_code == 404
    assert (await length_of(session, theirs.branch, car)).drive_minutes == 60
    assert await length_of(session, mine.branch, car) is None

    await signed_in(client, mine.manager)  # the screen: the same refusals
    token = await csrf_token(client, PAGE)
    form = {"_csrf_token": token, "branch": str(theirs.branch.id), "model": f"{car.make}|{car.model}"}
    assert (await client.post(f"{PAGE}/lengths", data=form | {"minutes": "45"}, headers=HX)).status_code == 403
    assert (await client.post(f"{PAGE}/lengths/remove", data=form, headers=HX)).status_code == 403
    assert (await length_of(session, theirs.branch, car)).drive_minutes == 60
    assert await count(session, AuditEntry, AuditEntry.entity == "test_drive_model_length") == 0

    saved = await client.put(f"{API}/model-lengths", json=body, headers=manager)  # A's own: A only
    assert saved.status_code == 200 and saved.json() == body
    assert (await length_of(session, mine.branch, car)).drive_minutes == 45
    assert (await length_of(session, theirs.branch, car)).drive_minutes == 60
    for branch, offered in ((mine.branch, [(car.id, 45)]), (theirs.branch, [(their_car.id, 60)])):
        cars = (await client.get(f"{API}/cars", params={"branch": branch.code})).json()
        assert [(c["id"], c["drive_minutes"]) for c in cars] == offered
    [entry] = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "test_drive_model_length"))
               ).scalars().all()
    assert entry.branch_id == mine.branch.id and entry.after == {"branch_id": mine.branch.id, **params,
                                                                 "drive_minutes": 45}

    admin = await api_key(session, redis, "admin", mine.branch)
    picked = await client.put(f"{API}/model-lengths", json=body | {"minutes": 90}, params=other, headers=admin)
    assert picked.status_code == 200
    assert (await length_of(session, theirs.branch, car)).drive_minutes == 90
    assert (await length_of(session, mine.branch, car)).drive_minutes == 45
    listed = await client.get(f"{API}/model-lengths", params=other, headers=admin)
    assert listed.json() == [body | {"minutes": 90}]


async def test_salespeople_api(client, session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    first, second = showroom.salespeople
    theirs = (await make_showroom(session, redis)).salespeople[0]
    manager = await api_key(session, redis, "manager", showroom.branch)
    sales = await api_key(session, redis, "sales", showroom.branch)
    assert (await client.get(f"{API}/salespeople", headers=sales)).status_code == 403
    listed = await client.get(f"{API}/salespeople", headers=manager)
    assert listed.status_code == 200
    assert [(p["id"], p["same_as_branch"], p["takes_online"]) for p in listed.json()] == [
        (first.id, True, True), (second.id, True, True)]
    url = f"{API}/salespeople/{first.id}/hours"
    saved = await client.put(url, json={"working_hours": {"mon": ["09:00", "12:00"]}, "takes_online": False},
                             headers=manager)
    assert saved.status_code == 200
    data = saved.json()
    assert data["working_hours"]["mon"] == ["09:00", "12:00"] and data["working_hours"]["sun"] is None
    assert data["takes_online"] is False and data["same_as_branch"] is False
    assert (await hours_of(session, first)).working_hours == data["working_hours"]

    for payload, field in (({"working_hours": {"mon": ["18:00", "09:00"]}, "takes_online": True}, "mon"),
                           ({"working_hours": {"mon": "all day"}, "takes_online": True}, "working_hours"),
                           ({"working_hours": {"funday": ["09:00", "18:00"]}, "takes_online": True}, "working_hours"),
                           ({"working_hours": None}, "takes_online"),
                           ({"working_hours": None, "takes_online": "perhaps"}, "takes_online"),
                           ({"working_hours": None, "takes_online": True, "pay": 1}, "pay")):
        response = await client.put(url, json=payload, headers=manager)
        assert response.status_code == 422 and field in response.json()["error"]["fields"], (payload, response.text)
    for raw in (b"{not json", b"[1, 2]", b""):
        response = await client.put(url, content=raw, headers=manager | {"Content-Type": "application/json"})
        assert response.status_code in (400, 422) and response.json()["error"]["message"], raw
    huge = await client.put(url, json={"working_hours": {"mon": ["09:00", "x" * 20000]}, "takes_online": True},
                            headers=manager)
    assert huge.status_code == 413
    assert (await client.put(url, json={"takes_online": True}, headers=sales)).status_code == 403
    other = await client.put(f"{API}/salespeople/{theirs.id}/hours", json={"takes_online": False}, headers=manager)
    assert other.status_code == 404 and theirs.name not in other.text
    assert (await client.put(f"{API}/salespeople/99999999/hours", json={"takes_online": False},
                             headers=manager)).status_code == 404
    assert await hours_of(session, theirs) is None
    stored = await hours_of(session, first)
    assert stored.working_hours["mon"] == ["09:00", "12:00"] and stored.takes_online is False
    back = await client.put(url, json={"working_hours": {}, "takes_online": True}, headers=manager)
    assert back.json()["same_as_branch"] is True and (await hours_of(session, first)).working_hours == {}
