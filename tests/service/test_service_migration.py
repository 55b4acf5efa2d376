"""Migration 0004 creates exactly what the service models declare, and goes down and up again."""

import asyncio
import os

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import backend.models  # noqa: F401 - every table on the metadata
from backend.lib.db import metadata
from backend.lib.migrate import alembic_config, upgrade
from tests.conftest import database_url_for, drop_database, recreate_database

SERVICE_TABLES = {
    "service_settings", "service_operation", "service_bay", "service_technician", "service_day_capacity",
    "service_slot_capacity", "service_vehicle", "service_appointment", "service_appointment_operation",
    "booking_idempotency", "repair_order_counter", "repair_order", "repair_order_event", "repair_order_photo",
    "repair_order_finding", "repair_order_labour", "repair_order_part", "repair_order_clock",
}


def _table_of(diff) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:]:
        name = getattr(part, "name", None) if not isinstance(part, str) else None
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return table.name
        if isinstance(part, str) and part in SERVICE_TABLES:
            return part
        if name in SERVICE_TABLES:
            return name
    return None


async def test_migration_matches_the_models_and_round_trips(base_urls):
    base, _ = base_urls
    name = f"forecourt_migration_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            diffs = await connection.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata))
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert SERVICE_TABLES <= tables
        ours = [d for d in diffs if _table_of(d) in SERVICE_TABLES]
        assert ours == [], ours

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0003")
        async with engine.connect() as connection:
            left = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert not SERVICE_TABLES & left and "vehicle" in left  # 0003's tables stay
        await asyncio.to_thread(upgrade, url)
    finally:
        await engine.dispose()
        await drop_database(base, name)
