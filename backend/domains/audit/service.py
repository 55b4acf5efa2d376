"""Write and read the audit log. Recording happens inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.observability import request_id_var

from . import repository
from .models import AuditEntry


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: (v if isinstance(v, str | int | float | bool | type(None) | list | dict) else str(v))
            for k, v in values.items()}


async def record(
    session: AsyncSession,
    *,
    actor_kind: str,
    actor_id: int | None,
    actor_label: str,
    action: str,
    entity: str,
    entity_id: Any = None,
    branch_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_kind=actor_kind, actor_id=actor_id, actor_label=actor_label, action=action, entity=entity,
        entity_id=None if entity_id is None else str(entity_id), branch_id=branch_id,
        before=_jsonable(before), after=_jsonable(after), request_id=request_id_var.get(),
    )
    session.add(entry)
    await session.flush()
    return entry


async def record_by(session: AsyncSession, principal, **kwargs) -> AuditEntry:
    """Record an action by a signed-in person or API key (``principal`` is a ``Principal``)."""
    if principal is None:
        return await record(session, actor_kind="system", actor_id=None, actor_label="system", **kwargs)
    return await record(session, actor_kind=principal.kind, actor_id=principal.id,
                        actor_label=principal.audit_label, **kwargs)


async def recent(session: AsyncSession, *, branch_id: int | None, limit: int = 50, before_id: int | None = None):
    return await repository.recent(session, branch_id=branch_id, limit=min(max(limit, 1), 200),
                                   before_id=before_id)
