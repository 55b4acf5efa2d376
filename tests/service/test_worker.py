"""The arq worker runs jobs against the real Redis and PostgreSQL, with clients made at start-up."""

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker
from sqlalchemy.engine import make_url

from workers import jobs
from workers.settings import WorkerSettings


async def test_worker_runs_a_job_end_to_end(redis_url, database_url, monkeypatch, settings):
    monkeypatch.setattr(settings, "database_url", database_url)
    redis_settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(redis_settings)
    try:
        await pool.flushdb()
        job = await pool.enqueue_job("ping_database", _job_id="ping-1")
        duplicate = await pool.enqueue_job("ping_database", _job_id="ping-1")
        assert duplicate is None  # one id, one job
        worker = Worker(functions=[jobs.ping_database], redis_settings=redis_settings, burst=True,
                        on_startup=WorkerSettings.on_startup, on_shutdown=WorkerSettings.on_shutdown,
                        poll_delay=0.05, handle_signals=False)
        await worker.main()
        await worker.close()
        assert worker.jobs_complete == 1 and worker.jobs_failed == 0
        assert await job.result(timeout=5) == make_url(database_url).database
    finally:
        await pool.flushdb()
        await pool.aclose()
