"""Redis stops and starts again (empty: no persistence) while a worker sends.

The worker is given a short Redis retry budget (``FORECOURT_WORKER_REDIS_RETRIES=3``, under a second)
so that the outage (2 s) is longer than it: arq's loop then ends on a ConnectionError (or a
WatchError, if the drop hits a job claim), and ``forecourt worker`` restarts it in the same process
until Redis answers again. Nothing is lost (the sweeper enqueues what the restart lost) and nothing
is sent twice. Then: a Redis that never comes back ends the worker with status 1 after its restarts,
and ``forecourt worker --check`` answers at once instead of retrying.
"""

import asyncio
import sys

import pytest

from tests.faults.conftest import ROOT, RedisServer, _free_port

PUSH, EMAIL = 30, 4
OUTAGE_SECONDS = 2.0
QUICK_RESTARTS = {"FORECOURT_WORKER_REDIS_RETRIES": "3", "FORECOURT_WORKER_RESTART_DELAY_SECONDS": "0.2",
                  "FORECOURT_WORKER_MAX_RESTARTS": "20", "FORECOURT_WORKER_RESTART_WINDOW_SECONDS": "60"}


async def check_health(lab, redis_url: str) -> tuple[int, str]:
    env = lab.worker_env(REDIS_URL=redis_url, FORECOURT_REDIS_URL=redis_url)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "backend.cli", "worker", "--check", env=env,
                                                   cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    return process.returncode, output.decode(errors="replace")


@pytest.mark.parametrize("lab", [{"push_delay": 0.25, "smtp_delay": 0.25}], indirect=True)
async def test_a_redis_restart_restarts_the_worker_loop_and_loses_nothing(lab):
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "restarted")
    worker = await lab.start_worker(**QUICK_RESTARTS)
    await lab.wait_for(lambda: len(lab.push.received) >= 5, "the first sends", 20, worker)

    await lab.redis.stop()
    pending_at_stop = len(keys) - await lab.delivered_count(keys)
    await lab.wait_for(lambda: "worker stopped on" in worker.text(), "the worker loop to stop", 20, worker)
    await asyncio.sleep(OUTAGE_SECONDS)
    await lab.redis.start()

    await lab.wait_delivered(keys, worker)
    await lab.settle()
    assert worker.alive, "the worker process must survive a Redis restart"
    counts = await lab.assert_each_delivered_once(keys)
    log = worker.text()
    assert "worker restarting" in log and log.count("worker ready") >= 2, log[-5000:]
    assert "giving up" not in log
    # The restarted worker recorded its health in the new, empty Redis: the health check sees it.
    status, output = await check_health(lab, lab.redis.url)
    assert status == 0, output
    restarts = log.count("worker restarting")
    print(f"\nRedis down {OUTAGE_SECONDS:.0f} s with {pending_at_stop} of {len(keys)} pending, "
          f"{restarts} restarts of the worker loop; {counts}")


async def test_a_redis_that_never_returns_ends_the_worker_with_status_1(lab, tmp_path):
    nowhere = RedisServer(tmp_path)  # a free port where no Redis ever listens
    nowhere.port = _free_port()
    env = QUICK_RESTARTS | {"FORECOURT_WORKER_REDIS_RETRIES": "1", "FORECOURT_WORKER_MAX_RESTARTS": "2",
                            "FORECOURT_WORKER_RESTART_DELAY_SECONDS": "0.1",
                            "REDIS_URL": nowhere.url, "FORECOURT_REDIS_URL": nowhere.url}
    worker, (status, output) = await asyncio.gather(lab.start_worker(wait=False, **env),
                                                    check_health(lab, nowhere.url))
    assert status == 1 and "Redis is unreachable" in output, output
    await asyncio.wait_for(worker.process.wait(), timeout=30)
    log = worker.text()
    assert worker.process.returncode == 1, log
    assert log.count("worker restarting") == 2 and "stopped 3 times within 60 s; giving up" in log, log


async def test_a_worker_stops_promptly_on_sigterm_while_redis_is_down(lab):
    """With the default retry budget (minutes, to ride out a restart), a stop used to wait for Redis too:
    SIGTERM while Redis was down kept the worker for minutes (``forecourt run`` gave up after 30 s and left
    it running). The Redis steps of the stop are bounded now; the stop itself is clean (status 0)."""
    import signal
    import time

    worker = await lab.start_worker()
    await lab.redis.stop()
    await asyncio.sleep(0.5)  # the worker's poll now retries against a Redis that is gone
    began = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(worker.process.wait(), timeout=60)
    took = time.monotonic() - began
    log = worker.text()
    assert worker.process.returncode == 0, log
    assert took < 20 and "stopping without it" in log, (took, log[-3000:])
    print(f"\nSIGTERM with Redis down: the worker stopped in {took:.1f} s")
