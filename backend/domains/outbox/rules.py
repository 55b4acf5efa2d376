"""Pure rules of the outbox: when to try a failing event again, and when to give it up."""

from __future__ import annotations

from datetime import timedelta


def error_backoff(errors: int, base: float = 5.0, cap: float = 900.0) -> timedelta:
    """After the n-th error of an event's handler: 5 s, 10 s, 20 s … at most 15 minutes."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, errors - 1)))


def gives_up(errors: int, max_errors: int) -> bool:
    return errors >= max(1, max_errors)
