"""Notifications through the real channels: the local push service decrypts what we send and checks
our VAPID JWT; the local SMTP server receives the fallback e-mails."""

import pytest
from sqlalchemy import func, select

from backend.domains.customers import service as customers
from backend.domains.notifications import delivery, service
from backend.domains.notifications.models import DeliveryAttempt, Notification, PushSubscription
from backend.domains.notifications.rules import MAX_ATTEMPTS_PER_CHANNEL
from backend.domains.notifications.service import NotificationRequest
from backend.domains.outbox import service as outbox
from backend.domains.outbox.models import OutboxEvent
from tests.factories import as_principal, make_branch, make_user


async def subscribe(session, owner, fake, kind="staff"):
    principal = as_principal(owner) if kind == "staff" else None
    return await service.subscribe(session, principal=principal, endpoint=fake.endpoint, p256dh=fake.p256dh,
                                   auth=fake.auth_b64)


async def attempts(session, notification_id):
    rows = await session.execute(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == notification_id)
                                 .order_by(DeliveryAttempt.id))
    return [(a.channel, a.status) for a in rows.scalars()]


async def test_notify_is_idempotent_and_writes_one_outbox_event(session, redis):
    user = await make_user(session, redis)
    request = NotificationRequest(key="evt:1:staff", recipient_kind="staff", recipient_id=user.id,
                                  template="system.test", params={"name": "Li"})
    first = await service.notify(session, request)
    again = await service.notify(session, request)
    assert first is not None and again is None
    events = (await session.execute(select(OutboxEvent).where(OutboxEvent.kind == "notification.deliver"))).scalars()
    assert [e.payload for e in events] == [{"notification_id": first}]
    with pytest.raises(ValueError):
        await service.notify(session, NotificationRequest(key="x", recipient_kind="staff", recipient_id=user.id,
                                                          template="no.such.template"))


async def test_outbox_events_are_handed_over_only_after_commit(session_maker, redis):
    handed: list[list[int]] = []

    async def collect(ids):
        handed.append(ids)

    outbox.set_dispatcher(collect)
    try:
        async with session_maker() as s:
            async with s.begin():
                rolled_back = await outbox.record(s, "notification.deliver", {"notification_id": 1})
                await s.rollback()
        await outbox.drain_background()
        assert handed == [], "a rolled-back event must never reach the queue"
        async with session_maker() as s:
            async with s.begin():
                event = await outbox.record(s, "notification.deliver", {"notification_id": 2})
                assert handed == [], "nothing is enqueued before the commit"
        await outbox.drain_background()
        assert handed == [[event.id]] and event.id != rolled_back.id
    finally:
        outbox.set_dispatcher(None)


async def test_savepoints_neither_hand_events_over_early_nor_drop_them(session_maker, redis):
    """Bookings record their notifications inside savepoints. Releasing one is not a commit (the worker would
    look for rows it cannot see yet, and the customer's confirmation would wait for the sweeper), and rolling
    one back must not forget the events recorded before it."""
    handed: list[list[int]] = []

    async def collect(ids):
        handed.append(ids)

    outbox.set_dispatcher(collect)
    try:
        async with session_maker() as s:
            async with s.begin():
                first = await outbox.record(s, "notification.deliver", {"notification_id": 3})
                async with s.begin_nested():
                    second = await outbox.record(s, "notification.deliver", {"notification_id": 4})
                await outbox.drain_background()
                assert handed == [], "a released savepoint is not a commit"
                with pytest.raises(LookupError):
                    async with s.begin_nested():
                        await outbox.record(s, "notification.deliver", {"notification_id": 5})
                        raise LookupError
                await outbox.drain_background()
                assert handed == []
        await outbox.drain_background()
        assert len(handed) == 1 and {first.id, second.id} <= set(handed[0])
        async with session_maker() as s:
            async with s.begin():
                async with s.begin_nested():
                    await outbox.record(s, "notification.deliver", {"notification_id": 6})
                await s.rollback()
        await outbox.drain_background()
        assert len(handed) == 1, "released in a savepoint, then rolled back: never handed over"
    finally:
        outbox.set_dispatcher(None)


async def test_push_reaches_the_phone_encrypted_and_signed(session, redis, push_receiver, channels):
    user = await make_user(session, redis, locale="zh_CN")
    fake = push_receiver.subscription()
    await subscribe(session, user, fake)
    nid = await service.notify(session, NotificationRequest(
        key="evt:push:1", recipient_kind="staff", recipient_id=user.id, template="system.test",
        params={"name": "李娜"}, url="/dashboard", urgency="high"))
    outcome = await delivery.deliver(session, nid, channels)
    assert outcome.finished and push_receiver.errors == []
    [message] = push_receiver.for_subscription(fake)
    assert message.payload["title"] == "Forecourt 测试通知"
    assert "李娜" in message.payload["body"] and message.payload["url"] == "/dashboard"
    assert message.urgency == "high" and message.ttl == 86400 and len(message.topic) == 32
    assert message.jwt_claims["sub"] == "mailto:ops@forecourt.test"
    notification = await session.get(Notification, nid)
    assert notification.status == "delivered" and notification.channel == "push"
    # Delivered means delivered: running the job again sends nothing.
    assert (await delivery.deliver(session, nid, channels)).finished
    assert len(push_receiver.for_subscription(fake)) == 1


async def test_dead_subscription_is_removed_and_email_takes_over(session, redis, push_receiver, smtp_receiver,
                                                                  channels):
    user = await make_user(session, redis, locale="en", email="advisor@example.test")
    fake = push_receiver.subscription(script=[410])
    await subscribe(session, user, fake)
    nid = await service.notify(session, NotificationRequest(key="evt:gone", recipient_kind="staff",
                                                            recipient_id=user.id, template="system.test",
                                                            params={"name": "Chen"}, url="/dashboard"))
    outcome = await delivery.deliver(session, nid, channels)
    assert outcome.finished
    assert await attempts(session, nid) == [("push", "gone"), ("push", "failed"), ("email", "sent")]
    count = await session.execute(select(func.count()).select_from(PushSubscription)
                                  .where(PushSubscription.endpoint == fake.endpoint))
    assert count.scalar_one() == 0
    [mail] = smtp_receiver.messages
    assert mail["To"] == "advisor@example.test" and mail["Subject"] == "Forecourt test notification"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Hello Chen" in text and "https://dealer.example/dashboard" in text
    assert 'lang="en"' in html and "Open in Forecourt" in html


async def test_temporary_push_failures_retry_with_backoff_then_fall_back(session, redis, push_receiver,
                                                                         smtp_receiver, channels):
    user = await make_user(session, redis, locale="zh_CN", email="tech@example.test")
    fake = push_receiver.subscription(script=[503] * MAX_ATTEMPTS_PER_CHANNEL)
    await subscribe(session, user, fake)
    nid = await service.notify(session, NotificationRequest(key="evt:flaky", recipient_kind="staff",
                                                            recipient_id=user.id, template="system.test"))
    delays = []
    for _ in range(MAX_ATTEMPTS_PER_CHANNEL - 1):
        outcome = await delivery.deliver(session, nid, channels)
        assert not outcome.finished
        delays.append(outcome.retry_in)
    assert delays == [5, 10, 20, 40]
    outcome = await delivery.deliver(session, nid, channels)
    assert outcome.finished
    history = await attempts(session, nid)
    assert history[-2:] == [("push", "failed"), ("email", "sent")]
    assert [m["Subject"] for m in smtp_receiver.messages] == ["Forecourt 测试通知"]


async def test_a_push_that_recovers_is_delivered_once(session, redis, push_receiver, channels):
    user = await make_user(session, redis)
    fake = push_receiver.subscription(script=[429])
    await subscribe(session, user, fake)
    nid = await service.notify(session, NotificationRequest(key="evt:429", recipient_kind="staff",
                                                            recipient_id=user.id, template="system.test"))
    first = await delivery.deliver(session, nid, channels)
    assert not first.finished and first.retry_in == 5
    assert (await delivery.deliver(session, nid, channels)).finished
    assert len(push_receiver.for_subscription(fake)) == 1
    assert await attempts(session, nid) == [("push", "retry"), ("push", "sent")]


async def test_customers_get_sms_and_marketing_needs_consent(session, redis, channels, caplog):
    branch = await make_branch(session)
    no_consent = await customers.create_customer(session, branch_id=branch.id, name="王先生",
                                                 phone="+86 139 0000 1111", locale="zh_CN")
    service_msg = await service.notify(session, NotificationRequest(
        key="evt:sms", recipient_kind="customer", recipient_id=no_consent.id, template="system.test",
        params={"name": "王先生"}))
    offer = await service.notify(session, NotificationRequest(
        key="evt:offer", recipient_kind="customer", recipient_id=no_consent.id, template="system.test",
        category="marketing"))
    with caplog.at_level("INFO", logger="forecourt.sms"):
        assert (await delivery.deliver(session, service_msg, channels)).finished
        assert (await delivery.deliver(session, offer, channels)).finished
    assert (await session.get(Notification, service_msg)).channel == "sms"
    assert any("13900001111" in r.getMessage() and "王先生" in r.getMessage() for r in caplog.records)
    suppressed = await session.get(Notification, offer)
    assert suppressed.status == "suppressed"
    assert await attempts(session, offer) == [("none", "skipped")]


async def test_customer_subscribes_through_the_tracking_link(session, push_receiver):
    branch = await make_branch(session)
    customer = await customers.create_customer(session, branch_id=branch.id, name="Ms Zhou", phone="13700001111")
    token = await customers.issue_tracking_link(session, customer=customer, record_type="repair_order", record_id=1)
    fake = push_receiver.subscription()
    sub = await service.subscribe(session, principal=None, endpoint=fake.endpoint, p256dh=fake.p256dh,
                                  auth=fake.auth_b64, tracking_token=token)
    assert (sub.owner_kind, sub.owner_id) == ("customer", customer.id)
    from backend.lib.errors import Forbidden, NotFound

    with pytest.raises(NotFound):
        await service.subscribe(session, principal=None, endpoint=fake.endpoint, p256dh=fake.p256dh,
                                auth=fake.auth_b64, tracking_token=token + "x")
    with pytest.raises(Forbidden):
        await service.subscribe(session, principal=None, endpoint=fake.endpoint, p256dh=fake.p256dh,
                                auth=fake.auth_b64)
    await customers.revoke_tracking_link(session, token)
    with pytest.raises(NotFound):
        await service.unsubscribe(session, principal=None, endpoint=fake.endpoint, tracking_token=token)


async def test_renewal_moves_the_subscription_to_the_new_endpoint(session, redis, push_receiver):
    user = await make_user(session, redis)
    old, new = push_receiver.subscription(), push_receiver.subscription()
    await subscribe(session, user, old)
    renewed = await service.renew_subscription(session, old_endpoint=old.endpoint, endpoint=new.endpoint,
                                               p256dh=new.p256dh, auth=new.auth_b64)
    assert (renewed.owner_kind, renewed.owner_id, renewed.endpoint) == ("staff", user.id, new.endpoint)
    from backend.lib.errors import NotFound

    with pytest.raises(NotFound):
        await service.renew_subscription(session, old_endpoint=old.endpoint, endpoint=new.endpoint,
                                         p256dh=new.p256dh, auth=new.auth_b64)
