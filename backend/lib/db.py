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
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
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
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


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
