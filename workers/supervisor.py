"""Keep ``forecourt worker`` running through Redis trouble, within limits.

arq's worker loop ends on the first Redis error it does not retry itself: a connection that drops
between the ``WATCH`` and the ``MULTI`` with which arq claims a job raises ``WatchError``, and a
command whose retries ran out (``FORECOURT_WORKER_REDIS_RETRIES``) raises ``ConnectionError``. arq
leaves restarting to a supervisor, and ``forecourt run --with-worker`` has none; so the worker is
restarted here, in the same process, after a pause that doubles each time. Jobs lost with Redis
are no concern of this loop: the outbox sweeper enqueues them again.

A loop that keeps failing (more than ``max_restarts`` restarts within ``window`` seconds) is not
helped by more restarts: the process then exits with status 1, for systemd, Docker or Kubernetes to
notice. A clean stop (SIGTERM, SIGINT) ends the process with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Callable

from arq.worker import Worker, get_kwargs
from redis.exceptions import RedisError

log = logging.getLogger("forecourt.worker")
MAX_PAUSE_SECONDS = 60.0
STEP_TIMEOUT_SECONDS = 150.0  # running jobs may take up to arq's job timeout (120 s) to finish
STOP_REDIS_TIMEOUT_SECONDS = 5.0


class StoppableWorker(Worker):
    """arq's worker, except that a stop does not wait for a Redis that is gone.

    Every Redis command is retried for minutes to ride out a restart (``workers/settings.py``); arq's
    ``close()`` deletes its health-check key and closes the pool through the same client, so a SIGTERM
    while Redis was down kept the process for minutes (``forecourt run`` gave up on it after 30 s and left
    it running). Running jobs are still waited for; only the Redis steps are bounded."""

    async def close(self) -> None:
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values())
        await _bounded(self.pool.delete(self.health_check_key), "remove the worker's health check")
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await _bounded(self.pool.close(close_connection_pool=True), "close the Redis pool")
        self._pool = None


async def _bounded(step, what: str) -> None:
    try:
        await asyncio.wait_for(step, STOP_REDIS_TIMEOUT_SECONDS)
    except (TimeoutError, RedisError, OSError):
        log.warning("Redis did not answer while the worker stopped (%s); stopping without it", what)


def stoppable_worker(settings_cls) -> Worker:
    return StoppableWorker(**get_kwargs(settings_cls))


def restart_pause(recent_restarts: int, base: float) -> float:
    """1×, 2×, 4× … the base pause, at most a minute."""
    return min(MAX_PAUSE_SECONDS, base * 2 ** max(0, recent_restarts - 1))


def run_supervised(settings_cls, *, max_restarts: int, window: float, delay: float,
                   make_worker: Callable[..., Worker] = stoppable_worker,
                   sleep: Callable[[float], None] = time.sleep,
                   clock: Callable[[], float] = time.monotonic) -> int:
    """Run arq's worker until it stops cleanly (0) or fails too often (1)."""
    restarts: deque[float] = deque()
    while True:
        worker = make_worker(settings_cls)
        try:
            worker.run()
            return 0
        except Exception as exc:  # noqa: BLE001 - any error that ends the loop is a reason to restart
            error = exc
        _clean_up(worker)
        now = clock()
        restarts.append(now)
        while restarts and now - restarts[0] > window:
            restarts.popleft()
        # A traceback says nothing new about a Redis that cannot be reached; about anything else it does.
        details = None if isinstance(error, (RedisError, OSError)) else error
        if len(restarts) > max_restarts:
            log.critical("worker stopped %d times within %.0f s; giving up (last error: %s: %s)",
                         len(restarts), window, type(error).__name__, error, exc_info=details)
            return 1
        pause = restart_pause(len(restarts), delay)
        log.error("worker stopped on %s: %s; restart %d of at most %d within %.0f s, in %.1f s",
                  type(error).__name__, error, len(restarts), max_restarts, window, pause, exc_info=details)
        sleep(pause)
        log.warning("worker restarting")


def _clean_up(worker: Worker) -> None:
    """What arq's ``close()`` may have skipped when Redis was gone: our shutdown (idempotent) and
    the Redis pool. Then default signal handling, so SIGTERM during the pause ends the process."""
    loop = worker.loop
    for step in (lambda: worker.tasks and asyncio.gather(*worker.tasks.values(), return_exceptions=True),
                 lambda: worker.on_shutdown and worker.on_shutdown(worker.ctx),
                 lambda: worker._pool and worker._pool.aclose(close_connection_pool=True)):
        try:
            coroutine = step()
            if coroutine:
                loop.run_until_complete(asyncio.wait_for(coroutine, timeout=STEP_TIMEOUT_SECONDS))
        except Exception:  # noqa: BLE001 - best effort; the next start makes fresh clients
            log.debug("clean-up after a worker error failed", exc_info=True)
    worker._pool = None
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
