"""Jobs of the outbox, the notification channels and the follow-up scheduler.

- ``process_outbox_event(event_id)``: handle one outbox event (today: deliver a notification).
  Safe to run twice and from two workers at once: the event row is claimed with ``SKIP LOCKED``
  and marked done in the same transaction as its effect.
- ``sweep_outbox`` (cron): re-enqueue events still pending a while after they were due (Redis lost
  the job, a worker died, the after-commit hand-off failed). A job whose worker was killed stays
  "in progress" in arq until that worker's longest job timeout has passed, and its id cannot be
  enqueued again until then; when no running job holds such an event, the sweeper enqueues it under
  a new id (``outbox-<id>:rescue-<time>``) instead of waiting.
- ``run_due_tasks`` (cron): run scheduled follow-ups that are due.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from arq import Retry
from arq.constants import in_progress_key_prefix
from sqlalchemy import select

from backend.domains.notifications import delivery
from backend.domains.outbox import service as outbox
from backend.domains.outbox.models import OutboxEvent
from backend.domains.scheduler import service as scheduler
from backend.lib.db import unit_of_work, utcnow
from backend.lib.settings import get_settings

log = logging.getLogger("forecourt.jobs")


async def _deliver_notification(session, payload: dict, ctx: dict) -> delivery.Outcome:
    return await delivery.deliver(session, int(payload["notification_id"]), ctx["channels"])


HANDLERS = {"notification.deliver": _deliver_notification}


def outbox_job_id(event_id: int) -> str:
    return f"outbox-{event_id}"


async def enqueue_outbox_events(arq_redis, ids: list[int]) -> None:
    for event_id in ids:
        await arq_redis.enqueue_job("process_outbox_event", event_id, _job_id=outbox_job_id(event_id))


async def process_outbox_event(ctx: dict, event_id: int) -> str:
    retry_in = None
    async with unit_of_work(ctx["session_maker"]) as session:
        event = await outbox.lock_pending(session, event_id)
        if event is None:
            return "nothing to do"  # done already, or another worker holds it
        if event.available_at > utcnow() + timedelta(seconds=1):
            return "not yet due"  # a deferred retry owns it; the sweeper is the safety net
        handle = HANDLERS.get(event.kind)
        if handle is None:
            outbox.mark_failed(event, f"no handler for {event.kind}")
            return "failed"
        outcome = await outbox.run_handler(session, event, lambda: handle(session, event.payload, ctx),
                                           max_errors=get_settings().outbox_max_errors)
        if outcome is None:
            return "error"  # rolled back and counted on the event: retried after a back-off, or given up
        if outcome.finished:
            outbox.mark_done(event)
        else:
            retry_in = outcome.retry_in or 5.0
            outbox.mark_retry(event, timedelta(seconds=retry_in), "temporary failure; retrying")
    if retry_in is not None:
        raise Retry(defer=timedelta(seconds=retry_in))
    return "done"


async def sweep_outbox(ctx: dict) -> int:
    delay = timedelta(seconds=get_settings().outbox_sweep_delay_seconds)
    async with unit_of_work(ctx["session_maker"]) as session:
        ids = await outbox.due_for_sweep(session, older_than=delay)
    arq_redis = ctx["redis"]
    marked_running = []
    for event_id in ids:
        job_id = outbox_job_id(event_id)
        if await arq_redis.enqueue_job("process_outbox_event", event_id, _job_id=job_id) is None \
                and await arq_redis.exists(in_progress_key_prefix + job_id):
            marked_running.append(event_id)
    if ids:
        log.info("sweeper re-enqueued %d outbox events", len(ids))
    if marked_running:
        await _rescue(ctx, marked_running)
    return len(ids)


async def _rescue(ctx: dict, event_ids: list[int]) -> None:
    """Events whose job arq calls in progress although no transaction holds them: the worker that
    ran it died (a running job holds its event's row lock from start to commit). Enqueue each under a
    new id; should the old job still be alive after all, the row lock makes one of the two a no-op."""
    async with unit_of_work(ctx["session_maker"]) as session:
        free = list((await session.execute(
            select(OutboxEvent.id).where(OutboxEvent.id.in_(event_ids), OutboxEvent.status == "pending")
            .with_for_update(skip_locked=True)
        )).scalars())
    stamp = int(time.time())
    for event_id in free:
        await ctx["redis"].enqueue_job("process_outbox_event", event_id,
                                       _job_id=f"{outbox_job_id(event_id)}:rescue-{stamp}")
    if free:
        log.warning("sweeper rescued %d outbox events from a worker that died: %s", len(free), free[:20])


async def run_due_tasks(ctx: dict) -> dict[str, int]:
    async with unit_of_work(ctx["session_maker"]) as session:
        counts = await scheduler.run_due(session, limit=get_settings().scheduler_batch_size)
    if any(counts.values()):
        log.info("scheduled tasks: %s", counts)
    return counts
