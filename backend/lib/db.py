"""Database engine, sessions and the request's unit of work.

One transaction per request: advanced-alchemy's Litestar plugin hands each handler a session through
the ``db_session`` dependency and commits after a 2xx/3xx answer (rolls back otherwise).
Workers and the CLI open their own unit of work with :func:`unit_of_work`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
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
from sqlalchemy.orm import Session, SessionTransaction
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


# -- after the transaction -----------------------------------------------------------------------------------
#
# What others may only learn once it is true ("this slot is booked", "these events exist") must wait for the
# real commit. SQLAlchemy's ``after_commit`` also fires when a savepoint is released and ``after_rollback`` when
# one is rolled back, so these hooks look only at the outermost transaction: callbacks and scratch data live
# until it ends, and the callbacks then run with whether it committed.

_TX = "forecourt_transaction"
_after_tasks: set[asyncio.Task] = set()
log = logging.getLogger("forecourt.db")


def _state(session: Session) -> dict:
    return session.info.setdefault(_TX, {"callbacks": [], "committed": False, "scratch": {}})


def transaction_scratch(session: AsyncSession) -> dict:
    """A dict that lives as long as the session's current (outermost) transaction."""
    return _state(session.sync_session)["scratch"]


def after_transaction(session: AsyncSession, callback: Callable[[bool], Awaitable[None]]) -> None:
    """Run ``callback(committed)`` once the session's outermost transaction has ended, committed or not. It runs
    as a task of the event loop (skipped, with a warning, when the transaction ends outside one)."""
    _state(session.sync_session)["callbacks"].append(callback)


@event.listens_for(Session, "after_commit")
def _mark_committed(session: Session) -> None:
    if session.get_nested_transaction() is None and _TX in session.info:  # not a savepoint's release
        session.info[_TX]["committed"] = True


@event.listens_for(Session, "after_transaction_end")
def _run_after(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:  # a savepoint or a nested unit: the transaction goes on
        return
    state = session.info.pop(_TX, None)
    if not state or not state["callbacks"]:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        log.warning("a transaction ended outside an event loop; %d after-transaction callbacks skipped",
                    len(state["callbacks"]))
        return
    for callback in state["callbacks"]:
        task = loop.create_task(_run_callback(callback, state["committed"]))
        _after_tasks.add(task)
        task.add_done_callback(_after_tasks.discard)


async def _run_callback(callback: Callable[[bool], Awaitable[None]], committed: bool) -> None:
    try:
        await callback(committed)
    except Exception:  # noqa: BLE001 - the transaction is over; a failed callback must not hide its outcome
        log.warning("an after-transaction callback failed", exc_info=True)


async def drain_after_transaction() -> None:
    """Wait for after-transaction callbacks still running (shutdown and tests)."""
    while _after_tasks:
        await asyncio.gather(*list(_after_tasks), return_exceptions=True)
