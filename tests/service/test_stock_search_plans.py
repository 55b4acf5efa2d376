"""The customer's search answers the same whichever way it finds the page, and as a plain count says.

The search picks the page either by walking the covering indexes of the sort orders (one stream per
condition, starting at the price step or model year where the kept counts place the page) or by filtering
first and sorting the matches; the facet counts come from the kept public counts. Here each of those is
checked against the straightforward computation in Python over every car customers may see.
"""

import random
from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from backend.domains.stock import rules, search_sql
from backend.domains.stock.models import Vehicle
from backend.domains.stock.schemas import SearchFilters
from backend.domains.stock.service import StockService
from backend.lib import i18n
from tests.factories import make_branch
from tests.stock_factories import new_vin

SPECS = [("BYD", "Han", "sedan", "bev"), ("BYD", "Tang", "suv", "phev"), ("Tesla", "Model Y", "suv", "bev"),
         ("Toyota", "Camry", "sedan", "hev"), ("Ford", "Mustang", "convertible", "petrol"),
         ("Porsche", "911", "coupe", "petrol"), ("Great Wall", "Poer", "pickup", "diesel")]
SORT_KEYS = {"price_asc": ("list_price", False), "price_desc": ("list_price", True),
             "newest": ("model_year", True), "mileage": ("mileage_km", False)}


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


async def _stock(session, branches, count, seed):
    """Cars whose sort keys go with their condition (new: this year, no mileage; used: older, cheaper, far
    driven), a rare expensive make and many ties on price, year and mileage."""
    rng = random.Random(seed)
    this_year = date.today().year
    cars = []
    for _ in range(count):
        make, model, body, powertrain = rng.choice(SPECS)
        condition = rng.choices(["new", "used", "demo"], [6, 3, 1])[0]
        age = 0 if condition == "new" else rng.randint(0, 1) if condition == "demo" else rng.randint(1, 8)
        base = 1_200_000 if make == "Porsche" else rng.choice([99_900, 150_000, 199_999, 200_000, 260_000])
        price = max(10_000, int(base * (0.8 ** age)) // 100 * 100 if condition != "new" else base)
        mileage = rng.choice([0, 10, 50]) if condition == "new" else rng.randint(1, 30) * 1_000 * (age + 1)
        status = rng.choices(["in_stock", "in_transit", "reserved", "sold", "demo"], [6, 2, 1, 1, 1])[0]
        cars.append(Vehicle(
            vin=new_vin("LPLAN"), make=make, model=model, trim="", model_year=this_year - age, body=body,
            powertrain=powertrain, mileage_km=mileage, condition=condition, list_price=price, status=status,
            eta=date.today() + timedelta(days=5) if status == "in_transit" else None,
            branch_id=rng.choice(branches).id,
            battery_kwh=None, range_km=None))
    session.add_all(cars)
    await session.flush()


async def _expected(session, filters: SearchFilters, codes: dict[int, str]):
    """Total, page ids and facet counts, computed the plain way over every car customers may see."""
    rows = (await session.execute(select(Vehicle).where(Vehicle.status.in_(["in_stock", "in_transit"])))).scalars()
    cars = list(rows)
    tests = {
        "make": lambda c: filters.make is None or c.make == filters.make,
        "body": lambda c: filters.body is None or c.body == filters.body,
        "powertrain": lambda c: filters.powertrain is None or c.powertrain == filters.powertrain,
        "condition": lambda c: filters.condition is None or c.condition == filters.condition,
        "branch": lambda c: filters.branch is None or codes[c.branch_id] == filters.branch,
        "year": lambda c: ((filters.year_from is None or c.model_year >= filters.year_from)
                           and (filters.year_to is None or c.model_year <= filters.year_to)),
        "price": lambda c: ((filters.min_price is None or c.list_price >= filters.min_price)
                            and (filters.max_price is None or c.list_price <= filters.max_price)),
        "model": lambda c: True,
    }
    value_of = {"make": lambda c: c.make, "model": lambda c: c.model, "body": lambda c: c.body,
                "powertrain": lambda c: c.powertrain, "condition": lambda c: c.condition,
                "branch": lambda c: codes[c.branch_id], "year": lambda c: str(c.model_year),
                "price": lambda c: rules.price_step(c.list_price)}
    matching = [c for c in cars if all(t(c) for t in tests.values())]
    facets: dict[str, Counter] = defaultdict(Counter)
    for name, value in value_of.items():
        for car in cars:
            if all(t(car) for other, t in tests.items() if other != name):
                facets[name][value(car)] += 1
    steps = facets.pop("price", Counter())
    facets["price"] = Counter({f"{'' if lo is None else lo}-{'' if hi is None else hi}": n
                               for lo, hi in rules.price_bands() if (n := rules.band_count(steps, lo, hi))})
    key, descending = SORT_KEYS[filters.sort]
    ordered = sorted(matching, key=lambda c: (getattr(c, key), c.id), reverse=descending)
    start = (filters.page - 1) * filters.page_size
    return len(matching), [c.id for c in ordered[start:start + filters.page_size]], facets


def _searches(rng: random.Random, codes: list[str], count: int) -> list[SearchFilters]:
    this_year = date.today().year
    picks = {
        "make": lambda: {"make": rng.choice([s[0] for s in SPECS])},
        "body": lambda: {"body": rng.choice([s[2] for s in SPECS])},
        "powertrain": lambda: {"powertrain": rng.choice([s[3] for s in SPECS])},
        "condition": lambda: {"condition": rng.choice(["new", "used", "demo"])},
        "branch": lambda: {"branch": rng.choice(codes)},
        "year": lambda: rng.choice([{"year_from": this_year - rng.randint(0, 6)},
                                    {"year_from": this_year - 5, "year_to": this_year - 1}]),
        "price": lambda: dict(zip(("min_price", "max_price"),
                                  rng.choice([(None, 199_999), (100_000, 199_999), (200_000, None),
                                              (150_000, 249_999), (1_000_000, None)]), strict=True)),
    }
    searches = []
    for _ in range(count):
        values: dict = {}
        for kind in rng.sample(sorted(picks), rng.choice([1, 2, 3, 3, 3])):
            values |= {k: v for k, v in picks[kind]().items() if v is not None}
        searches.append(SearchFilters(**values, sort=rng.choice(list(SORT_KEYS)), page=rng.choice([1, 1, 2, 3, 9]),
                                      page_size=rng.choice([5, 20])))
    return searches


@pytest.mark.parametrize("plan", ["chosen", "walk", "filter_first"])
async def test_every_way_to_the_page_gives_the_plain_answer(session, monkeypatch, plan):
    branches = [await make_branch(session), await make_branch(session)]
    codes = {b.id: b.code for b in branches}
    await _stock(session, branches, 400, seed=11)
    await session.execute(text("ANALYZE vehicle"))  # the plan choice reads the public cars' index size
    if plan == "walk":
        monkeypatch.setattr(search_sql, "WALK_LIMIT", 10**12)
    elif plan == "filter_first":
        monkeypatch.setattr(search_sql, "WALK_LIMIT", -1)
    service = StockService(session)
    for filters in _searches(random.Random(plan), list(codes.values()), 60):
        result = await service.search(filters)
        total, ids, facets = await _expected(session, filters, codes)
        assert result.from_counts, filters
        assert result.total == total, filters
        assert [i["id"] for i in result.items] == ids, filters
        got = {name: Counter({f.value: f.count for f in values}) for name, values in result.facets.items()}
        assert {name: counter for name, counter in got.items() if counter} == {
            name: +counter for name, counter in facets.items() if +counter}, filters


async def test_the_public_counts_follow_every_change(session):
    branch = await make_branch(session)
    await _stock(session, [branch], 60, seed=5)
    cars = list((await session.execute(select(Vehicle.id).where(Vehicle.branch_id == branch.id))).scalars())
    await session.execute(text("UPDATE vehicle SET status = 'sold' WHERE id = :id"), {"id": cars[0]})
    await session.execute(text("UPDATE vehicle SET status = 'reserved' WHERE id = :id"), {"id": cars[1]})
    await session.execute(text("UPDATE vehicle SET status = 'in_stock', eta = NULL WHERE id = ANY(:ids)"),
                          {"ids": cars[2:8]})
    await session.execute(text("UPDATE vehicle SET list_price = list_price + 60000, make = 'Tesla' WHERE id = :id"),
                          {"id": cars[9]})
    await session.execute(text("DELETE FROM vehicle WHERE id = :id"), {"id": cars[10]})
    await session.execute(text("UPDATE vehicle SET lot_location = 'Z-9'"))  # no facet changes: nothing to do
    kept = await session.execute(text("""
        SELECT make, model, body, powertrain, model_year, branch_id, condition, price_step, n
        FROM vehicle_public_facet_count WHERE branch_id = :b AND n <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""),
                                 {"b": branch.id})
    actual = await session.execute(text("""
        SELECT make, model, body, powertrain, model_year, branch_id, condition, price_step, count(*)
        FROM vehicle WHERE branch_id = :b AND status IN ('in_stock', 'in_transit')
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"""), {"b": branch.id})
    assert kept.all() == actual.all()


async def test_a_page_past_the_end_is_empty(session):
    branch = await make_branch(session)
    await _stock(session, [branch], 30, seed=3)
    result = await StockService(session).search(SearchFilters(branch=branch.code, page=50))
    assert result.items == [] and result.total > 0
