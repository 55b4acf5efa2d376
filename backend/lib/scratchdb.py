"""Create and drop throw-away databases on a server (the tests' and the benchmarks' own databases)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from .db import async_url


def database_url_for(base_url: str, name: str) -> str:
    """The same server as ``base_url``, another database."""
    return make_url(async_url(base_url)).set(database=name).render_as_string(hide_password=False)


async def admin_connection(base_url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to the server's maintenance database (TCP or unix socket)."""
    url = make_url(async_url(base_url))
    kwargs = {"user": url.username, "password": url.password, "database": url.database or "postgres"}
    if host := url.query.get("host"):
        kwargs["host"] = host
    else:
        kwargs |= {"host": url.host, "port": url.port or 5432}
    return await asyncpg.connect(**kwargs)


async def recreate_database(base_url: str, name: str) -> None:
    conn = await admin_connection(base_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(base_url: str, name: str) -> None:
    conn = await admin_connection(base_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
