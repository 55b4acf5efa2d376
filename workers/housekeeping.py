"""Housekeeping crons: forget what no one needs any more. Each run is idempotent."""

from __future__ import annotations

import logging
from datetime import timedelta

from backend.domains.service_booking import repository as booking_repository
from backend.lib.db import unit_of_work, utcnow
from backend.lib.settings import get_settings

log = logging.getLogger(__name__)


async def prune_idempotency_keys(ctx: dict) -> int:
    """Drop stored answers to ``Idempotency-Key``s older than ``idempotency_retention_hours``."""
    cutoff = utcnow() - timedelta(hours=get_settings().idempotency_retention_hours)
    async with unit_of_work(ctx["session_maker"]) as session:
        removed = await booking_repository.prune_idempotency(session, cutoff)
    if removed:
        log.info("pruned idempotency keys", extra={"removed": removed})
    return removed
