"""The audit log: a screen for admins and managers, and the same list as JSON."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required, sessions_only
from backend.domains.accounts.rules import StaffRole
from backend.lib.htmx import page

from . import service
from .rules import describe
from .schemas import AuditEntryPublic

PageSize = Annotated[int, Parameter(ge=1, le=200, default=50)]
BeforeId = Annotated[int | None, Parameter(ge=1, default=None)]


class AuditScreenController(Controller):
    path = "/admin/audit"
    include_in_schema = False
    guards = [roles_required(StaffRole.MANAGER), sessions_only]

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession, before: BeforeId = None) -> Template:
        entries = await service.recent(db_session, branch_id=request.user.branch_scope, limit=50, before_id=before)
        return page(request, "audit/index.html", {"entries": entries, "describe": describe}, block="entries")


class AuditApi(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]
    guards = [roles_required(StaffRole.MANAGER)]

    @get("/", summary="Recent audit entries, newest first (scoped to the caller's branch)")
    async def list_entries(self, request: Request, db_session: AsyncSession, limit: PageSize = 50,
                           before: BeforeId = None) -> list[AuditEntryPublic]:
        entries = await service.recent(db_session, branch_id=request.user.branch_scope, limit=limit,
                                       before_id=before)
        return [AuditEntryPublic.model_validate(e, from_attributes=True) for e in entries]
