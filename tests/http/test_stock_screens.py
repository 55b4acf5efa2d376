"""Stock screens through the real app: full pages and htmx fragments, forms, bad input, roles and branches."""

import io
import re

from PIL import Image
from sqlalchemy import func, select

from backend.domains.stock.models import Vehicle, VehicleImport, VehiclePhoto
from backend.domains.stock.service import run_import
from tests.factories import make_branch, make_user
from tests.helpers import csrf_token, signed_in
from tests.stock_factories import make_vehicle, new_vin

HX = {"HX-Request": "true"}


def jpeg(width=1200, height=800) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


async def test_public_search_page_and_fragment(client, session):
    branch = await make_branch(session)
    await make_vehicle(session, branch, make="BYD", model="Tang", body="suv", list_price=259_800)
    await make_vehicle(session, branch, make="Tesla", model="Model Y", body="suv", list_price=249_900)
    await make_vehicle(session, branch, make="Toyota", model="Camry", body="sedan", powertrain="hev",
                       list_price=179_800, cost=150_123, internal_notes="secret note")
    await make_vehicle(session, branch, make="Porsche", model="911", body="coupe", status="reserved")

    page = await client.get(f"/stock?branch={branch.code}&body=suv")
    assert page.status_code == 200 and "<html" in page.text
    assert "HX-Request" in page.headers["vary"]
    assert "Tang" in page.text and "Model Y" in page.text and "Camry" not in page.text
    assert "2 cars" in page.text
    assert re.search(r'<option value="sedan"[^>]*>Sedan \(1\)</option>', page.text)  # live count, own filter left out
    for secret in ("150,123", "150123", "secret note", "911"):
        assert secret not in page.text

    fragment = await client.get(f"/stock?branch={branch.code}&make=BYD", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="results"' in fragment.text and 'hx-swap-oob="true"' in fragment.text
    assert "Tang" in fragment.text and "Model Y" not in fragment.text
    # The address bar gets the filters in use, without the form's empty fields.
    empty_fields = await client.get(f"/stock?q=&make=BYD&model=&body=&branch={branch.code}&sort=price_asc",
                                    headers=HX)
    assert empty_fields.headers["hx-push-url"] == f"/stock?make=BYD&branch={branch.code}"

    # Back button with nothing in htmx's cache: the whole page, not a bare fragment.
    restore = await client.get(f"/stock?branch={branch.code}", headers=HX | {"HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


async def test_unknown_filter_values_are_ignored_with_a_notice(client, session):
    branch = await make_branch(session)
    await make_vehicle(session, branch, model="Han")
    page = await client.get(f"/stock?branch={branch.code}&powertrain=steam&page_size=500&sort=random&page=x")
    assert page.status_code == 200
    assert "Some filters were not understood and were ignored" in page.text
    for name in ("powertrain", "page_size", "sort", "page"):
        assert name in page.text
    assert "Han" in page.text
    unknown_branch = await client.get("/stock?branch=NOPE")
    assert unknown_branch.status_code == 200 and "ignored: branch" in unknown_branch.text


async def test_public_car_page(client, session):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch, cost=123_456, internal_notes="dent on rear bumper")
    page = await client.get(f"/stock/{car.id}")
    assert page.status_code == 200 and car.vin in page.text
    assert "Book a test drive" in page.text and "Ask about this car" in page.text
    assert "123,456" not in page.text and "dent on rear bumper" not in page.text
    fragment = await client.get(f"/stock/{car.id}", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and car.vin in fragment.text
    for status in ("sold", "reserved", "demo"):
        hidden = await make_vehicle(session, branch, status=status)
        assert (await client.get(f"/stock/{hidden.id}")).status_code == 404
    assert (await client.get("/stock/999999999")).status_code == 404
    assert (await client.get("/stock/abc")).status_code in (400, 404)


async def test_staff_screen_vin_box_and_scope(client, session, redis):
    branch, other = await make_branch(session), await make_branch(session)
    car = await make_vehicle(session, branch, cost=150_123)
    foreign = await make_vehicle(session, other)
    sales = await make_user(session, redis, role="sales", branch=branch)
    assert (await client.get("/staff/stock/")).status_code in (302, 303)  # sign in first
    await signed_in(client, sales)
    page = await client.get("/staff/stock/")
    assert page.status_code == 200 and "150,123" in page.text and car.vin[-6:] in page.text
    assert foreign.vin[-6:] not in page.text
    found = await client.get(f"/staff/stock/?vin={car.vin[-6:].lower()}", headers=HX)
    assert found.status_code == 200 and "<html" not in found.text and "1 car" in found.text
    assert (await client.get(f"/staff/stock?vin={car.vin[-6:]}")).status_code == 200  # the pages' links
    bad_vin = await client.get("/staff/stock/?vin=12")
    assert bad_vin.status_code == 200 and "last 6 characters" in bad_vin.text
    detail = await client.get(f"/staff/stock/{car.id}")
    assert detail.status_code == 200 and "Keys in safe 3" in detail.text
    actions = await client.get(f"/staff/stock/{car.id}", headers=HX)
    assert actions.status_code == 200 and "<html" not in actions.text and 'id="actions"' in actions.text
    assert "150,123" in actions.text
    assert (await client.get(f"/staff/stock/{foreign.id}")).status_code == 404


async def test_reserve_and_release_from_the_phone(client, session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    sales = await make_user(session, redis, role="sales", branch=branch)
    await signed_in(client, sales)
    token = await csrf_token(client, f"/staff/stock/{car.id}")

    missing = await client.post(f"/staff/stock/{car.id}/reserve", data={"reason": "", "_csrf_token": token},
                                headers=HX)
    assert missing.status_code == 422 and "This field is required." in missing.text and "<html" not in missing.text

    done = await client.post(f"/staff/stock/{car.id}/reserve", data={"reason": "Mr Zhang", "_csrf_token": token},
                             headers=HX)
    assert done.status_code == 200 and 'id="actions"' in done.text and "Mr Zhang" in done.text
    assert "Reserved" in done.text

    again = await client.post(f"/staff/stock/{car.id}/reserve", data={"reason": "Ms Wu", "_csrf_token": token},
                              headers=HX)
    assert again.status_code == 409 and again.headers["hx-retarget"] == "#toasts"
    assert "already reserved" in again.text

    released = await client.post(f"/staff/stock/{car.id}/release", data={"reason": "changed mind",
                                                                       "_csrf_token": token})
    assert released.status_code == 303 and released.headers["location"] == f"/staff/stock/{car.id}"
    await session.refresh(car)
    assert car.status == "in_stock"

    forbidden = await client.post(f"/staff/stock/{car.id}/status", data={"status": "sold", "_csrf_token": token},
                                  headers=HX)
    assert forbidden.status_code == 403
    no_csrf = await client.post(f"/staff/stock/{car.id}/reserve", data={"reason": "x"})
    assert no_csrf.status_code == 403


async def test_wrong_roles_and_api_keys_are_refused(client, session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    tech = await make_user(session, redis, role="technician", branch=branch)
    await signed_in(client, tech)
    token = await csrf_token(client, "/staff/stock/")
    refused = await client.post(f"/staff/stock/{car.id}/reserve", data={"reason": "x", "_csrf_token": token})
    assert refused.status_code == 403
    assert (await client.get("/staff/stock/imports/")).status_code == 403
    assert (await client.get("/staff/stock/new")).status_code == 403


async def test_manager_adds_a_car_with_the_form(client, session, redis):
    branch = await make_branch(session)
    manager = await make_user(session, redis, role="manager", branch=branch)
    await signed_in(client, manager)
    page = await client.get("/staff/stock/new")
    assert page.status_code == 200 and "Add a car" in page.text
    token = await csrf_token(client, "/staff/stock/new")
    vin = new_vin()
    form = {"vin": vin, "make": "NIO", "model": "ET5", "model_year": "2025", "body": "sedan", "powertrain": "bev",
            "battery_kwh": "75", "range_km": "560", "condition": "new", "list_price": "298000",
            "branch_id": str(branch.id), "status": "in_stock", "features": "NOMI, Lidar", "_csrf_token": token}
    bad = await client.post("/staff/stock/new", data=form | {"vin": vin[:8] + "X" + vin[9:]
                                                             if vin[8] != "X" else vin[:8] + "1" + vin[9:]},
                            headers=HX)
    assert bad.status_code == 422 and "check digit" in bad.text and "<html" not in bad.text
    short = await client.post("/staff/stock/new", data=form | {"vin": "ABC123"}, headers=HX)
    assert short.status_code == 422 and "17 characters" in short.text
    letter_o = await client.post("/staff/stock/new", data=form | {"vin": "O" + vin[1:]}, headers=HX)
    assert letter_o.status_code == 422 and "I, O or Q" in letter_o.text
    wrong_type = await client.post("/staff/stock/new", data=form | {"list_price": "cheap"}, headers=HX)
    assert wrong_type.status_code == 422 and "Enter a number." in wrong_type.text
    assert await session.scalar(select(func.count()).select_from(Vehicle).where(Vehicle.branch_id == branch.id)) == 0
    created = await client.post("/staff/stock/new", data=form)
    assert created.status_code == 303
    car = (await session.execute(select(Vehicle).where(Vehicle.vin == vin))).scalar_one()
    assert car.features == ["NOMI", "Lidar"] and created.headers["location"] == f"/staff/stock/{car.id}"
    duplicate = await client.post("/staff/stock/new", data=form, headers=HX)
    assert duplicate.status_code == 422 and "already in stock" in duplicate.text


async def test_photos_are_resized_served_and_non_images_refused(client, session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    sales = await make_user(session, redis, role="sales", branch=branch)
    await signed_in(client, sales)
    token = await csrf_token(client, f"/staff/stock/{car.id}")
    not_image = await client.post(f"/staff/stock/{car.id}/photos", data={"_csrf_token": token}, headers=HX,
                                  files={"photo": ("car.jpg", b"<?php echo 'hi'; ?>", "image/jpeg")})
    assert not_image.status_code == 422 and "not a photo" in not_image.text
    nothing = await client.post(f"/staff/stock/{car.id}/photos", data={"_csrf_token": token}, headers=HX)
    assert nothing.status_code == 422
    uploaded = await client.post(f"/staff/stock/{car.id}/photos", data={"_csrf_token": token}, headers=HX,
                                 files={"photo": ("../../etc/passwd.jpg", jpeg(3000, 2000), "image/jpeg")})
    assert uploaded.status_code == 200 and "Photo added." in uploaded.text
    photo = (await session.execute(select(VehiclePhoto).where(VehiclePhoto.vehicle_id == car.id))).scalar_one()
    assert (photo.width, photo.height) == (1600, 1067) and "passwd" not in photo.file_key

    client.cookies.clear()
    full = await client.get(f"/media/vehicles/{photo.file_key}.jpg")
    thumb = await client.get(f"/media/vehicles/{photo.file_key}-thumb.jpg")
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (480, 320)
    assert (await client.get("/media/vehicles/..%2F..%2Fpyproject.toml")).status_code == 404
    assert (await client.get(f"/media/vehicles/{photo.file_key}.png")).status_code == 404
    listing = await client.get(f"/stock?branch={branch.code}")
    assert f"/media/vehicles/{photo.file_key}-thumb.jpg" in listing.text


async def test_import_screens_progress_and_rejected_rows_report(client, session, session_maker, redis):
    branch = await make_branch(session)
    manager = await make_user(session, redis, role="manager", branch=branch)
    await signed_in(client, manager)
    page = await client.get("/staff/stock/imports/")
    assert page.status_code == 200 and "车架号" in page.text and "<html" in page.text
    fragment = await client.get("/staff/stock/imports/", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and "车架号" in fragment.text
    token = await csrf_token(client, "/staff/stock/imports/")

    binary = await client.post("/staff/stock/imports/", data={"_csrf_token": token},
                               files={"file": ("stock.csv", b"\x00\x01\x02garbage" * 50, "text/csv")})
    assert binary.status_code == 422 and "not a CSV file" in binary.text
    assert await session.scalar(select(func.count()).select_from(VehicleImport)) == 0

    good, bad = new_vin(), new_vin()
    bad = bad[:8] + ("1" if bad[8] != "1" else "2") + bad[9:]
    csv_text = ("VIN,Make,Model,Model year,Body,Powertrain,Condition,List price\n"
                f"{good},BYD,Dolphin,2025,hatchback,bev,new,99800\n"
                f"{bad},BYD,Dolphin,2025,hatchback,bev,new,99800\n"
                f"{new_vin()},=cmd|' /C calc'!A0,Dolphin,2025,hatchback,steam,new,99800\n")
    uploaded = await client.post("/staff/stock/imports/", data={"_csrf_token": token},
                                 files={"file": ("stock.csv", csv_text.encode(), "text/csv")})
    assert uploaded.status_code == 303
    location = uploaded.headers["location"]
    import_id = int(location.rsplit("/", 1)[1])

    assert "<html" in (await client.get(location)).text
    waiting = await client.get(location, headers=HX)
    assert waiting.status_code == 200 and "<html" not in waiting.text and 'hx-trigger="every 1s"' in waiting.text
    assert await run_import(session_maker, import_id) == "done"  # what the worker does
    finished = await client.get(location, headers=HX)
    assert "every 1s" not in finished.text and "Finished: 3 rows." in finished.text
    assert 'data-testid="import-rejected">2<' in finished.text
    report = await client.get(f"{location}/rejected.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert "attachment" in report.headers["content-disposition"]
    body = report.content.decode("utf-8-sig")
    assert "check digit" in body and bad in body
    assert "'=cmd" in body  # a formula in a cell is defused

    stranger = await make_user(session, redis, role="manager", branch=await make_branch(session))
    client.cookies.clear()
    await signed_in(client, stranger)
    assert (await client.get(location)).status_code == 404
    assert (await client.get(f"{location}/rejected.csv")).status_code == 404


async def test_a_large_import_file_is_accepted_above_the_usual_body_limit(client, session, redis, settings):
    branch = await make_branch(session)
    manager = await make_user(session, redis, role="manager", branch=branch)
    await signed_in(client, manager)
    token = await csrf_token(client, "/staff/stock/imports/")
    row = f"{new_vin()},BYD,Dolphin,2025,hatchback,bev,new,99800,{'x' * 60}\n"
    data = ("VIN,Make,Model,Model year,Body,Powertrain,Condition,List price,Notes\n"
            + row * (settings.max_body_bytes // len(row) + 2000)).encode()
    assert len(data) > settings.max_body_bytes
    response = await client.post("/staff/stock/imports/", data={"_csrf_token": token},
                                 files={"file": ("big.csv", data, "text/csv")})
    assert response.status_code == 303
    too_big = await client.post("/staff/stock/imports/", data={"_csrf_token": token},
                                files={"file": ("huge.csv", data * 9, "text/csv")})
    assert too_big.status_code == 413
