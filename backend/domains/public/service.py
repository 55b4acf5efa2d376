"""What a customer sees without signing in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.branches import repository as branch_repository
from backend.domains.branches import rules as branch_rules
from backend.domains.dashboard.service import BranchStatus
from backend.lib.db import utcnow


async def home(session: AsyncSession) -> dict:
    now = utcnow()
    group = await branch_repository.first_group(session)
    branches = await branch_repository.list_branches(session)
    return {
        "group_name": group.name if group else "Forecourt",
        "branches": [
            BranchStatus(branch=b, open_now=branch_rules.is_open(b.opening_hours, now, b.timezone),
                         hours_today=branch_rules.hours_on(b.opening_hours, now, b.timezone))
            for b in branches
        ],
    }
