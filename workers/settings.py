"""arq worker settings: ``forecourt worker`` or ``arq workers.settings.WorkerSettings``.

Clients (database engine, Redis) are made once at start-up and kept in ``ctx``; jobs take ids,
reload their rows and are safe to run twice.
"""

from __future__ import annotations

from arq.connections import RedisSettings

from backend.lib import db
from backend.lib.observability import configure_logging
from backend.lib.redis import make_redis
from backend.lib.settings import get_settings

from . import jobs


def redis_settings() -> RedisSettings:
    settings = get_settings()
    if not settings.redis_url:
        from backend.lib.embedded import ensure_services

        ensure_services()
    return RedisSettings.from_dsn(settings.redis_url)


async def startup(ctx: dict) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    ctx["engine"] = db.make_engine(settings.database_url, pool_size=5)
    ctx["session_maker"] = db.make_session_maker(ctx["engine"])
    ctx["redis_app"] = make_redis(settings.redis_url)


async def shutdown(ctx: dict) -> None:
    await ctx["engine"].dispose()
    await ctx["redis_app"].aclose()


class WorkerSettings:
    functions = [jobs.ping_database]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    job_timeout = 120
    max_tries = 5
    health_check_interval = 30
    keep_result = 3600
