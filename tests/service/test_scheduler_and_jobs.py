"""The follow-up scheduler and the outbox jobs, run in-process against the real database."""

import json
from datetime import timedelta

import pytest
from arq import Retry
from sqlalchemy import select

from backend.domains.notifications import delivery
from backend.domains.notifications import service as notifications
from backend.domains.notifications.models import Notification
from backend.domains.notifications.service import NotificationRequest
from backend.domains.outbox.models import OutboxEvent
from backend.domains.scheduler import service as scheduler
from backend.domains.scheduler.models import ScheduledTask
from backend.lib.db import utcnow
from tests.factories import make_user
from workers import notification_jobs


class FakeQueue:
    """Stands in for the arq pool in ``ctx['redis']``: records what would be enqueued."""

    def __init__(self):
        self.jobs = []

    async def enqueue_job(self, name, *args, _job_id=None, _defer_by=None):
        self.jobs.append((name, args, _job_id))

    async def exists(self, *keys):  # the sweeper asks whether a job it could not enqueue is running
        return 0


def reminder(user, key="td:1:reminder", due_in=timedelta(minutes=-1)):
    return dict(key=key, kind="notify", due_at=utcnow() + due_in, record_type="test_drive", record_id=1,
                payload={"recipient_kind": "staff", "recipient_id": user.id, "template": "system.test",
                         "params": {"name": user.name}, "url": "/dashboard"})


async def test_scheduling_is_idempotent_and_reschedules(session, redis):
    user = await make_user(session, redis)
    await scheduler.schedule(session, **reminder(user, due_in=timedelta(hours=24)))
    later = utcnow() + timedelta(hours=48)
    await scheduler.schedule(session, **(reminder(user) | {"due_at": later}))
    [task] = (await session.execute(select(ScheduledTask).where(ScheduledTask.key == "td:1:reminder"))).scalars()
    assert task.due_at == later and task.status == "pending"
    with pytest.raises(ValueError):
        await scheduler.schedule(session, key="x", kind="no-such-kind", due_at=utcnow())


async def test_due_tasks_run_once_and_notify(session, redis):
    user = await make_user(session, redis)
    await scheduler.schedule(session, **reminder(user))
    await scheduler.schedule(session, **reminder(user, key="td:1:later", due_in=timedelta(hours=1)))
    assert await scheduler.run_due(session) == {"done": 1, "retry": 0, "failed": 0}
    assert await scheduler.run_due(session) == {"done": 0, "retry": 0, "failed": 0}
    sent = (await session.execute(select(Notification).where(Notification.key == "task:td:1:reminder"))).scalars()
    assert len(list(sent)) == 1


async def test_cancelled_tasks_do_not_run(session, redis):
    user = await make_user(session, redis)
    await scheduler.schedule(session, **reminder(user))
    assert await scheduler.cancel(session, record_type="test_drive", record_id=1) == 1
    assert await scheduler.run_due(session) == {"done": 0, "retry": 0, "failed": 0}


async def test_a_failing_task_retries_then_gives_up_without_blocking_others(session, redis):
    user = await make_user(session, redis)
    calls = []

    @scheduler.handler("explodes")
    async def explode(s, task):
        calls.append(task.id)
        raise RuntimeError("boom")

    await scheduler.schedule(session, key="bad", kind="explodes", due_at=utcnow() - timedelta(minutes=1))
    await scheduler.schedule(session, **reminder(user))
    assert await scheduler.run_due(session) == {"done": 1, "retry": 1, "failed": 0}
    bad = (await session.execute(select(ScheduledTask).where(ScheduledTask.key == "bad"))).scalar_one()
    assert bad.attempts == 1 and bad.due_at > utcnow() and "boom" in bad.last_error
    for _ in range(4):
        await scheduler.run_due(session, now=bad.due_at + timedelta(seconds=1))
    assert bad.status == "failed" and len(calls) == 5


async def test_outbox_job_delivers_once_and_sweeper_finds_stragglers(session_maker, session, redis,
                                                                     push_receiver, channels):
    user = await make_user(session, redis)
    fake = push_receiver.subscription()
    from tests.factories import as_principal

    await notifications.subscribe(session, principal=as_principal(user), endpoint=fake.endpoint,
                                  p256dh=fake.p256dh, auth=fake.auth_b64)
    nid = await notifications.notify(session, NotificationRequest(key="job:1", recipient_kind="staff",
                                                                  recipient_id=user.id, template="system.test"))
    await session.commit()
    event = (await session.execute(select(OutboxEvent).where(OutboxEvent.payload["notification_id"].as_integer()
                                                             == nid))).scalar_one()
    queue = FakeQueue()
    ctx = {"session_maker": session_maker, "channels": channels, "redis": queue}

    # The after-commit hand-off was lost (no dispatcher): the sweeper finds the event once it is overdue.
    from backend.lib.settings import get_settings

    settings = get_settings()
    original = settings.outbox_sweep_delay_seconds
    settings.outbox_sweep_delay_seconds = 0
    try:
        assert await notification_jobs.sweep_outbox(ctx) >= 1
    finally:
        settings.outbox_sweep_delay_seconds = original
    assert [args for name, args, _ in queue.jobs if name == "deliver_outbox_batch"] == [([event.id],)]

    assert await notification_jobs.process_outbox_event(ctx, event.id) == "done"
    assert await notification_jobs.process_outbox_event(ctx, event.id) == "nothing to do"
    assert len(push_receiver.for_subscription(fake)) == 1
    await session.refresh(event)
    assert event.status == "done" and event.processed_at is not None


async def test_outbox_job_asks_arq_to_retry_on_temporary_failure(session_maker, session, redis, push_receiver,
                                                                  channels):
    user = await make_user(session, redis)
    fake = push_receiver.subscription(script=[503])
    from tests.factories import as_principal

    await notifications.subscribe(session, principal=as_principal(user), endpoint=fake.endpoint,
                                  p256dh=fake.p256dh, auth=fake.auth_b64)
    nid = await notifications.notify(session, NotificationRequest(key="job:retry", recipient_kind="staff",
                                                                  recipient_id=user.id, template="system.test"))
    await session.commit()
    event = (await session.execute(select(OutboxEvent).where(OutboxEvent.payload["notification_id"].as_integer()
                                                             == nid))).scalar_one()
    ctx = {"session_maker": session_maker, "channels": channels, "redis": FakeQueue()}
    with pytest.raises(Retry):
        await notification_jobs.process_outbox_event(ctx, event.id)
    await session.refresh(event)
    assert event.status == "pending" and event.attempts == 1 and event.available_at > utcnow()
    # Too early: the deferred retry owns it.
    assert await notification_jobs.process_outbox_event(ctx, event.id) == "not yet due"
    event.available_at = utcnow()
    await session.commit()
    assert await notification_jobs.process_outbox_event(ctx, event.id) == "done"
    assert len(push_receiver.for_subscription(fake)) == 1


async def test_a_reminder_link_is_sealed_in_the_task_and_opened_into_the_notification(session, redis):
    user = await make_user(session, redis)
    link = "/track/SECRET-TOKEN-abc"
    task_args = reminder(user, key="sealed-link")
    task_args["payload"]["url"] = scheduler.sealed_url(link)
    await scheduler.schedule(session, **task_args)
    task = (await session.execute(select(ScheduledTask).where(ScheduledTask.key == "sealed-link"))).scalar_one()
    assert "SECRET-TOKEN" not in json.dumps(task.payload)
    assert (await scheduler.run_due(session))["done"] == 1
    made = (await session.execute(select(Notification).where(Notification.key == "task:sealed-link"))).scalar_one()
    assert "SECRET-TOKEN" not in made.url and delivery.link_of(made) == link
