"""A handler that raises is rolled back but counted; after ``outbox_max_errors`` the event is given up.

Before, an exception rolled back the attempt with everything else, so the event stayed untouched and
was retried on every sweep for ever.
"""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from backend.domains.notifications.models import DeliveryAttempt, Notification
from backend.domains.notifications.service import NotificationRequest, notify
from backend.domains.outbox import rules
from backend.domains.outbox import service as outbox
from backend.domains.outbox.models import OutboxEvent
from backend.lib.db import utcnow
from tests.factories import make_user
from workers import notification_jobs

EXPLODES = "test.explodes"


class FakeQueue:
    async def enqueue_job(self, name, *args, _job_id=None):
        return None

    async def exists(self, *keys):
        return 0


@pytest.fixture
def explosive_handler(monkeypatch):
    """A handler that writes (a delivery attempt) and then raises, as a bug half-way through would."""
    calls = []

    async def explode(session, payload, ctx):
        calls.append(payload)
        session.add(DeliveryAttempt(notification_id=payload["notification_id"], channel="push", status="sent",
                                    at=utcnow()))
        await session.flush()
        raise KeyError("template parameter 'name'")

    monkeypatch.setitem(notification_jobs.HANDLERS, EXPLODES, explode)
    return calls


@pytest.fixture
def max_errors(settings, monkeypatch):
    monkeypatch.setattr(settings, "outbox_max_errors", 3)
    return 3


def test_backoff_doubles_up_to_a_cap_and_gives_up_at_the_limit():
    assert [rules.error_backoff(n).total_seconds() for n in (1, 2, 3, 9, 30)] == [5, 10, 20, 900, 900]
    assert not rules.gives_up(9, 10) and rules.gives_up(10, 10) and rules.gives_up(1, 0)


async def test_an_exception_is_rolled_back_counted_and_given_up_after_the_limit(
        session_maker, session, redis, explosive_handler, max_errors, caplog):
    user = await make_user(session, redis)
    nid = await notify(session, NotificationRequest(key="explodes:1", recipient_kind="staff", recipient_id=user.id,
                                                    template="system.test"))
    event = await outbox.record(session, EXPLODES, {"notification_id": nid})
    await session.commit()
    ctx = {"session_maker": session_maker, "channels": None, "redis": FakeQueue()}

    results = []
    for _ in range(max_errors):
        results.append(await notification_jobs.process_outbox_event(ctx, event.id))
        await session.refresh(event)
        if event.status == "pending":
            # Backed off: not due before its time; the sweeper would bring it back then.
            assert event.available_at > utcnow()
            assert await notification_jobs.process_outbox_event(ctx, event.id) == "not yet due"
            event.available_at = utcnow()
            await session.commit()

    assert results == ["error"] * max_errors and len(explosive_handler) == max_errors
    await session.refresh(event)
    assert event.status == "failed" and event.errors == max_errors and event.attempts == max_errors
    assert event.processed_at is not None and event.last_error == "KeyError: \"template parameter 'name'\""
    # What the handler wrote before raising was rolled back each time; the notification is untouched.
    written = await session.scalar(select(func.count()).select_from(DeliveryAttempt)
                                   .where(DeliveryAttempt.notification_id == nid))
    assert written == 0
    assert (await session.get(Notification, nid)).status == "pending"
    # Given up: the job and the sweeper leave it alone from now on.
    assert await notification_jobs.process_outbox_event(ctx, event.id) == "nothing to do"
    assert event.id not in await outbox.due_for_sweep(session, older_than=timedelta(0))
    assert len(explosive_handler) == max_errors
    assert any("given up" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_a_channel_retry_is_not_an_error(session, session_maker, redis, push_receiver, channels, max_errors):
    """Temporary push failures count as attempts, never towards the error limit."""
    from backend.domains.notifications import service as notifications
    from tests.factories import as_principal

    user = await make_user(session, redis)
    fake = push_receiver.subscription(script=[503] * (max_errors + 1))
    await notifications.subscribe(session, principal=as_principal(user), endpoint=fake.endpoint,
                                  p256dh=fake.p256dh, auth=fake.auth_b64)
    nid = await notify(session, NotificationRequest(key="retry:many", recipient_kind="staff", recipient_id=user.id,
                                                    template="system.test"))
    await session.commit()
    event = (await session.execute(select(OutboxEvent).where(
        OutboxEvent.payload["notification_id"].as_integer() == nid))).scalar_one()
    ctx = {"session_maker": session_maker, "channels": channels, "redis": FakeQueue()}
    from arq import Retry

    for _ in range(max_errors):
        with pytest.raises(Retry):
            await notification_jobs.process_outbox_event(ctx, event.id)
        event.available_at = utcnow()
        await session.commit()
    await session.refresh(event)
    assert event.status == "pending" and event.errors == 0 and event.attempts == max_errors


async def test_run_handler_returns_the_result_when_nothing_raises(session):
    event = await outbox.record(session, EXPLODES, {})

    async def fine():
        return "ok"

    assert await outbox.run_handler(session, event, fine, max_errors=1) == "ok"
    assert event.errors == 0 and event.status == "pending"


async def test_a_delivery_given_up_marks_its_notification_failed_with_the_error(
        session_maker, session, redis, monkeypatch, max_errors):
    """The log must not show a message as pending for ever once the system stopped trying."""
    from backend.domains.notifications.service import DELIVER

    async def broken(session, payload, ctx):
        raise KeyError("template parameter 'name'")

    monkeypatch.setitem(notification_jobs.HANDLERS, DELIVER, broken)
    user = await make_user(session, redis)
    nid = await notify(session, NotificationRequest(key="gives-up:1", recipient_kind="staff", recipient_id=user.id,
                                                    template="system.test"))
    await session.commit()
    event = (await session.execute(select(OutboxEvent).where(
        OutboxEvent.payload["notification_id"].as_integer() == nid))).scalar_one()
    ctx = {"session_maker": session_maker, "channels": None, "redis": FakeQueue()}
    for n in range(max_errors):
        assert await notification_jobs.process_outbox_event(ctx, event.id) == "error"
        await session.refresh(event)
        notification = await session.get(Notification, nid, populate_existing=True)
        assert notification.status == ("pending" if n < max_errors - 1 else "failed")
        event.available_at = utcnow()
        await session.commit()
    [attempt] = (await session.execute(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == nid))
                 ).scalars().all()
    assert (attempt.channel, attempt.status) == ("none", "failed") and "template parameter" in attempt.error
