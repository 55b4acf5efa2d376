"""Screens: find a customer, add one, and see their record with every message sent to them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import sessions_only, staff_required
from backend.domains.branches import service as branch_service
from backend.domains.notifications import service as notifications
from backend.domains.notifications.controllers import channel_labels, status_labels
from backend.lib.errors import Invalid
from backend.lib.forms import parse_form
from backend.lib.htmx import page

from . import service
from .schemas import CustomerForm


class CustomerController(Controller):
    path = "/customers"
    include_in_schema = False
    guards = [staff_required, sessions_only]

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession,
                    q: Annotated[str | None, Parameter(max_length=100)] = None) -> Template:
        found = await service.search_customers(db_session, scope=request.user.branch_scope, q=q)
        return page(request, "customers/index.html", {"customers": found, "q": q or ""}, block="results")

    async def _form_context(self, request: Request, db_session: AsyncSession, values: dict, errors: dict) -> dict:
        branches = [] if request.user.branch_id else await branch_service.visible_branches(
            db_session, scope=request.user.branch_scope)
        return {"values": values, "errors": errors, "branches": branches}

    @get("/new")
    async def new(self, request: Request, db_session: AsyncSession) -> Template:
        return page(request, "customers/new.html", await self._form_context(request, db_session, {}, {}))

    @post("/")
    async def create(self, request: Request, db_session: AsyncSession) -> Template | Redirect:
        form = dict(await request.form())
        form["marketing_consent"] = form.get("marketing_consent") == "on"
        values, errors = parse_form(CustomerForm, form)
        if values is None:
            return page(request, "customers/new.html",
                        await self._form_context(request, db_session, form, errors), status_code=422)
        try:
            branch_id = request.user.branch_id or await service.branch_for_new_customer(
                db_session, form.get("branch_id"), scope=request.user.branch_scope)
            customer = await service.create_customer(
                db_session, branch_id=branch_id, name=values.name, phone=values.phone, email=values.email,
                locale=values.locale, marketing_consent=values.marketing_consent, actor=request.user)
        except Invalid as exc:
            return page(request, "customers/new.html",
                        await self._form_context(request, db_session, form, exc.fields), status_code=422)
        return Redirect(f"/customers/{customer.id}", status_code=303)

    @get("/{customer_id:int}")
    async def show(self, request: Request, db_session: AsyncSession, customer_id: int) -> Template:
        customer = await service.get_customer(db_session, customer_id, scope=request.user.branch_scope)
        log = await notifications.log_for(db_session, scope=request.user.branch_scope,
                                          recipient=("customer", customer.id))
        return page(request, "customers/show.html", {"customer": customer, "rows": log, "labels": channel_labels(),
                                                          "status_labels": status_labels()})
