from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.outbox.models import OutboxEvent

from .models import DeliveryAttempt, Notification, NotificationPreference, PushSubscription


async def insert_notification(session: AsyncSession, values: dict) -> int | None:
    """Insert unless a notification with the same key exists; the new id, or None."""
    statement = (insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["key"])
                 .returning(Notification.id))
    return (await session.execute(statement)).scalar_one_or_none()


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
