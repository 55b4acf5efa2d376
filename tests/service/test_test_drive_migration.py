"""Migration 0006 creates exactly what the test-drive models declare (the exclusion constraints included),
and goes down and up again."""

import asyncio
import os

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import backend.models  # noqa: F401 - every table on the metadata
from backend.lib.db import metadata
from backend.lib.migrate import alembic_config, upgrade
from tests.conftest import database_url_for, drop_database, recreate_database
from tests.service.test_service_migration import _table_of

TABLES = {"test_drive", "test_drive_settings", "test_drive_model_length", "test_drive_car", "test_drive_salesperson",
          "lead", "branch_holiday"}


async def test_migration_matches_the_models_and_round_trips(base_urls):
    base, _ = base_urls
    name = f"forecourt_migration_td_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            diffs = await connection.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata))
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            exclusions = (await connection.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'x' "
                "AND conrelid = 'test_drive'::regclass ORDER BY conname"))).all()
        assert TABLES <= tables
        ours = [d for d in diffs if _table_of(d) in TABLES or any(t in str(d) for t in TABLES)]
        assert ours == [], ours
        assert [name for name, _definition in exclusions] == ["ex_test_drive_salesperson_busy",
                                                              "ex_test_drive_vehicle_busy"]
        for _name, definition in exclusions:
            assert "USING gist" in definition and "WITH &&" in definition and "'[]'" in definition
            assert "'booked'" in definition and "'checked_out'" in definition

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
        async with engine.connect() as connection:
            left = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert not TABLES & left and "service_appointment" in left  # 0005 and before stay
        await asyncio.to_thread(upgrade, url)
    finally:
        await engine.dispose()
        await drop_database(base, name)
