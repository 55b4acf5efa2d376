from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor_kind: str
    actor_id: int | None
    actor_label: str
    action: str
    entity: str
    entity_id: str | None
    branch_id: int | None
    before: dict | None
    after: dict | None
    request_id: str | None
