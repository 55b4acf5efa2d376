"""The vehicles JSON API: search with facets, one car, create/update/status; bad input, roles, branches."""

from backend.domains.accounts.service import AccountService
from tests.factories import as_principal, make_branch, make_user
from tests.helpers import signed_in
from tests.stock_factories import make_vehicle, new_vin


async def api_key_for(session, redis, role="manager", branch=None):
    creator = as_principal(await make_user(session, redis, role="admin"))
    _, secret = await AccountService(session, redis).create_api_key(
        creator, name=f"{role} integration", role=role, branch_id=branch.id if branch else None)
    return {"Authorization": f"Bearer {secret}"}


def car_body(branch, **changes):
    return {"vin": new_vin(), "make": "XPeng", "model": "G6", "model_year": 2025, "body": "suv",
            "powertrain": "bev", "battery_kwh": "66", "range_km": 580, "condition": "new", "list_price": 176_900,
            "cost": "160000.50", "branch_id": branch.id, "features": ["XNGP"]} | changes


async def test_public_search_with_facets_and_no_costs(client, session):
    branch = await make_branch(session)
    await make_vehicle(session, branch, make="BYD", model="Han", body="sedan", list_price=209_800, cost=199_000)
    await make_vehicle(session, branch, make="BYD", model="Tang", body="suv", list_price=259_800)
    await make_vehicle(session, branch, make="Tesla", model="Model Y", body="suv", list_price=249_900)
    await make_vehicle(session, branch, status="sold")
    response = await client.get(f"/api/v1/vehicles?branch={branch.code}&make=BYD&sort=price_desc&page_size=1")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2 and body["pages"] == 2 and body["page_size"] == 1
    assert [i["model"] for i in body["items"]] == ["Tang"]
    assert {f["value"]: f["count"] for f in body["facets"]["make"]} == {"BYD": 2, "Tesla": 1}
    assert {f["value"]: f["count"] for f in body["facets"]["body"]} == {"sedan": 1, "suv": 1}
    assert body["facets"]["branch"] == [{"value": branch.code, "label": branch.name_en, "count": 2}]  # English
    assert "status" not in body["facets"]
    for item in body["items"]:
        assert "cost" not in item and "reserved_by" not in item and "internal_notes" not in item


async def test_bad_parameters_are_400s_naming_them(client, session):
    for query, name in (("powertrain=steam", "powertrain"), ("page_size=101", "page_size"), ("page=0", "page"),
                        ("min_price=abc", "min_price"), ("sort=cheapest", "sort"), ("colour=red", "colour"),
                        ("status=sold", "status"), ("vin=123456", "vin"), ("branch=NOPE", "branch"),
                        ("year_from=2024&year_to=2020", "year_to"), ("q=" + "x" * 101, "q")):
        response = await client.get(f"/api/v1/vehicles?{query}")
        assert response.status_code == 400, query
        error = response.json()["error"]
        assert error["code"] == "bad_request" and name in error["fields"] and name in error["message"], query


async def test_one_car_public_and_staff_views(client, session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch, cost=150_000, internal_notes="scratch")
    public = await client.get(f"/api/v1/vehicles/{car.id}")
    assert public.status_code == 200 and public.json()["vin"] == car.vin
    assert "cost" not in public.json() and "internal_notes" not in public.json()
    hidden = await make_vehicle(session, branch, status="reserved")
    assert (await client.get(f"/api/v1/vehicles/{hidden.id}")).status_code == 404
    assert (await client.get("/api/v1/vehicles/123456789")).status_code == 404
    assert (await client.get("/api/v1/vehicles/abc")).status_code in (400, 404)

    headers = await api_key_for(session, redis, role="sales", branch=branch)
    staff = await client.get(f"/api/v1/vehicles/{hidden.id}", headers=headers)
    assert staff.status_code == 200 and staff.json()["status"] == "reserved"
    assert float(staff.json()["cost"]) > 0
    staff_search = await client.get("/api/v1/vehicles?status=reserved", headers=headers)
    assert [i["id"] for i in staff_search.json()["items"]] == [hidden.id]
    other = await api_key_for(session, redis, role="sales", branch=await make_branch(session))
    assert (await client.get(f"/api/v1/vehicles/{hidden.id}", headers=other)).status_code == 404


async def test_create_update_and_status_with_an_api_key(client, session, redis):
    branch = await make_branch(session)
    headers = await api_key_for(session, redis, role="manager", branch=branch)
    created = await client.post("/api/v1/vehicles", json=car_body(branch), headers=headers)
    assert created.status_code == 201, created.text
    car = created.json()
    assert car["status"] == "in_stock" and car["cost"] == "160000.50" and car["branch_code"] == branch.code
    patched = await client.patch(f"/api/v1/vehicles/{car['id']}", json={"list_price": 169_900}, headers=headers)
    assert patched.status_code == 200 and patched.json()["list_price"] == 169_900
    reserved = await client.post(f"/api/v1/vehicles/{car['id']}/status",
                                 json={"status": "reserved", "reason": "fleet customer"}, headers=headers)
    assert reserved.status_code == 200 and reserved.json()["reservation"]["reason"] == "fleet customer"
    conflict = await client.post(f"/api/v1/vehicles/{car['id']}/status", json={"status": "reserved", "reason": "x"},
                                 headers=headers)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    sold = await client.post(f"/api/v1/vehicles/{car['id']}/status", json={"status": "sold"}, headers=headers)
    assert sold.status_code == 200 and sold.json()["status"] == "sold"
    again = await client.post(f"/api/v1/vehicles/{car['id']}/status", json={"status": "reserved", "reason": "x"},
                              headers=headers)
    assert again.status_code == 409 and "sold" in again.json()["error"]["message"]


async def test_create_refuses_bad_input_and_changes_nothing(client, session, redis):
    branch = await make_branch(session)
    headers = await api_key_for(session, redis, role="manager", branch=branch)
    vin = new_vin()
    wrong_digit = vin[:8] + ("1" if vin[8] != "1" else "2") + vin[9:]
    cases = [
        (car_body(branch, vin=wrong_digit), 422, "vin"),
        (car_body(branch, vin="ABC"), 422, "vin"),
        (car_body(branch, vin="1M8GDM9AXKP04278O"), 422, "vin"),
        (car_body(branch, powertrain="petrol"), 422, "powertrain"),
        (car_body(branch, branch_id=(await make_branch(session)).id), 422, "branch_id"),
        (car_body(branch, status="in_transit"), 422, "eta"),
        (car_body(branch, status="sold"), 422, "status"),
        (car_body(branch, list_price="cheap"), 400, None),
        (car_body(branch, list_price=-5), 400, None),
        (car_body(branch, body="tank"), 400, None),
        (car_body(branch, evil=True), 400, None),
        (car_body(branch, make="x" * 500), 400, None),
        ({"vin": vin}, 400, None),
    ]
    for payload, status, field in cases:
        response = await client.post("/api/v1/vehicles", json=payload, headers=headers)
        assert response.status_code == status, (payload, response.text)
        if field:
            assert field in response.json()["error"]["fields"], response.text
    malformed = await client.post("/api/v1/vehicles", content=b"{nope", headers=headers | {
        "Content-Type": "application/json"})
    assert malformed.status_code == 400
    listing = await client.get(f"/api/v1/vehicles?branch={branch.code}", headers=headers)
    assert listing.json()["total"] == 0


async def test_roles_and_sign_in_for_writes(client, session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    assert (await client.post("/api/v1/vehicles", json=car_body(branch))).status_code in (401, 403)  # CSRF first
    sales = await api_key_for(session, redis, role="sales", branch=branch)
    assert (await client.post("/api/v1/vehicles", json=car_body(branch), headers=sales)).status_code == 403
    assert (await client.patch(f"/api/v1/vehicles/{car.id}", json={"list_price": 1}, headers=sales)).status_code == 403
    sell = await client.post(f"/api/v1/vehicles/{car.id}/status", json={"status": "sold"}, headers=sales)
    assert sell.status_code == 403
    reserve = await client.post(f"/api/v1/vehicles/{car.id}/status", json={"status": "reserved", "reason": "A"},
                                headers=sales)
    assert reserve.status_code == 200
    tech = await api_key_for(session, redis, role="technician", branch=branch)
    assert (await client.post(f"/api/v1/vehicles/{car.id}/status", json={"status": "in_stock", "reason": "x"},
                              headers=tech)).status_code == 403
    # A signed-in person (cookie) needs the CSRF header like every unsafe request.
    manager = await make_user(session, redis, role="manager", branch=branch)
    await signed_in(client, manager)
    assert (await client.post("/api/v1/vehicles", json=car_body(branch))).status_code == 403


async def test_the_api_is_documented(client):
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/vehicles" in paths and "/api/v1/vehicles/{vehicle_id}/status" in paths
    names = {p["name"] for p in paths["/api/v1/vehicles"]["get"]["parameters"]}
    assert {"make", "body", "min_price", "page_size", "q", "sort"} <= names
