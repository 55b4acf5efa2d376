"""JSON API for service bookings: the catalogue, availability and booking.

``POST /api/v1/service/appointments`` is public (no CSRF cookie needed, rate limited per address) and
idempotent with an ``Idempotency-Key`` header. An API key of an advisor, manager or admin books as
staff (phone or walk-in, no notice period); a browser session is treated like the public, so a forged
cross-site request can never book as a staff member.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_409_CONFLICT
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required
from backend.domains.accounts.rules import StaffRole
from backend.lib.errors import Conflict, error_response
from backend.lib.forms import _message as field_message
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from . import rules
from .schemas import AppointmentOut, AvailabilityOut, BookingIn, OperationOut, SlotOut
from .service import AppointmentView, Availability, BookingService, localized

BOOKING_ROLES = {StaffRole.ADMIN.value, StaffRole.MANAGER.value, StaffRole.SERVICE_ADVISOR.value}
MAX_JSON_BYTES = 16 * 1024


def provide_booking(db_session: AsyncSession, redis: Redis) -> BookingService:
    return BookingService(db_session, redis)


booking_dependencies = {"booking": Provide(provide_booking, sync_to_thread=False)}


def invalid_input(request: Request, exc: ValidationException) -> Response:
    """Litestar's body and parameter validation as a 422 with a message beside each field, translated."""
    fields: dict[str, str] = {}
    for error in getattr(exc.__cause__, "errors", None) or []:
        location = [str(part) for part in error.get("loc", ())]
        fields.setdefault(location[0] if location else "body", field_message(error))
    for error in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(error, dict) and error.get("key") and error.get("source") != "body":
            fields.setdefault(str(error["key"]), _("This value is not valid."))
    if not fields:
        fields["request"] = _("A required value is missing or not valid.")
    return error_response(request, 422, _("Please correct the highlighted fields."), "invalid", fields)


def conflict_response(exc: Conflict) -> Response:
    """A 409 that carries what the caller needs to act (the next free slots, the order's current status and
    version); the shared error handler knows only code and message."""
    body = {"error": {"code": exc.code, "message": exc.message}}
    for name in ("next_slots", "current_status", "current_version"):
        if name in exc.extra:
            body["error"][name] = exc.extra[name]
    return Response(body, status_code=HTTP_409_CONFLICT, media_type=MediaType.JSON)


def operation_out(op) -> OperationOut:
    return OperationOut(code=op.code, name=localized(op, "name"), description=localized(op, "description"),
                        labour_hours=op.labour_hours, minutes=rules.minutes_for(op.labour_hours), price=op.price,
                        skill=op.skill)


def tracking_url(token: str) -> str:
    return get_settings().base_url.rstrip("/") + f"/track/{token}"


def appointment_out(view: AppointmentView) -> AppointmentOut:
    a = view.appointment
    return AppointmentOut(
        id=a.id, reference=a.reference, status=a.status, branch=view.branch.code,
        slot_start=a.slot_start.astimezone(ZoneInfo(view.branch.timezone)),
        day=a.day, operations=[operation_out(op) for op in view.operations], estimated_minutes=a.estimated_minutes,
        estimated_price=a.estimated_price, transport=a.transport, source=a.source, plate=view.vehicle.plate,
        vin=view.vehicle.vin, mileage_km=a.mileage_km, tracking_url=tracking_url(view.token) if view.token else None)


def availability_out(result: Availability) -> AvailabilityOut:
    return AvailabilityOut(
        branch=result.branch.code, date=result.day, timezone=result.branch.timezone,
        operations=[operation_out(op) for op in result.operations], estimated_minutes=result.estimated_minutes,
        estimated_price=result.estimated_price,
        slots=[SlotOut(start=s.start, remaining_checkins=s.remaining_checkins) for s in result.slots],
        next_available=[SlotOut(start=s.start, remaining_checkins=s.remaining_checkins)
                        for s in result.next_available])


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class ServiceApi(Controller):
    path = "/api/v1/service"
    tags = ["service"]
    dependencies = booking_dependencies
    exception_handlers = {ValidationException: invalid_input}

    @get("/operations", summary="The service catalogue", security=[{}, {"apiKey": []}])
    async def operations(self, booking: BookingService) -> list[OperationOut]:
        return [operation_out(op) for op in await booking.catalogue()]

    @get("/availability", summary="Free check-in slots of a day for some operations", security=[{}, {"apiKey": []}])
    async def availability(
        self, request: Request, booking: BookingService,
        branch: Annotated[str, Parameter(min_length=1, max_length=16, description="Branch code, e.g. SH01")],
        day: Annotated[date, Parameter(query="date", description="Local date, YYYY-MM-DD")],
        operations: Annotated[str, Parameter(min_length=1, max_length=400,
                                             description="Catalogue codes, comma separated")],
    ) -> AvailabilityOut:
        """Only slots where the advisor check-in place, the technician hours (by skill) and the bays all
        fit. When the day is full, ``next_available`` lists the next free slots after it."""
        codes = [c.strip().upper() for c in operations.split(",") if c.strip()]
        staff = request.user is not None and request.user.role in BOOKING_ROLES
        return availability_out(await booking.availability(branch, day, codes, staff=staff))

    @post("/appointments", summary="Book a service appointment", status_code=HTTP_201_CREATED,
          exclude_from_csrf=True, request_max_body_size=MAX_JSON_BYTES, security=[{}, {"apiKey": []}])
    async def book(
        self, request: Request, booking: BookingService, data: BookingIn,
        idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=200)] = None,
    ) -> Response[AppointmentOut]:
        """201 with the customer's ``tracking_url``; 409 with ``next_slots`` when the capacity is gone; 422
        for bad input. Send an ``Idempotency-Key`` so that a retry returns the first answer."""
        user = request.user
        principal = user if user is not None and user.kind == "api_key" and user.role in BOOKING_ROLES else None
        try:
            view = await booking.book(data, principal=principal, ip=client_ip(request),
                                      idempotency_key=idempotency_key)
        except Conflict as exc:
            return conflict_response(exc)
        body = appointment_out(view)
        headers = {"Location": body.tracking_url or ""}
        if view.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status_code=HTTP_201_CREATED, headers=headers)

    @get("/appointments/{appointment_id:int}", summary="One appointment (staff)",
         guards=[roles_required(StaffRole.SERVICE_ADVISOR, StaffRole.MANAGER, StaffRole.TECHNICIAN)])
    async def appointment(self, request: Request, booking: BookingService, appointment_id: int) -> AppointmentOut:
        return appointment_out(await booking.for_staff(request.user, appointment_id))

    @post("/appointments/{appointment_id:int}/cancel", summary="Cancel an appointment (staff)", status_code=200,
          guards=[roles_required(StaffRole.SERVICE_ADVISOR, StaffRole.MANAGER)])
    async def cancel(self, request: Request, booking: BookingService, appointment_id: int) -> AppointmentOut:
        await booking.for_staff(request.user, appointment_id)
        return appointment_out(await booking.cancel(appointment_id, principal=request.user))
