"""JSON API: repair orders for staff and API keys, and the customer's tracking endpoints.

Status changes take the ``version`` the caller saw; a newer one answers 409 with ``current_status`` and
``current_version``. The tracking endpoints are authorised by the token in the path (no CSRF cookie);
the lookup is rate limited and answers the same 404 whatever was wrong.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED

from backend.domains.accounts.guards import roles_required
from backend.domains.service_booking.api import (
    MAX_JSON_BYTES,
    client_ip,
    conflict_response,
    invalid_input,
    tracking_url,
)
from backend.domains.service_booking.rules import appointment_status_label
from backend.domains.service_booking.service import AppointmentView, branch_label, localized
from backend.lib.errors import Conflict, Invalid
from backend.lib.i18n import gettext as _

from . import rules
from .controllers import ADVISORS, WORKSHOP, order_dependencies
from .schemas import (
    CheckInIn,
    DecisionsIn,
    EventOut,
    FindingIn,
    ItemOut,
    LabourOut,
    LookupIn,
    PartIn,
    PartOut,
    RepairOrderOut,
    StatusChangeIn,
    TotalsOut,
    TrackingOut,
)
from .service import OrderView, RepairOrderService


class CheckInApiIn(CheckInIn):
    appointment_id: int


def _items(view: OrderView, photo_url) -> list[ItemOut]:
    return [ItemOut(id=f.id, description=f.description, note=f.note, price=f.price,
                    photo_url=photo_url(view.photo_key(f.photo_id)) if f.photo_id else None, decision=f.decision,
                    decided_at=f.decided_at) for f in view.findings]


def _timeline(view: OrderView, *, with_names: bool) -> list[EventOut]:
    return [EventOut(status=e.to_status, status_label=rules.status_label(e.to_status), at=e.at,
                     by=e.actor_label if with_names else None, note=e.note) for e in view.events]


def repair_order_out(view: OrderView) -> RepairOrderOut:
    o, totals = view.order, view.totals
    return RepairOrderOut(
        id=o.id, number=o.number, branch=view.branch.code, appointment_id=o.appointment_id, status=o.status,
        status_label=rules.status_label(o.status), version=o.version, customer=view.customer.name,
        phone=view.customer.phone, plate=view.vehicle.plate, vin=view.vehicle.vin, mileage_in=o.mileage_in,
        energy_level=o.energy_level, concerns=o.concerns, promised_at=o.promised_at, checked_in_at=o.checked_in_at,
        timeline=_timeline(view, with_names=True),
        labour=[LabourOut(id=ln.id, name=localized(ln, "name"), standard_hours=ln.standard_hours, price=ln.price,
                          technician=view.technicians[ln.technician_id].name if ln.technician_id in view.technicians
                          else None, status=ln.status, clocked_minutes=ln.clocked_minutes, origin=ln.origin)
                for ln in view.labour],
        parts=[PartOut(id=p.id, part_number=p.part_number, description=p.description, quantity=p.quantity,
                       unit_cost=p.unit_cost, unit_price=p.unit_price) for p in view.parts],
        items=_items(view, lambda key: f"/media/repair-orders/{key}.jpg"),
        totals=TotalsOut(labour=totals.labour, parts=totals.parts, total=totals.total,
                         waiting_for_approval=totals.pending),
        parts_cost=totals.parts_cost)


def tracking_out(token: str, view: OrderView | None, appointment: AppointmentView | None) -> TrackingOut:
    if view is not None:
        o = view.order
        return TrackingOut(
            kind="repair_order", reference=o.number, status=o.status,
            status_text=str(rules.CUSTOMER_WORDS[rules.Status(o.status)]), branch=branch_label(view.branch),
            promised_at=o.promised_at, timeline=_timeline(view, with_names=False),
            items=_items(view, lambda key: f"/track/{token}/photos/{key}.jpg"), total_so_far=view.totals.total,
            waiting_for_approval=view.totals.pending)
    a = appointment.appointment
    return TrackingOut(kind="appointment", reference=a.reference, status=a.status,
                       status_text=appointment_status_label(a.status), branch=branch_label(appointment.branch),
                       slot_start=a.slot_start, total_so_far=None, can_change=a.status in ("booked", "confirmed"))


class RepairOrderApi(Controller):
    path = "/api/v1/repair-orders"
    tags = ["repair orders"]
    dependencies = order_dependencies
    exception_handlers = {ValidationException: invalid_input}

    @post("/", summary="Check a car in: its appointment becomes a repair order", status_code=HTTP_201_CREATED,
          guards=[roles_required(*ADVISORS)], request_max_body_size=MAX_JSON_BYTES)
    async def check_in(self, request: Request, orders: RepairOrderService, data: CheckInApiIn) -> RepairOrderOut:
        order = await orders.check_in(request.user, data.appointment_id,
                                      CheckInIn(**data.model_dump(exclude={"appointment_id"})))
        return repair_order_out(await orders.for_staff(request.user, order.id))

    @get("/{order_id:int}", summary="One repair order", guards=[roles_required(*WORKSHOP)])
    async def read(self, request: Request, orders: RepairOrderService, order_id: int) -> RepairOrderOut:
        return repair_order_out(await orders.for_staff(request.user, order_id))

    @post("/{order_id:int}/status", summary="Move a repair order to another status", status_code=200,
          guards=[roles_required(*WORKSHOP)], request_max_body_size=MAX_JSON_BYTES)
    async def move(self, request: Request, orders: RepairOrderService, order_id: int,
                   data: StatusChangeIn) -> Response[RepairOrderOut]:
        """409 (with ``current_status`` and ``current_version``) when the order changed since ``version``
        or the move is not allowed from its current status; 403 when the role may not make it."""
        try:
            await orders.move(request.user, order_id, data.status.value, version=data.version, note=data.note)
        except Conflict as exc:
            return conflict_response(exc)
        return Response(repair_order_out(await orders.for_staff(request.user, order_id)))

    @post("/{order_id:int}/findings", summary="Propose extra work for the customer's approval",
          status_code=HTTP_201_CREATED, guards=[roles_required(*WORKSHOP)], request_max_body_size=MAX_JSON_BYTES)
    async def finding(self, request: Request, orders: RepairOrderService, order_id: int,
                      data: FindingIn) -> RepairOrderOut:
        await orders.report_finding(request.user, order_id, data)
        return repair_order_out(await orders.for_staff(request.user, order_id))

    @post("/{order_id:int}/parts", summary="Add a parts line", status_code=HTTP_201_CREATED,
          guards=[roles_required(*ADVISORS)], request_max_body_size=MAX_JSON_BYTES)
    async def part(self, request: Request, orders: RepairOrderService, order_id: int,
                   data: PartIn) -> RepairOrderOut:
        await orders.add_part(request.user, order_id, data)
        return repair_order_out(await orders.for_staff(request.user, order_id))


class TrackApi(Controller):
    path = "/api/v1/track"
    tags = ["tracking"]
    dependencies = order_dependencies
    exception_handlers = {ValidationException: invalid_input}

    @post("/lookup", summary="Find a repair order by its number and the phone or plate", status_code=200,
          exclude_from_csrf=True, request_max_body_size=MAX_JSON_BYTES, security=[{}])
    async def lookup(self, request: Request, orders: RepairOrderService, data: LookupIn) -> dict:
        """200 with a fresh ``tracking_url``; 404 whatever did not match; 429 after too many tries."""
        if not data.phone and not data.plate:
            raise Invalid(fields={"phone": _("Enter your mobile number or your car's plate.")})
        token = await orders.lookup(data.ro_number, phone=data.phone, plate=data.plate, ip=client_ip(request))
        return {"tracking_url": tracking_url(token)}

    @get("/{token:str}", summary="A repair order (or appointment) by its tracking token", security=[{}])
    async def read(self, orders: RepairOrderService,
                   token: Annotated[str, Parameter(max_length=100)]) -> Response[TrackingOut]:
        _link, view, appointment = await orders.tracked(token)
        return Response(tracking_out(token, view, appointment), headers={"Cache-Control": "no-store"})

    @post("/{token:str}/approvals", summary="Approve or decline extra-work items", status_code=200,
          exclude_from_csrf=True, request_max_body_size=MAX_JSON_BYTES, security=[{}])
    async def approvals(self, orders: RepairOrderService, token: Annotated[str, Parameter(max_length=100)],
                        data: DecisionsIn) -> Response[TrackingOut]:
        """All or nothing: an item already answered is a 409 and no answer of the request is kept."""
        try:
            view = await orders.decide_by_link(token, [(d.item_id, d.decision) for d in data.decisions])
        except Conflict as exc:
            return conflict_response(exc)
        return Response(tracking_out(token, view, None), headers={"Cache-Control": "no-store"})

