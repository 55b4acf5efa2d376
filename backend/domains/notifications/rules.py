"""Pure rules for notifications: which channels, in which order; what to do with a push answer;
back-off; the size of a push payload. No I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum

URL_PURPOSE = "notification-url"  # what sealing.seal binds a notification's link to

CHANNELS = ("push", "email", "sms")
PUSH_PAYLOAD_LIMIT = 3993  # RFC 8291: 4096-byte record minus 86 bytes of header and 16 of tag, minus padding byte
MAX_ATTEMPTS_PER_CHANNEL = 5
MAX_PUSH_TTL = 28 * 24 * 3600  # push services keep an undelivered message four weeks at most (FCM: 28 days)


class Category(StrEnum):
    SERVICE = "service"  # about the person's own car, booking or work: always allowed
    MARKETING = "marketing"  # offers and news: only with consent


@dataclass(frozen=True, slots=True)
class Reachability:
    push_subscriptions: int
    email: str | None
    phone: str | None


def plan_channels(preferred: list[str] | None, reach: Reachability, category: str,
                  marketing_consent: bool) -> list[str]:
    """The channels to try, in the person's order, skipping those that cannot reach them.

    Marketing without consent goes nowhere; service messages always go somewhere if they can.
    """
    if category == Category.MARKETING and not marketing_consent:
        return []
    order = [c for c in (preferred or CHANNELS) if c in CHANNELS]
    # Channels the person did not list stay available as a last resort for service messages,
    # so "your car is ready" is never lost because someone only ticked push.
    if category == Category.SERVICE:
        order += [c for c in CHANNELS if c not in order]
    reachable = {"push": reach.push_subscriptions > 0, "email": bool(reach.email), "sms": bool(reach.phone)}
    return [c for c in order if reachable[c]]


@dataclass(frozen=True, slots=True)
class ChannelStep:
    channel: str
    retries: int  # temporary failures already recorded on this channel for this notification


def channels_to_try(plan: list[str], history: list[tuple[str, str]]) -> list[ChannelStep]:
    """The planned channels that have not given up on this notification yet, in order.

    ``history`` holds the (channel, status) of earlier attempts: a channel with a "failed" attempt is
    done with this notification (we fall back past it); its "retry" attempts count towards its limit.
    """
    steps = []
    for channel in plan:
        statuses = [status for tried, status in history if tried == channel]
        if "failed" not in statuses:
            steps.append(ChannelStep(channel, statuses.count("retry")))
    return steps


class Next(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # keep the notification pending and try this channel again after a back-off
    FALL_BACK = "fall_back"  # this channel gave up: try the next one


def after_channel(result: str, retries: int) -> Next:
    """What a channel's answer (sent | retry | failed) means, given its earlier temporary failures."""
    if result == "sent":
        return Next.DELIVERED
    if result == "retry" and retries + 1 < MAX_ATTEMPTS_PER_CHANNEL:
        return Next.RETRY
    return Next.FALL_BACK


class PushOutcome(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # the subscription is dead: remove it
    RETRY = "retry"  # try again later
    FAILED = "failed"  # will not work for this message


def classify_push_status(status: int) -> PushOutcome:
    if status in (200, 201, 202):
        return PushOutcome.DELIVERED
    if status in (404, 410):
        return PushOutcome.GONE
    if status == 429 or status >= 500 or status == 408:
        return PushOutcome.RETRY
    return PushOutcome.FAILED  # 400 bad request, 413 too large, 401/403 VAPID problems


def push_result(outcomes: list[PushOutcome]) -> str:
    """One message to all of a person's devices: "sent" when one took it, "retry" when none did but one
    may later, else "failed" (every device gone or refusing)."""
    if PushOutcome.DELIVERED in outcomes:
        return "sent"
    if PushOutcome.RETRY in outcomes:
        return "retry"
    return "failed"


def backoff_seconds(attempt: int, base: float = 5.0, cap: float = 900.0, retry_after: int | None = None) -> float:
    """Exponential back-off (5 s, 10 s, 20 s ... up to 15 min); the service's Retry-After wins if longer."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return max(delay, float(retry_after or 0))


def push_ttl(requested: int | None, default: int) -> int:
    """Seconds a push service keeps an undelivered message: the notification's own, else the configured
    default, never negative and never more than push services keep anything."""
    return max(0, min(MAX_PUSH_TTL, default if requested is None else requested))


def push_topic(notification_key: str) -> str:
    """A Topic header (≤32 url-safe chars): a newer message with the same topic replaces an
    undelivered older one at the push service."""
    return hashlib.sha256(notification_key.encode()).hexdigest()[:32]


def push_payload(title: str, body: str, url: str | None, tag: str) -> bytes:
    """JSON for the service worker, trimmed so the encrypted record stays under 4 KB."""
    data = {"title": title, "body": body, "url": url or "/", "tag": tag}
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    if len(raw) <= PUSH_PAYLOAD_LIMIT:
        return raw
    overflow = len(raw) - PUSH_PAYLOAD_LIMIT
    trimmed = body.encode()[: max(0, len(body.encode()) - overflow - 3)].decode(errors="ignore") + "…"
    data["body"] = trimmed
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(raw) <= PUSH_PAYLOAD_LIMIT, "title and url alone exceed the push payload limit"
    return raw


def mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"
