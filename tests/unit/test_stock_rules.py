"""Stock rules without I/O: VIN check digits, status transitions, price steps, filter parsing, import rows."""

from datetime import date
from decimal import Decimal

import pytest

from backend.domains.stock import importer, rules, search_sql
from backend.domains.stock.rules import VehicleStatus as S
from backend.domains.stock.rules import VinProblem
from backend.domains.stock.schemas import SearchFilters, parse_filters
from backend.lib import i18n


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


# -- VIN --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vin", [
    "1M8GDM9AXKP042788",  # the classic ISO 3779 / FMVSS example (check digit X)
    "11111111111111111",  # all ones: the check digit happens to be 1
    "1HGCM82633A004352",  # real VINs used as examples by VIN decoders
    "5YJSA1DG9DFP14705",
    "JH4KA7561PC008269",
])
def test_valid_vins_pass(vin):
    assert rules.vin_problem(vin) is None


def test_check_digit_follows_the_weights_and_transliteration():
    # 1M8GDM9A?KP042788: sum of value*weight = 351 -> 351 % 11 = 10 -> X
    assert rules.vin_check_digit("1M8GDM9A0KP042788") == "X"
    # a changed character changes the check digit
    assert rules.vin_check_digit("1M8GDM9A0KP042789") != "X"


@pytest.mark.parametrize(("vin", "problem"), [
    ("1M8GDM9AXKP04278", VinProblem.LENGTH),
    ("1M8GDM9AXKP0427888", VinProblem.LENGTH),
    ("1M8GDM9AXKP04278O", VinProblem.CHARACTER),  # letter O
    ("IM8GDM9AXKP042788", VinProblem.CHARACTER),  # letter I
    ("1M8GDM9AXKP04278Q", VinProblem.CHARACTER),
    ("1M8GDM9AXKP04278*", VinProblem.CHARACTER),
    ("1M8GDM9A1KP042788", VinProblem.CHECK_DIGIT),
    ("1M8GDM9AXKP042789", VinProblem.CHECK_DIGIT),  # one mistyped digit
])
def test_invalid_vins_say_why(vin, problem):
    found = rules.vin_problem(vin)
    assert found is not None and found[0] is problem
    assert found[1]  # a message for the person


def test_messages_name_the_problem():
    assert "17 characters" in rules.vin_problem("ABC")[1]
    assert "I, O or Q" in rules.vin_problem("1M8GDM9AXKP04278O")[1]
    assert "should be X" in rules.vin_problem("1M8GDM9A1KP042788")[1]


def test_normalize_and_lookup_kind():
    assert rules.normalize_vin(" 1m8gdm9a xkp-042788 ") == "1M8GDM9AXKP042788"
    assert rules.vin_lookup_kind("1m8gdm9axkp042788") == "full"
    assert rules.vin_lookup_kind("042788") == "last6"
    assert rules.vin_lookup_kind("04278") is None
    assert rules.vin_lookup_kind("04278*") is None
    assert rules.with_check_digit("1M8GDM9A0KP042788") == "1M8GDM9AXKP042788"


# -- status -------------------------------------------------------------------------------------------


def test_a_sold_car_cannot_be_reserved_or_change_status():
    assert rules.reserve_problem(S.SOLD) is not None
    for target in S:
        assert not rules.can_transition(S.SOLD, target)
        assert rules.transition_problem(S.SOLD, target) is not None


def test_reservable_statuses():
    assert rules.reserve_problem(S.IN_STOCK) is None
    assert rules.reserve_problem(S.IN_TRANSIT) is None
    assert "already reserved" in rules.reserve_problem(S.RESERVED)
    assert rules.reserve_problem(S.DEMO) is not None


def test_transitions():
    assert rules.transition_problem(S.IN_STOCK, S.SOLD) is None
    assert rules.transition_problem(S.RESERVED, S.SOLD) is None
    assert rules.transition_problem(S.IN_TRANSIT, S.SOLD) is not None  # arrive first
    assert rules.transition_problem(S.IN_STOCK, S.IN_STOCK) is not None
    assert "ETA" in rules.transition_problem(S.IN_STOCK, S.IN_TRANSIT, eta=None)
    assert rules.transition_problem(S.IN_STOCK, S.IN_TRANSIT, eta=date(2030, 1, 1)) is None
    assert not rules.can_transition("nonsense", S.SOLD)


def test_release_goes_back_where_the_car_was():
    assert rules.release_target(S.IN_TRANSIT) is S.IN_TRANSIT
    assert rules.release_target(S.IN_STOCK) is S.IN_STOCK
    assert rules.release_target(None) is S.IN_STOCK


def test_imports_never_move_reserved_or_sold_cars():
    assert rules.import_status(S.RESERVED, S.IN_STOCK) == S.RESERVED
    assert rules.import_status(S.SOLD, S.IN_STOCK) == S.SOLD
    assert rules.import_status(S.IN_TRANSIT, S.IN_STOCK) == S.IN_STOCK
    assert rules.import_status(None, S.DEMO) == S.DEMO


def test_electrics_only_for_electrified_cars():
    assert rules.electrics_problem("petrol", Decimal("60"), None) is not None
    assert rules.electrics_problem("diesel", None, 400) is not None
    assert rules.electrics_problem("petrol", None, None) is None
    assert rules.electrics_problem("bev", Decimal("60"), 500) is None
    assert rules.electrics_problem("hev", Decimal("1.6"), None) is None


def test_days_in_stock():
    assert rules.days_in_stock(date(2026, 1, 1), date(2026, 1, 31)) == 30
    assert rules.days_in_stock(None, date(2026, 1, 31)) is None
    assert rules.days_in_stock(date(2026, 2, 1), date(2026, 1, 31)) is None


# -- prices -------------------------------------------------------------------------------------------


def test_price_steps_and_aligned_bounds():
    assert rules.price_step(49_999) == 0 and rules.price_step(50_000) == 1 and rules.price_step(9_999_999) == 20
    assert rules.min_price_step(None) == 0 and rules.max_price_step(None) == 20
    assert rules.min_price_step(200_000) == 4
    assert rules.min_price_step(200_001) is None
    assert rules.max_price_step(199_999) == 3  # "under 200,000"
    assert rules.max_price_step(200_000) is None  # inclusive 200,000 is not a step edge
    assert rules.max_price_step(5_000_000) is None


def test_price_bands_cover_everything_once():
    bands = rules.price_bands()
    assert bands[0] == (None, 99_999) and bands[-1] == (1_000_000, None)
    steps = {0: 1, 1: 2, 2: 4, 3: 8, 5: 16, 20: 32}
    assert sum(rules.band_count(steps, low, high) for low, high in bands) == sum(steps.values())
    assert rules.band_count(steps, None, 99_999) == 3
    assert rules.band_count(steps, 100_000, 199_999) == 12


# -- search filters -------------------------------------------------------------------------------------


def test_parse_filters_reads_known_values():
    filters, problems = parse_filters({"make": "BYD", "body": "SUV", "powertrain": "bev", "min_price": "100000",
                                       "max_price": "299999", "year_from": "2022", "sort": "newest", "page": "2",
                                       "page_size": "50", "branch": "sh01", "q": " model y "})
    assert problems == {}
    assert filters == SearchFilters(make="BYD", body="suv", powertrain="bev", min_price=100_000, max_price=299_999,
                                    year_from=2022, sort="newest", page=2, page_size=50, branch="SH01", q="model y")


@pytest.mark.parametrize(("params", "bad"), [
    ({"powertrain": "steam"}, "powertrain"),
    ({"body": "tank"}, "body"),
    ({"sort": "random"}, "sort"),
    ({"page_size": "101"}, "page_size"),
    ({"page_size": "0"}, "page_size"),
    ({"page": "abc"}, "page"),
    ({"min_price": "-5"}, "min_price"),
    ({"year_from": "3000"}, "year_from"),
    ({"min_price": "300000", "max_price": "100000"}, "max_price"),
    ({"q": "x" * 101}, "q"),
    ({"colour": "red"}, "colour"),  # not a filter
])
def test_parse_filters_names_bad_parameters(params, bad):
    filters, problems = parse_filters(params)
    assert bad in problems
    assert getattr(filters, bad, None) in (None, SearchFilters().sort, 1, 20)


def test_staff_only_parameters():
    _, problems = parse_filters({"status": "sold", "vin": "042788"})
    assert set(problems) == {"status", "vin"}
    filters, problems = parse_filters({"status": "sold", "vin": "042788"}, staff=True)
    assert problems == {} and filters.status == "sold" and filters.vin == "042788"
    _, problems = parse_filters({"vin": "12"}, staff=True)
    assert "vin" in problems


def test_query_string_keeps_filters_and_drops_defaults():
    filters = SearchFilters(make="BYD", body="suv", page=3)
    assert filters.query_string() == "make=BYD&body=suv&page=3"
    assert filters.query_string(page=1) == "make=BYD&body=suv"


def test_tsquery_is_safe_prefix_matching():
    assert search_sql.tsquery("Model Y") == "'model':* & 'y':*"
    assert search_sql.tsquery("比亚迪 汉") == "'比亚迪':* & '汉':*"
    assert search_sql.tsquery("a' | !b & c:*") == "'a':* & 'b':* & 'c':*"
    assert search_sql.tsquery("!!! ***") is None


def test_search_uses_the_kept_counts_only_when_it_can():
    build = search_sql.build
    assert build(SearchFilters(make="BYD", max_price=199_999), staff=False, scope_branch_id=None,
                 branch_id=None).from_counts
    assert not build(SearchFilters(max_price=200_000), staff=False, scope_branch_id=None, branch_id=None).from_counts
    assert not build(SearchFilters(q="han"), staff=False, scope_branch_id=None, branch_id=None).from_counts
    assert not build(SearchFilters(status="sold"), staff=True, scope_branch_id=None, branch_id=None).from_counts
    public = build(SearchFilters(make="BYD"), staff=False, scope_branch_id=None, branch_id=None)
    assert "cost" not in public.sql and "internal_notes" not in public.sql and "reservation" not in public.sql
    assert "BYD" not in public.sql and "BYD" in public.args  # values travel as parameters


# -- import rows -----------------------------------------------------------------------------------------

HEADER = ["车架号", "品牌", "车型", "年款", "车身类型", "动力类型", "车况", "售价", "电池容量", "续航里程", "门店",
          "Status", "ETA"]
CONTEXT = importer.ImportContext(branch_ids_by_code={"SH01": 1, "HZ01": 2}, scope_branch_id=None,
                                 default_branch_id=None, today=date(2026, 11, 29))


def columns():
    mapped, _ignored = importer._map_header(HEADER)
    return mapped


def row(**changes):
    values = dict(zip(HEADER, ["1M8GDM9AXKP042788", "BYD", "汉", "2025", "轿车", "纯电", "新车", "20.98万", "85.4",
                               "715", "SH01", "", ""], strict=True))
    values.update(changes)
    return [values[h] for h in HEADER]


def test_headers_are_found_in_either_language():
    mapped, ignored = importer._map_header(["VIN", "Make", "Model", "Model year", "Body type", "Powertrain",
                                            "Condition", "List price", "Colour", "Something else"])
    assert mapped["list_price"] == 7 and mapped["colour"] == 8 and ignored == ["Something else"]
    assert columns()["vin"] == 0 and columns()["branch"] == 10


def test_missing_columns_are_named():
    with pytest.raises(importer.ImportFileError, match="list price"):
        importer._map_header(["VIN", "Make", "Model", "Model year", "Body", "Powertrain", "Condition"])
    with pytest.raises(importer.ImportFileError, match="header"):
        importer._map_header(["a", "b"])


def test_a_good_row_becomes_a_record():
    record, vin = importer.check_row(row(), columns(), CONTEXT)
    values = dict(zip(importer.BULK_COLUMNS, record, strict=True))
    assert vin == "1M8GDM9AXKP042788"
    assert values["list_price"] == 209_800 and values["body"] == "sedan" and values["powertrain"] == "bev"
    assert values["condition"] == "new" and values["battery_kwh"] == Decimal("85.4") and values["branch_id"] == 1
    assert values["status"] == "in_stock"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"车架号": "1M8GDM9AXKP04278"}, "17 characters"),
    ({"车架号": "1M8GDM9AXKP04278O"}, "I, O or Q"),
    ({"车架号": "1M8GDM9A1KP042788"}, "check digit"),
    ({"车架号": ""}, "VIN is missing"),
    ({"动力类型": "蒸汽"}, "powertrain"),
    ({"售价": "cheap"}, "not a number"),
    ({"售价": "0"}, "list price"),
    ({"年款": "1850"}, "model year"),
    ({"动力类型": "汽油"}, "Only electrified"),
    ({"门店": "XX99"}, "Unknown branch"),
    ({"Status": "sold"}, "status"),
    ({"Status": "in_transit"}, "ETA"),
    ({"ETA": "tomorrow"}, "not a date"),
])
def test_bad_rows_are_rejected_with_the_reason(changes, reason):
    with pytest.raises(importer.RowError, match=reason):
        importer.check_row(row(**changes), columns(), CONTEXT)


def test_branch_scope_is_enforced():
    scoped = importer.ImportContext(branch_ids_by_code={"SH01": 1, "HZ01": 2}, scope_branch_id=2,
                                    default_branch_id=2, today=date(2026, 11, 29))
    with pytest.raises(importer.RowError, match="own branch"):
        importer.check_row(row(), columns(), scoped)
    record, _vin = importer.check_row(row(门店=""), columns(), scoped)
    assert dict(zip(importer.BULK_COLUMNS, record, strict=True))["branch_id"] == 2


def test_in_transit_with_eta():
    record, _vin = importer.check_row(row(Status="在途", ETA="2026/12/20"), columns(), CONTEXT)
    values = dict(zip(importer.BULK_COLUMNS, record, strict=True))
    assert values["status"] == "in_transit" and values["eta"] == date(2026, 12, 20)


def test_files_that_are_not_tables_are_refused():
    assert importer.sniff_format(b"\x89PNG\r\n\x1a\n\x00\x00") is None
    assert importer.sniff_format(b"PK\x03\x04rest") == "xlsx"
    with pytest.raises(importer.ImportFileError):
        importer.open_file(b"PK\x03\x04 not really a zip", "xlsx")
    with pytest.raises(importer.ImportFileError, match="empty"):
        importer.open_file(b"", "csv")
    with pytest.raises(importer.ImportFileError, match="not readable"):
        importer.open_file(b"\xff\xfe\xfa\xfb" * 10 + b"\x81", "csv")
