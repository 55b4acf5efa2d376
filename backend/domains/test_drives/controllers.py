"""Screens: the customer's booking page and tracking page, and the salesperson's day, week per demo car,
walk-in booking, one drive (check-out, return, no-show, follow-up) and the manager's choice of cars.

Forms work without JavaScript (a normal post answered with a redirect); htmx requests get the page's
block back. A refused action re-renders the same block with the message beside the field and the
refusal's status code (409, 422, 429), the same way on every screen.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template

from backend.domains.accounts.guards import roles_required, sessions_only
from backend.domains.accounts.rules import StaffRole
from backend.domains.service_booking.api import client_ip
from backend.domains.stock import rules as stock_rules
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, DomainError, Invalid, NotFound
from backend.lib.forms import form_day, form_int, form_values, parse_form
from backend.lib.htmx import is_fragment_request, page
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from . import ics, photos, rules
from .api import drive_dependencies, provide_setup
from .configuration import TestDriveSetup
from .schemas import BookingIn, CheckOutIn, FeedbackIn, FollowUpIn, HoursIn, ReturnIn, SettingsIn
from .service import DriveView, TestDriveService, branch_label, car_label, tracking_path

BOOKING_DAYS = 14  # the customer's page offers this many days; the API accepts the whole horizon
PHOTO_FORM_MAX_BYTES = photos.MAX_PHOTO_BYTES + 1024 * 1024
SALES_DESK = (StaffRole.SALES, StaffRole.MANAGER)
NO_STORE = {"Cache-Control": "no-store"}


def labels() -> dict:
    return {"status": rules.STATUS_LABELS, "source": rules.SOURCE_LABELS, "stage": rules.LEAD_STAGE_LABELS,
            "powertrain": stock_rules.POWERTRAIN_LABELS}






def parse_start(raw: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None




def common(**extra) -> dict:
    return {"labels": labels(), "branch_label": branch_label, "car_label": car_label, "errors": {}, "values": {},
            "upcoming": [s.value for s in rules.UPCOMING], **extra}


# -- the customer's booking page ----------------------------------------------------------------------


async def booking_context(drives: TestDriveService, *, vehicle_id: int | None, day: date | None,
                          values: dict | None = None, errors: dict | None = None, **extra) -> tuple[dict, int]:
    """Everything the booking page shows; the status is 422 when the chosen car or day cannot be booked."""
    cars = await drives.cars()
    branches = await drives.branches()
    chosen, asked = await drives.choose_car(vehicle_id)
    note = None
    if asked is not None and chosen is not None and asked.id != chosen.id:
        note = _("You will drive our demonstrator of the %(car)s.", car=car_label(asked))
    elif asked is not None and chosen is None:
        note = _("We have no demonstrator of the %(car)s yet. Choose another car, or ask us about this one.",
                 car=car_label(asked))
    elif vehicle_id and asked is None:
        note = _("That car is no longer available. Choose another one.")
    tz = branches[chosen.branch_id].timezone if chosen else get_settings().default_timezone
    today = rules.local_day(utcnow(), tz)
    days = [today + timedelta(days=n) for n in range(BOOKING_DAYS)]
    day = day or days[1]
    errors = dict(errors or {})
    availability, status = None, 200
    if chosen is not None:
        try:
            availability = await drives.availability(chosen.id, day)
        except Invalid as exc:
            errors |= exc.fields or {"date": exc.message}
            status = 422
    values = values or {}
    return common(cars=cars, branches=branches, car=chosen, asked=asked, note=note, day=day, days=days,
                  availability=availability, values=values, errors=errors,
                  idempotency_key=values.get("idempotency_key") or uuid.uuid4().hex, **extra), status


class TestDriveBookingController(Controller):
    """What customers use: no sign-in. Rate limited like the service booking."""

    __test__ = False
    path = "/test-drive"
    include_in_schema = False
    dependencies = drive_dependencies

    @get("/", name="test_drive_book")
    async def form(self, request: Request, drives: TestDriveService,
                   vehicle_id: Annotated[str | None, Parameter(max_length=12)] = None,
                   day: Annotated[str | None, Parameter(query="date", max_length=10)] = None) -> Template:
        chosen_day = form_day(day)
        errors = {"date": _("Enter a valid date.")} if day and chosen_day is None else {}
        context, status = await booking_context(drives, vehicle_id=form_int(vehicle_id), day=chosen_day,
                                                errors=errors)
        return page(request, "test_drives/book.html", context, block="slots", status_code=422 if errors else status)

    @post("/", name="test_drive_book_submit")
    async def submit(self, request: Request, drives: TestDriveService) -> Response:
        values = form_values(await request.form())
        raw = {k: v for k, v in values.items() if k in ("vehicle_id", "start", "name", "phone", "email") and v}
        raw |= {"consent": values.get("consent") == "on", "marketing_consent": values.get("marketing_consent") == "on",
                "locale": None}
        vehicle_id, day = form_int(values.get("vehicle_id")), form_day(values.get("date"))

        async def again(status: int, errors: dict, **extra) -> Template:
            context, _status = await booking_context(drives, vehicle_id=vehicle_id, day=day, values=values,
                                                     errors=errors, **extra)
            return page(request, "test_drives/book.html", context, status_code=status)

        parsed, errors = parse_form(BookingIn, raw)
        if parsed is None:
            return await again(422, errors, form_error=_("Please correct the highlighted fields."))
        try:
            view = await drives.book(parsed, ip=client_ip(request), idempotency_key=values.get("idempotency_key"))
        except Conflict as exc:
            values["start"] = ""
            offered = [rules.Slot(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
                       for s in exc.extra.get("next_slots", [])]
            return await again(409, {}, form_error=exc.message, next_slots=offered)
        except Invalid as exc:
            if "idempotency_key" in exc.fields:  # this form already booked: a changed resubmit is a new booking
                values["idempotency_key"] = ""
            return await again(422, exc.fields or {"form": exc.message}, form_error=exc.message)
        except DomainError as exc:
            return await again(exc.status_code, {}, form_error=exc.message)
        return Redirect(f"{tracking_path(view.token)}?booked=1", status_code=303)


# -- the customer's tracking page ---------------------------------------------------------------------


async def tracking_context(drives: TestDriveService, token: str, **extra) -> dict:
    from backend.domains.system import service as system

    view = await drives.tracked(token)
    d = view.drive
    link = get_settings().base_url.rstrip("/") + tracking_path(token)
    now = utcnow()
    context = common(view=view, token=token, tz=view.tz, link=link,
                     can_change=d.status in rules.UPCOMING and d.starts_at > now,
                     can_confirm=d.status == rules.DriveStatus.BOOKED
                     and rules.confirm_problem(d.status, d.starts_at, now) is None,
                     can_rate=d.status in (rules.DriveStatus.RETURNED, rules.DriveStatus.FOLLOWED_UP)
                     and d.customer_rating is None,
                     vapid_public_key=await system.vapid_public_key(drives.session), **extra)
    if context["can_change"] and (day := extra.get("reschedule_day")):
        context["reschedule_slots"] = await drives.reschedule_options(view, day)
    return context


class TestDriveTrackController(Controller):
    __test__ = False
    path = "/test-drive/track"
    include_in_schema = False
    dependencies = drive_dependencies

    @get("/{token:str}", name="test_drive_track")
    async def show(self, request: Request, drives: TestDriveService, token: Annotated[str, Parameter(max_length=100)],
                   booked: bool = False, reschedule: Annotated[str | None, Parameter(max_length=10)] = None,
                   ) -> Template:
        context = await tracking_context(drives, token, booked=booked, reschedule_day=form_day(reschedule))
        # Private: never cached by a shared cache, never sent as a referrer.
        return page(request, "test_drives/track.html", context, block="drive", headers=NO_STORE)

    async def _after(self, request: Request, drives: TestDriveService, token: str, *, notice: str | None = None,
                     exc: DomainError | None = None) -> Response:
        if exc is None and not is_fragment_request(request):
            return Redirect(tracking_path(token), status_code=303)
        context = await tracking_context(drives, token, notice=notice, form_error=exc.message if exc else None,
                                         errors=exc.fields if exc else {})
        return page(request, "test_drives/track.html", context, block="drive",
                    status_code=exc.status_code if exc else 200, headers=NO_STORE)

    @post("/{token:str}/reschedule")
    async def reschedule(self, request: Request, drives: TestDriveService,
                         token: Annotated[str, Parameter(max_length=100)]) -> Response:
        start = parse_start((await request.form()).get("start"))
        await drives.tracked(token)  # an unknown link is a 404, not a re-rendered page
        try:
            if start is None:
                message = _("Choose one of the offered times.")
                raise Invalid(message, fields={"start": message})
            await drives.reschedule_by_link(token, start)
        except DomainError as exc:
            return await self._after(request, drives, token, exc=exc)
        return await self._after(request, drives, token, notice=_("Your test drive has been moved."))

    @post("/{token:str}/confirm")
    async def confirm(self, request: Request, drives: TestDriveService,
                      token: Annotated[str, Parameter(max_length=100)]) -> Response:
        await drives.tracked(token)  # an unknown link is a 404, not a re-rendered page
        try:
            await drives.confirm_by_link(token)
        except DomainError as exc:
            return await self._after(request, drives, token, exc=exc)
        return await self._after(request, drives, token, notice=_("Thank you for confirming. See you then!"))

    @post("/{token:str}/cancel")
    async def cancel(self, request: Request, drives: TestDriveService,
                     token: Annotated[str, Parameter(max_length=100)]) -> Response:
        await drives.tracked(token)
        try:
            await drives.cancel_by_link(token)
        except DomainError as exc:
            return await self._after(request, drives, token, exc=exc)
        return await self._after(request, drives, token, notice=_("Your test drive has been cancelled."))

    @post("/{token:str}/feedback")
    async def feedback(self, request: Request, drives: TestDriveService,
                       token: Annotated[str, Parameter(max_length=100)]) -> Response:
        values = form_values(await request.form())
        parsed, errors = parse_form(FeedbackIn, {k: v for k, v in values.items() if k in ("rating", "comment")})
        await drives.tracked(token)
        try:
            if parsed is None:
                raise Invalid(_("Choose from 1 to 5 stars."), fields={"rating": _("Choose from 1 to 5 stars.")}
                              if "rating" in errors else errors)
            await drives.feedback(token, parsed.rating, parsed.comment)
        except DomainError as exc:
            return await self._after(request, drives, token, exc=exc)
        return await self._after(request, drives, token, notice=_("Thank you for your answer."))

    @get("/{token:str}/calendar.ics")
    async def calendar(self, drives: TestDriveService, token: Annotated[str, Parameter(max_length=100)]) -> Response:
        view = await drives.tracked(token)
        d = view.drive
        link = get_settings().base_url.rstrip("/") + tracking_path(token)
        salesperson = view.salesperson.name if view.salesperson else ""
        data = ics.calendar_file(
            uid=f"test-drive-{d.id}-{d.reference}@forecourt", stamp=utcnow(), start=d.starts_at, end=d.ends_at,
            summary=_("Test drive: %(car)s", car=view.car),
            description=_("Test drive %(reference)s with %(salesperson)s. Please bring your driving licence. "
                          "See, move or cancel it: %(link)s", reference=d.reference, salesperson=salesperson,
                          link=link),
            location=f"{branch_label(view.branch)}, {view.branch.address}", url=link,
            cancelled=d.status == rules.DriveStatus.CANCELLED)
        return Response(data, media_type="text/calendar; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="test-drive-{d.reference}.ics"', **NO_STORE})


# -- the salesperson's screens ---------------------------------------------------------------------------


async def drive_context(request: Request, drives: TestDriveService, drive_id: int, **extra) -> dict:
    view = await drives.staff_view(request.user, drive_id)
    d = view.drive
    now = utcnow()
    return common(view=view, tz=view.tz, mask=rules.mask_licence,
                  can_check_out=d.status in rules.UPCOMING
                  and rules.check_out_problem(now, d.starts_at, view.tz) is None,
                  can_no_show=d.status in rules.UPCOMING and d.starts_at <= now,
                  can_confirm=d.status == rules.DriveStatus.BOOKED
                  and rules.confirm_problem(d.status, d.starts_at, now) is None,
                  odometer_default=view.vehicle.mileage_km, **extra)


async def drive_again(request: Request, drives: TestDriveService, drive_id: int, exc: DomainError,
                      values: dict | None = None) -> Template:
    context = await drive_context(request, drives, drive_id, form_error=exc.message, errors=exc.fields,
                                  values=values or {})
    return page(request, "test_drives/drive.html", context, block="drive", status_code=exc.status_code)


async def drive_done(request: Request, drives: TestDriveService, drive_id: int, notice: str) -> Response:
    if not is_fragment_request(request):
        return Redirect(f"/test-drives/{drive_id}", status_code=303)
    return page(request, "test_drives/drive.html", await drive_context(request, drives, drive_id, notice=notice),
                block="drive")


async def drive_action(request: Request, drives: TestDriveService, drive_id: int, action, notice: str) -> Response:
    """A button on the drive screen that needs nothing but the drive (no-show, confirm, cancel)."""
    try:
        await action(request.user, drive_id)
    except DomainError as exc:
        return await drive_again(request, drives, drive_id, exc)
    return await drive_done(request, drives, drive_id, notice)


async def upload(data: dict, name: str) -> bytes | None:
    item = data.get(name)
    if isinstance(item, UploadFile):
        return await item.read() or None
    return None


class TestDriveDeskController(Controller):
    __test__ = False
    path = "/test-drives"
    include_in_schema = False
    guards = [roles_required(*SALES_DESK), sessions_only]
    dependencies = drive_dependencies

    @get("/", name="test_drives_day")
    async def day(self, request: Request, drives: TestDriveService,
                  day: Annotated[str | None, Parameter(query="date", max_length=10)] = None,
                  branch: Annotated[int | None, Parameter(ge=1, le=2**31 - 1)] = None) -> Template:
        chosen = form_day(day)
        found = await drives.my_day(request.user, chosen, branch)
        return page(request, "test_drives/day.html", common(
            **found, bad_day=bool(day) and chosen is None, now=utcnow(),
            prev_day=found["day"] - timedelta(days=1), next_day=found["day"] + timedelta(days=1)), block="day")

    @get("/week", name="test_drives_week")
    async def week(self, request: Request, drives: TestDriveService,
                   vehicle_id: Annotated[int | None, Parameter(ge=1, le=2**31 - 1)] = None,
                   start: Annotated[str | None, Parameter(max_length=10)] = None) -> Template:
        found = await drives.week(request.user, vehicle_id, form_day(start))
        return page(request, "test_drives/week.html", common(
            **found, prev_week=found["first"] - timedelta(days=7), next_week=found["first"] + timedelta(days=7)),
            block="week")

    @get("/walk-in", name="test_drives_walk_in")
    async def walk_in_form(self, request: Request, drives: TestDriveService,
                           vehicle_id: Annotated[int | None, Parameter(ge=1, le=2**31 - 1)] = None) -> Template:
        options = await drives.walk_in_options(request.user, vehicle_id)
        return page(request, "test_drives/walk_in.html", common(**options, idempotency_key=uuid.uuid4().hex),
                    block="walkin")

    @post("/walk-in")
    async def walk_in(self, request: Request, drives: TestDriveService) -> Response:
        values = form_values(await request.form())
        raw = {k: v for k, v in values.items() if k in ("vehicle_id", "start", "name", "phone") and v}
        raw |= {"consent": values.get("consent") == "on", "source": "walk_in"}
        parsed, errors = parse_form(BookingIn, raw)
        try:
            if parsed is None:
                raise Invalid(_("Please correct the highlighted fields."), fields=errors)
            view = await drives.book(parsed, principal=request.user, idempotency_key=values.get("idempotency_key"))
        except DomainError as exc:
            options = await drives.walk_in_options(request.user, form_int(values.get("vehicle_id")))
            offered = [rules.Slot(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
                       for s in exc.extra.get("next_slots", [])]
            if offered:
                options["slots"] = offered
            context = common(**options, values=values, errors=exc.fields, form_error=exc.message,
                             idempotency_key=uuid.uuid4().hex)
            return page(request, "test_drives/walk_in.html", context, status_code=exc.status_code)
        return Redirect(f"/test-drives/{view.drive.id}", status_code=303)

    @get("/cars", name="test_drives_cars", guards=[roles_required(StaffRole.MANAGER)])
    async def cars(self, request: Request, drives: TestDriveService) -> Template:
        return page(request, "test_drives/cars.html", await self._cars_context(request, drives))

    async def _cars_context(self, request: Request, drives: TestDriveService, **extra) -> dict:
        branch = await drives.staff_branch(request.user)
        return common(branch=branch, cars=await drives.cars(branch_id=branch.id), **extra)

    @post("/cars", guards=[roles_required(StaffRole.MANAGER)])
    async def mark(self, request: Request, drives: TestDriveService) -> Response:
        from backend.domains.stock.service import StockService

        values = form_values(await request.form())
        try:
            if values.get("vehicle_id"):
                vehicle_id = form_int(values.get("vehicle_id"))
                if vehicle_id is None:
                    raise Invalid(fields={"vin": _("Choose a car.")})
                await drives.set_drivable(request.user, vehicle_id, values.get("drivable") == "true")
            else:
                found = await StockService(drives.session).find_by_vin(request.user, values.get("vin", "")[:40])
                if len(found) != 1:
                    message = (_("No car of your branch has this VIN.") if not found
                               else _("Several cars end with these characters: enter the full VIN."))
                    raise Invalid(message, fields={"vin": message})
                await drives.set_drivable(request.user, found[0]["id"], True)
        except DomainError as exc:
            context = await self._cars_context(request, drives, errors=exc.fields, values=values,
                                               form_error=exc.message or next(iter(exc.fields.values()), None))
            return page(request, "test_drives/cars.html", context, status_code=exc.status_code)
        return Redirect("/test-drives/cars", status_code=303)

    @get("/{drive_id:int}", name="test_drive")
    async def drive(self, request: Request, drives: TestDriveService, drive_id: int) -> Template:
        return page(request, "test_drives/drive.html", await drive_context(request, drives, drive_id), block="drive")

    @post("/{drive_id:int}/check-out", request_max_body_size=PHOTO_FORM_MAX_BYTES)
    async def check_out(self, request: Request, drives: TestDriveService, drive_id: int,
                        data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        values = form_values(data)
        raw = {k: v for k, v in values.items() if k in ("licence_number", "licence_expiry", "odometer_out") and v}
        raw["key_handed_over"] = values.get("key_handed_over") == "on"
        parsed, errors = parse_form(CheckOutIn, raw)
        try:
            if parsed is None:
                raise Invalid(_("Please correct the highlighted fields."), fields=errors)
            await drives.check_out(request.user, drive_id, parsed, await upload(data, "photo"))
        except DomainError as exc:
            return await drive_again(request, drives, drive_id, exc, values)
        return await drive_done(request, drives, drive_id, _("Checked out. Have a good drive!"))

    @post("/{drive_id:int}/return")
    async def return_car(self, request: Request, drives: TestDriveService, drive_id: int) -> Response:
        values = form_values(await request.form())
        raw = {k: v for k, v in values.items() if k in ("odometer_in", "energy_level", "notes", "interest") and v}
        parsed, errors = parse_form(ReturnIn, raw)
        try:
            if parsed is None:
                raise Invalid(_("Please correct the highlighted fields."), fields=errors)
            await drives.return_car(request.user, drive_id, parsed)
        except DomainError as exc:
            return await drive_again(request, drives, drive_id, exc, values)
        return await drive_done(request, drives, drive_id, _("The car is back."))

    @post("/{drive_id:int}/no-show")
    async def no_show(self, request: Request, drives: TestDriveService, drive_id: int) -> Response:
        return await drive_action(request, drives, drive_id, drives.no_show, _("Recorded as a no-show."))

    @post("/{drive_id:int}/confirm")
    async def confirm(self, request: Request, drives: TestDriveService, drive_id: int) -> Response:
        """A salesperson records that the customer is coming (e.g. after a phone call)."""
        return await drive_action(request, drives, drive_id, drives.staff_confirm,
                                  _("Confirmed: the customer is coming."))

    @post("/{drive_id:int}/cancel")
    async def cancel(self, request: Request, drives: TestDriveService, drive_id: int) -> Response:
        return await drive_action(request, drives, drive_id, drives.staff_cancel,
                                  _("The test drive has been cancelled."))

    @post("/{drive_id:int}/follow-up")
    async def follow_up(self, request: Request, drives: TestDriveService, drive_id: int) -> Response:
        values = form_values(await request.form())
        parsed, errors = parse_form(FollowUpIn, {"note": values.get("note", "")})
        try:
            if parsed is None:
                raise Invalid(_("Please correct the highlighted fields."), fields=errors)
            await drives.complete_follow_up(request.user, drive_id, parsed.note)
        except DomainError as exc:
            return await drive_again(request, drives, drive_id, exc, values)
        return await drive_done(request, drives, drive_id, _("Follow-up done."))

    @get("/{drive_id:int}/licence/{file_name:str}")
    async def licence_photo(self, request: Request, drives: TestDriveService, drive_id: int,
                            file_name: str) -> Response[bytes]:
        key, thumbnail = photos.parse_name(file_name) or (None, False)
        content = await drives.licence_photo(request.user, drive_id, key, thumbnail)  # guards first, then 404
        return Response(content, media_type="image/jpeg",
                        headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                                 "Content-Disposition": "inline"})


# -- the manager's settings ------------------------------------------------------------------------------

SETTINGS_PATH = "/test-drives/settings"


def settings_url(branch_id: int | None) -> str:
    return f"{SETTINGS_PATH}?branch={branch_id}" if branch_id else SETTINGS_PATH


def hours_input(values: dict) -> dict:
    """The hours form as ``HoursIn`` takes it: None for "same as the branch", else a day -> [start, end]."""
    if values.get("mode") != "own":
        return {"working_hours": None, "takes_online": values.get("takes_online") == "on"}
    hours = {}
    for day in rules.WEEKDAYS:
        start, end = values.get(f"{day}_start", "").strip(), values.get(f"{day}_end", "").strip()
        hours[day] = [start[:5], end[:5]] if start or end else None
    if not any(hours.values()):
        hours = dict.fromkeys(rules.WEEKDAYS)  # own hours, no day at work: not the branch's hours
    return {"working_hours": hours, "takes_online": values.get("takes_online") == "on"}


class TestDriveSetupController(Controller):
    """Where managers configure test drives for their branch (admins and the group's manager pick one)."""

    __test__ = False
    path = SETTINGS_PATH
    include_in_schema = False
    guards = [roles_required(StaffRole.MANAGER), sessions_only]
    dependencies = {"setup": Provide(provide_setup, sync_to_thread=False)}

    async def _context(self, request: Request, setup: TestDriveSetup, branch_id: int | None, **extra) -> dict:
        branch = await setup.branch_for(request.user, branch_id)
        settings, is_default = await setup.settings(branch)
        scoped = request.user.branch_scope is not None
        return common(
            branch=branch, branches=[] if scoped else await setup.branches(request.user),
            branch_param=None if scoped else branch.id, settings=settings, is_default=is_default,
            slot_choices=rules.SLOT_CHOICES, models=await setup.model_choices(branch),
            people=await setup.salespeople(branch), weekdays=rules.WEEKDAYS, labels_weekday=rules.WEEKDAY_LABELS,
            default_minutes=settings.drive_minutes, **({"person_errors": {}, "person_values": {}} | extra))

    async def _answer(self, request: Request, setup: TestDriveSetup, branch_id: int | None, block: str,
                      notice: str | None = None, exc: DomainError | None = None, **extra) -> Response:
        if exc is None and not is_fragment_request(request):
            return Redirect(settings_url(branch_id), status_code=303)
        context = await self._context(request, setup, branch_id, **extra)
        context[f"{block}_notice"] = notice
        if exc is not None:
            context[f"{block}_error"] = exc.message
        return page(request, "test_drives/settings.html", context, block=block,
                    status_code=exc.status_code if exc else 200)

    @get("/", name="test_drives_settings")
    async def show(self, request: Request, setup: TestDriveSetup,
                   branch: Annotated[int | None, Parameter(ge=1, le=2**31 - 1)] = None) -> Template:
        return page(request, "test_drives/settings.html", await self._context(request, setup, branch),
                    block="settings")

    @post("/")
    async def save_rules(self, request: Request, setup: TestDriveSetup) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        parsed, errors = parse_form(SettingsIn, {k: values.get(k, "") for k in SettingsIn.model_fields})
        try:
            if parsed is None:  # every message at once: the rules for the numbers that could be read
                numbers = {k: form_int(values.get(k)) for k in SettingsIn.model_fields}
                fallback = rules.DEFAULT_RULES
                problems = rules.settings_problems(**{k: fallback[k] if k in errors or n is None else n
                                                      for k, n in numbers.items()})
                raise Invalid(fields=problems | errors)
            await setup.save_settings(request.user, await setup.branch_for(request.user, branch_id), parsed)
        except Invalid as exc:
            return await self._answer(request, setup, branch_id, "rules", exc=exc, errors=exc.fields,
                                      values=values)
        return await self._answer(request, setup, branch_id, "rules", notice=_("Booking rules saved."))

    @post("/lengths")
    async def set_length(self, request: Request, setup: TestDriveSetup) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        try:
            branch = await setup.branch_for(request.user, branch_id)
            choice = next((c for c in await setup.model_choices(branch) if c.key == values.get("model")), None)
            minutes = form_int(values.get("minutes"))
            problems = {}
            if choice is None:
                problems["model"] = _("Choose one of the models your branch offers for test drives.")
            if minutes is None:
                problems["minutes"] = _("Enter a number.")
            if problems:
                raise Invalid(fields=problems)
            await setup.set_model_length(request.user, branch, choice.make, choice.model, minutes)
        except Invalid as exc:
            return await self._answer(request, setup, branch_id, "lengths", exc=exc, errors=exc.fields,
                                      values=values)
        return await self._answer(request, setup, branch_id, "lengths",
                                  notice=_("%(model)s: %(minutes)s minutes saved.", model=choice.label,
                                           minutes=minutes))

    @post("/lengths/remove")
    async def remove_length(self, request: Request, setup: TestDriveSetup) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        branch = await setup.branch_for(request.user, branch_id)
        choice = next((c for c in await setup.model_choices(branch) if c.key == values.get("model")), None)
        if choice is None:
            raise NotFound()
        try:
            await setup.remove_model_length(request.user, branch, choice.make, choice.model)
        except NotFound as exc:
            return await self._answer(request, setup, branch_id, "lengths", exc=exc)
        return await self._answer(request, setup, branch_id, "lengths",
                                  notice=_("%(model)s now takes the default length.", model=choice.label))

    @post("/salespeople/{staff_user_id:int}")
    async def set_hours(self, request: Request, setup: TestDriveSetup, staff_user_id: int) -> Response:
        values = form_values(await request.form())
        branch_id = form_int(values.get("branch"))
        try:
            parsed, errors = parse_form(HoursIn, hours_input(values))
            if parsed is None:
                raise Invalid(fields=errors)
            person = await setup.set_hours(request.user, staff_user_id, parsed)
        except Invalid as exc:
            return await self._answer(request, setup, branch_id, "people", exc=exc,
                                      person_errors={staff_user_id: exc.fields},
                                      person_values={staff_user_id: values})
        return await self._answer(request, setup, branch_id, "people",
                                  notice=_("Saved for %(name)s.", name=person.user.name))


__all__ = ["DriveView", "TestDriveBookingController", "TestDriveDeskController", "TestDriveSetupController",
           "TestDriveTrackController"]
