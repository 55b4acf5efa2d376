"""The sweeps keep their partial indexes however PostgreSQL plans them.

``ix_scheduled_task_due`` and ``ix_outbox_pending`` only index rows WHERE status = 'pending'. asyncpg runs
every query as a prepared statement, and a reused prepared statement may get a generic plan, made without
the parameter values: with ``status = $1`` such a plan cannot use a partial index and reads the whole
table. The sweeps therefore write 'pending' as a literal. These tests take the statement the code really
sends, force a generic plan (and make a sequential scan as unattractive as possible) and look at the plan.
"""

from datetime import timedelta

from sqlalchemy import event

from backend.domains.outbox import service as outbox
from backend.domains.scheduler import service as scheduler
from backend.lib.db import utcnow


def sql_literal(value) -> str:
    if isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "'{" + ",".join(str(v) for v in value) + "}'"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


class Captured:
    """The queries a block of code sends, with their parameters."""

    def __init__(self, connection):
        self.connection = connection.sync_connection
        self.statements: list[tuple[str, tuple]] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):  # not the test's SAVEPOINTs
            self.statements.append((statement, tuple(parameters)))

    def __enter__(self):
        event.listen(self.connection, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.connection, "before_cursor_execute", self._record)


async def generic_plan(connection, statement: str, parameters: tuple) -> str:
    raw = (await connection.get_raw_connection()).driver_connection
    await raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    await raw.execute("SET LOCAL enable_seqscan = off")
    await raw.execute(f"PREPARE probe AS {statement}")
    try:
        rows = await raw.fetch(f"EXPLAIN EXECUTE probe({', '.join(map(sql_literal, parameters))})")
    finally:
        await raw.execute("DEALLOCATE probe")
    return "\n".join(row[0] for row in rows)


async def test_the_scheduler_sweep_uses_its_partial_index_even_with_a_generic_plan(connection, session):
    with Captured(connection) as captured:
        await scheduler.claim_due(session, utcnow(), 500)
    [(statement, parameters)] = captured.statements
    assert "scheduled_task.status = 'pending'" in statement
    plan = await generic_plan(connection, statement, parameters)
    assert "ix_scheduled_task_due" in plan and "Seq Scan" not in plan, plan


async def test_the_outbox_batch_claim_uses_its_partial_index_even_with_a_generic_plan(connection, session):
    event_row = await outbox.record(session, "notification.deliver", {"notification_id": 0})
    event_row.available_at = utcnow() - timedelta(minutes=1)
    await session.flush()
    with Captured(connection) as captured:
        claimed = await outbox.claim_batch(session, [], fill_kind="notification.deliver", limit=100)
    assert event_row in claimed
    [(statement, parameters)] = captured.statements  # no ids named: only the backlog query
    assert "outbox.status = 'pending'" in statement
    plan = await generic_plan(connection, statement, parameters)
    assert "ix_outbox_pending" in plan and "Seq Scan" not in plan, plan
