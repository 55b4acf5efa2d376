"""The restart loop around arq's worker, with stand-in workers and a fake clock (the real thing, with a
real Redis stopped and started, is in tests/faults/test_redis_restarted.py)."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from workers.supervisor import restart_pause, run_supervised


class FakeWorker:
    def __init__(self, outcome, shutdowns):
        self.outcome = outcome
        self.loop = asyncio.new_event_loop()
        self.ctx = {}
        self.tasks = {}
        self._pool = None
        self._shutdowns = shutdowns

    async def on_shutdown(self, ctx):
        self._shutdowns.append(ctx)

    def run(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome


class Scenario:
    """Worker outcomes in order (an exception, or None for a clean stop) and a clock in seconds."""

    def __init__(self, outcomes, times):
        self.outcomes, self.times = list(outcomes), list(times)
        self.pauses, self.shutdowns, self.workers = [], [], []

    @property
    def made(self):
        return len(self.workers)

    def make_worker(self, settings_cls):
        self.workers.append(FakeWorker(self.outcomes.pop(0), self.shutdowns))
        return self.workers[-1]

    def clock(self):
        return self.times.pop(0)

    def run(self, **limits):
        try:
            return run_supervised(object, make_worker=self.make_worker, sleep=self.pauses.append, clock=self.clock,
                                  **({"max_restarts": 3, "window": 60.0, "delay": 1.0} | limits))
        finally:
            for worker in self.workers:
                worker.loop.close()


def test_a_clean_stop_ends_with_status_0_and_no_restart():
    scenario = Scenario([None], [])
    assert scenario.run() == 0 and scenario.made == 1 and scenario.pauses == []


def test_redis_errors_restart_the_worker_with_growing_pauses_then_it_runs_on(caplog):
    scenario = Scenario([WatchError("watched connection dropped"), RedisConnectionError("refused"), None], [0, 1])
    assert scenario.run() == 0
    assert scenario.made == 3 and scenario.pauses == [1.0, 2.0]
    assert len(scenario.shutdowns) == 2  # our shutdown ran after each failure, whatever arq's close() did
    restarts = [r.getMessage() for r in caplog.records if "restart 1 of at most 3" in r.getMessage()]
    assert restarts and "WatchError" in restarts[0]


def test_too_many_restarts_within_the_window_exit_with_status_1(caplog):
    failures = [RedisConnectionError("refused")] * 4
    scenario = Scenario(failures, [0, 1, 2, 3])
    assert scenario.run() == 1
    assert scenario.made == 4 and len(scenario.pauses) == 3
    assert any(r.levelname == "CRITICAL" and "giving up" in r.getMessage() for r in caplog.records)


def test_restarts_spread_beyond_the_window_never_give_up():
    failures = [RedisConnectionError("refused")] * 6
    scenario = Scenario([*failures, None], [0, 100, 200, 300, 400, 500])
    assert scenario.run(max_restarts=1, window=60.0) == 0 and scenario.made == 7


@pytest.mark.parametrize(("recent", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)])
def test_restart_pause_doubles_up_to_a_minute(recent, expected):
    assert restart_pause(recent, 2.0) == expected
