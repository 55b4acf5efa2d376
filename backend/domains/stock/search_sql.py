"""The stock search as ONE SQL statement: a page of cars, the total and every facet's counts.

Facet counts are "disjunctive": each facet counts the cars matching every filter except its own, so a
customer who picked BYD still sees how many Geelys there are. All of them come from one pass over the
rows that fail at most one filter, grouped by GROUPING SETS.

Two sources, same answer:
- the kept counts (``vehicle_facet_count``, a few thousand rows maintained by triggers) whenever every
  filter is one of its dimensions (prices on 50,000-yuan steps) — the customer's search;
- the vehicles themselves otherwise (free text, a VIN, prices off the steps, sold cars for staff).

Pure string building, no I/O: parameters are numbered ``$n`` for asyncpg, so the bench can run the
very same SQL on a bare asyncpg connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import rules
from .rules import PUBLIC_STATUSES, Sort, VehicleStatus
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
INDEX_ORDER_ABOVE = 15_000  # matching cars; up to this many, the page is sorted after filtering
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

    source, weight = ("vehicle_facet_count", "n") if from_counts else ("vehicle", "1")
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
    if from_counts:
        # The page comes from the vehicles, with exact prices. Walking the sort's index is best when many
        # cars match; when few do (or they sit at the far end of the order, e.g. used cars sorted by
        # lowest mileage) it can read most of the index. The exact total is known from the counts, so
        # each of two plans runs only in its own case (a one-time filter on the total).
        page_where = list(base) + [predicate for name, predicate in active.items() if name != "price"]
        if filters.min_price is not None:
            page_where.append(f"list_price >= {p(filters.min_price, 'int')}")
        if filters.max_price is not None:
            page_where.append(f"list_price <= {p(filters.max_price, 'int')}")
        condition = " AND ".join(page_where) or "true"
        total = f"(SELECT total FROM facet_rows WHERE g = {everything})"  # noqa: S608 - built from our constants; values are $n parameters
        # "+ 0" keeps the planner off the sort's index: filter first, then sort the few matches.
        page = f"""SELECT * FROM (SELECT {page_columns} FROM vehicle v WHERE {condition}
    ORDER BY {sort_column} {direction}, v.id {direction} LIMIT {limit} OFFSET {offset}) AS by_index
  WHERE {total} > {INDEX_ORDER_ABOVE}
  UNION ALL
  SELECT * FROM (SELECT {page_columns} FROM vehicle v WHERE {condition}
    ORDER BY {sort_column} + 0 {direction}, v.id + 0 {direction} LIMIT {limit} OFFSET {offset}) AS by_filter
  WHERE {total} <= {INDEX_ORDER_ABOVE}"""  # noqa: S608 - built from our constants; values are $n parameters
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
),
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


def decode_facets(rows: list | None, facets: tuple[str, ...]) -> tuple[int, dict[str, dict[str, int]]]:
    """``[[grouping, value, n, total], ...]`` -> (total, {facet: {value: count}})."""
    total = 0
    counts: dict[str, dict[str, int]] = {f: {} for f in facets}
    everything = 2 ** len(facets) - 1
    for g, value, n, matching in rows or ():
        if g == everything:
            total = matching or 0
            continue
        # GROUPING() sets a bit for each column NOT grouped; the clear bit is this row's facet.
        position = next(i for i in range(len(facets)) if not g & (1 << (len(facets) - 1 - i)))
        if value is not None and n:
            counts[facets[position]][value] = n
    return total, counts
