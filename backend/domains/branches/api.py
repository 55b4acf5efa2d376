"""JSON API for a branch's opening hours and holidays (admins, and managers for their own branch).

Like the other staff endpoints: an API key (``Authorization: Bearer``) needs no CSRF token; a browser session
must send one. A manager of another branch gets 404, as if the branch did not exist; other roles get 403.
Changing the hours or adding a holiday moves or cancels no booking; ``POST .../holidays`` answers how many
booked test drives and service appointments fall on the new holiday.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller, Request, delete, get, post, put
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required
from backend.domains.accounts.rules import StaffRole
from backend.domains.service_booking.api import MAX_JSON_BYTES, invalid_input
from backend.lib.errors import Invalid
from backend.lib.i18n import gettext as _

from . import service
from .schemas import HolidayAdded, HolidayIn, HolidayOut, OpeningHours

BranchId = Annotated[int, Parameter(ge=1, le=service.MAX_ID, description="The branch's id")]


def parse_day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Invalid(fields={"date": _("Enter a valid date.")}) from None


class BranchHoursApi(Controller):
    path = "/api/v1/branches"
    tags = ["branches"]
    guards = [roles_required(StaffRole.MANAGER)]
    exception_handlers = {ValidationException: invalid_input}

    @get("/{branch_id:int}/opening-hours", summary="A branch's opening hours")
    async def opening_hours(self, request: Request, db_session: AsyncSession, branch_id: BranchId) -> OpeningHours:
        branch = await service.managed_branch(db_session, request.user, branch_id)
        return OpeningHours(**service.opening_hours_of(branch))

    @put("/{branch_id:int}/opening-hours", summary="Set a branch's opening hours",
         request_max_body_size=MAX_JSON_BYTES)
    async def set_opening_hours(self, request: Request, db_session: AsyncSession, branch_id: BranchId,
                                data: OpeningHours) -> OpeningHours:
        """Every weekday, ``["HH:MM", "HH:MM"]`` (closing after opening) or null when closed. 422 with a
        message per day. Bookings already made are kept."""
        branch = await service.set_opening_hours(db_session, request.user, branch_id, data.model_dump())
        return OpeningHours(**service.opening_hours_of(branch))

    @get("/{branch_id:int}/holidays", summary="A branch's holidays, by date")
    async def holidays(self, request: Request, db_session: AsyncSession, branch_id: BranchId) -> list[HolidayOut]:
        branch = await service.managed_branch(db_session, request.user, branch_id)
        return [HolidayOut(date=h.day, name=h.name) for h in await service.holidays(db_session, branch)]

    @post("/{branch_id:int}/holidays", summary="Add a holiday (the branch is closed that day)",
          status_code=HTTP_201_CREATED, request_max_body_size=MAX_JSON_BYTES)
    async def add_holiday(self, request: Request, db_session: AsyncSession, branch_id: BranchId,
                          data: HolidayIn) -> HolidayAdded:
        """422 for a date in the past or one that is already a holiday. The answer counts the booked test
        drives and service appointments on that day: they are not moved or cancelled."""
        added = await service.add_holiday(db_session, request.user, branch_id, data.date, data.name)
        return HolidayAdded(date=added.holiday.day, name=added.holiday.name,
                            booked_test_drives=added.booked_test_drives,
                            booked_service_appointments=added.booked_service_appointments)

    @delete("/{branch_id:int}/holidays/{day:str}", summary="Remove a holiday", status_code=200)
    async def remove_holiday(self, request: Request, db_session: AsyncSession, branch_id: BranchId,
                             day: Annotated[str, Parameter(max_length=10, description="YYYY-MM-DD")]) -> HolidayOut:
        removed = await service.remove_holiday(db_session, request.user, branch_id, parse_day(day))
        return HolidayOut(date=removed.day, name=removed.name)
