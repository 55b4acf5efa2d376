"""The follow-up engine: "do X at time T for record R".

Tasks live in PostgreSQL (nothing is lost with Redis). ``schedule`` is idempotent by key and moves a
pending task when called again (a rescheduled appointment moves its reminders). The worker's cron
calls :func:`run_due`: due rows are claimed with ``FOR UPDATE SKIP LOCKED`` (two workers never run
the same task) and each runs in its own savepoint, so its effects and its "done" commit together.
Other domains add kinds with :func:`handler`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib import sealing
from backend.lib.db import utcnow

from . import rules
from .models import ScheduledTask

log = logging.getLogger("forecourt.scheduler")
Handler = Callable[[AsyncSession, ScheduledTask], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def decorator(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return decorator


async def schedule(session: AsyncSession, *, key: str, kind: str, due_at: datetime, record_type: str | None = None,
                   record_id: int | None = None, branch_id: int | None = None, payload: dict | None = None) -> None:
    if kind not in _handlers:
        raise ValueError(f"no handler for scheduled task kind {kind!r}")
    statement = insert(ScheduledTask).values(key=key, kind=kind, due_at=due_at, record_type=record_type,
                                             record_id=record_id, branch_id=branch_id, payload=payload or {})
    statement = statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"due_at": statement.excluded.due_at, "payload": statement.excluded.payload},
        where=ScheduledTask.status == "pending",
    )
    await session.execute(statement)


async def cancel(session: AsyncSession, *, key: str | None = None, record_type: str | None = None,
                 record_id: int | None = None) -> int:
    query = update(ScheduledTask).where(ScheduledTask.status == "pending").values(status="cancelled",
                                                                                  done_at=utcnow())
    if key is not None:
        query = query.where(ScheduledTask.key == key)
    elif record_type is not None and record_id is not None:
        query = query.where(ScheduledTask.record_type == record_type, ScheduledTask.record_id == record_id)
    else:
        raise ValueError("cancel needs a key or a record")
    return (await session.execute(query)).rowcount


# A literal, not a bind parameter: ix_scheduled_task_due is a partial index WHERE status = 'pending', and
# a generic plan for "status = $1" (which a reused prepared statement may get) could not use it: the
# sweep would read the whole table instead of the few due rows.
_PENDING = literal_column("'pending'")


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[ScheduledTask]:
    result = await session.execute(
        select(ScheduledTask).where(ScheduledTask.status == _PENDING, ScheduledTask.due_at <= now)
        .order_by(ScheduledTask.due_at).limit(limit).with_for_update(skip_locked=True)
    )
    return list(result.scalars())


async def run_due(session: AsyncSession, *, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Run the tasks that are due. The caller's transaction commits them (and what they did)."""
    now = now or utcnow()
    counts = {"done": 0, "retry": 0, "failed": 0}
    for task in await claim_due(session, now, limit):
        run = _handlers.get(task.kind)
        try:
            async with session.begin_nested():
                if run is None:
                    raise LookupError(f"no handler for {task.kind!r}")
                await run(session, task)
        except Exception as exc:  # noqa: BLE001 - one bad task must not block the others
            log.warning("scheduled task %s (%s) failed", task.id, task.kind, exc_info=True)
            task.attempts += 1
            task.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if rules.gives_up(task.attempts):
                task.status, task.done_at = "failed", now
                counts["failed"] += 1
            else:
                task.due_at = rules.retry_at(now, task.attempts)
                counts["retry"] += 1
            continue
        task.status, task.done_at = "done", now
        task.attempts += 1
        counts["done"] += 1
    return counts


URL_PURPOSE = "scheduled-url"


def sealed_url(url: str) -> str:
    """A link for a ``notify`` task's payload: a tracking link opens a customer's record, so the row holds
    it sealed (backend.lib.sealing) and the handler opens it when the reminder is made."""
    return sealing.seal(url, URL_PURPOSE)


@handler("notify")
async def _notify(session: AsyncSession, task: ScheduledTask) -> None:
    """The generic reminder: payload names the recipient, template, params and (sealed) url."""
    from backend.domains.notifications.service import NotificationRequest, notify

    p = task.payload
    await notify(session, NotificationRequest(
        key=f"task:{task.key}", recipient_kind=p["recipient_kind"], recipient_id=int(p["recipient_id"]),
        template=p["template"], params=p.get("params", {}),
        url=sealing.open_sealed(p.get("url"), URL_PURPOSE), category=p.get("category", "service"),
        urgency=p.get("urgency", "normal"), branch_id=task.branch_id,
    ))
