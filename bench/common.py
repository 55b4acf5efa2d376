"""What every benchmark here needs: the servers' URLs, the app's environment, a port, a running app and its
end, percentiles, a plain asyncpg connection. Not collected by pytest."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"


def configured_urls() -> tuple[str | None, str | None]:
    """The URLs the app itself would use (prefixed names win, as in Settings)."""
    return (os.environ.get("FORECOURT_DATABASE_URL") or os.environ.get("DATABASE_URL"),
            os.environ.get("FORECOURT_REDIS_URL") or os.environ.get("REDIS_URL"))


def server_env(database_url: str, redis_url: str, log_level: str = "WARNING", **settings: str) -> dict[str, str]:
    """The app's environment: these servers, JSON logs, development mode (local http keeps cookies non-Secure
    so clients send them back), and any further ``FORECOURT_*`` settings."""
    env = os.environ.copy()
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        env[name] = env[f"FORECOURT_{name}"] = value
    env |= {"FORECOURT_ENV": "development", "FORECOURT_LOG_JSON": "true", "FORECOURT_LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1"}
    env |= {f"FORECOURT_{name.upper()}": value for name, value in settings.items()}
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ready(process: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    """Until ``/ready`` answers 200 (PostgreSQL and Redis reached); the log's end if the server exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"http://{HOST}:{port}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not become ready in {timeout:.0f} s:\n{tail(log)}")


def stop(process: subprocess.Popen) -> None:
    """Terminate politely, kill after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


async def connect(database_url: str):
    """A plain asyncpg connection to ``database_url`` (any of its spellings, a socket folder included)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from backend.lib.db import async_url

    url = make_url(async_url(database_url))
    kwargs = {"user": url.username, "password": url.password, "database": url.database}
    kwargs |= {"host": url.query["host"]} if url.query.get("host") else {"host": url.host, "port": url.port or 5432}
    return await asyncpg.connect(**kwargs)


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
