"""Migration 0005 (the outbox's error count) matches the model, and goes down and up again."""

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


def _about_outbox(diff) -> bool:
    return "outbox" in repr(diff)


async def test_outbox_errors_migration_matches_the_model_and_round_trips(base_urls):
    base, _ = base_urls
    name = f"forecourt_outbox_mig_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)

    async def outbox_state():
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: (
                {col["name"] for col in inspect(c).get_columns("outbox")},
                {ix["name"] for ix in inspect(c).get_indexes("outbox")},
                [d for d in compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
                 if _about_outbox(d)],
            ))

    try:
        await asyncio.to_thread(upgrade, url)
        columns, indexes, diffs = await outbox_state()
        assert "errors" in columns and "ix_outbox_failed" in indexes
        assert diffs == []

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0004")
        columns, indexes, _ = await outbox_state()
        assert "errors" not in columns and "ix_outbox_failed" not in indexes and "attempts" in columns
        await asyncio.to_thread(upgrade, url)
        columns, _, diffs = await outbox_state()
        assert "errors" in columns and diffs == []
    finally:
        await engine.dispose()
        await drop_database(base, name)
