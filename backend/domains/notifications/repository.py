from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, Integer, and_, any_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.customers.models import Customer
from backend.domains.outbox.models import OutboxEvent

from .models import DeliveryAttempt, Notification, NotificationPreference, PushSubscription

Person = tuple[str, int]  # (recipient kind, id): ("staff", 7) or ("customer", 42)


def _any(ids: Iterable[int], type_=BigInteger):
    """``= ANY($1)`` with one array parameter: one prepared statement whatever the batch size (an IN list
    would make a new statement, and a new server-side plan, for every length)."""
    return any_(literal(list(ids), ARRAY(type_)))


def _ids_of(people: Iterable[Person], kind: str) -> list[int]:
    return sorted({person_id for person_kind, person_id in people if person_kind == kind})


async def insert_notification(session: AsyncSession, values: dict) -> int | None:
    """Insert unless a notification with the same key exists; the new id, or None."""
    statement = (insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["key"])
                 .returning(Notification.id))
    return (await session.execute(statement)).scalar_one_or_none()


async def give_up(session: AsyncSession, notification_id: int, error: str) -> bool:
    """A pending notification whose delivery the outbox gave up on is failed, with the error as its last
    attempt (so the log says why). False when it was not pending."""
    result = await session.execute(update(Notification).where(Notification.id == notification_id,
                                                               Notification.status == "pending")
                                   .values(status="failed").returning(Notification.id))
    if result.scalar_one_or_none() is None:
        return False
    session.add(DeliveryAttempt(notification_id=notification_id, channel="none", status="failed",
                                error=error[:500]))
    await session.flush()
    return True


async def notification_for_update(session: AsyncSession, notification_id: int) -> Notification | None:
    result = await session.execute(select(Notification).where(Notification.id == notification_id)
                                   .with_for_update().execution_options(populate_existing=True))
    return result.scalar_one_or_none()


async def lock_pending_notification(session: AsyncSession, notification_id: int) -> Notification | None:
    result = await session.execute(
        select(Notification).where(Notification.id == notification_id, Notification.status == "pending")
        .with_for_update(skip_locked=True)
    )
    return result.scalar_one_or_none()


async def attempts_for(session: AsyncSession, notification_ids: list[int]) -> list[DeliveryAttempt]:
    if not notification_ids:
        return []
    result = await session.execute(
        select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(notification_ids))
        .order_by(DeliveryAttempt.at, DeliveryAttempt.id)
    )
    return list(result.scalars())


async def subscriptions_of(session: AsyncSession, kind: str, owner_id: int) -> list[PushSubscription]:
    result = await session.execute(
        select(PushSubscription).where(PushSubscription.owner_kind == kind, PushSubscription.owner_id == owner_id)
        .order_by(PushSubscription.id)
    )
    return list(result.scalars())


async def subscription_by_endpoint(session: AsyncSession, endpoint: str) -> PushSubscription | None:
    result = await session.execute(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    return result.scalar_one_or_none()


async def upsert_subscription(session: AsyncSession, values: dict) -> PushSubscription:
    """One row per endpoint; a browser that subscribes again (or changes hands) updates it."""
    statement = insert(PushSubscription).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["endpoint"],
        set_={k: statement.excluded[k] for k in ("p256dh", "auth", "owner_kind", "owner_id", "user_agent")},
    ).returning(PushSubscription.id)
    sub_id = (await session.execute(statement)).scalar_one()
    return await session.get(PushSubscription, sub_id, populate_existing=True)


async def delete_subscription(session: AsyncSession, subscription_id: int) -> None:
    await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))


async def preference_of(session: AsyncSession, kind: str, recipient_id: int) -> NotificationPreference | None:
    result = await session.execute(
        select(NotificationPreference).where(NotificationPreference.recipient_kind == kind,
                                             NotificationPreference.recipient_id == recipient_id)
    )
    return result.scalar_one_or_none()


async def recent(session: AsyncSession, *, branch_id: int | None, status: str | None, limit: int,
                 recipient: tuple[str, int] | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if branch_id is not None:
        query = query.where(Notification.branch_id == branch_id)
    if status:
        query = query.where(Notification.status == status)
    if recipient:
        query = query.where(Notification.recipient_kind == recipient[0], Notification.recipient_id == recipient[1])
    return list((await session.execute(query)).scalars())


async def counts_by_status(session: AsyncSession, *, branch_id: int | None) -> dict[str, int]:
    query = select(Notification.status, func.count()).group_by(Notification.status)
    if branch_id is not None:
        query = query.where(Notification.branch_id == branch_id)
    return {status: count for status, count in (await session.execute(query)).all()}


def _given_up_query(kind: str, branch_id: int | None):
    query = (select(OutboxEvent, Notification)
             .join(Notification, Notification.id == OutboxEvent.payload["notification_id"].as_integer())
             .where(OutboxEvent.status == "failed", OutboxEvent.kind == kind))
    return query if branch_id is None else query.where(Notification.branch_id == branch_id)


async def given_up(session: AsyncSession, *, kind: str, branch_id: int | None,
                   limit: int) -> list[tuple[OutboxEvent, Notification]]:
    """Delivery events the outbox gave up on after repeated errors, newest first."""
    query = _given_up_query(kind, branch_id).order_by(OutboxEvent.processed_at.desc()).limit(limit)
    return [(event, n) for event, n in (await session.execute(query)).all()]


async def count_given_up(session: AsyncSession, *, kind: str, branch_id: int | None) -> int:
    return await session.scalar(select(func.count()).select_from(_given_up_query(kind, branch_id).subquery()))


# -- delivery in batches (backend.domains.notifications.delivery) ---------------------------------


async def lock_pending_notifications(session: AsyncSession, notification_ids: list[int]) -> list[Notification]:
    """The notifications among these that are still pending and that no other worker holds, locked until
    the caller's transaction ends (``SKIP LOCKED``: two workers never send the same notification)."""
    if not notification_ids:
        return []
    result = await session.execute(
        select(Notification).where(Notification.id == _any(notification_ids), Notification.status == "pending")
        .order_by(Notification.id).with_for_update(skip_locked=True)
    )
    return list(result.scalars())


async def recipients(session: AsyncSession, people: Iterable[Person]) -> dict[Person, dict]:
    """Locale and addresses of each person who can be told (inactive staff cannot): two queries."""
    people = list(people)
    found: dict[Person, dict] = {}
    if staff_ids := _ids_of(people, "staff"):
        rows = await session.execute(
            select(StaffUser.id, StaffUser.locale, StaffUser.email)
            .where(StaffUser.id == _any(staff_ids, Integer), StaffUser.is_active.is_(True)))
        for row in rows:
            found[("staff", row.id)] = {"locale": row.locale, "email": row.email, "phone": None,
                                        "marketing_consent": False}
    if customer_ids := _ids_of(people, "customer"):
        rows = await session.execute(
            select(Customer.id, Customer.locale, Customer.email, Customer.phone, Customer.marketing_consent)
            .where(Customer.id == _any(customer_ids, Integer)))
        for row in rows:
            found[("customer", row.id)] = {"locale": row.locale, "email": row.email, "phone": row.phone,
                                           "marketing_consent": row.marketing_consent}
    return found


def _of_people(kind_column, id_column, people: list[Person]):
    """``(kind = 'staff' AND id = ANY(...)) OR (kind = 'customer' AND id = ANY(...))``: each half uses the
    (kind, id) index."""
    return or_(*(and_(kind_column == kind, id_column == _any(ids, Integer))
                 for kind in ("staff", "customer") if (ids := _ids_of(people, kind))))


async def preferences_of(session: AsyncSession, people: Iterable[Person]) -> dict[Person, NotificationPreference]:
    people = list(people)
    if not people:
        return {}
    result = await session.execute(select(NotificationPreference).where(
        _of_people(NotificationPreference.recipient_kind, NotificationPreference.recipient_id, people)))
    return {(p.recipient_kind, p.recipient_id): p for p in result.scalars()}


async def subscriptions_of_people(session: AsyncSession, people: Iterable[Person]) -> dict[Person, list]:
    """Each person's push subscriptions (id, endpoint, p256dh, auth), oldest first."""
    people = list(people)
    if not people:
        return {}
    rows = await session.execute(
        select(PushSubscription.id, PushSubscription.owner_kind, PushSubscription.owner_id,
               PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth)
        .where(_of_people(PushSubscription.owner_kind, PushSubscription.owner_id, people))
        .order_by(PushSubscription.id))
    found: dict[Person, list] = {}
    for row in rows:
        found.setdefault((row.owner_kind, row.owner_id), []).append(row)
    return found


async def attempt_history(session: AsyncSession, notification_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """(channel, status) of the earlier attempts of each notification, oldest first."""
    rows = await session.execute(
        select(DeliveryAttempt.notification_id, DeliveryAttempt.channel, DeliveryAttempt.status)
        .where(DeliveryAttempt.notification_id == _any(notification_ids))
        .order_by(DeliveryAttempt.at, DeliveryAttempt.id))
    history: dict[int, list[tuple[str, str]]] = {}
    for row in rows:
        history.setdefault(row.notification_id, []).append((row.channel, row.status))
    return history


async def add_attempts(session: AsyncSession, attempts: list[dict]) -> None:
    """Many attempts in one round trip (an executemany of one prepared INSERT)."""
    if attempts:
        await session.execute(insert(DeliveryAttempt), attempts)


def _unheld_subscriptions(ids: list[int]):
    """Those of these subscriptions that no other transaction holds. Two batches may write one person's
    subscriptions at once; skipping the other's rows (it writes the same thing) means neither waits, so
    they can never deadlock, which would roll a whole batch back and send it again."""
    return PushSubscription.id.in_(select(PushSubscription.id).where(PushSubscription.id == _any(ids, Integer))
                                   .with_for_update(skip_locked=True).scalar_subquery())


async def delete_subscriptions(session: AsyncSession, subscription_ids: Iterable[int]) -> None:
    """Dead subscriptions (404/410). One that another batch holds goes at its next 404/410."""
    if ids := sorted(set(subscription_ids)):
        await session.execute(delete(PushSubscription).where(_unheld_subscriptions(ids))
                              .execution_options(synchronize_session="fetch"))


async def mark_subscriptions_working(session: AsyncSession, subscription_ids: Iterable[int], at: datetime) -> None:
    if ids := sorted(set(subscription_ids)):
        await session.execute(update(PushSubscription).where(_unheld_subscriptions(ids))
                              .values(last_success_at=at).execution_options(synchronize_session="fetch"))
