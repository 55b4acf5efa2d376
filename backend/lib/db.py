"""Database engine, sessions and the request's unit of work.

One transaction per request: advanced-alchemy's Litestar plugin hands each handler a session through
the ``db_session`` dependency and commits after a 2xx/3xx answer (rolls back otherwise).
Workers and the CLI open their own unit of work with :func:`unit_of_work`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemyPlugin,
)
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import await_only
from sqlmodel import SQLModel

from .settings import get_settings

# Stable constraint names so Alembic autogenerate and hand-written migrations agree.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def async_url(url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` forms and use asyncpg."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def make_engine(url: str | None = None, **kwargs) -> AsyncEngine:
    settings = get_settings()
    url = async_url(url or settings.database_url or "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set and the embedded database was not started")
    kwargs.setdefault("pool_size", settings.db_pool_size)
    pre_ping = kwargs.pop("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if pre_ping:
        event.listen(engine.sync_engine, "checkout", _ping)
    return engine


def _ping(dbapi_connection, connection_record, connection_proxy) -> None:
    """Check a pooled connection before handing it out, in one round trip: ``SELECT 1`` as a simple query.

    What ``pool_pre_ping`` does, cheaper: SQLAlchemy's asyncpg ping opens a transaction, runs a prepared
    ``;`` and rolls back (three round trips, for pgbouncer's transaction mode, which we do not use), and was
    the largest part of a short request's own work. A connection that fails the ping (database restarted,
    connection killed) is thrown away and the pool hands out a fresh one.
    """
    try:
        await_only(dbapi_connection.driver_connection.execute("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use this connection
        raise DisconnectionError(str(exc)) from exc


def make_session_maker(bind) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=bind, class_=AsyncSession, expire_on_commit=False)


def sqlalchemy_plugin(engine: AsyncEngine, session_maker: async_sessionmaker | None = None) -> SQLAlchemyPlugin:
    config = SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_maker=session_maker or make_session_maker(engine),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        before_send_handler="autocommit_include_redirects",
        create_all=False,
    )
    return SQLAlchemyPlugin(config=config)


@asynccontextmanager
async def unit_of_work(session_maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction outside a request (CLI, jobs): commit on success, roll back on error."""
    async with session_maker() as session:
        async with session.begin():
            yield session
