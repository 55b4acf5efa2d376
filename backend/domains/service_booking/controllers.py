"""Screens: the customer's booking form, also used by advisors for phone bookings. (An advisor's view of one
appointment, with its check-in, is in the repair orders' screens: checking in opens a repair order.)

The booking form works in two steps without JavaScript (choose branch, day and work -> "Show free
times"; then choose a time and give the car and contact details). With htmx the first step refreshes
the second in place.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from backend.domains.branches import repository as branch_repository
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Invalid, RateLimited
from backend.lib.forms import form_day, parse_form
from backend.lib.htmx import page
from backend.lib.i18n import gettext as _

from . import rules
from .api import BOOKING_ROLES, booking_dependencies, client_ip
from .schemas import BookingIn
from .service import BookingService, branch_label, localized

BOOKING_DAYS = 14  # the form offers this many days; the API accepts the whole horizon
FORM_FIELDS = ("branch", "slot", "plate", "vin", "mileage_km", "name", "phone", "email", "transport", "notes")


def labels() -> dict:
    return {"transport": rules.TRANSPORT_LABELS, "status": rules.APPOINTMENT_STATUS_LABELS,
            "source": rules.SOURCE_LABELS, "skill": rules.SKILL_LABELS}


def is_booking_staff(request: Request) -> bool:
    user = request.user
    return user is not None and user.kind == "staff" and user.role in BOOKING_ROLES




async def booking_context(request: Request, booking: BookingService, *, branch_code: str | None,
                          day: date | None, codes: list[str], values: dict | None = None,
                          errors: dict | None = None, **extra: Any) -> tuple[dict, int]:
    """Everything the booking page shows; the status is 422 when the chosen work or day is not valid."""
    staff = is_booking_staff(request)
    branches = await branch_repository.list_branches(booking.session)
    if staff and request.user.branch_scope is not None:
        branches = [b for b in branches if b.id == request.user.branch_scope]
    catalogue = await booking.catalogue()
    branch_code = branch_code or (branches[0].code if branches else None)
    today = rules.local_day(utcnow(), branches[0].timezone if branches else "Asia/Shanghai")
    days = [today + timedelta(days=n) for n in range(BOOKING_DAYS)]
    errors = dict(errors or {})
    availability, status = None, 200
    if codes and day is not None:
        try:
            availability = await booking.availability(branch_code, day, codes, staff=staff)
        except Invalid as exc:
            errors |= exc.fields or {"operations": exc.message}
            status = 422
    return {
        "branches": branches, "catalogue": catalogue, "branch_code": branch_code, "day": day or days[1],
        "days": days, "codes": codes, "availability": availability, "values": values or {}, "errors": errors,
        "labels": labels(), "L": localized, "branch_label": branch_label, "staff": staff,
        "idempotency_key": (values or {}).get("idempotency_key") or uuid.uuid4().hex,
        "minutes_for": rules.minutes_for, **extra,
    }, status


class BookingController(Controller):
    path = "/service/book"
    include_in_schema = False
    dependencies = booking_dependencies

    @get("/", name="service_book")
    async def form(self, request: Request, booking: BookingService,
                   branch: Annotated[str | None, Parameter(max_length=16)] = None,
                   day: Annotated[str | None, Parameter(query="date", max_length=10)] = None,
                   operations: Annotated[list[str] | None, Parameter(max_items=10)] = None) -> Template:
        codes = [c.strip().upper()[:32] for c in (operations or []) if c.strip()]
        chosen = form_day(day)
        errors = {"date": _("Enter a valid date.")} if day and chosen is None else {}
        context, status = await booking_context(request, booking, branch_code=branch, day=chosen, codes=codes,
                                                errors=errors)
        return page(request, "service/book.html", context, block="step2",
                    status_code=422 if errors else status)

    @post("/", name="service_book_submit")
    async def submit(self, request: Request, booking: BookingService) -> Response:
        form = await request.form()
        codes = [c.strip().upper()[:32] for c in form.getall("operations", []) if c.strip()][:20]
        values = {k: form.get(k) for k in (*FORM_FIELDS, "idempotency_key", "date")}
        raw = {k: v for k, v in values.items() if k in FORM_FIELDS and v not in (None, "")}
        raw |= {"operations": codes, "privacy_consent": form.get("privacy_consent") == "on",
                "marketing_consent": form.get("marketing_consent") == "on"}
        if is_booking_staff(request):
            raw["source"] = "phone"
        day = form_day(values.get("date"))
        parsed, errors = parse_form(BookingIn, raw)

        async def again(status: int, errors: dict, **extra) -> Template:
            context, _status = await booking_context(request, booking, branch_code=values.get("branch"), day=day,
                                                     codes=codes, values=values, errors=errors, **extra)
            return page(request, "service/book.html", context, status_code=status)

        if parsed is None:
            return await again(422, errors)
        try:
            view = await booking.book(parsed, principal=request.user if is_booking_staff(request) else None,
                                      ip=client_ip(request), idempotency_key=values.get("idempotency_key"))
        except Conflict as exc:
            values["slot"] = None
            offered = [rules.SlotState(datetime.fromisoformat(s["start"]), s["remaining_checkins"])
                       for s in exc.extra.get("next_slots", [])]
            return await again(409, {}, form_error=exc.message, next_slots=offered)
        except RateLimited as exc:
            return await again(429, {}, form_error=exc.message)
        except Invalid as exc:
            if "idempotency_key" in exc.fields:  # this form already booked: a changed resubmit is a new booking
                values["idempotency_key"] = None
            return await again(422, exc.fields or {"form": exc.message}, form_error=exc.message)
        if is_booking_staff(request):
            return Redirect(f"/service/appointments/{view.appointment.id}", status_code=303)
        return Redirect(f"/track/{view.token}?booked=1", status_code=303)
