"""Pure rules for scheduled tasks."""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_TASK_ATTEMPTS = 5


def retry_at(now: datetime, attempts: int) -> datetime:
    """1, 2, 4, 8 minutes after a failed run."""
    return now + timedelta(minutes=2 ** max(0, attempts - 1))


def gives_up(attempts: int) -> bool:
    return attempts >= MAX_TASK_ATTEMPTS
