"""Deliver one notification: the person's channels in order, falling back when one fails for good.

Runs in a worker inside one transaction that holds the notification's row lock (``SKIP LOCKED``:
two workers never send the same notification at once). A success, a fallback or a final failure is
committed with the attempts that led to it; a temporary failure commits the attempt and asks the
caller to try again after a back-off. A delivered notification is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.customers.models import Customer
from backend.lib.db import utcnow
from backend.lib.i18n import html_lang

from . import messages, repository, rules
from .channels.email import EmailSender
from .channels.push import PushSender
from .channels.sms import SmsProvider
from .models import DeliveryAttempt, Notification, NotificationPreference


@dataclass(slots=True)
class Channels:
    """The senders a worker makes once at start-up."""

    push: PushSender | None
    email: EmailSender
    sms: SmsProvider
    templates: Environment
    base_url: str


@dataclass(frozen=True, slots=True)
class Outcome:
    finished: bool
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class _Recipient:
    locale: str | None
    email: str | None
    phone: str | None
    marketing_consent: bool


@dataclass(frozen=True, slots=True)
class _ChannelResult:
    status: str  # sent | retry | failed
    error: str | None = None
    retry_after: int | None = None


async def _recipient(session: AsyncSession, n: Notification) -> _Recipient | None:
    if n.recipient_kind == "staff":
        user = await session.get(StaffUser, n.recipient_id)
        if user is None or not user.is_active:
            return None
        return _Recipient(locale=user.locale, email=user.email, phone=None, marketing_consent=False)
    customer = await session.get(Customer, n.recipient_id)
    if customer is None:
        return None
    return _Recipient(locale=customer.locale, email=customer.email, phone=customer.phone,
                      marketing_consent=customer.marketing_consent)


def _attempt(session: AsyncSession, n: Notification, channel: str, status: str, target: str = "",
             error: str | None = None) -> None:
    session.add(DeliveryAttempt(notification_id=n.id, channel=channel, target=target[:200], status=status,
                                error=(error or None) and error[:500], at=utcnow()))


async def deliver(session: AsyncSession, notification_id: int, channels: Channels) -> Outcome:
    n = await repository.lock_pending_notification(session, notification_id)
    if n is None:
        return Outcome(finished=True)  # delivered, failed or suppressed already, or another worker has it
    recipient = await _recipient(session, n)
    if recipient is None:
        n.status = "failed"
        _attempt(session, n, "none", "skipped", error="recipient not found or inactive")
        return Outcome(finished=True)

    preference = await repository.preference_of(session, n.recipient_kind, n.recipient_id)
    subscriptions = await repository.subscriptions_of(session, n.recipient_kind, n.recipient_id)
    reach = rules.Reachability(
        push_subscriptions=len(subscriptions) if channels.push else 0,
        email=recipient.email if channels.email.configured else None,
        phone=recipient.phone,
    )
    consent = recipient.marketing_consent or bool(preference and preference.marketing_consent)
    plan = rules.plan_channels(preference.channels if preference else None, reach, n.category, consent)
    if not plan:
        n.status = "suppressed"
        reason = "no marketing consent" if n.category == rules.Category.MARKETING and not consent else "no channel"
        _attempt(session, n, "none", "skipped", error=reason)
        return Outcome(finished=True)

    message = messages.render(n.template, n.params, recipient.locale)
    history = await repository.attempts_for(session, [n.id])
    for channel in plan:
        tried = [a for a in history if a.channel == channel]
        if any(a.status == "failed" for a in tried):
            continue  # this channel already gave up on this notification: fall back
        retries = sum(1 for a in tried if a.status == "retry")
        if channel == "push":
            result = await _push(session, n, subscriptions, message, channels)
            target = ", ".join(sorted({urlsplit(s.endpoint).hostname or "" for s in subscriptions}))
        elif channel == "email":
            result = await _email(n, recipient, message, channels)
            target = rules.mask_email(recipient.email or "")
        else:
            result = await _sms(n, recipient, message, channels)
            target = rules.mask_phone(recipient.phone or "")

        if result.status == "sent":
            if channel != "push":  # push records one attempt per device itself
                _attempt(session, n, channel, "sent", target)
            n.status, n.channel, n.delivered_at = "delivered", channel, utcnow()
            return Outcome(finished=True)
        if result.status == "retry" and retries + 1 < rules.MAX_ATTEMPTS_PER_CHANNEL:
            _attempt(session, n, channel, "retry", target, result.error)
            return Outcome(finished=False,
                           retry_in=rules.backoff_seconds(retries + 1, retry_after=result.retry_after))
        _attempt(session, n, channel, "failed", target, result.error)
    n.status = "failed"
    return Outcome(finished=True)


async def _push(session: AsyncSession, n: Notification, subscriptions, message: messages.Message,
                channels: Channels) -> _ChannelResult:
    payload = rules.push_payload(message.title, message.body, n.url, tag=n.key)
    topic = rules.push_topic(n.key)
    delivered, transient, errors, retry_after = False, False, [], None
    for sub in subscriptions:
        result = await channels.push.send(sub.endpoint, sub.p256dh, sub.auth, payload, ttl=n.ttl_seconds,
                                          urgency=n.urgency, topic=topic)
        host = urlsplit(sub.endpoint).hostname or ""
        outcome = rules.classify_push_status(result.status)
        if outcome is rules.PushOutcome.DELIVERED:
            delivered = True
            sub.last_success_at = utcnow()
            _attempt(session, n, "push", "sent", host)
        elif outcome is rules.PushOutcome.GONE:
            _attempt(session, n, "push", "gone", host, f"HTTP {result.status}: subscription removed")
            await repository.delete_subscription(session, sub.id)
        elif outcome is rules.PushOutcome.RETRY:
            transient = True
            retry_after = max(retry_after or 0, result.retry_after or 0) or None
            errors.append(f"{host}: HTTP {result.status} {result.error or ''}".strip())
        else:
            _attempt(session, n, "push", "rejected", host, f"HTTP {result.status}: {result.error or ''}")
    if delivered:
        return _ChannelResult("sent")
    if transient:
        return _ChannelResult("retry", "; ".join(errors), retry_after)
    return _ChannelResult("failed", "no device accepted the message")


async def _email(n: Notification, recipient: _Recipient, message: messages.Message,
                 channels: Channels) -> _ChannelResult:
    link = channels.base_url.rstrip("/") + (n.url or "/")
    with messages.in_locale(recipient.locale):
        context = {"title": message.title, "body": message.body, "link": link, "lang": html_lang()}
        text = channels.templates.get_template("notifications/email.txt").render(context)
        html = channels.templates.get_template("notifications/email.html").render(context)
        email = channels.email.build(to=recipient.email, subject=message.title, text=text, html=html,
                                     key=n.key, lang=context["lang"])
    result = await channels.email.send(email)
    if result.ok:
        return _ChannelResult("sent")
    return _ChannelResult("retry" if result.transient else "failed", result.error)


async def _sms(n: Notification, recipient: _Recipient, message: messages.Message,
               channels: Channels) -> _ChannelResult:
    link = channels.base_url.rstrip("/") + (n.url or "/")
    text = f"{message.sms or message.title + ': ' + message.body} {link}"
    result = await channels.sms.send(recipient.phone, text)
    if result.ok:
        return _ChannelResult("sent")
    return _ChannelResult("retry" if result.transient else "failed", result.error)


__all__ = ["Channels", "NotificationPreference", "Outcome", "deliver"]
