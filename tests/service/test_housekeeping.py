"""Housekeeping crons forget only what is past its retention window."""

from datetime import timedelta

from sqlalchemy import func, select, update

from backend.domains.service_booking import repository
from backend.domains.service_booking.models import BookingIdempotency
from backend.lib.db import utcnow
from workers import housekeeping


async def test_old_idempotency_keys_are_pruned_and_recent_ones_kept(session_maker, session, settings):
    old = await repository.claim_idempotency_key(session, "service_appointment", "a" * 64, "r" * 64)
    recent = await repository.claim_idempotency_key(session, "service_appointment", "b" * 64, "r" * 64)
    hours = settings.idempotency_retention_hours
    await session.execute(update(BookingIdempotency).where(BookingIdempotency.id == old)
                          .values(created_at=utcnow() - timedelta(hours=hours + 1)))
    await session.commit()

    assert await housekeeping.prune_idempotency_keys({"session_maker": session_maker}) == 1
    assert await housekeeping.prune_idempotency_keys({"session_maker": session_maker}) == 0  # idempotent

    left = (await session.execute(select(BookingIdempotency.id))).scalars().all()
    assert left == [recent]
    assert (await session.execute(select(func.count()).select_from(BookingIdempotency))).scalar_one() == 1
