"""What a staff member sees first: their branch (or the group), the local time, recent activity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import Principal
from backend.domains.audit import service as audit
from backend.domains.audit.models import AuditEntry
from backend.domains.branches import rules as branch_rules
from backend.domains.branches import service as branches
from backend.domains.branches.models import Branch
from backend.lib.db import utcnow


@dataclass(slots=True)
class BranchStatus:
    branch: Branch
    open_now: bool
    hours_today: list[str] | None


@dataclass(slots=True)
class Dashboard:
    now: datetime
    timezone: str
    branches: list[BranchStatus]
    recent_activity: list[AuditEntry]


async def dashboard_for(session: AsyncSession, principal: Principal) -> Dashboard:
    now = utcnow()
    visible = await branches.visible_branches(session, scope=principal.branch_scope)
    statuses = []
    for branch in visible:
        statuses.append(BranchStatus(
            branch=branch,
            open_now=branch_rules.is_open(branch.opening_hours, now, branch.timezone),
            hours_today=branch_rules.hours_on(branch.opening_hours, now, branch.timezone),
        ))
    home = next((s.branch for s in statuses if s.branch.id == principal.branch_id), None)
    timezone = home.timezone if home else (visible[0].timezone if visible else "Asia/Shanghai")
    activity = await audit.recent(session, branch_id=principal.branch_scope, limit=10)
    return Dashboard(now=now, timezone=timezone, branches=statuses, recent_activity=activity)
