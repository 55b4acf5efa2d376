"""Stock import benchmark: a 100,000-row file through the same code the worker runs, twice.

Not a test. It works in a database of its own, ``forecourt_bench_import`` (created, migrated, seeded
with the demo branches and accounts, dropped at the end); your data is never touched.

    .venv/bin/python bench/stock_import.py                    # 100,000 rows, CSV
    .venv/bin/python bench/stock_import.py --rows 100000 --format xlsx

It writes the file (demo cars, with one row in 500 deliberately broken so that the rejected-rows
report has something in it), uploads it with ``StockService.start_import`` (the file is checked and
stored), then runs ``run_import`` -- exactly what the arq job ``import_vehicles`` does -- and reports
the time and the counts. Then it imports the same file again: nothing may change.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.lib.scratchdb import database_url_for, drop_database, recreate_database  # noqa: E402

BENCH_DB = "forecourt_bench_import"
HEADER = ["VIN", "Make", "Model", "Trim", "Model year", "Body", "Powertrain", "Battery kWh", "Range km", "Colour",
          "Mileage km", "Condition", "List price", "Cost", "Status", "ETA", "Arrival date", "Branch", "Lot",
          "Features"]


def build_rows(count: int, branch_codes: dict[int, str]) -> list[list]:
    from backend.domains.stock import demo

    rows = []
    for i, car in enumerate(demo.demo_vehicles(count, sorted(branch_codes), seed=9001)):
        status = car["status"] if car["status"] in ("in_stock", "in_transit", "demo") else "in_stock"
        row = [car["vin"], car["make"], car["model"], car["trim"], car["model_year"], car["body"], car["powertrain"],
               car["battery_kwh"] or "", car["range_km"] or "", car["colour"], car["mileage_km"], car["condition"],
               car["list_price"], car["cost"], status, car["eta"] or "", car["arrival_date"] or "",
               branch_codes[car["branch_id"]], car["lot_location"], "; ".join(car["features"])]
        if i % 500 == 499:  # a mistyped VIN: the check digit no longer matches
            vin = row[0]
            row[0] = vin[:8] + ("1" if vin[8] != "1" else "2") + vin[9:]
        rows.append(row)
    return rows


def to_csv(rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def to_xlsx(rows: list[list]) -> bytes:
    from openpyxl import Workbook

    # A normal workbook, as Excel, WPS or LibreOffice save it (with the sheet's size recorded up front;
    # openpyxl's write-only mode leaves that out, which makes every reader scan the sheet once more).
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    for row in rows:
        sheet.append([str(v) if not isinstance(v, int | str) else v for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def run(args) -> None:
    from backend.domains.accounts.service import principal_for
    from backend.domains.stock.models import VehicleImport
    from backend.domains.stock.service import StockService, run_import
    from backend.lib import db, i18n
    from backend.lib.embedded import ensure_services
    from backend.lib.migrate import upgrade
    from backend.lib.redis import make_redis
    from backend.seed import seed_demo

    i18n.set_locale("en")
    base_db, base_redis = ensure_services()
    await recreate_database(base_db, BENCH_DB)
    database_url = database_url_for(base_db, BENCH_DB)
    engine = None
    try:
        await asyncio.to_thread(upgrade, database_url)
        engine = db.make_engine(database_url, pool_size=3)
        maker = db.make_session_maker(engine)
        redis = make_redis(base_redis)
        try:
            async with db.unit_of_work(maker) as session:
                await seed_demo(session, redis, only_if_empty=False)
        finally:
            await redis.aclose()
        async with db.unit_of_work(maker) as session:
            from backend.domains.accounts import repository as accounts
            from backend.domains.branches import repository as branches

            admin = principal_for(await accounts.user_by_email(session, "admin@forecourt.test"))
            codes = {b.id: b.code for b in await branches.list_branches(session)}

        began = time.perf_counter()
        rows = build_rows(args.rows, codes)
        data = to_xlsx(rows) if args.format == "xlsx" else to_csv(rows)
        print(f"Wrote a {args.format.upper()} file of {len(rows):,} rows ({len(data) / 1e6:.1f} MB) "
              f"in {time.perf_counter() - began:.1f} s", flush=True)

        print(f"Load average (1 min) before importing: {os.getloadavg()[0]:.2f}", flush=True)
        for attempt in ("first import", "same file again"):
            began = time.perf_counter()
            async with db.unit_of_work(maker) as session:
                record = await StockService(session).start_import(admin, f"bench.{args.format}", data)
                import_id = record.id
            uploaded = time.perf_counter() - began
            outcome = await run_import(maker, import_id)
            took = time.perf_counter() - began
            async with maker() as session:
                record = await session.get(VehicleImport, import_id)
            print(f"{attempt}: {outcome} in {took:.1f} s (upload check {uploaded:.1f} s) — "
                  f"{record.processed_rows:,} rows: {record.inserted:,} added, {record.updated:,} updated, "
                  f"{record.unchanged:,} unchanged, {record.rejected:,} rejected "
                  f"({record.processed_rows / took:,.0f} rows/s)", flush=True)
    finally:
        if engine is not None:
            await engine.dispose()
        await drop_database(base_db, BENCH_DB)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
