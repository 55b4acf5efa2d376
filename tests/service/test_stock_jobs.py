"""The import job in a real arq worker: it takes an id, reloads the import, and may run twice; the sweeper
enqueues imports whose job was lost."""

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func
from sqlalchemy import func as sql_func
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from backend.domains.stock.models import Vehicle, VehicleImport
from backend.domains.stock.service import StockService, import_job_id
from tests.factories import as_principal, make_branch, make_user
from tests.stock_factories import new_vin
from workers import stock_jobs
from workers.settings import WorkerSettings


class NoRedis:
    pass


async def test_the_worker_imports_a_file_and_a_second_run_changes_nothing(engine, redis_url, database_url,
                                                                          monkeypatch, settings):
    monkeypatch.setattr(settings, "database_url", database_url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    vins = [new_vin("LWRKR") for _ in range(12)]
    data = ("VIN,Make,Model,Model year,Body,Powertrain,Condition,List price\n" + "".join(
        f"{vin},Changan,UNI-V,2025,sedan,petrol,new,113900\n" for vin in vins)).encode()
    async with maker() as session, session.begin():
        branch = await make_branch(session)
        manager = as_principal(await make_user(session, NoRedis(), role="manager", branch=branch))
        record = await StockService(session).start_import(manager, "uni-v.csv", data)
        stale = await StockService(session).start_import(manager, "lost.csv", data)
        await session.execute(text("UPDATE vehicle_import SET created_at = now() - interval '5 minutes' "
                                   "WHERE id = :id"), {"id": stale.id})
    redis_settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(redis_settings)
    try:
        await pool.flushdb()
        assert await pool.enqueue_job("import_vehicles", record.id, _job_id=import_job_id(record.id)) is not None
        assert await pool.enqueue_job("import_vehicles", record.id, _job_id=import_job_id(record.id)) is None
        worker = Worker(functions=[func(stock_jobs.import_vehicles, keep_result=0),
                                   func(stock_jobs.sweep_stock_imports)],
                        redis_settings=redis_settings, burst=True, on_startup=WorkerSettings.on_startup,
                        on_shutdown=WorkerSettings.on_shutdown, poll_delay=0.05, handle_signals=False)
        await worker.main()
        assert worker.jobs_complete == 1 and worker.jobs_failed == 0
        async with maker() as session:
            done = await session.get(VehicleImport, record.id)
            assert (done.state, done.inserted, done.rejected) == ("done", 12, 0)
            assert await session.scalar(select(sql_func.count()).select_from(Vehicle)
                                        .where(Vehicle.branch_id == branch.id)) == 12

        # Run again (a retry, a duplicate delivery): nothing changes.
        ctx = {"session_maker": maker}
        assert await stock_jobs.import_vehicles(ctx, record.id) == "done"

        # The sweeper finds the import whose job never ran, and the worker then runs it.
        await pool.enqueue_job("sweep_stock_imports")
        await worker.main()
        await worker.close()
        async with maker() as session:
            lost = await session.get(VehicleImport, stale.id)
            assert (lost.state, lost.inserted, lost.unchanged) == ("done", 0, 12)
    finally:
        await pool.flushdb()
        await pool.aclose()
        async with maker() as session, session.begin():
            for statement in ("DELETE FROM vehicle_import_rejection WHERE import_id IN "
                              "(SELECT id FROM vehicle_import WHERE branch_id = :b)",
                              "DELETE FROM vehicle_import WHERE branch_id = :b",
                              "DELETE FROM audit_log WHERE branch_id = :b", "DELETE FROM vehicle WHERE branch_id = :b",
                              "DELETE FROM staff_user WHERE branch_id = :b", "DELETE FROM branch WHERE id = :b"):
                await session.execute(text(statement), {"b": branch.id})
