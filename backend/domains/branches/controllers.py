"""The manager's screen for the branch's opening hours and holidays (``/branch/hours``).

Forms work without JavaScript (a normal post answered with a redirect); htmx requests get the changed
section back (``hours`` or ``holidays``). A refused save re-renders that section with the message beside the
field and status 422, like the other staff screens.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required, sessions_only
from backend.domains.accounts.rules import StaffRole
from backend.lib.db import utcnow
from backend.lib.errors import DomainError, Invalid
from backend.lib.forms import form_day, form_int, form_values, parse_form
from backend.lib.htmx import is_fragment_request, page
from backend.lib.i18n import gettext as _
from backend.lib.i18n import ngettext

from . import rules, service
from .schemas import HolidayIn

TEMPLATE = "branches/hours.html"
PATH = "/branch/hours"








def screen_url(branch_id: int) -> str:
    return f"{PATH}?branch={branch_id}"


async def screen_context(session: AsyncSession, principal, branch_id: int | None, **extra) -> dict:
    branch = await service.managed_branch(session, principal, branch_id)
    found = {h.day: h for h in await service.holidays(session, branch)}
    today = rules.local_today(utcnow(), branch.timezone)
    choices = (await service.visible_branches(session, scope=None)) if principal.branch_scope is None else []
    return {"branch": branch, "branches": choices, "week": service.opening_hours_of(branch),
            "weekdays": rules.WEEKDAY_LABELS, "holidays": [found[d] for d in rules.upcoming_first(found, today)],
            "today": today, "name_max": rules.HOLIDAY_NAME_MAX, "hours_errors": {}, "holiday_errors": {},
            "values": {}, **extra}


def added_notice(booked_test_drives: int, booked_service_appointments: int) -> str:
    drives = ngettext("%(num)s booked test drive", "%(num)s booked test drives", booked_test_drives)
    visits = ngettext("%(num)s booked service appointment", "%(num)s booked service appointments",
                      booked_service_appointments)
    return _("Holiday added. On that day: %(drives)s and %(visits)s. They are not moved or cancelled: please "
             "call those customers.", drives=drives, visits=visits)


class BranchHoursController(Controller):
    path = PATH
    include_in_schema = False
    guards = [roles_required(StaffRole.MANAGER), sessions_only]

    @get("/", name="branch_hours")
    async def show(self, request: Request, db_session: AsyncSession,
                   branch: Annotated[int | None, Parameter(ge=1, le=service.MAX_ID)] = None,
                   saved: bool = False, added: Annotated[str | None, Parameter(max_length=10)] = None,
                   ) -> Template:
        context = await screen_context(db_session, request.user, branch,
                                       hours_notice=_("Opening hours saved.") if saved else None)
        added_day = form_day(added)
        if added_day is not None and any(h.day == added_day for h in context["holidays"]):
            # Back from adding a holiday without htmx: the same count hint as the htmx answer.
            counts = await service.bookings_on(db_session, context["branch"], added_day)
            context |= {"holiday_notice": added_notice(*counts), "added_day": added_day}
        return page(request, TEMPLATE, context, block="screen")

    @post("/")
    async def save_hours(self, request: Request, db_session: AsyncSession) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        try:
            branch = await service.set_opening_hours(db_session, request.user, branch_id,
                                                     rules.hours_from_form(values))
        except Invalid as exc:
            context = await screen_context(db_session, request.user, branch_id, hours_errors=exc.fields,
                                           hours_error=exc.message, values=values)
            return page(request, TEMPLATE, context, block="hours", status_code=exc.status_code)
        if not is_fragment_request(request):
            return Redirect(screen_url(branch.id) + "&saved=1", status_code=303)
        context = await screen_context(db_session, request.user, branch.id, hours_notice=_("Opening hours saved."))
        return page(request, TEMPLATE, context, block="hours")

    @post("/holidays")
    async def add_holiday(self, request: Request, db_session: AsyncSession) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        parsed, errors = parse_form(HolidayIn, {"date": values.get("date", ""), "name": values.get("name", "")})
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            added = await service.add_holiday(db_session, request.user, branch_id, parsed.date, parsed.name)
        except Invalid as exc:
            context = await screen_context(db_session, request.user, branch_id, holiday_errors=exc.fields,
                                           holiday_error=exc.message, values=values)
            return page(request, TEMPLATE, context, block="holidays", status_code=exc.status_code)
        day = added.holiday.day
        if not is_fragment_request(request):
            return Redirect(f"{screen_url(added.holiday.branch_id)}&added={day.isoformat()}", status_code=303)
        notice = added_notice(added.booked_test_drives, added.booked_service_appointments)
        context = await screen_context(db_session, request.user, branch_id, holiday_notice=notice, added_day=day)
        return page(request, TEMPLATE, context, block="holidays")

    @post("/holidays/{day:str}/remove")
    async def remove_holiday(self, request: Request, db_session: AsyncSession,
                             day: Annotated[str, Parameter(max_length=10)]) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        try:
            chosen = form_day(day)
            if chosen is None:
                raise Invalid(_("Enter a valid date."))
            removed = await service.remove_holiday(db_session, request.user, branch_id, chosen)
        except DomainError as exc:
            context = await screen_context(db_session, request.user, branch_id, holiday_error=exc.message)
            return page(request, TEMPLATE, context, block="holidays", status_code=exc.status_code)
        if not is_fragment_request(request):
            return Redirect(screen_url(removed.branch_id), status_code=303)
        context = await screen_context(db_session, request.user, branch_id, holiday_notice=_("Holiday removed."))
        return page(request, TEMPLATE, context, block="holidays")
