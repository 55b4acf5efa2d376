"""Deliver notifications: each person's channels in order, falling back when one fails for good.

:func:`deliver_many` takes a batch (the worker's batch job, about a hundred at a time) and
:func:`deliver` one (the per-event job that retries after a back-off). Both take the same steps inside
the caller's transaction:

1. lock the notifications that are still pending and that no other worker holds (``FOR UPDATE SKIP
   LOCKED``): two workers never send the same notification, and a delivered one is never sent again;
2. load in bulk what they need: recipients, preferences, push subscriptions and earlier attempts
   (one query each, whatever the batch size);
3. plan each with the pure rules (consent, the person's channel order, channels that already gave up)
   and render its message in the recipient's language;
4. send them all at once (push over the worker's one aiohttp session); each notification tries its
   channels in order and moves on when one fails for good;
5. write in bulk: the attempts, the notifications' new status, dead subscriptions (404/410) removed.

A temporary failure (429/5xx, an SMTP 4xx) records its attempt and leaves the notification pending with
``Outcome.retry_in``: the caller tries again after that back-off. Nothing is written until everything has
been tried, so a worker that dies before its commit leaves its notifications pending: they are sent again
(at least once), never lost. A notification whose handling raises, or that is still sending when the
batch's time is up (``SEND_BUDGET_SECONDS``), leaves no trace and reports the error (``Outcome.error``)
without holding up the others.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib import sealing
from backend.lib.db import utcnow
from backend.lib.i18n import html_lang

from . import messages, repository, rules
from .channels.email import EmailSender
from .channels.push import PushSender
from .channels.sms import SmsProvider
from .models import Notification

# How long a batch waits for its sends (well inside the worker's 120 s job timeout, which would roll the
# whole batch back and send it all again). A notification still sending then is left pending and handed
# back as an error, to be retried; only it may reach someone twice.
SEND_BUDGET_SECONDS = 60.0


def link_of(n: Notification) -> str | None:
    """The notification's link, opened from its sealed form (None when the app secret changed since)."""
    return sealing.open_sealed(n.url, rules.URL_PURPOSE)


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
    finished: bool  # delivered, failed or suppressed -- or nothing to do
    retry_in: float | None = None  # still pending: try again after this many seconds
    error: Exception | None = None  # handling it raised; nothing was written for it


NOTHING_TO_DO = Outcome(finished=True)


@dataclass(frozen=True, slots=True)
class _Recipient:
    locale: str | None
    email: str | None
    phone: str | None
    marketing_consent: bool


@dataclass(frozen=True, slots=True)
class _ChannelResult:
    status: str  # sent | retry | failed
    target: str = ""  # masked: push hosts, e-mail or phone
    error: str | None = None
    retry_after: int | None = None


@dataclass(slots=True)
class _Ready:
    """One notification with everything it needs to go out (loaded in bulk beforehand)."""

    notification: Notification
    recipient: _Recipient
    steps: list[rules.ChannelStep]
    subscriptions: list  # rows: id, endpoint, p256dh, auth
    message: messages.Message


@dataclass(slots=True)
class _Result:
    """What happened to one notification, written in bulk afterwards."""

    attempts: list[dict] = field(default_factory=list)
    status: str | None = None  # delivered | failed | suppressed; None while it stays pending
    channel: str | None = None
    delivered_at: datetime | None = None
    retry_in: float | None = None
    gone: list[int] = field(default_factory=list)  # subscriptions the push service says are dead
    working: list[int] = field(default_factory=list)  # subscriptions that took the message
    error: Exception | None = None

    def attempt(self, channel: str, status: str, target: str = "", error: str | None = None) -> None:
        self.attempts.append({"channel": channel, "target": target[:200], "status": status,
                              "error": (error or None) and error[:500], "at": utcnow()})

    def outcome(self) -> Outcome:
        return Outcome(finished=self.status is not None, retry_in=self.retry_in, error=self.error)


async def deliver(session: AsyncSession, notification_id: int, channels: Channels) -> Outcome:
    """One notification (the per-event path). An unexpected error is raised, as from any job."""
    outcome = (await deliver_many(session, [notification_id], channels))[notification_id]
    if outcome.error is not None:
        raise outcome.error
    return outcome


async def deliver_many(session: AsyncSession, notification_ids: list[int], channels: Channels) -> dict[int, Outcome]:
    """Deliver a batch; the outcome of each id (ids that are not pending, or that another worker holds,
    have nothing to do)."""
    outcomes = dict.fromkeys(notification_ids, NOTHING_TO_DO)
    notifications = await repository.lock_pending_notifications(session, notification_ids)
    if not notifications:
        return outcomes
    results, ready = await _prepare(session, notifications, channels)
    deadline = asyncio.get_running_loop().time() + SEND_BUDGET_SECONDS
    sent = await asyncio.gather(*(_send(item, channels, deadline) for item in ready))
    for item, result in zip(ready, sent, strict=True):
        results[item.notification.id] = result
    await _record(session, notifications, results)
    outcomes.update({notification_id: result.outcome() for notification_id, result in results.items()})
    return outcomes


async def _prepare(session: AsyncSession, notifications: list[Notification],
                   channels: Channels) -> tuple[dict[int, _Result], list[_Ready]]:
    """Results for the notifications that end without a send (no recipient, no consent, no channel), and
    the others ready to go."""
    people = {(n.recipient_kind, n.recipient_id) for n in notifications}
    found = await repository.recipients(session, people)
    preferences = await repository.preferences_of(session, people)
    subscriptions = await repository.subscriptions_of_people(session, people) if channels.push else {}
    history = await repository.attempt_history(session, [n.id for n in notifications])

    results: dict[int, _Result] = {}
    ready: list[_Ready] = []
    for n in notifications:
        person = (n.recipient_kind, n.recipient_id)
        if person not in found:
            results[n.id] = result = _Result(status="failed")
            result.attempt("none", "skipped", error="recipient not found or inactive")
            continue
        recipient = _Recipient(**found[person])
        preference = preferences.get(person)
        devices = subscriptions.get(person, [])
        reach = rules.Reachability(push_subscriptions=len(devices),
                                   email=recipient.email if channels.email.configured else None,
                                   phone=recipient.phone)
        consent = recipient.marketing_consent or bool(preference and preference.marketing_consent)
        plan = rules.plan_channels(preference.channels if preference else None, reach, n.category, consent)
        if not plan:
            results[n.id] = result = _Result(status="suppressed")
            no_consent = n.category == rules.Category.MARKETING and not consent
            result.attempt("none", "skipped", error="no marketing consent" if no_consent else "no channel")
            continue
        try:
            message = messages.render(n.template, n.params, recipient.locale)
        except Exception as exc:  # noqa: BLE001 - a broken template must not hold up the batch
            results[n.id] = _Result(error=exc)
            continue
        ready.append(_Ready(n, recipient, rules.channels_to_try(plan, history.get(n.id, [])), devices, message))
    return results, ready


async def _send(item: _Ready, channels: Channels, deadline: float) -> _Result:
    """One notification's sends, by the batch's deadline. No I/O but the channels': the database is
    written afterwards, for the whole batch at once."""
    try:
        async with asyncio.timeout_at(deadline):
            return await _try_channels(item, channels, _Result())
    except TimeoutError:
        return _Result(error=TimeoutError(f"still sending after {SEND_BUDGET_SECONDS:.0f} s"))
    except Exception as exc:  # noqa: BLE001 - reported to the caller; the other notifications go on
        return _Result(error=exc)


async def _try_channels(item: _Ready, channels: Channels, result: _Result) -> _Result:
    """The channels in order, until one delivers, one asks to be retried, or all gave up."""
    for step in item.steps:
        if step.channel == "push":
            answer = await _push(item, channels, result)
        elif step.channel == "email":
            answer = await _email(item, channels)
        else:
            answer = await _sms(item, channels)
        next_step = rules.after_channel(answer.status, step.retries)
        if next_step is rules.Next.DELIVERED:
            if step.channel != "push":  # push records one attempt per device itself
                result.attempt(step.channel, "sent", answer.target)
            result.status, result.channel, result.delivered_at = "delivered", step.channel, utcnow()
            return result
        if next_step is rules.Next.RETRY:
            result.attempt(step.channel, "retry", answer.target, answer.error)
            result.retry_in = rules.backoff_seconds(step.retries + 1, retry_after=answer.retry_after)
            return result
        result.attempt(step.channel, "failed", answer.target, answer.error)
    result.status = "failed"
    return result


async def _record(session: AsyncSession, notifications: list[Notification], results: dict[int, _Result]) -> None:
    """The batch's writes: a handful of statements however many notifications it holds."""
    attempts = [attempt | {"notification_id": n.id} for n in notifications if n.id in results
                for attempt in results[n.id].attempts]
    await repository.add_attempts(session, attempts)
    gone = [sub_id for result in results.values() for sub_id in result.gone]
    working = [sub_id for result in results.values() for sub_id in result.working]
    await repository.mark_subscriptions_working(session, set(working) - set(gone), utcnow())
    await repository.delete_subscriptions(session, gone)
    for n in notifications:
        result = results.get(n.id)
        if result is not None and result.status is not None:
            n.status = result.status
            if result.status == "delivered":
                n.channel, n.delivered_at = result.channel, result.delivered_at
    await session.flush()


async def _push(item: _Ready, channels: Channels, result: _Result) -> _ChannelResult:
    """The message to every device of the person at once; one attempt per device that answered for good."""
    n = item.notification
    payload = rules.push_payload(item.message.title, item.message.body, link_of(n), tag=n.key)
    topic = rules.push_topic(n.key)
    sends = [channels.push.send(sub.endpoint, sub.p256dh, sub.auth, payload, ttl=n.ttl_seconds, urgency=n.urgency,
                                topic=topic) for sub in item.subscriptions]
    # Most people have one device: awaiting it directly spares a task per message.
    answers = [await sends[0]] if len(sends) == 1 else await asyncio.gather(*sends)
    outcomes, errors, retry_after = [], [], None
    for sub, answer in zip(item.subscriptions, answers, strict=True):
        host = urlsplit(sub.endpoint).hostname or ""
        outcome = rules.classify_push_status(answer.status)
        outcomes.append(outcome)
        if outcome is rules.PushOutcome.DELIVERED:
            result.working.append(sub.id)
            result.attempt("push", "sent", host)
        elif outcome is rules.PushOutcome.GONE:
            result.attempt("push", "gone", host, f"HTTP {answer.status}: subscription removed")
            result.gone.append(sub.id)
        elif outcome is rules.PushOutcome.RETRY:
            retry_after = max(retry_after or 0, answer.retry_after or 0) or None
            errors.append(f"{host}: HTTP {answer.status} {answer.error or ''}".strip())
        else:
            result.attempt("push", "rejected", host, f"HTTP {answer.status}: {answer.error or ''}")
    status = rules.push_result(outcomes)
    target = ", ".join(sorted({urlsplit(sub.endpoint).hostname or "" for sub in item.subscriptions}))
    if status == "failed":
        return _ChannelResult("failed", target, "no device accepted the message")
    return _ChannelResult(status, target, "; ".join(errors) or None, retry_after)


async def _email(item: _Ready, channels: Channels) -> _ChannelResult:
    n, recipient, message = item.notification, item.recipient, item.message
    link = channels.base_url.rstrip("/") + (link_of(n) or "/")
    target = rules.mask_email(recipient.email or "")
    with messages.in_locale(recipient.locale):
        context = {"title": message.title, "body": message.body, "link": link, "lang": html_lang()}
        text = channels.templates.get_template("notifications/email.txt").render(context)
        html = channels.templates.get_template("notifications/email.html").render(context)
        email = channels.email.build(to=recipient.email, subject=message.title, text=text, html=html,
                                     key=n.key, lang=context["lang"])
    answer = await channels.email.send(email)
    if answer.ok:
        return _ChannelResult("sent", target)
    return _ChannelResult("retry" if answer.transient else "failed", target, answer.error)


async def _sms(item: _Ready, channels: Channels) -> _ChannelResult:
    n, recipient, message = item.notification, item.recipient, item.message
    link = channels.base_url.rstrip("/") + (link_of(n) or "/")
    text = f"{message.sms or message.title + ': ' + message.body} {link}"
    answer = await channels.sms.send(recipient.phone, text)
    if answer.ok:
        return _ChannelResult("sent", rules.mask_phone(recipient.phone or ""))
    return _ChannelResult("retry" if answer.transient else "failed", rules.mask_phone(recipient.phone or ""),
                          answer.error)


__all__ = ["Channels", "Outcome", "deliver", "deliver_many"]
