"""The app's connection pool checks a connection before handing it out (one round trip) and replaces one
that the server has dropped, so the request after a database restart does not fail."""

from sqlalchemy import text

from backend.lib import db
from tests.conftest import admin_connection


async def test_a_dropped_connection_is_replaced_before_use(database_url, base_urls):
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        admin = await admin_connection(base_urls[0])
        try:  # as a restart or an idle timeout would: the pooled connection's server end goes away
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()


async def test_a_healthy_connection_is_reused_after_one_round_trip(database_url, base_urls):
    engine = db.make_engine(database_url, pool_size=1, max_overflow=0)
    admin = await admin_connection(base_urls[0])
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        async with engine.connect() as connection:
            # Checked out and not used yet: the last thing the server saw on it is the ping, a plain query
            # outside any transaction (SQLAlchemy's own ping would have been BEGIN; ...; ROLLBACK).
            seen = await admin.fetchrow("SELECT query, state FROM pg_stat_activity WHERE pid = $1", first)
            assert (seen["query"], seen["state"]) == ("SELECT 1", "idle")
            assert await connection.scalar(text("SELECT pg_backend_pid()")) == first
    finally:
        await admin.close()
        await engine.dispose()
