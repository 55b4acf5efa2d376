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


# -- throw-away Redis database numbers ---------------------------------------------------------------

CLAIM_KEY = "forecourt-test-db-claim:{number}"  # in database 0; numbers 1-13 are handed out


def redis_url_for(base_url: str, db: int) -> str:
    """The same Redis server as ``base_url``, database number ``db`` (tcp, tls or unix socket URLs)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(base_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"]
    if parts.scheme == "unix":  # unix:///path/redis.sock?db=N (urlunsplit would drop the empty host's //)
        return f"unix://{parts.path}?{urlencode(query + [('db', str(db))])}"
    return urlunsplit(parts._replace(path=f"/{db}", query=urlencode(query)))


def claim_redis_db(base_url: str, *, owner: str) -> int:
    """A Redis database number no concurrent test run or benchmark is using (a lock key in database 0,
    held for an hour at most). Two runs sharing one number would flush each other's keys."""
    import redis

    client = redis.Redis.from_url(redis_url_for(base_url, 0))
    try:
        for number in range(1, 14):
            if client.set(CLAIM_KEY.format(number=number), owner, nx=True, ex=3600):
                return number
    finally:
        client.close()
    raise RuntimeError("no free Redis database number (13 concurrent test runs or benchmarks?)")


def release_redis_db(base_url: str, number: int) -> None:
    import redis

    client = redis.Redis.from_url(redis_url_for(base_url, 0))
    try:
        client.delete(CLAIM_KEY.format(number=number))
    finally:
        client.close()
