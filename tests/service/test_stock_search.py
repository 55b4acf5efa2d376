"""The stock search against PostgreSQL: filters, facet counts (both sources agree), visibility, sorting."""

import random
from collections import Counter

import pytest
from sqlalchemy import text

from backend.domains.stock import rules
from backend.domains.stock.schemas import SearchFilters
from backend.domains.stock.service import StockService
from backend.lib import i18n
from backend.lib.errors import Invalid
from tests.factories import as_principal, make_branch, make_user
from tests.stock_factories import make_vehicle


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


def counts(result, facet):
    return {f.value: f.count for f in result.facets.get(facet, [])}


async def test_customers_see_only_cars_in_stock_or_in_transit_and_never_costs(session):
    branch = await make_branch(session)
    visible = await make_vehicle(session, branch, status="in_stock")
    coming = await make_vehicle(session, branch, status="in_transit")
    for status in ("reserved", "sold", "demo"):
        await make_vehicle(session, branch, status=status)
    result = await StockService(session).search(SearchFilters(branch=branch.code))
    assert {i["id"] for i in result.items} == {visible.id, coming.id}
    assert result.total == 2
    for item in result.items:
        assert "cost" not in item and "internal_notes" not in item and "reserved_by" not in item


async def test_disjunctive_facets_count_everything_but_their_own_filter(session):
    branch = await make_branch(session)
    await make_vehicle(session, branch, make="BYD", model="Han", body="sedan", list_price=209_800)
    await make_vehicle(session, branch, make="BYD", model="Tang", body="suv", list_price=259_800)
    await make_vehicle(session, branch, make="Tesla", model="Model Y", body="suv", list_price=249_900)
    await make_vehicle(session, branch, make="Geely", model="Xingyue L", body="suv", powertrain="petrol",
                       list_price=145_700)
    result = await StockService(session).search(SearchFilters(branch=branch.code, make="BYD", body="suv"))
    assert [i["model"] for i in result.items] == ["Tang"] and result.total == 1
    assert counts(result, "make") == {"BYD": 1, "Tesla": 1, "Geely": 1}  # all SUVs, whatever the make
    assert counts(result, "body") == {"sedan": 1, "suv": 1}  # all BYDs, whatever the body
    assert counts(result, "powertrain") == {"bev": 1}
    assert result.from_counts


async def test_both_count_sources_agree_on_random_stock(session):
    """The kept counts (fast path) and counting the cars themselves (slow path) give the same facets."""
    branch = await make_branch(session)
    rng = random.Random(7)
    for _ in range(120):
        make, model, body = rng.choice([("BYD", "Han", "sedan"), ("BYD", "Tang", "suv"), ("Tesla", "Model Y", "suv"),
                                        ("Toyota", "Camry", "sedan"), ("Ford", "Ranger", "pickup")])
        powertrain = rng.choice(["bev", "phev", "hev"])
        await make_vehicle(session, branch, make=make, model=model, body=body, powertrain=powertrain,
                           condition=rng.choice(["new", "used", "demo"]), model_year=rng.randint(2018, 2026),
                           list_price=rng.randrange(60_000, 700_000, 100),
                           status=rng.choice(["in_stock", "in_stock", "in_transit", "reserved", "sold", "demo"]))
    service = StockService(session)
    for filters in (SearchFilters(branch=branch.code),
                    SearchFilters(branch=branch.code, body="suv", max_price=299_999),
                    SearchFilters(branch=branch.code, make="BYD", condition="used", year_from=2021),
                    SearchFilters(branch=branch.code, powertrain="bev", min_price=200_000, sort="price_desc")):
        fast = await service.search(filters)
        # Same filters, but prices one yuan off the step edges: counted from the cars (and nothing priced
        # exactly on those edges in this data, so the answer must be identical).
        slow_filters = SearchFilters(**{**{n: getattr(filters, n) for n in filters.__slots__},
                                        "min_price": filters.min_price + 1 if filters.min_price else 1,
                                        "max_price": filters.max_price - 1 if filters.max_price else 99_999_999})
        slow = await service.search(slow_filters)
        assert fast.from_counts and not slow.from_counts
        assert fast.total == slow.total
        assert fast.facets == slow.facets
        assert [i["id"] for i in fast.items] == [i["id"] for i in slow.items]


async def test_kept_counts_follow_every_change(session):
    branch = await make_branch(session)
    cars = [await make_vehicle(session, branch, model_year=2020 + i % 4, list_price=100_000 + i * 20_000)
            for i in range(12)]
    await session.execute(text("UPDATE vehicle SET status = 'sold' WHERE id = :id"), {"id": cars[0].id})
    await session.execute(text("UPDATE vehicle SET list_price = list_price + 60000, make = 'Tesla' WHERE id = :id"),
                          {"id": cars[1].id})
    await session.execute(text("DELETE FROM vehicle WHERE id = :id"), {"id": cars[2].id})
    await session.execute(text("UPDATE vehicle SET lot_location = 'Z-9'"))  # no facet changes: nothing to do
    kept = await session.execute(text("""
        SELECT status, make, model, body, powertrain, model_year, branch_id, condition, price_step, n
        FROM vehicle_facet_count WHERE branch_id = :b AND n <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""),
                                 {"b": branch.id})
    actual = await session.execute(text("""
        SELECT status, make, model, body, powertrain, model_year, branch_id, condition, price_step, count(*)
        FROM vehicle WHERE branch_id = :b AND status <> 'sold'
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"""), {"b": branch.id})
    assert kept.all() == actual.all()


async def test_free_text_and_sorting(session):
    branch = await make_branch(session)
    await make_vehicle(session, branch, make="Tesla", model="Model Y", trim="Long Range", list_price=300_000,
                       mileage_km=5_000, model_year=2024)
    await make_vehicle(session, branch, make="Tesla", model="Model 3", trim="Performance", list_price=280_000,
                       mileage_km=100, model_year=2025)
    await make_vehicle(session, branch, make="BYD", model="Seal", list_price=189_800, mileage_km=30_000,
                       model_year=2023)
    service = StockService(session)
    found = await service.search(SearchFilters(branch=branch.code, q="model y"))
    assert [i["model"] for i in found.items] == ["Model Y"]
    assert [i["model"] for i in (await service.search(SearchFilters(branch=branch.code, q="tes"))).items] == [
        "Model 3", "Model Y"]
    assert (await service.search(SearchFilters(branch=branch.code, q="***"))).total == 0
    for sort, expected in (("price_asc", ["Seal", "Model 3", "Model Y"]),
                           ("price_desc", ["Model Y", "Model 3", "Seal"]),
                           ("newest", ["Model 3", "Model Y", "Seal"]), ("mileage", ["Model 3", "Model Y", "Seal"])):
        result = await service.search(SearchFilters(branch=branch.code, sort=sort))
        assert [i["model"] for i in result.items] == expected, sort


async def test_pages(session):
    branch = await make_branch(session)
    for i in range(25):
        await make_vehicle(session, branch, list_price=100_000 + i * 1_000)
    service = StockService(session)
    first = await service.search(SearchFilters(branch=branch.code, page_size=10))
    third = await service.search(SearchFilters(branch=branch.code, page_size=10, page=3))
    assert first.total == 25 and first.pages == 3 and len(first.items) == 10 and len(third.items) == 5
    assert first.items[0]["list_price"] == 100_000 and third.items[-1]["list_price"] == 124_000


async def test_price_and_year_facets(session):
    branch = await make_branch(session)
    for price, year in ((95_000, 2019), (150_000, 2021), (199_999, 2021), (200_000, 2023), (1_200_000, 2025)):
        await make_vehicle(session, branch, list_price=price, model_year=year)
    service = StockService(session)
    result = await service.search(SearchFilters(branch=branch.code))
    assert Counter({f.value: f.count for f in result.facets["price"]}) == Counter(
        {"-99999": 1, "100000-199999": 2, "200000-299999": 1, "1000000-": 1})
    assert counts(result, "year") == {"2019": 1, "2021": 2, "2023": 1, "2025": 1}
    under_200k = await service.search(SearchFilters(branch=branch.code, max_price=199_999))
    assert under_200k.total == 3 and under_200k.from_counts
    inclusive = await service.search(SearchFilters(branch=branch.code, max_price=200_000))
    assert inclusive.total == 4 and not inclusive.from_counts  # exact, from the cars


async def test_unknown_branch_is_refused(session):
    with pytest.raises(Invalid) as caught:
        await StockService(session).search(SearchFilters(branch="NOPE"))
    assert "branch" in caught.value.fields


async def test_staff_search_is_scoped_and_shows_cost_status_and_reservations(session, redis):
    north, south = await make_branch(session), await make_branch(session)
    mine = await make_vehicle(session, north, cost=150_000)
    await make_vehicle(session, south)
    sold = await make_vehicle(session, north, status="sold")
    sales = as_principal(await make_user(session, redis, role="sales", branch=north))
    service = StockService(session)
    await service.reserve(sales, mine.id, "Mr Wang, deposit paid")
    result = await service.search(SearchFilters(), principal=sales, staff=True)
    assert [i["id"] for i in result.items] == [mine.id]  # not the other branch, not sold
    item = result.items[0]
    assert float(item["cost"]) == 150_000 and item["status"] == "reserved"
    assert item["reserved_by"] == sales.audit_label and item["reservation_reason"] == "Mr Wang, deposit paid"
    assert item["days_in_stock"] == 12
    assert counts(result, "status") == {"reserved": 1}
    sold_only = await service.search(SearchFilters(status="sold"), principal=sales, staff=True)
    assert [i["id"] for i in sold_only.items] == [sold.id]


async def test_vin_box_finds_full_vin_or_last_six(session, redis):
    branch = await make_branch(session)
    car = await make_vehicle(session, branch)
    await make_vehicle(session, branch)
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    service = StockService(session)
    assert [i["id"] for i in await service.find_by_vin(sales, car.vin)] == [car.id]
    assert [i["id"] for i in await service.find_by_vin(sales, car.vin[-6:].lower())] == [car.id]
    with pytest.raises(Invalid):
        await service.find_by_vin(sales, "12")
    other = as_principal(await make_user(session, redis, role="sales", branch=await make_branch(session)))
    assert await service.find_by_vin(other, car.vin) == []  # another branch's car


def test_labels_exist_for_every_code():
    for enum, labels in ((rules.Body, rules.BODY_LABELS), (rules.Powertrain, rules.POWERTRAIN_LABELS),
                         (rules.Condition, rules.CONDITION_LABELS), (rules.VehicleStatus, rules.STATUS_LABELS),
                         (rules.Sort, rules.SORT_LABELS)):
        assert set(labels) == set(enum)
