"""JSON API for test drives: the cars, availability, booking, the customer's token endpoints and the staff's.

``POST /api/v1/test-drives`` is public (no CSRF cookie needed, rate limited per address) and idempotent
with an ``Idempotency-Key`` header. An API key of a salesperson, manager or admin books as staff (phone or
walk-in, no notice period); a browser session is treated like the public, so a forged cross-site request
can never book as a staff member. ``GET/PATCH/DELETE /api/v1/test-drives/track/{token}`` (and ``POST .../confirm``)
are authorised by the customer's tracking token; the staff endpoints by role, scoped to the person's branch.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required
from backend.domains.accounts.rules import StaffRole
from backend.domains.service_booking.api import MAX_JSON_BYTES, client_ip, conflict_response, invalid_input
from backend.lib.errors import Conflict
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from .configuration import SalespersonSetup, TestDriveSetup
from .rules import mask_licence
from .schemas import (
    MAX_ID,
    AvailabilityOut,
    BookingIn,
    CarOut,
    CheckOutIn,
    FeedbackIn,
    HoursIn,
    ModelLengthIn,
    ModelLengthOut,
    RescheduleIn,
    ReturnIn,
    SalespersonOut,
    SettingsIn,
    SettingsOut,
    SlotOut,
    StaffTestDriveOut,
    TestDriveOut,
)
from .service import BOOKING_ROLES, Availability, DriveView, TestDriveService, tracking_path

SALES_DESK = (StaffRole.SALES, StaffRole.MANAGER)
NO_STORE = {"Cache-Control": "no-store"}


def provide_drives(db_session: AsyncSession, redis: Redis, state: State) -> TestDriveService:
    return TestDriveService(db_session, redis, state.get("flights"))


drive_dependencies = {"drives": Provide(provide_drives, sync_to_thread=False)}


def tracking_url(token: str) -> str:
    return get_settings().base_url.rstrip("/") + tracking_path(token)


def car_out(vehicle, branch_code: str, drive_minutes: int) -> CarOut:
    return CarOut(id=vehicle.id, make=vehicle.make, model=vehicle.model, trim=vehicle.trim,
                  model_year=vehicle.model_year, powertrain=vehicle.powertrain, colour=vehicle.colour,
                  branch=branch_code, drive_minutes=drive_minutes)


def drive_out(view: DriveView, *, with_link: bool = False) -> TestDriveOut:
    d, zone = view.drive, ZoneInfo(view.tz)
    minutes = int((d.ends_at - d.starts_at).total_seconds() // 60)
    return TestDriveOut(
        id=d.id, reference=d.reference, status=d.status, source=d.source, start=d.starts_at.astimezone(zone),
        end=d.ends_at.astimezone(zone), branch=view.branch.code, timezone=view.tz,
        car=car_out(view.vehicle, view.branch.code, minutes),
        salesperson=view.salesperson.name if view.salesperson else "",
        tracking_url=tracking_url(view.token) if with_link and view.token else None)


def staff_drive_out(view: DriveView) -> StaffTestDriveOut:
    d = view.drive
    return StaffTestDriveOut(
        **drive_out(view).model_dump(), customer_name=view.customer.name, customer_phone=view.customer.phone,
        licence_number=mask_licence(d.licence_last4) or None, licence_expiry=d.licence_expiry,
        odometer_out=d.odometer_out, odometer_in=d.odometer_in, energy_level_in=d.energy_level_in,
        interest=d.interest, return_notes=d.return_notes)


def availability_out(result: Availability) -> AvailabilityOut:
    zone = ZoneInfo(result.branch.timezone)

    def slots(found) -> list[SlotOut]:
        return [SlotOut(start=s.start.astimezone(zone), end=s.end.astimezone(zone)) for s in found]

    return AvailabilityOut(vehicle_id=result.vehicle.id, branch=result.branch.code, date=result.day,
                           timezone=result.branch.timezone, drive_minutes=result.drive_minutes,
                           slots=slots(result.slots), next_available=slots(result.next_available))


def booking_principal(request: Request):
    """Staff only through an API key: a browser session books like the public (see the module docstring)."""
    user = request.user
    return user if user is not None and user.kind == "api_key" and user.role in BOOKING_ROLES else None


Token = Annotated[str, Parameter(max_length=100)]


def invalid(request: Request, exc: ValidationException) -> Response:
    """The shared 422, naming query parameters as callers send them (``date``, not the handler's ``day``; a
    missing one by its name)."""
    response = invalid_input(request, exc)
    fields = response.content.get("error", {}).get("fields") if isinstance(response.content, dict) else None
    if fields is None:
        return response
    missing = exc.__cause__.args[0] if isinstance(exc.__cause__, KeyError) and exc.__cause__.args else None
    if missing and set(fields) == {"request"}:  # a missing query parameter: name it
        fields.clear()
        fields[str(missing)] = _("This field is required.")
    if "day" in fields:
        fields["date"] = fields.pop("day")
    return response


class TestDriveApi(Controller):
    __test__ = False
    path = "/api/v1/test-drives"
    tags = ["test drives"]
    dependencies = drive_dependencies
    exception_handlers = {ValidationException: invalid}

    @get("/cars", summary="Cars that may be test-driven", security=[{}, {"apiKey": []}])
    async def cars(self, drives: TestDriveService,
                   branch: Annotated[str | None, Parameter(max_length=16, description="Branch code")] = None,
                   ) -> list[CarOut]:
        branches = await drives.branches()
        wanted = next((b.id for b in branches.values() if branch and b.code == branch.upper()), None)
        if branch and wanted is None:
            return []
        return [car_out(v, branches[v.branch_id].code, minutes)
                for v, minutes in await drives.cars(branch_id=wanted)]

    @get("/availability", summary="Free test-drive slots of one car on one day", security=[{}, {"apiKey": []}])
    async def availability(
        self, request: Request, drives: TestDriveService,
        vehicle_id: Annotated[int, Parameter(ge=1, le=MAX_ID, description="A car from /cars")],
        day: Annotated[date, Parameter(query="date", description="Local date at the car's branch, YYYY-MM-DD")],
    ) -> AvailabilityOut:
        """Slots in the branch's time zone (ISO 8601 with offset) where the car (with the buffer after each
        drive) and a salesperson are free. When the day has none, ``next_available`` lists the next ones."""
        return availability_out(await drives.availability(vehicle_id, day, principal=booking_principal(request)))

    @post("/", summary="Book a test drive", status_code=HTTP_201_CREATED, exclude_from_csrf=True,
          request_max_body_size=MAX_JSON_BYTES, security=[{}, {"apiKey": []}])
    async def book(
        self, request: Request, drives: TestDriveService, data: BookingIn,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=200)] = None,
    ) -> Response[TestDriveOut]:
        """201 with the customer's ``tracking_url``; 409 with ``next_slots`` when the car or every salesperson is
        taken; 422 for bad input; 429 when one address books too often. A retry with the same
        ``Idempotency-Key`` returns the first answer."""
        try:
            view = await drives.book(data, principal=booking_principal(request), ip=client_ip(request),
                                     idempotency_key=idempotency_key)
        except Conflict as exc:
            return conflict_response(exc)
        body = drive_out(view, with_link=True)
        headers = {"Location": body.tracking_url or ""}
        if view.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status_code=HTTP_201_CREATED, headers=headers)

    # -- the customer's token ---------------------------------------------------------------------------

    @get("/track/{token:str}", summary="A test drive by its tracking token", security=[{}])
    async def read(self, drives: TestDriveService, token: Token) -> Response[TestDriveOut]:
        return Response(drive_out(await drives.tracked(token)), headers=NO_STORE)

    @patch("/track/{token:str}", summary="Move a test drive to another free start", exclude_from_csrf=True,
           request_max_body_size=MAX_JSON_BYTES, security=[{}])
    async def reschedule(self, drives: TestDriveService, token: Token, data: RescheduleIn) -> Response[TestDriveOut]:
        try:
            view = await drives.reschedule_by_link(token, data.start)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(drive_out(view), headers=NO_STORE)

    @post("/track/{token:str}/confirm", summary="The customer confirms they are coming", status_code=200,
          exclude_from_csrf=True, security=[{}])
    async def confirm(self, drives: TestDriveService, token: Token) -> Response[TestDriveOut]:
        """200 with ``status`` "confirmed" (again 200, nothing changed, when it already was); 409 with
        ``current_status`` when the drive was cancelled, has begun or is over, or its time has passed."""
        try:
            view = await drives.confirm_by_link(token)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(drive_out(view), headers=NO_STORE)

    @delete("/track/{token:str}", summary="Cancel a test drive", status_code=200, exclude_from_csrf=True,
            security=[{}])
    async def cancel(self, drives: TestDriveService, token: Token) -> Response[TestDriveOut]:
        try:
            view = await drives.cancel_by_link(token)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(drive_out(view), headers=NO_STORE)

    @post("/track/{token:str}/feedback", summary="The customer's rating after the drive", status_code=200,
          exclude_from_csrf=True, request_max_body_size=MAX_JSON_BYTES, security=[{}])
    async def feedback(self, drives: TestDriveService, token: Token, data: FeedbackIn) -> Response[TestDriveOut]:
        return Response(drive_out(await drives.feedback(token, data.rating, data.comment)), headers=NO_STORE)

    # -- staff ------------------------------------------------------------------------------------------

    @get("/day", summary="A day's test drives (a salesperson's own, a manager's whole branch)",
         guards=[roles_required(*SALES_DESK)])
    async def day(self, request: Request, drives: TestDriveService,
                  day: Annotated[date | None, Parameter(query="date")] = None) -> list[StaffTestDriveOut]:
        found = await drives.my_day(request.user, day)
        return [staff_drive_out(v) for v in found["drives"]]

    @get("/{drive_id:int}", summary="One test drive (staff)", guards=[roles_required(*SALES_DESK)])
    async def one(self, request: Request, drives: TestDriveService, drive_id: int) -> StaffTestDriveOut:
        return staff_drive_out(await drives.staff_view(request.user, drive_id))

    @post("/{drive_id:int}/check-out", summary="Hand the car over: licence, key, odometer", status_code=200,
          guards=[roles_required(*SALES_DESK)], request_max_body_size=MAX_JSON_BYTES)
    async def check_out(self, request: Request, drives: TestDriveService, drive_id: int,
                        data: CheckOutIn) -> Response[StaffTestDriveOut]:
        """422 for an expired licence, a key not handed over or an odometer below the car's mileage; 409 when
        the drive is not booked (``current_status``) or starts more than an hour from now."""
        try:
            view = await drives.check_out(request.user, drive_id, data)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(staff_drive_out(view))

    @post("/{drive_id:int}/return", summary="Take the car back: odometer, fuel or charge, notes, interest",
          status_code=200, guards=[roles_required(*SALES_DESK)], request_max_body_size=MAX_JSON_BYTES)
    async def return_car(self, request: Request, drives: TestDriveService, drive_id: int,
                         data: ReturnIn) -> Response[StaffTestDriveOut]:
        try:
            view = await drives.return_car(request.user, drive_id, data)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(staff_drive_out(view))

    @post("/{drive_id:int}/no-show", summary="The customer did not come", status_code=200,
          guards=[roles_required(*SALES_DESK)])
    async def no_show(self, request: Request, drives: TestDriveService, drive_id: int) -> Response[StaffTestDriveOut]:
        try:
            view = await drives.no_show(request.user, drive_id)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(staff_drive_out(view))

    @post("/{drive_id:int}/confirm", summary="Record that the customer is coming (staff)", status_code=200,
          guards=[roles_required(*SALES_DESK)])
    async def staff_confirm(self, request: Request, drives: TestDriveService,
                            drive_id: int) -> Response[StaffTestDriveOut]:
        try:
            view = await drives.staff_confirm(request.user, drive_id)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(staff_drive_out(view))

    @post("/{drive_id:int}/cancel", summary="Cancel a test drive (staff)", status_code=200,
          guards=[roles_required(*SALES_DESK)])
    async def staff_cancel(self, request: Request, drives: TestDriveService,
                           drive_id: int) -> Response[StaffTestDriveOut]:
        try:
            view = await drives.staff_cancel(request.user, drive_id)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(staff_drive_out(view))


# -- what managers configure ----------------------------------------------------------------------------


def provide_setup(db_session: AsyncSession) -> TestDriveSetup:
    return TestDriveSetup(db_session)


BranchId = Annotated[int | None, Parameter(ge=1, le=MAX_ID, description="Admins and the group's manager: the "
                                                                         "branch (default: the caller's own)")]
MANAGERS = (StaffRole.MANAGER,)  # admins always pass


def salesperson_out(person: SalespersonSetup) -> SalespersonOut:
    return SalespersonOut(id=person.user.id, name=person.user.name, working_hours=person.working_hours,
                          same_as_branch=person.same_as_branch, takes_online=person.takes_online)


class TestDriveSetupApi(Controller):
    """A branch's booking rules, drive lengths per model and salespeople's hours. Salespeople may read the
    rules and lengths (they explain the slots customers see); only managers and admins change anything or
    see colleagues' hours. Changes apply to bookings made afterwards; booked drives keep their times."""

    __test__ = False
    path = "/api/v1/test-drives"
    tags = ["test-drive settings"]
    dependencies = {"setup": Provide(provide_setup, sync_to_thread=False)}
    exception_handlers = {ValidationException: invalid}

    async def _settings_out(self, setup: TestDriveSetup, branch) -> SettingsOut:
        settings, is_default = await setup.settings(branch)
        return SettingsOut(branch_id=branch.id, branch=branch.code, is_default=is_default,
                           **{name: getattr(settings, name) for name in SettingsIn.model_fields})

    @get("/settings", summary="A branch's test-drive booking rules", guards=[roles_required(*SALES_DESK)])
    async def settings(self, request: Request, setup: TestDriveSetup, branch_id: BranchId = None) -> SettingsOut:
        """The defaults (``is_default``: true) while the branch has saved none."""
        return await self._settings_out(setup, await setup.branch_for(request.user, branch_id))

    @put("/settings", summary="Change a branch's test-drive booking rules", guards=[roles_required(*MANAGERS)],
         request_max_body_size=MAX_JSON_BYTES)
    async def save_settings(self, request: Request, setup: TestDriveSetup, data: SettingsIn,
                            branch_id: BranchId = None) -> SettingsOut:
        """422 with a message per field outside what booking allows (see the field descriptions)."""
        branch = await setup.branch_for(request.user, branch_id)
        await setup.save_settings(request.user, branch, data)
        return await self._settings_out(setup, branch)

    @get("/model-lengths", summary="Drive lengths of the branch's models", guards=[roles_required(*SALES_DESK)])
    async def model_lengths(self, request: Request, setup: TestDriveSetup,
                            branch_id: BranchId = None) -> list[ModelLengthOut]:
        """Models of the branch's test-drive cars that have a length of their own (the others take the
        branch's ``drive_minutes``). Each branch sets its own: another branch's length of the same model is
        not this one's."""
        branch = await setup.branch_for(request.user, branch_id)
        return [ModelLengthOut(make=c.make, model=c.model, minutes=c.minutes)
                for c in await setup.model_choices(branch) if c.minutes is not None]

    @put("/model-lengths", summary="Set the drive length of a model", guards=[roles_required(*MANAGERS)],
         request_max_body_size=MAX_JSON_BYTES)
    async def set_model_length(self, request: Request, setup: TestDriveSetup, data: ModelLengthIn,
                               branch_id: BranchId = None) -> ModelLengthOut:
        """The model must be one of the branch's test-drive cars (422 otherwise)."""
        branch = await setup.branch_for(request.user, branch_id)
        choice = await setup.set_model_length(request.user, branch, data.make, data.model, data.minutes)
        return ModelLengthOut(make=choice.make, model=choice.model, minutes=data.minutes)

    @delete("/model-lengths", summary="Remove a model's own drive length (back to the default)",
            guards=[roles_required(*MANAGERS)])
    async def remove_model_length(
        self, request: Request, setup: TestDriveSetup,
        make: Annotated[str, Parameter(min_length=1, max_length=40)],
        model: Annotated[str, Parameter(min_length=1, max_length=60)],
        branch_id: BranchId = None,
    ) -> None:
        branch = await setup.branch_for(request.user, branch_id)
        await setup.remove_model_length(request.user, branch, make.strip(), model.strip())

    @get("/salespeople", summary="The branch's salespeople: working hours, online bookings",
         guards=[roles_required(*MANAGERS)])
    async def salespeople(self, request: Request, setup: TestDriveSetup,
                          branch_id: BranchId = None) -> list[SalespersonOut]:
        """``working_hours`` {} (``same_as_branch``) means the branch's opening hours."""
        branch = await setup.branch_for(request.user, branch_id)
        return [salesperson_out(p) for p in await setup.salespeople(branch)]

    @put("/salespeople/{staff_user_id:int}/hours", summary="Set a salesperson's hours and online bookings",
         guards=[roles_required(*MANAGERS)], request_max_body_size=MAX_JSON_BYTES)
    async def set_hours(self, request: Request, setup: TestDriveSetup,
                        staff_user_id: Annotated[int, Parameter(ge=1, le=MAX_ID)], data: HoursIn) -> SalespersonOut:
        """``{"working_hours": {"mon": ["09:00", "18:00"], ..., "sun": null}, "takes_online": true}``; a
        missing day is a day off; ``working_hours`` null or {} for the branch's opening hours. 404 for a
        salesperson of another branch."""
        return salesperson_out(await setup.set_hours(request.user, staff_user_id, data))
