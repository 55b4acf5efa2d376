"""Batched delivery: one job claims many outbox events and delivers their notifications together, with
the guarantees of the per-event path. Real PostgreSQL (a rolled-back transaction), the local push service
that decrypts every message, the local SMTP server."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from backend.domains.customers import service as customers
from backend.domains.notifications import delivery, messages, service
from backend.domains.notifications.models import DeliveryAttempt, Notification, PushSubscription
from backend.domains.notifications.service import NotificationRequest
from backend.domains.outbox import service as outbox
from backend.domains.outbox.models import OutboxEvent
from backend.lib.db import utcnow
from tests.factories import as_principal, make_branch, make_user
from workers import notification_jobs


class FakeQueue:
    """Stands in for the arq pool in ``ctx['redis']``: records what would be enqueued."""

    def __init__(self):
        self.jobs = []

    async def enqueue_job(self, name, *args, _job_id=None, _defer_by=None):
        self.jobs.append((name, args, _job_id, _defer_by))


async def subscribe(session, user, fake):
    await service.subscribe(session, principal=as_principal(user), endpoint=fake.endpoint, p256dh=fake.p256dh,
                            auth=fake.auth_b64)


async def attempts(session, notification_id):
    rows = await session.execute(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == notification_id)
                                 .order_by(DeliveryAttempt.id))
    return [(a.channel, a.status) for a in rows.scalars()]


async def event_of(session, notification_id) -> OutboxEvent:
    return (await session.execute(select(OutboxEvent).where(
        OutboxEvent.payload["notification_id"].as_integer() == notification_id))).scalar_one()


def request(key, user, **extra) -> NotificationRequest:
    return NotificationRequest(key=key, recipient_kind="staff", recipient_id=user.id, template="system.test",
                               params={"name": key}, url="/dashboard", **extra)


async def test_committed_events_go_to_batch_jobs_of_at_most_a_hundred():
    queue = FakeQueue()
    await notification_jobs.enqueue_outbox_events(queue, list(range(1, 251)))
    assert [(name, len(args[0]), job_id) for name, args, job_id, _ in queue.jobs] == [
        ("deliver_outbox_batch", 100, "outbox-batch-1-100"),
        ("deliver_outbox_batch", 100, "outbox-batch-101-200"),
        ("deliver_outbox_batch", 50, "outbox-batch-201-250"),
    ]


async def test_a_batch_with_mixed_outcomes(session_maker, session, redis, push_receiver, smtp_receiver, channels):
    branch = await make_branch(session)
    users = {name: await make_user(session, redis, branch=branch, email=f"{name}@example.test", locale="en")
             for name in ("ok", "gone", "flaky", "done")}
    fakes = {"ok": push_receiver.subscription(), "gone": push_receiver.subscription(script=[410]),
             "flaky": push_receiver.subscription(script=[503]), "done": push_receiver.subscription()}
    for name, user in users.items():
        await subscribe(session, user, fakes[name])
    ids = {name: await service.notify(session, request(f"batch:{name}", user)) for name, user in users.items()}
    shopper = await customers.create_customer(session, branch_id=branch.id, name="No Consent", phone="13900002222")
    ids["offer"] = await service.notify(session, NotificationRequest(
        key="batch:offer", recipient_kind="customer", recipient_id=shopper.id, template="system.test",
        category="marketing"))
    # "done" was delivered already (say its first job committed, then the hand-off was repeated), and
    # telling the same event again makes no second notification.
    assert (await delivery.deliver(session, ids["done"], channels)).finished
    assert await service.notify(session, request("batch:done", users["done"])) is None
    await session.commit()
    events = {name: (await event_of(session, nid)).id for name, nid in ids.items()}

    queue = FakeQueue()
    ctx = {"session_maker": session_maker, "channels": channels, "redis": queue}
    assert await notification_jobs.deliver_outbox_batch(ctx, list(events.values())) == \
        "4 done, 1 to the per-event job"

    assert push_receiver.errors == []
    assert {name: len(push_receiver.for_subscription(fake)) for name, fake in fakes.items()} == \
        {"ok": 1, "gone": 0, "flaky": 0, "done": 1}
    [ok_message] = push_receiver.for_subscription(fakes["ok"])
    assert ok_message.payload["tag"] == "batch:ok" and "batch:ok" in ok_message.payload["body"]
    assert ok_message.ttl == 86400 and ok_message.urgency == "normal" and len(ok_message.topic) == 32
    statuses = {name: (n.status, n.channel) for name, nid in ids.items()
                if (n := await session.get(Notification, nid, populate_existing=True))}
    assert statuses == {"ok": ("delivered", "push"), "gone": ("delivered", "email"), "flaky": ("pending", None),
                        "done": ("delivered", "push"), "offer": ("suppressed", None)}
    assert await attempts(session, ids["ok"]) == [("push", "sent")]
    assert await attempts(session, ids["done"]) == [("push", "sent")]  # not sent a second time
    assert await attempts(session, ids["flaky"]) == [("push", "retry")]
    assert await attempts(session, ids["offer"]) == [("none", "skipped")]
    # 410: the subscription is removed, and e-mail takes over.
    assert await attempts(session, ids["gone"]) == [("push", "gone"), ("push", "failed"), ("email", "sent")]
    remaining = await session.execute(select(func.count()).select_from(PushSubscription)
                                      .where(PushSubscription.endpoint == fakes["gone"].endpoint))
    assert remaining.scalar_one() == 0
    assert [m["To"] for m in smtp_receiver.messages] == ["gone@example.test"]
    # 503: the event stays pending with a back-off, handed to the per-event job, deferred by it.
    outbox_rows = {name: await session.get(OutboxEvent, eid, populate_existing=True) for name, eid in events.items()}
    assert {name: e.status for name, e in outbox_rows.items()} == {
        "ok": "done", "gone": "done", "flaky": "pending", "done": "done", "offer": "done"}
    flaky = outbox_rows["flaky"]
    assert flaky.attempts == 1 and flaky.available_at > utcnow()
    assert queue.jobs == [("process_outbox_event", (flaky.id,), f"outbox-{flaky.id}", timedelta(seconds=5))]

    # Too early for the batch as well: the deferred retry owns the event until its back-off has passed.
    assert await notification_jobs.deliver_outbox_batch(ctx, [flaky.id]) == "0 done, 0 to the per-event job"
    flaky.available_at = utcnow()
    await session.commit()
    assert await notification_jobs.process_outbox_event(ctx, flaky.id) == "done"
    assert len(push_receiver.for_subscription(fakes["flaky"])) == 1
    assert await attempts(session, ids["flaky"]) == [("push", "retry"), ("push", "sent")]
    # Everything is done: running the batch again sends nothing.
    assert await notification_jobs.deliver_outbox_batch(ctx, list(events.values())) == \
        "0 done, 0 to the per-event job"
    assert push_receiver.requests == 5


async def test_a_broken_notification_or_event_does_not_hold_up_the_others(
        session_maker, session, redis, push_receiver, channels, monkeypatch):
    def broken(params):
        return messages.Message(title=params["missing"], body="")

    monkeypatch.setitem(messages._registry, "test.broken", broken)
    user = await make_user(session, redis)
    fake = push_receiver.subscription()
    await subscribe(session, user, fake)
    good = await service.notify(session, request("render:good", user))
    bad = await service.notify(session, NotificationRequest(key="render:bad", recipient_kind="staff",
                                                            recipient_id=user.id, template="test.broken"))
    unreadable = await outbox.record(session, service.DELIVER, {"notification": "?"})
    await session.commit()
    good_event, bad_event = await event_of(session, good), await event_of(session, bad)
    queue = FakeQueue()
    ctx = {"session_maker": session_maker, "channels": channels, "redis": queue}

    assert await notification_jobs.deliver_outbox_batch(ctx, [good_event.id, bad_event.id, unreadable.id]) == \
        "1 done, 2 to the per-event job"
    assert [r.payload["tag"] for r in push_receiver.for_subscription(fake)] == ["render:good"]
    # The template raised: nothing was written for it; it waits out a back-off, then goes one by one.
    await session.refresh(bad_event)
    assert bad_event.status == "pending" and bad_event.attempts == 1 and "KeyError" in bad_event.last_error
    assert await attempts(session, bad) == []
    # The batch cannot read the other event's payload: it goes one by one at once, failing there alone.
    assert sorted(job[:3] for job in queue.jobs) == sorted([
        ("process_outbox_event", (bad_event.id,), f"outbox-{bad_event.id}"),
        ("process_outbox_event", (unreadable.id,), f"outbox-{unreadable.id}")])


async def test_push_ttl_defaults_to_the_setting(session, redis, push_receiver, channels, settings, monkeypatch):
    monkeypatch.setattr(settings, "push_ttl_seconds", 600)
    user = await make_user(session, redis)
    fake = push_receiver.subscription()
    await subscribe(session, user, fake)
    default = await service.notify(session, request("ttl:default", user))
    own = await service.notify(session, request("ttl:own", user, ttl_seconds=60))
    outcomes = await delivery.deliver_many(session, [default, own], channels)
    assert all(o.finished and o.error is None for o in outcomes.values())
    assert sorted((m.payload["tag"], m.ttl) for m in push_receiver.for_subscription(fake)) == \
        [("ttl:default", 600), ("ttl:own", 60)]


async def test_a_batch_stops_waiting_for_a_hanging_push_service(session_maker, session, redis, channels,
                                                                monkeypatch):
    """Its time is up: what was sent is recorded, what is still sending retries on its own (the job is not
    left to hit arq's timeout, which would roll the whole batch back and send it all again)."""
    from tests.push_receiver import PushReceiver

    class HangsFor(PushReceiver):
        def __init__(self):
            super().__init__()
            self.hanging: set[str] = set()
            self.release = asyncio.Event()

        async def _handle(self, request):
            if request.match_info["name"] in self.hanging:
                await self.release.wait()
            return await super()._handle(request)

    monkeypatch.setattr(delivery, "SEND_BUDGET_SECONDS", 1.0)
    receiver = await HangsFor().start()
    try:
        quick_user, stuck_user = await make_user(session, redis), await make_user(session, redis)
        quick, stuck = receiver.subscription(), receiver.subscription()
        receiver.hanging.add(stuck.name)
        await subscribe(session, quick_user, quick)
        await subscribe(session, stuck_user, stuck)
        ids = [await service.notify(session, request("budget:quick", quick_user)),
               await service.notify(session, request("budget:stuck", stuck_user))]
        await session.commit()
        quick_event, stuck_event = [await event_of(session, nid) for nid in ids]
        queue = FakeQueue()
        ctx = {"session_maker": session_maker, "channels": channels, "redis": queue}

        assert await notification_jobs.deliver_outbox_batch(ctx, [quick_event.id, stuck_event.id]) == \
            "1 done, 1 to the per-event job"
        assert [r.payload["tag"] for r in receiver.received] == ["budget:quick"]
        await session.refresh(stuck_event)
        assert stuck_event.status == "pending" and "TimeoutError" in stuck_event.last_error
        assert await attempts(session, ids[1]) == []
        assert (await session.get(Notification, ids[1], populate_existing=True)).status == "pending"
        assert [job[:3] for job in queue.jobs] == [
            ("process_outbox_event", (stuck_event.id,), f"outbox-{stuck_event.id}")]
    finally:
        receiver.release.set()
        await receiver.stop()
