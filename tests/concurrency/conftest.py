"""Two real app processes (uvicorn) against one committed database, for races that a single process or a
rolled-back test transaction could never show.

``two_apps`` makes a fresh database (``forecourt_race_<pid>``, migrated), claims a Redis database number of
its own, starts two ``uvicorn backend.app:create_app`` processes on free ports and yields their base URLs
with an engine on the database, so tests can set data up (committed) and check the outcome. Everything is
stopped and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from backend.lib.migrate import upgrade
from backend.lib.redis import make_redis
from tests.conftest import (
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from tests.servers import listening_socket, uvicorn_args

ROOT = Path(__file__).resolve().parents[2]
RACE_DB = f"forecourt_race_{os.getpid()}"
START_TIMEOUT = 40.0


@dataclass
class Apps:
    urls: list[str]
    engine: AsyncEngine
    redis_url: str


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _healthy(process: asyncio.subprocess.Process, url: str, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while True:
            if process.returncode is not None:
                pytest.fail(f"app process exited with {process.returncode}:\n{_read(log)}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"app process did not start:\n{_read(log)}")
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def two_apps(base_urls, tmp_path_factory) -> AsyncIterator[Apps]:
    base_db, base_redis = base_urls
    await recreate_database(base_db, RACE_DB)
    database_url = database_url_for(base_db, RACE_DB)
    number = claim_redis_db(base_redis, owner=f"tests-{os.getpid()}")
    redis_url = redis_url_for(base_redis, number)
    engine = create_async_engine(database_url, poolclass=NullPool)
    processes: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.to_thread(upgrade, database_url)
        env = os.environ.copy()
        for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
            env[name] = env[f"FORECOURT_{name}"] = value
        env |= {"FORECOURT_LOG_JSON": "false", "FORECOURT_LOG_LEVEL": "WARNING", "FORECOURT_DB_POOL_SIZE": "8",
                "PYTHONUNBUFFERED": "1"}
        urls, logs = [], []
        folder = tmp_path_factory.mktemp("two_apps")
        for n in range(2):
            sock = listening_socket()
            urls.append(f"http://127.0.0.1:{sock.getsockname()[1]}")
            log = folder / f"app{n}.log"
            with log.open("wb") as out, sock:
                processes.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", *uvicorn_args(sock),
                    "--no-access-log", pass_fds=(sock.fileno(),), env=env, cwd=ROOT, stdout=out,
                    stderr=asyncio.subprocess.STDOUT))
            logs.append(log)
        await asyncio.gather(*(_healthy(p, u, log) for p, u, log in zip(processes, urls, logs, strict=True)))
        yield Apps(urls=urls, engine=engine, redis_url=redis_url)
        for log in logs:  # a 500 would have been logged with its traceback
            assert "Traceback" not in _read(log), _read(log)
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await engine.dispose()
        redis = make_redis(redis_url)
        try:
            await redis.flushdb()
        finally:
            await redis.aclose()
        release_redis_db(base_redis, number)
        await drop_database(base_db, RACE_DB)
