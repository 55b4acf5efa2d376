"""Notification use cases: notify someone (idempotently, through the outbox), manage push
subscriptions and channel preferences, read the delivery log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import Principal
from backend.domains.customers import service as customers
from backend.domains.outbox import service as outbox
from backend.lib import sealing
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from . import messages, repository, rules
from .models import Notification, NotificationPreference, PushSubscription
from .rules import URL_PURPOSE, Category

DELIVER = "notification.deliver"


@dataclass(slots=True)
class NotificationRequest:
    key: str  # unique per event and person, e.g. "test_drive:42:booked:customer"
    recipient_kind: str  # staff | customer
    recipient_id: int
    template: str
    params: dict = field(default_factory=dict)
    url: str | None = None
    category: str = Category.SERVICE
    urgency: str = "normal"
    ttl_seconds: int | None = None  # how long a push service keeps it undelivered; None: FORECOURT_PUSH_TTL_SECONDS
    branch_id: int | None = None


async def notify(session: AsyncSession, request: NotificationRequest) -> int | None:
    """Record a notification and its outbox event in the caller's transaction.

    Returns the new id, or None when a notification with this key already exists (the event was
    already told): calling twice never tells twice.
    """
    if not messages.known(request.template):
        raise ValueError(f"unknown notification template {request.template!r}")
    notification_id = await repository.insert_notification(session, {
        "key": request.key, "recipient_kind": request.recipient_kind, "recipient_id": request.recipient_id,
        "template": request.template, "params": request.params,
        # A tracking link opens a customer's record: sealed at rest, opened at send time (delivery.link_of).
        "url": sealing.seal(request.url, URL_PURPOSE) if request.url else None,
        "category": str(request.category), "urgency": request.urgency,
        "ttl_seconds": rules.push_ttl(request.ttl_seconds, get_settings().push_ttl_seconds),
        "branch_id": request.branch_id,
    })
    if notification_id is not None:
        await outbox.record(session, DELIVER, {"notification_id": notification_id})
    return notification_id


async def send_test(session: AsyncSession, principal: Principal) -> int | None:
    """'Send me a test': proves the person's channels work. One per minute per person."""
    minute = utcnow().strftime("%Y%m%d%H%M")
    return await notify(session, NotificationRequest(
        key=f"test:{principal.id}:{minute}", recipient_kind="staff", recipient_id=principal.id,
        template="system.test", params={"name": principal.name}, url="/dashboard", urgency="high",
        branch_id=principal.branch_id,
    ))


# -- push subscriptions -------------------------------------------------------------------------


async def subscribe(session: AsyncSession, *, principal: Principal | None, endpoint: str, p256dh: str, auth: str,
                    tracking_token: str | None = None, user_agent: str | None = None) -> PushSubscription:
    """Staff subscribe with their session; customers with the token of their tracking link."""
    if principal is not None and principal.kind == "staff":
        owner = ("staff", principal.id)
    elif tracking_token:
        link = await customers.resolve_tracking_link(session, tracking_token)
        if link is None:
            raise NotFound(_("This link has expired or is not valid."))
        owner = ("customer", link.customer_id)
    else:
        raise Forbidden(_("Sign in, or open your tracking link, to turn on notifications."))
    return await repository.upsert_subscription(session, {
        "endpoint": endpoint, "p256dh": p256dh, "auth": auth, "owner_kind": owner[0], "owner_id": owner[1],
        "user_agent": (user_agent or "")[:300] or None,
    })


async def renew_subscription(session: AsyncSession, *, old_endpoint: str, endpoint: str, p256dh: str,
                             auth: str) -> PushSubscription:
    """The service worker's ``pushsubscriptionchange``: knowing the old endpoint (a secret URL only
    the browser and we hold) is what authorises moving its owner to the new one."""
    old = await repository.subscription_by_endpoint(session, old_endpoint)
    if old is None:
        raise NotFound()
    owner_kind, owner_id, user_agent = old.owner_kind, old.owner_id, old.user_agent
    if old_endpoint != endpoint:
        await repository.delete_subscription(session, old.id)
    return await repository.upsert_subscription(session, {
        "endpoint": endpoint, "p256dh": p256dh, "auth": auth, "owner_kind": owner_kind, "owner_id": owner_id,
        "user_agent": user_agent,
    })


async def unsubscribe(session: AsyncSession, *, principal: Principal | None, endpoint: str,
                      tracking_token: str | None = None) -> None:
    subscription = await repository.subscription_by_endpoint(session, endpoint)
    if subscription is None:
        return  # already gone: unsubscribing is idempotent
    if principal is not None and principal.kind == "staff":
        allowed = subscription.owner_kind == "staff" and subscription.owner_id == principal.id
    else:
        link = await customers.resolve_tracking_link(session, tracking_token)
        allowed = (link is not None and subscription.owner_kind == "customer"
                   and subscription.owner_id == link.customer_id)
    if not allowed:
        raise NotFound()
    await repository.delete_subscription(session, subscription.id)


async def my_subscriptions(session: AsyncSession, principal: Principal) -> list[dict]:
    return [{"id": s.id, "endpoint_host": urlsplit(s.endpoint).hostname or "", "created_at": s.created_at,
             "user_agent": s.user_agent}
            for s in await repository.subscriptions_of(session, "staff", principal.id)]


# -- preferences --------------------------------------------------------------------------------


async def preference(session: AsyncSession, kind: str, recipient_id: int) -> NotificationPreference:
    return await repository.preference_of(session, kind, recipient_id) or NotificationPreference(
        recipient_kind=kind, recipient_id=recipient_id)


async def set_channels(session: AsyncSession, principal: Principal, channels: list[str]) -> NotificationPreference:
    if not channels:
        raise Invalid(fields={"channels": _("Choose at least one channel.")})
    pref = await repository.preference_of(session, "staff", principal.id)
    if pref is None:
        pref = NotificationPreference(recipient_kind="staff", recipient_id=principal.id)
        session.add(pref)
    pref.channels = channels
    pref.updated_at = utcnow()
    await session.flush()
    return pref


# -- the delivery log ---------------------------------------------------------------------------


async def log_for(session: AsyncSession, *, scope: int | None, status: str | None = None, limit: int = 50,
                  recipient: tuple[str, int] | None = None) -> list[tuple[Notification, list]]:
    """Notifications with their attempts (two queries, no N+1)."""
    notifications = await repository.recent(session, branch_id=scope, status=status, limit=min(max(limit, 1), 200),
                                            recipient=recipient)
    attempts = await repository.attempts_for(session, [n.id for n in notifications])
    by_notification: dict[int, list] = {}
    for attempt in attempts:
        by_notification.setdefault(attempt.notification_id, []).append(attempt)
    return [(n, by_notification.get(n.id, [])) for n in notifications]


async def status_counts(session: AsyncSession, *, scope: int | None) -> dict[str, int]:
    return await repository.counts_by_status(session, branch_id=scope)


async def resend(session: AsyncSession, principal: Principal, notification_id: int) -> int:
    """Send a message that could not be sent once more, as a new notification (the failed one and its
    attempts stay in the log as they were); the new id. Managers only for their branch's messages."""
    from backend.domains.audit import service as audit

    n = await repository.notification_for_update(session, notification_id)
    if n is None or (principal.branch_scope is not None and n.branch_id != principal.branch_scope):
        raise NotFound(_("This message does not exist or is not yours to see."))
    if n.status != "failed":
        raise Conflict(_("Only a message that could not be sent can be sent again."))
    new_id = await notify(session, NotificationRequest(
        key=f"{n.key[:170]}:again:{secrets.token_hex(4)}", recipient_kind=n.recipient_kind,
        recipient_id=n.recipient_id, template=n.template, params=n.params,
        url=sealing.open_sealed(n.url, URL_PURPOSE), category=n.category, urgency=n.urgency,
        ttl_seconds=n.ttl_seconds, branch_id=n.branch_id))
    await audit.record_by(session, principal, action="resend", entity="notification", entity_id=n.id,
                          branch_id=n.branch_id, after={"new_notification_id": new_id})
    return new_id


async def given_up(session: AsyncSession, *, scope: int | None, limit: int = 20) -> tuple[int, list]:
    """Notifications whose delivery raised until the outbox gave up: how many, and the newest."""
    count = await repository.count_given_up(session, kind=DELIVER, branch_id=scope)
    rows = await repository.given_up(session, kind=DELIVER, branch_id=scope, limit=limit) if count else []
    return count, rows
