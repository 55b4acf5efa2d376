"""Background jobs. Each takes ids, opens its own unit of work, and may run twice without harm."""

from __future__ import annotations

from sqlalchemy import text

from backend.lib.db import unit_of_work


async def ping_database(ctx: dict) -> str:
    """A harmless job that proves a worker reaches PostgreSQL (used by tests and operators)."""
    async with unit_of_work(ctx["session_maker"]) as session:
        result = await session.execute(text("SELECT current_database()"))
        return result.scalar_one()
