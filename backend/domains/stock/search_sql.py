"""The stock search as ONE SQL statement: a page of cars, the total and every facet's counts.

Facet counts are "disjunctive": each facet counts the cars matching every filter except its own, so a
customer who picked BYD still sees how many Geelys there are. All of them come from one pass over the
rows that fail at most one filter, grouped by GROUPING SETS.

Two sources, same answer:
- the kept counts whenever every filter is one of their dimensions (prices on 50,000-yuan steps) — the
  customer's search: ``vehicle_public_facet_count`` (the cars customers may see, ~4,000 rows at 100,000
  cars) for customers, ``vehicle_facet_count`` (every unsold car, by status) for staff; both are
  maintained by triggers. The page then comes from the cars' covering indexes (see ``_page_from_cars``);
- the vehicles themselves otherwise (free text, a VIN, prices off the steps, sold cars for staff).

Pure string building, no I/O: parameters are numbered ``$n`` for asyncpg, so the bench can run the
very same SQL on a bare asyncpg connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import rules
from .rules import PUBLIC_STATUSES, Condition, Sort, VehicleStatus
from .schemas import SearchFilters

# facet name -> column (in both sources)
FACET_COLUMNS = {
    "make": "make", "model": "model", "body": "body", "powertrain": "powertrain", "year": "model_year",
    "branch": "branch_id", "condition": "condition", "price": "price_step", "status": "status",
}
SORTS = {
    Sort.PRICE_ASC: ("v.list_price", "ASC"),
    Sort.PRICE_DESC: ("v.list_price", "DESC"),
    Sort.NEWEST: ("v.model_year", "DESC"),
    Sort.MILEAGE: ("v.mileage_km", "ASC"),
}
PUBLIC_COLUMNS = ("id", "vin", "make", "model", "trim", "model_year", "body", "powertrain", "battery_kwh",
                  "range_km", "colour", "mileage_km", "condition", "list_price", "status", "eta", "branch_id")
STAFF_COLUMNS = PUBLIC_COLUMNS + ("cost", "arrival_date", "lot_location")
# The customer's page is chosen by walking one of the covering indexes of the public sort orders (migration
# 0005), which lead with the condition. Where the kept counts tell in which bucket of the sort order the page
# begins (price steps, model years), the walk starts there: sort -> (facet, predicate on that bucket).
_TOP_BUCKET_END = (f"CASE WHEN bucket >= {rules.TOP_PRICE_STEP} THEN 2147483647 "
                   f"ELSE (bucket + 1) * {rules.PRICE_STEP} END")
JUMPS = {
    Sort.PRICE_ASC: ("price", f"list_price >= (SELECT bucket * {rules.PRICE_STEP} FROM jump)"),  # noqa: S608
    Sort.PRICE_DESC: ("price", f"list_price < (SELECT {_TOP_BUCKET_END} FROM jump)"),  # noqa: S608
    Sort.NEWEST: ("year", "model_year <= (SELECT bucket FROM jump)"),
}
# How many index entries a walk may be expected to read (matches spread evenly) before filtering first and
# sorting the matches is preferred: each costs a fraction of a microsecond, a car read for its row more.
WALK_LIMIT = 20_000
PUBLIC_INDEX = "ix_vehicle_public_price"  # its entry count (pg_class.reltuples) is the number of public cars
_TSQUERY_WORD = re.compile(r"[\w.+-]+", re.UNICODE)


class _Params:
    def __init__(self) -> None:
        self.args: list = []

    def __call__(self, value, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"


@dataclass(frozen=True, slots=True)
class SearchSQL:
    sql: str
    args: list
    from_counts: bool
    facets: tuple[str, ...]


def tsquery(text: str) -> str | None:
    """``"model y"`` -> ``"model:* & y:*"``: every word, as a prefix (what people expect while typing)."""
    words = [w.lower().replace(":", "") for w in _TSQUERY_WORD.findall(text)]
    words = [w.strip(".+-") for w in words if w.strip(".+-")]
    if not words:
        return None
    return " & ".join(f"'{w}':*" for w in words[:8])


def build(filters: SearchFilters, *, staff: bool, scope_branch_id: int | None, branch_id: int | None) -> SearchSQL:
    """SQL and arguments for ``filters``. ``branch_id`` is the id of ``filters.branch`` (already checked)."""
    p = _Params()
    facets = tuple(name for name in FACET_COLUMNS if staff or name != "status")
    lo_step, hi_step = rules.min_price_step(filters.min_price), rules.max_price_step(filters.max_price)
    query = tsquery(filters.q) if filters.q else None
    from_counts = (lo_step is not None and hi_step is not None and query is None and not filters.vin
                   and filters.status != VehicleStatus.SOLD)

    # Conditions that are not facets: who may see what.
    base: list[str] = []
    if not staff:
        base.append("status IN (" + ", ".join(f"'{s.value}'" for s in PUBLIC_STATUSES) + ")")
    elif filters.status is None:
        base.append("status <> 'sold'")
    if scope_branch_id is not None:
        base.append(f"branch_id = {p(scope_branch_id, 'int')}")
    vehicle_only: list[str] = []
    if query:
        vehicle_only.append(f"search_tsv @@ to_tsquery('simple', {p(query, 'text')})")
    elif filters.q:  # only punctuation: nothing can match
        vehicle_only.append("false")
    if filters.vin:
        vin = p(filters.vin, "text")
        vehicle_only.append(f"(vin = {vin} OR vin_last6 = {vin})" if len(filters.vin) == 6 else f"vin = {vin}")

    # Facet filters: name -> predicate on the source rows.
    active: dict[str, str] = {}
    for name in ("make", "model", "body", "powertrain", "condition", "status"):
        value = getattr(filters, name)
        if value is not None:
            active[name] = f"{FACET_COLUMNS[name]} = {p(value, 'text')}"
    if branch_id is not None:
        active["branch"] = f"branch_id = {p(branch_id, 'int')}"
    years = []
    if filters.year_from is not None:
        years.append(f"model_year >= {p(filters.year_from, 'int')}")
    if filters.year_to is not None:
        years.append(f"model_year <= {p(filters.year_to, 'int')}")
    if years:
        active["year"] = " AND ".join(years)
    prices = []
    if from_counts:
        if filters.min_price is not None:
            prices.append(f"price_step >= {p(lo_step, 'int')}")
        if filters.max_price is not None:
            prices.append(f"price_step <= {p(hi_step, 'int')}")
    else:
        if filters.min_price is not None:
            prices.append(f"list_price >= {p(filters.min_price, 'int')}")
        if filters.max_price is not None:
            prices.append(f"list_price <= {p(filters.max_price, 'int')}")
    if prices:
        active["price"] = " AND ".join(prices)

    names = list(active)
    flags = ", ".join(f"({active[n]}) AS f_{n}" for n in names)

    def all_but(skip: str | None, prefix: str = "") -> str:
        return " AND ".join(f"{prefix}f_{n}" for n in names if n != skip) or "true"

    if from_counts:
        # Customers count from the cars they may see, kept without the status (a third of the rows).
        source, weight = ("vehicle_facet_count", "n") if staff else ("vehicle_public_facet_count", "n")
        where = (list(base) if staff else []) + vehicle_only  # (only "false" here: text of punctuation alone)
    else:
        source, weight = "vehicle", "1"
        where = base + vehicle_only
    if len(names) > 1:
        # A row failing two filters counts in no facet: leave it out early.
        where.append("(" + " + ".join(f"(NOT ({active[n]}))::int" for n in names) + ") <= 1")
    sort_column, direction = SORTS[Sort(filters.sort)]
    sort_key = sort_column.removeprefix("v.")
    facet_columns = sorted({FACET_COLUMNS[f] for f in facets})
    # From the vehicles themselves, the candidates also carry what the page needs to be sorted.
    extra = [] if from_counts else ["id"] + ([sort_key] if sort_key not in facet_columns else [])
    selected = ", ".join(extra + facet_columns) + f", {weight} AS n" + (f", {flags}" if flags else "")
    candidates = f"SELECT {selected} FROM {source}" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608 - built from our constants; values are $n parameters
    keyed = ", ".join(f"CASE WHEN {all_but(f)} THEN {FACET_COLUMNS[f]} END AS k_{f}" for f in facets)
    keyed += f", n, ({all_but(None)}) AS matches"
    grouping = ", ".join(f"k_{f}" for f in facets)
    sets = ", ".join(f"(k_{f})" for f in facets) + ", ()"
    values = ", ".join(f"k_{f}::text" for f in facets)
    everything = 2 ** len(facets) - 1

    limit = p(filters.page_size, "int")
    offset = p((filters.page - 1) * filters.page_size, "int")
    columns = STAFF_COLUMNS if staff else PUBLIC_COLUMNS
    page_columns = ", ".join(f"v.{c}" for c in columns)
    jump = ""
    if from_counts:
        page, jump = _page_from_cars(
            filters, staff=staff, base=base, active=active, p=p, limit=limit, offset=offset,
            total=f"(SELECT total FROM facet_rows WHERE g = {everything})",  # noqa: S608 - a constant
            facets=facets, price_steps=(lo_step, hi_step), page_columns=page_columns)
    else:
        # The matching cars are already among the candidates: sort those.
        page = f"""SELECT {page_columns} FROM vehicle v JOIN (
    SELECT c.id FROM candidates c WHERE {all_but(None, "c.")}
    ORDER BY c.{sort_key} {direction}, c.id {direction} LIMIT {limit} OFFSET {offset}) AS chosen
  ON chosen.id = v.id"""  # noqa: S608 - built from our constants; values are $n parameters
    item_fields = ", ".join(f"'{c}', p.{c}" for c in columns)
    staff_fields = staff_join = ""
    if staff:
        staff_fields = (", 'reserved_by', r.reserved_by_label, 'reservation_reason', r.reason, "
                        "'reserved_at', r.reserved_at")
        staff_join = "LEFT JOIN vehicle_reservation r ON r.vehicle_id = p.id AND r.released_at IS NULL"

    # The kept counts are read once (inline); the cars' own rows are read once and used twice (materialized).
    materialized = "NOT MATERIALIZED" if from_counts else "MATERIALIZED"
    sql = f"""WITH candidates AS {materialized} ({candidates}),
facet_rows AS MATERIALIZED (
  SELECT GROUPING({grouping}) AS g, COALESCE({values}) AS value, sum(n)::int AS n,
         (sum(n) FILTER (WHERE matches))::int AS total
  FROM (SELECT {keyed} FROM candidates) AS keyed
  GROUP BY GROUPING SETS ({sets})
){jump},
page AS ({page})
SELECT
  (SELECT json_agg(json_build_array(g, value, n, total)) FROM facet_rows
    WHERE value IS NOT NULL OR g = {everything})::text AS facets,
  (SELECT json_agg(json_build_object({item_fields}, 'branch_code', b.code, 'photo', ph.file_key{staff_fields})
                   ORDER BY p.{sort_key} {direction}, p.id {direction})
     FROM page p JOIN branch b ON b.id = p.branch_id
     LEFT JOIN LATERAL (SELECT file_key FROM vehicle_photo WHERE vehicle_id = p.id ORDER BY position, id LIMIT 1) ph
       ON true
     {staff_join})::text AS items"""  # noqa: S608 - built from our constants; values are $n parameters
    return SearchSQL(sql=sql, args=p.args, from_counts=from_counts, facets=facets)


def _page_from_cars(filters: SearchFilters, *, staff: bool, base: list[str], active: dict[str, str], p: _Params,
                    limit: str, offset: str, total: str, facets: tuple[str, ...],
                    price_steps: tuple[int | None, int | None], page_columns: str) -> tuple[str, str]:
    """The page when the counts came from the kept counts: ``(page SQL, extra CTE or "")``.

    Only the ids of the page are chosen from the cars' index entries; then those 20 rows are read. Two plans,
    each running only in its own case (a one-time filter on the exact total, known from the counts), and
    neither when the page lies past the end:

    - walk: the covering indexes of migration 0005 lead with the condition and hold every filter column, so
      the walk reads no car's row. A search for one condition walks that condition; one without walks each
      condition in a stream of its own and merges the streams in sort order. Condition is what the sort
      orders correlate with most (new cars have no mileage and this year's model year, used cars are
      cheaper): walking each on its own, used cars sorted by lowest mileage do not first pass every new
      car. For price and newest the kept counts also tell in which price step or model year the page
      begins, and the walk starts there (a rare make sold at the far end of the price range costs no more
      than a common one).
    - filter first, then sort the matches: when the matches are so rare that a walk would be expected to
      read more than ``WALK_LIMIT`` entries, and always for staff (their search also covers reserved and
      demonstrator cars, which the public indexes leave out).
    """
    sort_column, direction = SORTS[Sort(filters.sort)]
    sort_key = sort_column.removeprefix("v.")
    where = list(base) + [predicate for name, predicate in active.items() if name not in ("price", "condition")]
    if filters.min_price is not None:
        where.append(f"list_price >= {p(filters.min_price, 'int')}")
    if filters.max_price is not None:
        where.append(f"list_price <= {p(filters.max_price, 'int')}")
    condition = " AND ".join(where) or "true"
    # The chosen condition is a parameter (one statement, prepared once, serves all three); without one, the
    # walk has a stream per condition, each naming it as a literal.
    chosen_condition = f" AND {active['condition']}" if "condition" in active else ""

    # "+ 0" keeps the planner off the sort's index: filter first, then sort the matches.
    by_filter = f"""SELECT id FROM vehicle WHERE {condition}{chosen_condition}
    ORDER BY {sort_key} + 0 {direction}, id + 0 {direction} LIMIT {limit} OFFSET {offset}"""  # noqa: S608 - built from our constants; values are $n parameters
    if staff:
        return f"""SELECT {page_columns} FROM ({by_filter}) AS chosen JOIN vehicle v ON v.id = chosen.id
  WHERE {total} > {offset}""", ""  # noqa: S608 - built from our constants; values are $n parameters

    jump = ""
    skip = offset
    walk_condition = condition
    if Sort(filters.sort) in JUMPS:
        facet, bound = JUMPS[Sort(filters.sort)]
        everything = 2 ** len(facets) - 1
        g = everything & ~(1 << (len(facets) - 1 - facets.index(facet)))  # GROUPING() of that facet's rows
        if facet == "price":
            low = price_steps[0] if filters.min_price is not None else None
            high = price_steps[1] if filters.max_price is not None else None
        else:
            low, high = filters.year_from, filters.year_to
        within = (f" AND value::int >= {p(low, 'int')}" if low is not None else "") + (
            f" AND value::int <= {p(high, 'int')}" if high is not None else "")
        # The facet's counts (every other filter applied; its own filter's range kept here) placed in sort
        # order: the first bucket whose cars reach past the offset holds the page's first car.
        jump = f""",
jump AS MATERIALIZED (
  SELECT bucket, {offset} - before AS skip FROM (
    SELECT value::int AS bucket, n, sum(n) OVER (ORDER BY value::int {direction}) - n AS before
    FROM facet_rows WHERE g = {g} AND value IS NOT NULL{within}) AS buckets
  WHERE before + n > {offset} ORDER BY bucket {direction} LIMIT 1)"""  # noqa: S608 - built from our constants; values are $n parameters
        walk_condition += f" AND {bound}"
        skip = "COALESCE((SELECT skip FROM jump), 0)"
    in_order = f"{sort_key} {direction}, id {direction}"
    if chosen_condition:
        walk = f"""SELECT id FROM vehicle WHERE {walk_condition}{chosen_condition}
    ORDER BY {in_order} LIMIT {limit} OFFSET {skip}"""  # noqa: S608 - built from our constants; values are $n parameters
    else:
        streams = "\n    UNION ALL\n    ".join(
            f"""(SELECT id, {sort_key} FROM vehicle WHERE {walk_condition} AND condition = '{c.value}'
     ORDER BY {in_order} LIMIT {limit} + {skip})""" for c in Condition)  # noqa: S608 - built from our constants; values are $n parameters
        walk = f"""SELECT id FROM (
    {streams}) AS streams ORDER BY {in_order} LIMIT {limit} OFFSET {skip}"""  # noqa: S608 - built from our constants; values are $n parameters
    # Expected entries walked, were the matches spread evenly: (offset + page size) * public cars / total.
    public = f"(SELECT reltuples FROM pg_class WHERE oid = '{PUBLIC_INDEX}'::regclass)"  # noqa: S608 - a constant
    walk_ok = f"{total}::float8 * {WALK_LIMIT} >= ({limit} + {offset}) * {public}"
    page = f"""SELECT {page_columns} FROM (
    SELECT * FROM ({walk}) AS walk WHERE {total} > {offset} AND {walk_ok}
    UNION ALL
    SELECT * FROM ({by_filter}) AS by_filter WHERE {total} > {offset} AND NOT {walk_ok}
  ) AS chosen JOIN vehicle v ON v.id = chosen.id"""  # noqa: S608 - built from our constants; values are $n parameters
    return page, jump


def decode_facets(rows: list | None, facets: tuple[str, ...]) -> tuple[int, dict[str, dict[str, int]]]:
    """``[[grouping, value, n, total], ...]`` -> (total, {facet: {value: count}})."""
    total = 0
    counts: dict[str, dict[str, int]] = {f: {} for f in facets}
    everything = 2 ** len(facets) - 1
    # GROUPING() sets a bit for each column NOT grouped; the clear bit is the row's facet.
    facet_of = {everything & ~(1 << (len(facets) - 1 - i)): counts[f] for i, f in enumerate(facets)}
    for g, value, n, matching in rows or ():
        if g == everything:
            total = matching or 0
        elif value is not None and n:
            facet_of[g][value] = n
    return total, counts
