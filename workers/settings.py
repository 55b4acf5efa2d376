"""arq worker settings: ``forecourt worker`` (or ``arq workers.settings.WorkerSettings``).

Clients (database engine, Redis, the push/e-mail/SMS senders) are made once at start-up and kept
in ``ctx``; jobs take ids, reload their rows and are safe to run twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from arq import cron
from arq.connections import RedisSettings
from arq.worker import func
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import backend.messages  # noqa: F401 - every message and follow-up handler, as in the app
from backend.domains.notifications.channels.email import EmailSender
from backend.domains.notifications.channels.push import PushSender
from backend.domains.notifications.channels.sms import make_sms_provider
from backend.domains.notifications.delivery import Channels
from backend.domains.outbox import service as outbox
from backend.domains.system.service import ensure_vapid_keys
from backend.lib import db
from backend.lib.observability import configure_logging
from backend.lib.redis import make_redis
from backend.lib.settings import get_settings
from backend.lib.templating import make_environment

from . import housekeeping, jobs, notification_jobs, stock_jobs

log = logging.getLogger("forecourt.worker")


def redis_settings() -> RedisSettings:
    settings = get_settings()
    if not settings.redis_url:
        from backend.lib.embedded import ensure_services

        ensure_services()
    redis = RedisSettings.from_dsn(settings.redis_url)
    # Ride out a Redis restart: without retries the first failed poll ends the worker loop. Each
    # command is retried with back-off (about five minutes with the default count); what Redis lost
    # meanwhile, the outbox sweeper enqueues again. What still ends the loop (retries used up, a
    # WatchError while arq claims a job) is restarted by `forecourt worker` (workers/supervisor.py).
    redis.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    redis.retry = RedisRetry(ExponentialBackoff(cap=2.0, base=0.05), retries=settings.worker_redis_retries)
    # The first connection is retried by the same policy; arq's own extra rounds would multiply it.
    redis.conn_retries = 0
    return redis


def sweep_seconds(delay: int) -> set[int]:
    """The sweeper runs at least as often as its delay (every 30 s by default, every second at 1 s)."""
    return set(range(0, 60, max(1, min(30, delay))))


async def make_channels(session_maker, settings) -> Channels:
    async with db.unit_of_work(session_maker) as session:
        vapid = await ensure_vapid_keys(session)
    push = PushSender(vapid["private_pem"], settings.vapid_subject)
    await push.__aenter__()
    return Channels(push=push, email=EmailSender(settings), sms=make_sms_provider(settings),
                    templates=make_environment(), base_url=settings.base_url)


async def startup(ctx: dict) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    ctx["engine"] = db.make_engine(settings.database_url, pool_size=5)
    ctx["session_maker"] = db.make_session_maker(ctx["engine"])
    ctx["redis_app"] = make_redis(settings.redis_url)
    ctx["channels"] = await make_channels(ctx["session_maker"], settings)
    # Events recorded by jobs (a scheduled reminder creates a notification) go out after commit.
    outbox.set_dispatcher(lambda ids: notification_jobs.enqueue_outbox_events(ctx["redis"], ids))
    log.info("worker ready (pid %d)", os.getpid())


async def shutdown(ctx: dict) -> None:
    """Idempotent: the supervisor calls it again when arq's close() stopped early (Redis gone)."""
    outbox.set_dispatcher(None)
    try:  # hand-offs to a Redis that is gone are not waited for: the sweeper enqueues those events again
        await asyncio.wait_for(outbox.drain_background(), timeout=5)
    except TimeoutError:
        log.warning("outbox hand-offs still waiting for Redis at shutdown; the sweeper will enqueue them")
    if channels := ctx.pop("channels", None):
        await channels.push.close()
        await channels.sms.close()
    if engine := ctx.pop("engine", None):
        await engine.dispose()
    if redis_app := ctx.pop("redis_app", None):
        await redis_app.aclose()


class WorkerSettings:
    functions = [
        jobs.ping_database,
        # keep_result=0: the job id frees as soon as the job ends, so the sweeper can enqueue the
        # event again if it is still pending; max_tries covers the channel back-offs.
        func(notification_jobs.process_outbox_event, keep_result=0, max_tries=20),
        # Every job id is new (see enqueue_outbox_events); a batch cut short by a shutdown runs again.
        # Its sends stop after delivery.SEND_BUDGET_SECONDS, well inside the job timeout.
        func(notification_jobs.deliver_outbox_batch, keep_result=0, max_tries=5),
        # A 100,000-row import takes well under a minute; the timeout leaves room for slow machines.
        func(stock_jobs.import_vehicles, keep_result=0, max_tries=5, timeout=900),
    ]
    cron_jobs = [
        cron(notification_jobs.sweep_outbox, second=sweep_seconds(get_settings().outbox_sweep_delay_seconds),
             run_at_startup=True, keep_result=0),
        cron(notification_jobs.run_due_tasks, second={5, 20, 35, 50}, run_at_startup=True, keep_result=0),
        cron(stock_jobs.sweep_stock_imports, second={10}, run_at_startup=True, keep_result=0),
        cron(housekeeping.prune_idempotency_keys, minute={17}, second={40}, keep_result=0),
    ]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    job_timeout = 120
    # On SIGTERM/SIGINT stop taking jobs and let running ones finish (up to 20 s, within docker-compose's
    # 30 s grace) instead of cancelling them: a cancelled send that the push service had already taken
    # would be rolled back and sent again.
    job_completion_wait = 20
    max_tries = 5
    health_check_interval = 30
    # Per host, so `forecourt worker --check` in a container checks that container's worker.
    health_check_key = f"arq:health-check:{socket.gethostname()}"
    keep_result = 3600
