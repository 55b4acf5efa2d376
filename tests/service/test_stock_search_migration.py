"""Migration 0007 (stock search speed) creates what the stock models declare, fills the public counts from
the cars already there, and goes down and up again."""

import asyncio
import os

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import backend.models  # noqa: F401 - every table on the metadata
from backend.lib.db import metadata
from backend.lib.migrate import alembic_config, upgrade
from tests.conftest import database_url_for, drop_database, recreate_database

STOCK_TABLES = {"vehicle", "vehicle_facet_count", "vehicle_public_facet_count"}
INDEX_KEYS = """
    SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relname LIKE 'ix_vehicle_public_%' ORDER BY 1"""
CARS = """
    INSERT INTO vehicle (vin, make, model, trim, model_year, body, powertrain, colour, mileage_km, condition,
                         list_price, status, eta, branch_id, lot_location)
    SELECT 'LMXGR' || lpad(n::text, 12, '0'), 'BYD', 'Han', '', 2025, 'sedan', 'bev', '', 10,
           (ARRAY['new', 'used', 'demo'])[1 + n % 3], 100000 + n * 1000,
           (ARRAY['in_stock', 'in_transit', 'sold', 'reserved'])[1 + n % 4],
           CASE WHEN n % 4 = 1 THEN current_date END, :branch, ''
    FROM generate_series(1, 40) AS n"""


def _table_of(diff) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return table.name
        if isinstance(part, str) and part in STOCK_TABLES:
            return part
        if getattr(part, "name", None) in STOCK_TABLES:
            return part.name
    return None


async def test_migration_matches_the_models_fills_the_counts_and_round_trips(base_urls):
    base, _ = base_urls
    name = f"forecourt_stock_migration_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url, "0006")
        async with engine.begin() as connection:
            group = await connection.scalar(text("INSERT INTO dealer_group (name) VALUES ('G') RETURNING id"))
            branch = await connection.scalar(text(
                "INSERT INTO branch (group_id, code, name, address, timezone, currency) "
                "VALUES (:g, 'MIG1', 'M', '', 'Asia/Shanghai', 'CNY') RETURNING id"), {"g": group})
            await connection.execute(text(CARS), {"branch": branch})
            before = (await connection.execute(text(INDEX_KEYS))).all()
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            diffs = await connection.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata))
            assert [d for d in diffs if _table_of(d) in STOCK_TABLES] == []
            kept = (await connection.execute(text(
                "SELECT condition, sum(n) FROM vehicle_public_facet_count GROUP BY 1 ORDER BY 1"))).all()
            assert kept == [("demo", 6), ("new", 6), ("used", 8)]  # the 20 cars in stock or in transit
            indexes = dict((await connection.execute(text(INDEX_KEYS))).all())
            assert all("(condition, " in d and "INCLUDE (" in d for d in indexes.values()), indexes

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0006")
        async with engine.connect() as connection:
            assert (await connection.execute(text(INDEX_KEYS))).all() == before
            assert await connection.scalar(text("SELECT to_regclass('vehicle_public_facet_count')")) is None
        await asyncio.to_thread(upgrade, url)
    finally:
        await engine.dispose()
        await drop_database(base, name)
