from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import sessions_only, staff_required
from backend.domains.accounts.rules import ROLE_LABELS
from backend.domains.audit.rules import describe
from backend.lib.htmx import page

from .service import dashboard_for


class DashboardController(Controller):
    include_in_schema = False
    guards = [staff_required, sessions_only]

    @get("/dashboard")
    async def index(self, request: Request, db_session: AsyncSession) -> Template:
        dashboard = await dashboard_for(db_session, request.user)
        return page(request, "dashboard/index.html", {"dashboard": dashboard, "roles": ROLE_LABELS,
                                                         "describe": describe})

    @get("/menu")
    async def menu(self, request: Request) -> Template:
        """Everything that does not fit in the bottom navigation, by role."""
        return page(request, "dashboard/menu.html")
