"""A stored subscription whose key is not a P-256 point (stored before the API checked the curve)
cannot be encrypted for: the push channel gives up on it and e-mail takes over, instead of the
delivery raising on every attempt."""

import base64
import secrets

from sqlalchemy import select

from backend.domains.notifications import delivery, repository, service
from backend.domains.notifications.models import DeliveryAttempt
from backend.domains.notifications.service import NotificationRequest
from tests.factories import make_user


async def test_a_key_off_the_curve_falls_back_to_email(session, redis, push_receiver, smtp_receiver, channels):
    user = await make_user(session, redis, locale="en", email="bad-key@example.test")
    fake = push_receiver.subscription()
    off_curve = base64.urlsafe_b64encode(b"\x04" + bytes(64)).rstrip(b"=").decode()
    await repository.upsert_subscription(session, {"endpoint": fake.endpoint, "p256dh": off_curve,
                                                   "auth": fake.auth_b64, "owner_kind": "staff", "owner_id": user.id})
    nid = await service.notify(session, NotificationRequest(key=f"bad-key:{secrets.token_hex(4)}",
                                                            recipient_kind="staff", recipient_id=user.id,
                                                            template="system.test"))
    outcome = await delivery.deliver(session, nid, channels)
    assert outcome.finished
    rows = (await session.execute(select(DeliveryAttempt).where(DeliveryAttempt.notification_id == nid)
                                  .order_by(DeliveryAttempt.id))).scalars().all()
    assert [(a.channel, a.status) for a in rows] == [("push", "rejected"), ("push", "failed"), ("email", "sent")]
    assert "cannot encrypt" in rows[0].error
    assert push_receiver.requests == 0 and [m["To"] for m in smtp_receiver.messages] == ["bad-key@example.test"]
