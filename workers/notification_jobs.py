"""Jobs of the outbox, the notification channels and the follow-up scheduler.

- ``deliver_outbox_batch(event_ids)``: the usual path. After a commit the outbox hands its new events
  over in batch jobs of up to ``BATCH_SIZE``; the sweeper does the same with the events it finds. The job
  claims its events, and other due notification events up to ``BATCH_SIZE`` (so one job drains a
  backlog), with ``FOR UPDATE SKIP LOCKED``; delivers their notifications together
  (:func:`delivery.deliver_many`); and marks the events done in the same transaction as the deliveries.
  Two workers never hold the same event, so never send the same notification. A notification that must
  be retried (429/5xx) keeps its event pending with a back-off and goes to the per-event job.
- ``process_outbox_event(event_id)``: handle one outbox event (retries after a back-off, and kinds the
  batch job has no batch handler for). Safe to run twice and from two workers at once, like the batch.
- ``sweep_outbox`` (cron): re-enqueue events still pending a while after they were due (Redis lost
  the job, a worker died, the after-commit hand-off failed). Each sweep enqueues batch jobs under new ids,
  so a job id that arq still holds for a dead worker's job never blocks the rescue; a job that is
  still alive holds its events' row locks, and the new job skips them.
- ``run_due_tasks`` (cron): run scheduled follow-ups that are due.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from arq import Retry

from backend.domains.notifications import delivery, repository, rules
from backend.domains.notifications.service import DELIVER
from backend.domains.outbox import service as outbox
from backend.domains.scheduler import service as scheduler
from backend.lib.db import unit_of_work, utcnow
from backend.lib.settings import get_settings

log = logging.getLogger("forecourt.jobs")
BATCH_SIZE = 100  # events per batch job: enough to amortise the queries, small enough to commit often
BATCH_JOB = "deliver_outbox_batch"


async def _deliver_notification(session, payload: dict, ctx: dict) -> delivery.Outcome:
    return await delivery.deliver(session, int(payload["notification_id"]), ctx["channels"])


HANDLERS = {DELIVER: _deliver_notification}


def outbox_job_id(event_id: int) -> str:
    return f"outbox-{event_id}"


def _chunks(ids: list[int], size: int = BATCH_SIZE) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


async def enqueue_outbox_events(arq_redis, ids: list[int]) -> None:
    """The after-commit hand-off (app and worker): the committed events in batch jobs. The ids are new,
    so the job ids are too."""
    for chunk in _chunks(list(ids)):
        await arq_redis.enqueue_job(BATCH_JOB, chunk, _job_id=f"outbox-batch-{chunk[0]}-{chunk[-1]}")


def _notification_of(event) -> int | None:
    try:
        return int(event.payload["notification_id"]) if event.kind == DELIVER else None
    except (KeyError, TypeError, ValueError):
        return None


async def deliver_outbox_batch(ctx: dict, event_ids: list[int]) -> str:
    """Deliver the notifications of these events and of other due ones, up to ``BATCH_SIZE``."""
    per_event: dict[int, float | None] = {}  # events for process_outbox_event, with their delay
    async with unit_of_work(ctx["session_maker"]) as session:
        events = await outbox.claim_batch(session, event_ids, fill_kind=DELIVER, limit=BATCH_SIZE)
        by_notification = {}
        for event in events:
            notification_id = _notification_of(event)
            if notification_id is None or notification_id in by_notification:
                # Another kind, a payload the batch cannot read, a second event for one notification:
                # one by one, so that whatever is wrong with it holds up no other event.
                per_event[event.id] = None
            else:
                by_notification[notification_id] = event
        outcomes = await delivery.deliver_many(session, list(by_notification), ctx["channels"])
        done = []
        for notification_id, event in by_notification.items():
            outcome = outcomes[notification_id]
            if outcome.finished:
                done.append(event.id)
                continue
            if outcome.error is not None:
                log.error("delivering notification %s failed; it goes to the per-event job", notification_id,
                          exc_info=outcome.error)
            delay = outcome.retry_in or rules.backoff_seconds(event.attempts + 1)
            outbox.mark_retry(event, timedelta(seconds=delay),
                              "temporary failure; retrying" if outcome.error is None
                              else f"{type(outcome.error).__name__}: {outcome.error}")
            per_event[event.id] = delay
        await outbox.mark_done_many(session, done)
    # After the commit, like every hand-off. Lost here (Redis down)? The sweeper finds the events.
    for event_id, delay in per_event.items():
        await ctx["redis"].enqueue_job("process_outbox_event", event_id, _job_id=outbox_job_id(event_id),
                                       _defer_by=timedelta(seconds=delay) if delay else None)
    return f"{len(done)} done, {len(per_event)} to the per-event job"


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
        if outcome is None:  # rolled back and counted on the event: retried after a back-off, or given up
            notification_id = _notification_of(event)
            if event.status == "failed" and notification_id is not None:  # the log says failed, and why
                await repository.give_up(session, notification_id, event.last_error or "given up")
            return "error"
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
    stamp = int(time.time() * 1000)
    for chunk in _chunks(ids):
        await ctx["redis"].enqueue_job(BATCH_JOB, chunk, _job_id=f"outbox-sweep-{stamp}-{chunk[0]}")
    if ids:
        log.info("sweeper re-enqueued %d outbox events", len(ids))
    return len(ids)


async def run_due_tasks(ctx: dict) -> dict[str, int]:
    async with unit_of_work(ctx["session_maker"]) as session:
        counts = await scheduler.run_due(session, limit=get_settings().scheduler_batch_size)
    if any(counts.values()):
        log.info("scheduled tasks: %s", counts)
    return counts
