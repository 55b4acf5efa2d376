"""Two batch jobs at once, as two workers would run them, against committed rows in a database of their own
(``forecourt_batch_<pid>``): their claims never overlap, so no notification is sent twice.

The push receiver holds every answer until the test opens its gate, so both jobs are caught in the
middle of their sends, each holding its claim, while the test looks on.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import pytest
from sqlalchemy import func, insert, select

from backend.domains.accounts.models import StaffUser
from backend.domains.branches import service as branches
from backend.domains.notifications import repository
from backend.domains.notifications import service as notifications
from backend.domains.notifications.channels.email import EmailSender
from backend.domains.notifications.channels.push import PushSender
from backend.domains.notifications.channels.sms import LoggingSmsProvider
from backend.domains.notifications.delivery import Channels
from backend.domains.notifications.models import DeliveryAttempt, Notification, PushSubscription
from backend.domains.notifications.service import NotificationRequest
from backend.domains.outbox.models import OutboxEvent
from backend.domains.system.service import ensure_vapid_keys
from backend.lib import db
from backend.lib.migrate import upgrade
from backend.lib.templating import make_environment
from tests.conftest import database_url_for, drop_database, recreate_database
from tests.push_receiver import PushReceiver
from workers import notification_jobs

BATCH_DB = f"forecourt_batch_{os.getpid()}"


class GatedReceiver(PushReceiver):
    """Answers nothing until ``gate`` is set: the senders' messages pile up in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = 0

    async def _handle(self, request):
        self.in_flight += 1
        await self.gate.wait()
        return await super()._handle(request)


class FakeQueue:
    def __init__(self):
        self.jobs = []

    async def enqueue_job(self, name, *args, _job_id=None, _defer_by=None):
        self.jobs.append((name, args, _job_id))


@pytest.fixture(scope="module")
async def committed(base_urls):
    """A session maker on a migrated database of this module's own, whose transactions really commit."""
    base_db, _ = base_urls
    await recreate_database(base_db, BATCH_DB)
    url = database_url_for(base_db, BATCH_DB)
    await asyncio.to_thread(upgrade, url)
    engine = db.make_engine(url, pool_size=6)
    try:
        yield db.make_session_maker(engine)
    finally:
        await engine.dispose()
        await drop_database(base_db, BATCH_DB)


async def worker_context(maker, settings) -> dict:
    """What one worker makes at start-up: its own push sender (its own aiohttp session)."""
    async with db.unit_of_work(maker) as session:
        vapid = await ensure_vapid_keys(session)
    push = PushSender(vapid["private_pem"], "mailto:ops@forecourt.test")
    channels = Channels(push=push, email=EmailSender(settings), sms=LoggingSmsProvider(),
                        templates=make_environment(), base_url="https://dealer.example")
    return {"session_maker": maker, "channels": channels, "redis": FakeQueue()}


async def notify_many(maker, receiver, count: int, prefix: str) -> list[int]:
    """``count`` staff, one push subscription each, one notification each: committed; their event ids."""
    async with db.unit_of_work(maker) as session:
        group = await branches.create_group(session, f"{prefix} group")
        branch = await branches.create_branch(session, group_id=group.id, code=prefix[:8].upper(), name=prefix,
                                              name_en=prefix, address="1 Road", timezone="Asia/Shanghai")
        staff_ids = (await session.execute(insert(StaffUser).returning(StaffUser.id), [
            {"email": f"{prefix}{i}@example.test", "name": f"{prefix} {i}", "password_hash": "!", "role": "sales",
             "branch_id": branch.id} for i in range(count)])).scalars().all()
        ids = []
        for i, staff_id in enumerate(staff_ids):
            fake = receiver.subscription()
            await repository.upsert_subscription(session, {
                "endpoint": fake.endpoint, "p256dh": fake.p256dh, "auth": fake.auth_b64, "owner_kind": "staff",
                "owner_id": staff_id})
            ids.append(await notifications.notify(session, NotificationRequest(
                key=f"{prefix}:{i}", recipient_kind="staff", recipient_id=staff_id, template="system.test")))
        events = await session.execute(select(OutboxEvent.id).where(
            OutboxEvent.payload["notification_id"].as_integer().in_(ids)).order_by(OutboxEvent.id))
        return list(events.scalars())


async def until(condition, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_two_concurrent_batches_claim_disjoint_events_and_send_each_notification_once(committed, settings):
    receiver = await GatedReceiver().start()
    contexts = [await worker_context(committed, settings) for _ in range(3)]
    try:
        event_ids = await notify_many(committed, receiver, 150, "race")
        # Two workers get the same 150 events (say the after-commit hand-off and a sweep): one claims up to
        # a batch of 100, the other, skipping those locks, the rest.
        first = asyncio.create_task(notification_jobs.deliver_outbox_batch(contexts[0], event_ids))
        second = asyncio.create_task(notification_jobs.deliver_outbox_batch(contexts[1], event_ids))
        await until(lambda: receiver.in_flight >= 150)
        await asyncio.sleep(0.3)
        # Both hold their claims at this moment (no answer has come back, nothing is committed), and
        # between them every notification is in flight exactly once.
        assert receiver.in_flight == 150 and not first.done() and not second.done()
        # A third worker finds every event held: its per-event and batch jobs send nothing.
        third = contexts[2]
        assert await notification_jobs.process_outbox_event(third, event_ids[0]) == "nothing to do"
        assert await notification_jobs.process_outbox_event(third, event_ids[-1]) == "nothing to do"
        assert await notification_jobs.deliver_outbox_batch(third, event_ids) == "0 done, 0 to the per-event job"
        assert receiver.in_flight == 150

        receiver.gate.set()
        results = await asyncio.gather(first, second)
        done_counts = [int(result.split()[0]) for result in results]
        assert sum(done_counts) == 150 and min(done_counts) > 0 and max(done_counts) <= 100, results
        assert all(result.endswith(" done, 0 to the per-event job") for result in results)
        assert receiver.errors == []
        tags = Counter(message.payload["tag"] for message in receiver.received)
        assert len(tags) == 150 and set(tags.values()) == {1}
        async with committed() as session:
            statuses = dict((await session.execute(
                select(Notification.status, func.count()).where(Notification.key.like("race:%"))
                .group_by(Notification.status))).all())
            sent = (await session.execute(select(func.count()).select_from(DeliveryAttempt)
                                          .where(DeliveryAttempt.status == "sent"))).scalar_one()
            done = (await session.execute(select(func.count()).select_from(OutboxEvent)
                                          .where(OutboxEvent.id.in_(event_ids), OutboxEvent.status == "done")))
            assert statuses == {"delivered": 150} and sent == 150 and done.scalar_one() == 150
        # All done: the same jobs again send nothing.
        assert await notification_jobs.deliver_outbox_batch(contexts[0], event_ids) == \
            "0 done, 0 to the per-event job"
        assert receiver.requests == 150
    finally:
        receiver.gate.set()
        for context in contexts:
            await context["channels"].push.close()
        await receiver.stop()


async def test_one_batch_job_drains_a_backlog_of_due_events(committed, settings):
    """Events whose own job was lost (Redis flushed) are picked up by any batch job with room to spare."""
    receiver = await PushReceiver().start()
    context = await worker_context(committed, settings)
    try:
        event_ids = await notify_many(committed, receiver, 30, "backlog")
        assert await notification_jobs.deliver_outbox_batch(context, event_ids[:1]) == \
            "30 done, 0 to the per-event job"
        assert sorted(m.payload["tag"] for m in receiver.received) == sorted(f"backlog:{i}" for i in range(30))
    finally:
        await context["channels"].push.close()
        await receiver.stop()


async def test_a_batch_never_waits_for_subscription_rows_another_transaction_holds(committed, settings):
    """Two batches can write one person's subscriptions at once (two notifications to them in two
    batches). Neither waits for the other, so they cannot deadlock (which would roll one back and make it
    send everything again): a row another transaction holds is left to it."""
    receiver = await PushReceiver().start()
    context = await worker_context(committed, settings)
    try:
        event_ids = await notify_many(committed, receiver, 2, "held")
        for fake in list(receiver.subscriptions.values())[1:]:
            fake.script = [410]  # the second person's subscription is dead
        async with committed() as other, other.begin():
            await other.execute(select(PushSubscription.id).where(PushSubscription.endpoint.in_(
                [fake.endpoint for fake in receiver.subscriptions.values()])).with_for_update())
            # The batch completes while the other transaction holds both rows.
            result = await asyncio.wait_for(notification_jobs.deliver_outbox_batch(context, event_ids), 20)
            assert result == "2 done, 0 to the per-event job"
        async with committed() as session:
            rows = (await session.execute(select(PushSubscription.endpoint, PushSubscription.last_success_at)
                                          .join(StaffUser, StaffUser.id == PushSubscription.owner_id)
                                          .where(StaffUser.email.like("held%")))).all()
            # Both writes were skipped: the dead one goes at its next 410, the other is stamped next time.
            assert len(rows) == 2 and all(at is None for _, at in rows)
            attempts = (await session.execute(select(DeliveryAttempt.status).join(
                Notification, Notification.id == DeliveryAttempt.notification_id)
                .where(Notification.key.like("held:%")).order_by(DeliveryAttempt.id))).scalars().all()
            assert sorted(attempts) == ["failed", "gone", "sent"]
    finally:
        await context["channels"].push.close()
        await receiver.stop()
