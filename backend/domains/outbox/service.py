"""Record events in the caller's transaction; hand them to arq once that transaction commits.

A service calls :func:`record`; the row is written with the state change. When the outermost transaction
commits (not when a savepoint is released: ``backend.lib.db.after_transaction``), the new ids go to the
process's dispatcher (the app's or the worker's arq pool), which enqueues batch jobs
(``workers.notification_jobs.enqueue_outbox_events``; they claim their events with :func:`claim_batch`).
Nothing is enqueued before the commit, and nothing is lost if the enqueue fails: the sweeper
(:func:`due_for_sweep`) finds rows still pending after ``outbox_sweep_delay_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import BigInteger, all_, any_, literal, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib import db
from backend.lib.db import utcnow

from . import rules
from .models import OutboxEvent

log = logging.getLogger("forecourt.outbox")
T = TypeVar("T")
PENDING_KEY = "outbox_pending_ids"

Dispatcher = Callable[[list[int]], Awaitable[None]]
_dispatcher: Dispatcher | None = None


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """The app and the worker each install one at start-up; tests install their own."""
    global _dispatcher
    _dispatcher = dispatcher


async def record(session: AsyncSession, kind: str, payload: dict) -> OutboxEvent:
    event_row = OutboxEvent(kind=kind, payload=payload)
    session.add(event_row)
    await session.flush()
    scratch = db.transaction_scratch(session)
    pending = scratch.get(PENDING_KEY)
    if pending is None:  # the transaction's first event: hand them all over once it has committed
        pending = scratch[PENDING_KEY] = []
        db.after_transaction(session, lambda committed: _dispatch(pending) if committed else _nothing())
    pending.append(event_row.id)
    return event_row


async def _nothing() -> None:
    return None


async def _dispatch(ids: list[int]) -> None:
    """Ids of rows written in a savepoint that was rolled back are handed over too: no worker finds them."""
    if _dispatcher is None or not ids:
        return
    try:
        await _dispatcher(list(ids))
    except Exception:  # noqa: BLE001 - Redis may be down; the sweeper re-enqueues later
        log.warning("could not hand outbox events %s to the queue; the sweeper will retry", ids, exc_info=True)


async def drain_background() -> None:
    """Wait for after-commit hand-offs still in flight (shutdown and tests)."""
    await db.drain_after_transaction()


async def lock_pending(session: AsyncSession, event_id: int) -> OutboxEvent | None:
    """The event if it is still pending and no other worker holds it."""
    result = await session.execute(
        select(OutboxEvent).where(OutboxEvent.id == event_id, OutboxEvent.status == "pending")
        .with_for_update(skip_locked=True)
    )
    return result.scalar_one_or_none()


def mark_done(event_row: OutboxEvent) -> None:
    event_row.status = "done"
    event_row.processed_at = utcnow()
    event_row.attempts += 1


def mark_retry(event_row: OutboxEvent, delay: timedelta, error: str) -> None:
    event_row.attempts += 1
    event_row.available_at = utcnow() + delay
    event_row.last_error = error[:1000]


async def run_handler(session: AsyncSession, event_row: OutboxEvent, handle: Callable[[], Awaitable[T]], *,
                      max_errors: int) -> T | None:
    """Run an event's handler in a savepoint; its result, or None if it raised.

    An exception undoes what the handler did, but not the count: the error is recorded on the event
    (committed by the caller's transaction, which still holds the row), the event waits a back-off
    and is then given up after ``max_errors`` errors instead of being retried on every sweep.
    """
    try:
        async with session.begin_nested():
            return await handle()
    except Exception as exc:  # noqa: BLE001 - a bug or poison payload in one event must not loop forever
        note_error(event_row, exc, max_errors)
        return None


def note_error(event_row: OutboxEvent, exc: BaseException, max_errors: int) -> None:
    event_row.errors += 1
    event_row.attempts += 1
    event_row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
    if rules.gives_up(event_row.errors, max_errors):
        event_row.status = "failed"
        event_row.processed_at = utcnow()
        log.error("outbox event %s (%s) raised %d times; given up: %s", event_row.id, event_row.kind,
                  event_row.errors, event_row.last_error, exc_info=exc)
    else:
        event_row.available_at = utcnow() + rules.error_backoff(event_row.errors)
        log.warning("outbox event %s (%s) raised (error %d of at most %d); retrying after a back-off",
                    event_row.id, event_row.kind, event_row.errors, max_errors, exc_info=exc)


def mark_failed(event_row: OutboxEvent, error: str) -> None:
    event_row.status = "failed"
    event_row.attempts += 1
    event_row.processed_at = utcnow()
    event_row.last_error = error[:1000]


async def due_for_sweep(session: AsyncSession, older_than: timedelta, limit: int = 1000) -> list[int]:
    """Pending events that should have been handled by now (lost enqueue, dead worker, Redis flush)."""
    now = utcnow()
    result = await session.execute(
        select(OutboxEvent.id)
        .where(OutboxEvent.status == _PENDING, OutboxEvent.available_at <= now - older_than)
        .order_by(OutboxEvent.available_at)
        .limit(limit)
    )
    return list(result.scalars())


async def requeue(session: AsyncSession, ids: Iterable[int]) -> None:
    """Make events available now (used by an admin 'retry' and by tests)."""
    await session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(list(ids))).values(available_at=utcnow()))


# -- batches: the worker's batch job claims many events at once -------------------------------------

# A literal, not a bind parameter: ix_outbox_pending is a partial index WHERE status = 'pending', and a
# generic plan for "status = $1" (which a reused prepared statement may get) could not use it.
_PENDING = literal_column("'pending'")


async def claim_batch(session: AsyncSession, event_ids: list[int], *, fill_kind: str, limit: int) -> list[OutboxEvent]:
    """Pending, due events that no other worker holds, locked until the caller's transaction ends: the
    named ones first (any kind), then the oldest other due events of ``fill_kind`` up to ``limit``, so
    that one job also drains a backlog. ``SKIP LOCKED``: two workers never hold the same event.

    An event is due when its ``available_at`` has come (a deferred retry owns it until then).
    """
    due_by = utcnow() + timedelta(seconds=1)
    claimed: list[OutboxEvent] = []
    if event_ids:
        result = await session.execute(
            select(OutboxEvent)
            .where(OutboxEvent.id == any_(literal(list(event_ids), ARRAY(BigInteger))),
                   OutboxEvent.status == _PENDING, OutboxEvent.available_at <= due_by)
            .order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True)
        )
        claimed = list(result.scalars())
    if len(claimed) < limit:
        result = await session.execute(
            select(OutboxEvent)
            .where(OutboxEvent.status == _PENDING, OutboxEvent.available_at <= due_by,
                   OutboxEvent.kind == fill_kind,
                   OutboxEvent.id != all_(literal([e.id for e in claimed], ARRAY(BigInteger))))
            .order_by(OutboxEvent.available_at).limit(limit - len(claimed)).with_for_update(skip_locked=True)
        )
        claimed += result.scalars()
    return claimed


async def mark_done_many(session: AsyncSession, event_ids: list[int]) -> None:
    """What :func:`mark_done` does, for many events in one statement."""
    if event_ids:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id == any_(literal(list(event_ids), ARRAY(BigInteger))))
            .values(status="done", processed_at=utcnow(), attempts=OutboxEvent.attempts + 1)
            .execution_options(synchronize_session="fetch")
        )
