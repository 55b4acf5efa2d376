"""Stock jobs: run an import, and re-enqueue imports whose job was lost.

``import_vehicles(import_id)`` takes the id of a stored import, reloads it and is safe to run twice
(see ``backend.domains.stock.service.run_import``). It is enqueued after the upload's transaction
commits, with the job id ``stock-import-<id>``; the sweeper covers a lost enqueue or a dead worker.
"""

from __future__ import annotations

import logging

from backend.domains.stock import service as stock
from backend.lib.db import unit_of_work

log = logging.getLogger("forecourt.jobs")


async def enqueue_import(arq_redis, import_id: int) -> None:
    await arq_redis.enqueue_job(stock.IMPORT_JOB, import_id, _job_id=stock.import_job_id(import_id))


async def import_vehicles(ctx: dict, import_id: int) -> str:
    outcome = await stock.run_import(ctx["session_maker"], import_id)
    log.info("stock import %s: %s", import_id, outcome, extra={"job": "import_vehicles", "job_id": import_id})
    return outcome


async def sweep_stock_imports(ctx: dict) -> int:
    async with unit_of_work(ctx["session_maker"]) as session:
        ids = await stock.stale_imports(session, queued_for=60, running_for=900)
    for import_id in ids:
        await enqueue_import(ctx["redis"], import_id)
    if ids:
        log.info("re-enqueued stock imports %s", ids)
    return len(ids)
