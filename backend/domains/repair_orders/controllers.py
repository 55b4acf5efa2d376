"""Screens: check-in and walk-in, the advisor board, a repair order, the technician's jobs, photos, and the
customer's tracking page and lookup form.

Forms post normally (they work without JavaScript) and answer with a redirect; htmx posts get the
page's fragment back. A refused action re-renders the same fragment with the message and the current
state, with the refusal's status code (409, 422), the same way on every screen.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import File, Redirect, Template
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required, sessions_only
from backend.domains.accounts.rules import StaffRole
from backend.domains.service_booking import rules as booking_rules
from backend.domains.service_booking.api import client_ip
from backend.domains.service_booking.controllers import booking_context, labels
from backend.domains.service_booking.service import branch_label, localized
from backend.lib.db import utcnow
from backend.lib.errors import DomainError, Invalid, NotFound
from backend.lib.forms import form_values, parse_form
from backend.lib.htmx import is_fragment_request, page
from backend.lib.i18n import gettext as _

from . import photos, rules
from .rules import Status
from .schemas import CheckInIn, FindingIn, LookupIn, PartIn, SurveyIn, WalkInIn
from .service import RepairOrderService

PHOTO_FORM_MAX_BYTES = 9 * photos.MAX_PHOTO_BYTES  # a check-in with several photos
ADVISORS = (StaffRole.SERVICE_ADVISOR, StaffRole.MANAGER)
WORKSHOP = (StaffRole.SERVICE_ADVISOR, StaffRole.MANAGER, StaffRole.TECHNICIAN)


def provide_orders(db_session: AsyncSession, redis: Redis) -> RepairOrderService:
    return RepairOrderService(db_session, redis)


order_dependencies = {"orders": Provide(provide_orders, sync_to_thread=False)}


def order_labels() -> dict:
    return labels() | {"order": rules.STATUS_LABELS, "words": rules.CUSTOMER_WORDS,
                       "decision": rules.DECISION_LABELS}


def local_datetime(raw: Any, tz: str) -> datetime | None:
    """A ``datetime-local`` field (no zone) read in the branch's zone; None when it is not a date-time."""
    try:
        value = datetime.fromisoformat(str(raw))
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


async def uploads_of(data: dict, name: str = "photos") -> list[bytes]:
    """The files of a multipart field (one or several), ignoring empty file inputs."""
    found = data.get(name)
    items = found if isinstance(found, list) else [found]
    return [content for item in items if isinstance(item, UploadFile) and (content := await item.read())]




# -- check-in, walk-in, board -------------------------------------------------------------------


class ServiceDeskController(Controller):
    path = "/service"
    include_in_schema = False
    guards = [roles_required(*ADVISORS), sessions_only]
    dependencies = order_dependencies

    @get("/appointments/{appointment_id:int}", name="service_appointment")
    async def appointment(self, request: Request, orders: RepairOrderService, appointment_id: int) -> Template:
        return page(request, "service/appointment.html", await appointment_context(request, orders, appointment_id),
                    block="desk")

    @post("/appointments/{appointment_id:int}/status")
    async def appointment_status(self, request: Request, orders: RepairOrderService, appointment_id: int) -> Response:
        target = str((await request.form()).get("status", ""))[:16]
        try:
            await orders.booking.set_status(request.user, appointment_id, target)
        except DomainError as exc:
            return await _desk_again(request, orders, appointment_id, exc)
        return Redirect(f"/service/appointments/{appointment_id}", status_code=303)

    @post("/appointments/{appointment_id:int}/cancel")
    async def appointment_cancel(self, request: Request, orders: RepairOrderService, appointment_id: int) -> Response:
        await orders.booking.for_staff(request.user, appointment_id)
        try:
            await orders.booking.cancel(appointment_id, principal=request.user)
        except DomainError as exc:
            return await _desk_again(request, orders, appointment_id, exc)
        return Redirect(f"/service/appointments/{appointment_id}", status_code=303)

    @post("/appointments/{appointment_id:int}/check-in", request_max_body_size=PHOTO_FORM_MAX_BYTES)
    async def check_in(self, request: Request, orders: RepairOrderService, appointment_id: int,
                       data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        appointment = await orders.booking.for_staff(request.user, appointment_id)
        values = form_values(data)
        raw = {k: v for k, v in values.items() if k in CheckInIn.model_fields and v != ""}
        if "promised_at" in raw:
            raw["promised_at"] = local_datetime(raw["promised_at"], appointment.branch.timezone) or raw["promised_at"]
        parsed, errors = parse_form(CheckInIn, raw)
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            order = await orders.check_in(request.user, appointment_id, parsed, await uploads_of(data))
        except DomainError as exc:
            return await _desk_again(request, orders, appointment_id, exc, values)
        return Redirect(f"/repair-orders/{order.id}", status_code=303)

    @get("/walk-in")
    async def walk_in_form(self, request: Request, orders: RepairOrderService) -> Template:
        return page(request, "service/walk_in.html", await _walk_in_context(request, orders, {}, {}))

    @post("/walk-in", request_max_body_size=PHOTO_FORM_MAX_BYTES)
    async def walk_in(self, request: Request, orders: RepairOrderService,
                      data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        values = form_values(data)
        operations = data.get("operations")
        codes = [c.strip().upper()[:32] for c in (operations if isinstance(operations, list) else [operations])
                 if isinstance(c, str) and c.strip()]
        raw = {k: v for k, v in values.items() if k in WalkInIn.model_fields and v != ""}
        raw |= {"operations": codes, "privacy_consent": values.get("privacy_consent") == "on",
                "source": "walk_in", "slot": utcnow().isoformat()}
        try:
            branch = await orders.booking.branch(values.get("branch"))
            if "promised_at" in raw:
                raw["promised_at"] = local_datetime(raw["promised_at"], branch.timezone) or raw["promised_at"]
            parsed, errors = parse_form(WalkInIn, raw)
            if parsed is None:
                raise Invalid(fields=errors)
            order = await orders.walk_in(request.user, parsed, await uploads_of(data))
        except DomainError as exc:
            context = await _walk_in_context(request, orders, values | {"codes": codes}, exc.fields,
                                             form_error=exc.message)
            return page(request, "service/walk_in.html", context, status_code=exc.status_code)
        return Redirect(f"/repair-orders/{order.id}", status_code=303)

    @get("/board", name="service_board")
    async def board(self, request: Request, orders: RepairOrderService,
                    day: Annotated[str | None, Parameter(max_length=10)] = None,
                    branch: Annotated[int | None, Parameter(ge=1)] = None) -> Template:
        try:
            chosen = date.fromisoformat(day) if day else None
        except ValueError:
            chosen = None
        board = await orders.board(request.user, chosen, branch)
        return page(request, "service/board.html", {
            **board, "labels": order_labels(), "L": localized, "branch_label": branch_label,
            "display_plate": booking_rules.display_plate, "bad_day": bool(day) and chosen is None,
            "prev_day": date.fromordinal(board["day"].toordinal() - 1),
            "next_day": date.fromordinal(board["day"].toordinal() + 1),
        }, block="board")


async def appointment_context(request: Request, orders: RepairOrderService, appointment_id: int, **extra) -> dict:
    """An advisor's view of one appointment: details, the check-in form, confirm / no-show / cancel."""
    view = await orders.booking.for_staff(request.user, appointment_id)
    a = view.appointment
    return {"view": view, "order": await orders.order_for_appointment(request.user, appointment_id),
            "labels": labels(), "L": localized, "errors": {}, "values": {}, "tz": view.branch.timezone,
            "open": a.status in booking_rules.OPEN_APPOINTMENT, "display_plate": booking_rules.display_plate,
            "promised_default": promised_default(a.slot_start, a.estimated_minutes, utcnow(), view.branch.timezone),
            **extra}


async def _desk_again(request: Request, orders: RepairOrderService, appointment_id: int, exc: DomainError,
                      values: dict | None = None) -> Template:
    context = await appointment_context(request, orders, appointment_id, errors=exc.fields, values=values or {},
                                        form_error=exc.message)
    return page(request, "service/appointment.html", context, block="desk", status_code=exc.status_code)


def promised_default(slot: datetime, minutes: int, now: datetime, tz: str) -> str:
    """A suggestion for the promised time: an hour after the work, rounded up to the half hour, local."""
    ready = (max(slot, now) + timedelta(minutes=minutes + 60)).astimezone(ZoneInfo(tz)).replace(second=0,
                                                                                                 microsecond=0)
    ready += timedelta(minutes=(30 - ready.minute % 30) % 30)
    return ready.strftime("%Y-%m-%dT%H:%M")


async def _walk_in_context(request: Request, orders: RepairOrderService, values: dict, errors: dict,
                           **extra) -> dict:
    context, _status = await booking_context(request, orders.booking, branch_code=values.get("branch"), day=None,
                                             codes=values.get("codes", []), values=values, errors=errors, **extra)
    return context


# -- one repair order ---------------------------------------------------------------------------


async def order_context(request: Request, orders: RepairOrderService, order_id: int, **extra) -> dict:
    view = await orders.for_staff(request.user, order_id)
    role = request.user.role
    order_of = rules.ACTIVE_ORDERED + (Status.DELIVERED, Status.CANCELLED)
    targets = sorted(await orders.allowed_moves(request.user, view.order), key=order_of.index)
    return {"view": view, "labels": order_labels(), "L": localized, "targets": targets,
            "advisor": role in rules.ADVISOR_ROLES, "errors": {}, "values": {},
            "display_plate": booking_rules.display_plate, "tz": view.branch.timezone,
            "finding_open": view.order.status in {s.value for s in rules.ACTIVE} - {Status.OPEN, Status.QUALITY_CHECK,
                                                                                  Status.READY_FOR_PICKUP},
            **extra}


async def _order_again(request: Request, orders: RepairOrderService, order_id: int, exc: DomainError,
                       values: dict | None = None) -> Template:
    context = await order_context(request, orders, order_id, form_error=exc.message, errors=exc.fields,
                                  values=values or {})
    return page(request, "repair_orders/show.html", context, block="order", status_code=exc.status_code)


async def _order_done(request: Request, orders: RepairOrderService, order_id: int, notice: str) -> Response:
    if not is_fragment_request(request):
        return Redirect(f"/repair-orders/{order_id}", status_code=303)
    return page(request, "repair_orders/show.html", await order_context(request, orders, order_id, notice=notice),
                block="order")


class RepairOrderController(Controller):
    path = "/repair-orders"
    include_in_schema = False
    guards = [roles_required(*WORKSHOP), sessions_only]
    dependencies = order_dependencies

    @get("/{order_id:int}", name="repair_order")
    async def show(self, request: Request, orders: RepairOrderService, order_id: int) -> Template:
        return page(request, "repair_orders/show.html", await order_context(request, orders, order_id),
                    block="order")

    @post("/{order_id:int}/status")
    async def status(self, request: Request, orders: RepairOrderService, order_id: int) -> Response:
        form = await request.form()
        target, note = str(form.get("status", ""))[:20], str(form.get("note", ""))[:500]
        try:
            version = int(form.get("version", ""))
        except ValueError:
            version = None
        try:
            if target not in {s.value for s in Status}:
                raise Invalid(_("Choose one of the offered options."),
                              fields={"status": _("Choose one of the offered options.")})
            await orders.move(request.user, order_id, target, version=version, note=note)
        except DomainError as exc:
            return await _order_again(request, orders, order_id, exc)
        return await _order_done(request, orders, order_id, _("Now “%(status)s”.", status=rules.status_label(target)))

    @post("/{order_id:int}/findings", request_max_body_size=photos.MAX_PHOTO_BYTES + 256 * 1024)
    async def finding(self, request: Request, orders: RepairOrderService, order_id: int,
                      data: Annotated[dict, Body(media_type=RequestEncodingType.MULTI_PART)]) -> Response:
        values = form_values(data)
        parsed, errors = parse_form(FindingIn, {k: v for k, v in values.items()
                                                if k in FindingIn.model_fields and v != ""})
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            uploaded = await uploads_of(data, "photo")
            await orders.report_finding(request.user, order_id, parsed, uploaded[0] if uploaded else None)
        except DomainError as exc:
            return await _order_again(request, orders, order_id, exc, values)
        return await _order_done(request, orders, order_id, _("Sent to the customer for approval."))

    @post("/{order_id:int}/parts", guards=[roles_required(*ADVISORS)])
    async def add_part(self, request: Request, orders: RepairOrderService, order_id: int) -> Response:
        values = form_values(await request.form())
        parsed, errors = parse_form(PartIn, {k: v for k, v in values.items() if k in PartIn.model_fields and v != ""})
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            await orders.add_part(request.user, order_id, parsed)
        except DomainError as exc:
            return await _order_again(request, orders, order_id, exc, values)
        return await _order_done(request, orders, order_id, _("Part added."))

    @post("/{order_id:int}/lines/{line_id:int}/assign", guards=[roles_required(*ADVISORS)])
    async def assign(self, request: Request, orders: RepairOrderService, order_id: int, line_id: int) -> Response:
        raw = (await request.form()).get("technician_id", "")
        try:
            line = await orders.assign(request.user, line_id, int(raw) if str(raw).isdigit() else 0)
            if line.repair_order_id != order_id:
                raise NotFound()
        except DomainError as exc:
            return await _order_again(request, orders, order_id, exc)
        return await _order_done(request, orders, order_id, _("Technician assigned."))


class StaffPhotoController(Controller):
    path = "/media/repair-orders"
    include_in_schema = False
    guards = [roles_required(*WORKSHOP)]
    dependencies = order_dependencies

    @get("/{file_name:str}")
    async def photo(self, request: Request, orders: RepairOrderService, file_name: str) -> File:
        path = await orders.photo_for_staff(request.user, file_name)
        return File(path=path, content_disposition_type="inline", media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=86400"})


# -- the technician's phone ---------------------------------------------------------------------


class JobsController(Controller):
    path = "/service/jobs"
    include_in_schema = False
    guards = [roles_required(StaffRole.TECHNICIAN), sessions_only]
    dependencies = order_dependencies

    async def _context(self, request: Request, orders: RepairOrderService, **extra) -> dict:
        technician, jobs = await orders.my_jobs(request.user)
        return {"technician": technician, "jobs": jobs, "labels": order_labels(), "L": localized,
                "display_plate": booking_rules.display_plate, **extra}

    async def _after(self, request: Request, orders: RepairOrderService, notice: str | None = None,
                     exc: DomainError | None = None) -> Response:
        if exc is None and not is_fragment_request(request):
            return Redirect("/service/jobs", status_code=303)
        context = await self._context(request, orders, notice=notice, form_error=exc.message if exc else None)
        return page(request, "service/jobs.html", context, block="jobs",
                    status_code=exc.status_code if exc else 200)

    @get("/", name="service_jobs")
    async def index(self, request: Request, orders: RepairOrderService) -> Template:
        return page(request, "service/jobs.html", await self._context(request, orders), block="jobs")

    @post("/{line_id:int}/start")
    async def start(self, request: Request, orders: RepairOrderService, line_id: int) -> Response:
        try:
            await orders.start_clock(request.user, line_id)
        except DomainError as exc:
            return await self._after(request, orders, exc=exc)
        return await self._after(request, orders, _("Clock started."))

    @post("/stop")
    async def stop(self, request: Request, orders: RepairOrderService) -> Response:
        try:
            await orders.stop_clock(request.user)
        except DomainError as exc:
            return await self._after(request, orders, exc=exc)
        return await self._after(request, orders, _("Clock stopped."))

    @post("/{line_id:int}/done")
    async def done(self, request: Request, orders: RepairOrderService, line_id: int) -> Response:
        try:
            await orders.finish_line(request.user, line_id)
        except DomainError as exc:
            return await self._after(request, orders, exc=exc)
        return await self._after(request, orders, _("Marked done."))


# -- the customer's tracking page ---------------------------------------------------------------


async def tracking_context(orders: RepairOrderService, token: str, **extra) -> dict:
    from backend.domains.system import service as system

    link, view, appointment = await orders.tracked(token)
    context = {"token": token, "view": view, "appointment": appointment, "labels": order_labels(), "L": localized,
               "branch_label": branch_label, "display_plate": booking_rules.display_plate, "errors": {},
               "vapid_public_key": await system.vapid_public_key(orders.session), **extra}
    if appointment is not None:
        tz = appointment.branch.timezone
        open_ = appointment.appointment.status in booking_rules.OPEN_APPOINTMENT
        context |= {"tz": tz, "can_change": open_ and appointment.appointment.slot_start > utcnow()}
        if context["can_change"] and (day := extra.get("reschedule_day")):
            plan = await orders.booking.plan(appointment.branch)
            needed = {k: v for k, v in appointment.appointment.resources.items() if k != "checkin"}
            start = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(tz))
            context["reschedule_slots"] = await orders.booking.next_free(
                plan, needed, after=max(start, utcnow() + timedelta(minutes=plan.settings.min_notice_minutes)),
                limit=12, exclude=appointment.appointment.slot_start)
    else:
        context["tz"] = view.branch.timezone
    return context


class TrackController(Controller):
    path = "/track"
    include_in_schema = False
    dependencies = order_dependencies

    @get("/", name="track_lookup")
    async def lookup_form(self, request: Request) -> Template:
        return page(request, "track/lookup.html", {"values": {}, "errors": {}})

    @post("/")
    async def lookup(self, request: Request, orders: RepairOrderService) -> Response:
        values = form_values(await request.form())
        parsed, errors = parse_form(LookupIn, {k: v for k, v in values.items()
                                               if k in LookupIn.model_fields and v != ""})
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            if not parsed.phone and not parsed.plate:
                raise Invalid(fields={"phone": _("Enter your mobile number or your car's plate.")})
            token = await orders.lookup(parsed.ro_number, phone=parsed.phone, plate=parsed.plate,
                                        ip=client_ip(request))
        except DomainError as exc:
            headers = {"Retry-After": str(exc.extra["retry_after"])} if exc.extra.get("retry_after") else None
            return page(request, "track/lookup.html", {"values": values, "errors": exc.fields,
                                                       "form_error": exc.message},
                        status_code=exc.status_code, headers=headers)
        return Redirect(f"/track/{token}", status_code=303)

    @get("/{token:str}", name="track")
    async def show(self, request: Request, orders: RepairOrderService,
                   token: Annotated[str, Parameter(max_length=100)], booked: bool = False,
                   reschedule: Annotated[str | None, Parameter(max_length=10)] = None) -> Template:
        try:
            day = date.fromisoformat(reschedule) if reschedule else None
        except ValueError:
            day = None
        context = await tracking_context(orders, token, booked=booked, reschedule_day=day)
        # Private: never cached by a shared cache, never sent as a referrer.
        return page(request, "track/show.html", context, block="progress", headers={"Cache-Control": "no-store"})

    async def _after(self, request: Request, orders: RepairOrderService, token: str, *,
                     notice: str | None = None, exc: DomainError | None = None) -> Response:
        if exc is None and not is_fragment_request(request):
            return Redirect(f"/track/{token}", status_code=303)
        context = await tracking_context(orders, token, notice=notice, form_error=exc.message if exc else None,
                                         errors=exc.fields if exc else {})
        return page(request, "track/show.html", context, block="progress",
                    status_code=exc.status_code if exc else 200, headers={"Cache-Control": "no-store"})

    @post("/{token:str}/approvals")
    async def approve(self, request: Request, orders: RepairOrderService,
                      token: Annotated[str, Parameter(max_length=100)]) -> Response:
        form = await request.form()
        raw_id, decision = str(form.get("item_id", "")), str(form.get("decision", ""))[:16]
        await orders.resolve(token)  # an unknown link is a 404, not a re-rendered page
        try:
            if not raw_id.isdigit() or len(raw_id) > 9:
                raise Invalid(_("Choose an item."), fields={"item_id": _("Choose an item.")})
            await orders.decide_by_link(token, [(int(raw_id), decision)])
        except DomainError as exc:
            return await self._after(request, orders, token, exc=exc)
        notice = _("Thank you: approved.") if rules.decision_from(decision) == rules.Decision.APPROVED \
            else _("Thank you: declined.")
        return await self._after(request, orders, token, notice=notice)

    @post("/{token:str}/reschedule")
    async def reschedule(self, request: Request, orders: RepairOrderService,
                         token: Annotated[str, Parameter(max_length=100)]) -> Response:
        form = await request.form()
        link, _view, appointment = await orders.tracked(token)
        try:
            if appointment is None:
                raise Invalid(_("This appointment can no longer be changed."))
            slot = local_datetime(form.get("slot"), appointment.branch.timezone)
            if slot is None:
                message = _("Choose one of the offered times.")
                raise Invalid(message, fields={"slot": message})
            await orders.booking.reschedule(appointment.appointment.id, slot, customer_label="customer (tracking link)",
                                            token=token)
        except DomainError as exc:
            return await self._after(request, orders, token, exc=exc)
        return await self._after(request, orders, token, notice=_("Your appointment has been moved."))

    @post("/{token:str}/cancel")
    async def cancel(self, request: Request, orders: RepairOrderService,
                     token: Annotated[str, Parameter(max_length=100)]) -> Response:
        link, _view, appointment = await orders.tracked(token)
        try:
            if appointment is None:
                raise Invalid(_("This appointment can no longer be changed."))
            await orders.booking.cancel(appointment.appointment.id, customer_label="customer (tracking link)",
                                        token=token)
        except DomainError as exc:
            return await self._after(request, orders, token, exc=exc)
        return await self._after(request, orders, token, notice=_("Your appointment has been cancelled."))

    @post("/{token:str}/survey")
    async def survey(self, request: Request, orders: RepairOrderService,
                     token: Annotated[str, Parameter(max_length=100)]) -> Response:
        values = form_values(await request.form())
        parsed, errors = parse_form(SurveyIn, {k: v for k, v in values.items() if k in ("score", "comment")})
        try:
            if parsed is None:
                raise Invalid(fields=errors)
            await orders.answer_survey(token, parsed.score, parsed.comment)
        except DomainError as exc:
            return await self._after(request, orders, token, exc=exc)
        return await self._after(request, orders, token, notice=_("Thank you for your answer."))

    @get("/{token:str}/photos/{file_name:str}")
    async def photo(self, orders: RepairOrderService, token: Annotated[str, Parameter(max_length=100)],
                    file_name: str) -> File:
        path = await orders.photo_for_link(token, file_name)
        return File(path=path, content_disposition_type="inline", media_type="image/jpeg",
                    headers={"Cache-Control": "private, no-store"})
