"""Repair order use cases: check-in, the life cycle, the workshop's clocks and findings, the customer's
approvals and tracking, the advisor board.

Every status change goes through :meth:`RepairOrderService._move`, which holds the order's row lock,
checks the pure rules, bumps ``version``, writes the timeline entry and tells the customer. A change
made against an old version (two advisors at once) gets a 409 and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import Principal
from backend.domains.audit import service as audit
from backend.domains.branches import repository as branch_repository
from backend.domains.branches.models import Branch
from backend.domains.customers import rules as customer_rules
from backend.domains.customers import service as customers
from backend.domains.customers.models import Customer, TrackingLink
from backend.domains.notifications import service as notifications
from backend.domains.notifications.service import NotificationRequest
from backend.domains.scheduler import service as scheduler
from backend.domains.service_booking import repository as booking_repository
from backend.domains.service_booking import rules as booking_rules
from backend.domains.service_booking.models import ServiceTechnician, ServiceVehicle
from backend.domains.service_booking.rules import AppointmentStatus, Source
from backend.domains.service_booking.service import APPOINTMENT, AppointmentView, BookingService
from backend.lib import ratelimit
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from backend.lib.i18n import gettext as _

from . import (
    messages,  # noqa: F401 - registers the templates this service sends
    photos,
    repository,
    rules,
)
from .models import (
    RepairOrder,
    RepairOrderClock,
    RepairOrderEvent,
    RepairOrderFinding,
    RepairOrderLabour,
    RepairOrderPart,
    RepairOrderPhoto,
)
from .rules import Decision, Status
from .schemas import CheckInIn, FindingIn, PartIn, WalkInIn

REPAIR_ORDER = "repair_order"
LINK_VALID_FOR = timedelta(days=60)
LOOKUP_LINK_VALID_FOR = timedelta(days=7)
SURVEY_AFTER = timedelta(days=3)
LOOKUPS_PER_IP = 10  # per window; failures and successes count alike
LOOKUPS_PER_ORDER = 20
LOOKUP_WINDOW_SECONDS = 900
MAX_PHOTOS_AT_CHECK_IN = 8
FINDING_STATUSES = frozenset({Status.DIAGNOSING, Status.AWAITING_APPROVAL, Status.AWAITING_PARTS, Status.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, as the timeline and the audit log name them."""

    kind: str  # staff | api_key | customer | system
    id: int | None
    label: str  # a person's name for the timeline (never an e-mail address)
    principal: Principal | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        label = principal.name if principal.kind == "staff" else f"API: {principal.name}"
        return cls(kind=principal.kind, id=principal.id, label=label, principal=principal)

    @classmethod
    def customer(cls, customer_id: int) -> Actor:
        return cls(kind="customer", id=customer_id, label="customer")

    @property
    def role(self) -> str | None:
        return self.principal.role if self.principal else None


@dataclass(slots=True)
class OrderView:
    order: RepairOrder
    branch: Branch
    customer: Customer
    vehicle: ServiceVehicle
    events: list[RepairOrderEvent]
    labour: list[RepairOrderLabour]
    parts: list[RepairOrderPart]
    findings: list[RepairOrderFinding]
    photos: list[RepairOrderPhoto]
    technicians: dict[int, ServiceTechnician]
    totals: rules.Totals
    running: dict[int, RepairOrderClock] = field(default_factory=dict)

    @property
    def pending(self) -> list[RepairOrderFinding]:
        return [f for f in self.findings if f.decision == Decision.PENDING]

    def photo_key(self, photo_id: int | None) -> str | None:
        return next((p.file_key for p in self.photos if p.id == photo_id), None)

    @property
    def damage_photos(self) -> list[RepairOrderPhoto]:
        return [p for p in self.photos if p.kind == "damage"]


@dataclass(slots=True)
class Job:
    line: RepairOrderLabour
    order: RepairOrder
    vehicle: ServiceVehicle | None
    running: bool
    mine: bool


async def _processed(uploads: Sequence[bytes]) -> list[photos.ProcessedPhoto]:
    """Decode every photo before anything is written (Pillow's work runs in a thread)."""
    done = []
    for data in uploads:
        try:
            done.append(await asyncio.to_thread(photos.process, data))
        except photos.PhotoError as exc:
            raise Invalid(str(exc), fields={"photo": str(exc)}) from exc
    return done


class RepairOrderService:
    def __init__(self, session: AsyncSession, redis: Redis | None = None) -> None:
        self.session = session
        self.redis = redis
        self.booking = BookingService(session, redis)

    # -- loading ------------------------------------------------------------------------------

    async def _order(self, order_id: int, *, scope: int | None, for_update: bool = False) -> RepairOrder:
        order = await repository.order_by_id(self.session, order_id, for_update=for_update)
        if order is None or (scope is not None and order.branch_id != scope):
            raise NotFound()  # another branch's order looks exactly like a missing one
        return order

    async def view(self, order: RepairOrder) -> OrderView:
        branch = await branch_repository.branch_by_id(self.session, order.branch_id)
        customer = (await booking_repository.customers_by_id(self.session, [order.customer_id]))[order.customer_id]
        vehicle = await booking_repository.vehicle_by_id(self.session, order.vehicle_id)
        labour = await repository.labour_of(self.session, [order.id])
        parts = await repository.parts_of(self.session, order.id)
        findings = await repository.findings_of(self.session, order.id)
        technicians = {t.id: t for t in await booking_repository.technicians_of(self.session, order.branch_id)}
        totals = rules.totals([line.price for line in labour],
                              [{"quantity": p.quantity, "unit_price": p.unit_price, "unit_cost": p.unit_cost}
                               for p in parts],
                              [f.price for f in findings if f.decision == Decision.PENDING])
        return OrderView(order=order, branch=branch, customer=customer, vehicle=vehicle,
                         events=await repository.events_of(self.session, order.id), labour=labour, parts=parts,
                         findings=findings, photos=await repository.photos_of(self.session, order.id),
                         technicians=technicians, totals=totals,
                         running=await repository.running_clocks_for_lines(self.session, [ln.id for ln in labour]))

    async def for_staff(self, principal: Principal, order_id: int) -> OrderView:
        return await self.view(await self._order(order_id, scope=principal.branch_scope))

    async def order_for_appointment(self, principal: Principal, appointment_id: int) -> RepairOrder | None:
        """The repair order an appointment became, if it was checked in (same branch rules as the order)."""
        order = await repository.order_for_appointment(self.session, appointment_id)
        if order is None or (principal.branch_scope is not None and order.branch_id != principal.branch_scope):
            return None
        return order

    # -- check-in -----------------------------------------------------------------------------

    async def check_in(self, principal: Principal, appointment_id: int, data: CheckInIn,
                       uploads: Sequence[bytes] = ()) -> RepairOrder:
        """The advisor receives the car: the appointment becomes a repair order with its booked work."""
        await self.booking.for_staff(principal, appointment_id)  # 404 for another branch's
        if len(uploads) > MAX_PHOTOS_AT_CHECK_IN:
            message = _("Add at most %(n)s photos.", n=MAX_PHOTOS_AT_CHECK_IN)
            raise Invalid(message, fields={"photo": message})
        processed = await _processed(uploads)
        now = utcnow()
        if data.promised_at.tzinfo is None or data.promised_at <= now:
            message = _("The promised time must be in the future.")
            raise Invalid(message, fields={"promised_at": message})
        if data.promised_at > now + timedelta(days=60):
            message = _("The promised time is too far ahead.")
            raise Invalid(message, fields={"promised_at": message})
        async with self.session.begin_nested():
            appointment = await self.booking.lock_open(appointment_id)
            vehicle = await booking_repository.vehicle_by_id(self.session, appointment.vehicle_id, for_update=True)
            if problem := booking_rules.mileage_problem(data.mileage_km, vehicle.last_mileage_km, show_last=True):
                raise Invalid(problem, fields={"mileage_km": problem})
            view = await self.booking.view(appointment.id, appointment=appointment)
            order = await self._open(principal, view, vehicle, data, now)
            appointment.status, appointment.checked_in_at, appointment.updated_at = (
                AppointmentStatus.CHECKED_IN, now, now)
            await scheduler.cancel(self.session, key=f"{APPOINTMENT}:{appointment.id}:reminder")
            for photo in processed:
                await self._add_photo(order, "damage", photo)
        return order

    async def _open(self, principal: Principal, view: AppointmentView, vehicle: ServiceVehicle, data: CheckInIn,
                    now: datetime) -> RepairOrder:
        branch = view.branch
        number = rules.ro_number(branch.code, await repository.next_number(self.session, branch.id))
        order = RepairOrder(number=number, branch_id=branch.id, customer_id=view.appointment.customer_id,
                            vehicle_id=vehicle.id, appointment_id=view.appointment.id, mileage_in=data.mileage_km,
                            energy_level=data.energy_level, concerns=data.concerns, promised_at=data.promised_at,
                            advisor_id=principal.id if principal.kind == "staff" else None,
                            advisor_name=principal.name, checked_in_at=now, status_changed_at=now)
        self.session.add(order)
        await self.session.flush()
        for op in view.operations:
            self.session.add(RepairOrderLabour(
                repair_order_id=order.id, operation_id=op.operation_id, name_en=op.name_en, name_zh=op.name_zh,
                skill=op.skill, standard_hours=op.labour_hours,
                price=booking_rules.labour_price(op.price, op.parts), origin="booked"))
            for part in op.parts:
                self.session.add(RepairOrderPart(
                    repair_order_id=order.id, part_number=str(part.get("part_number", ""))[:40],
                    description=str(part.get("name", ""))[:200], quantity=Decimal(str(part.get("quantity", 1))),
                    unit_cost=Decimal(str(part["unit_cost"])) if part.get("unit_cost") is not None else None,
                    unit_price=Decimal(str(part.get("unit_price", 0))), origin="booked"))
        vehicle.last_mileage_km = max(data.mileage_km, vehicle.last_mileage_km or 0)
        vehicle.last_mileage_at = now
        actor = Actor.of(principal)
        self.session.add(RepairOrderEvent(repair_order_id=order.id, from_status=None, to_status=Status.OPEN,
                                          at=now, actor_kind=actor.kind, actor_id=actor.id, actor_label=actor.label))
        await self.session.flush()
        await self._tell_customer(order, branch, "repair_order.checked_in", "checked_in")
        await audit.record_by(self.session, principal, action="create", entity=REPAIR_ORDER, entity_id=order.id,
                              branch_id=branch.id, after={"number": number, "appointment": view.appointment.id,
                                                          "mileage_in": data.mileage_km})
        return order

    async def walk_in(self, principal: Principal, data: WalkInIn, uploads: Sequence[bytes] = ()) -> RepairOrder:
        """A car without an appointment: booked through the same path (the current slot, the day's
        capacity) and checked in at once; nothing stays behind if either step is refused."""
        booking = data.model_dump(include=set(WalkInIn.model_fields) - {"energy_level", "concerns", "promised_at"})
        booking |= {"source": Source.WALK_IN, "slot": utcnow()}
        from backend.domains.service_booking.schemas import BookingIn

        async with self.session.begin_nested():
            view = await self.booking.book(BookingIn(**booking), principal=principal)
            return await self.check_in(principal, view.appointment.id, CheckInIn(
                mileage_km=data.mileage_km, energy_level=data.energy_level, concerns=data.concerns,
                promised_at=data.promised_at), uploads)

    # -- status -------------------------------------------------------------------------------

    async def _facts(self, order: RepairOrder) -> rules.OrderFacts:
        labour = await repository.labour_of(self.session, [order.id])
        return rules.OrderFacts(
            pending_approvals=await repository.pending_count(self.session, order.id),
            open_labour_lines=sum(1 for line in labour if line.status != "done"),
            running_clocks=len(await repository.running_clocks_on(self.session, order.id)))

    async def allowed_moves(self, principal: Principal, order: RepairOrder) -> list[Status]:
        """The moves this person could make now (the screen offers only these; the API may try any)."""
        facts = await self._facts(order)
        return [target for target in rules.TRANSITIONS[Status(order.status)]
                if rules.role_may_move(principal.role, target)
                and rules.transition_problem(order.status, target, facts) is None]

    async def move(self, principal: Principal, order_id: int, target: str, *, version: int | None = None,
                   note: str = "") -> RepairOrder:
        """A person moves the order. The row is locked first; a stale ``version`` or a transition the rules
        do not allow from the current state is a 409, and nothing changes."""
        order = await self._order(order_id, scope=principal.branch_scope, for_update=True)
        if version is not None and version != order.version:
            raise Conflict(_("Someone else changed this repair order first (it is now “%(status)s”). "
                             "Reload and try again.", status=rules.status_label(order.status)),
                           current_status=order.status, current_version=order.version)
        if not rules.role_may_move(principal.role, target):
            raise Forbidden(_("Your role cannot move a repair order to “%(status)s”.",
                              status=rules.status_label(target)))
        await self._move(order, target, Actor.of(principal), note=note)
        return order

    async def _move(self, order: RepairOrder, target: str, actor: Actor, *, note: str = "") -> None:
        """Apply one transition to a locked order (the caller holds the row lock)."""
        if problem := rules.transition_problem(order.status, target, await self._facts(order)):
            raise Conflict(problem, current_status=order.status, current_version=order.version)
        now = utcnow()
        before = order.status
        order.status, order.version, order.status_changed_at = target, order.version + 1, now
        if target == Status.DELIVERED:
            order.delivered_at = now
        self.session.add(RepairOrderEvent(repair_order_id=order.id, from_status=before, to_status=target, at=now,
                                          actor_kind=actor.kind, actor_id=actor.id, actor_label=actor.label,
                                          note=note[:500]))
        if target == Status.CANCELLED:
            for clock in await repository.running_clocks_on(self.session, order.id):
                await self._stop(clock.technician_id, now)
        branch = await branch_repository.branch_by_id(self.session, order.branch_id)
        if template := rules.NOTIFY_CUSTOMER.get(Status(target)):
            await self._tell_customer(order, branch, template, f"{target}:{order.version}")
        if target == Status.DELIVERED:
            await self._schedule_survey(order, branch, now)
        details = {"before": {"status": before}, "after": {"status": target, "version": order.version}}
        if actor.principal is not None:
            await audit.record_by(self.session, actor.principal, action="update", entity=REPAIR_ORDER,
                                  entity_id=order.id, branch_id=order.branch_id, **details)
        else:
            await audit.record(self.session, actor_kind=actor.kind, actor_id=actor.id, actor_label=actor.label,
                               action="update", entity=REPAIR_ORDER, entity_id=order.id, branch_id=order.branch_id,
                               **details)

    # -- the workshop -------------------------------------------------------------------------

    async def technician_for(self, principal: Principal) -> ServiceTechnician:
        technician = await booking_repository.technician_for_staff(self.session, principal.id) \
            if principal.kind == "staff" else None
        if technician is None:
            raise Forbidden(_("Your account is not set up as a technician. Ask your service manager."))
        return technician

    async def my_jobs(self, principal: Principal) -> tuple[ServiceTechnician, list[Job]]:
        technician = await self.technician_for(principal)
        lines = await repository.jobs_for(self.session, technician.branch_id, technician.id)
        orders = await repository.orders_by_id(self.session, [ln.repair_order_id for ln in lines])
        vehicles = await booking_repository.vehicles_by_id(self.session, [o.vehicle_id for o in orders.values()])
        running = await repository.running_clock(self.session, technician.id)
        jobs = []
        for ln in lines:
            order = orders[ln.repair_order_id]
            jobs.append(Job(line=ln, order=order, vehicle=vehicles.get(order.vehicle_id),
                            running=running is not None and running.labour_id == ln.id,
                            mine=ln.technician_id == technician.id))
        return technician, jobs

    async def _line_for(self, technician: ServiceTechnician, line_id: int) -> tuple[RepairOrderLabour, RepairOrder]:
        """The line and its order, both locked (order first, like every status change)."""
        line = await repository.labour_line(self.session, line_id)
        if line is None:
            raise NotFound()
        order = await self._order(line.repair_order_id, scope=technician.branch_id, for_update=True)
        line = await repository.labour_line(self.session, line_id, for_update=True)
        return line, order

    async def start_clock(self, principal: Principal, line_id: int) -> RepairOrderLabour:
        technician = await self.technician_for(principal)
        line, order = await self._line_for(technician, line_id)
        if line.status == "done":
            raise Conflict(_("This operation is already done."))
        if line.technician_id not in (None, technician.id):
            raise Conflict(_("This operation is assigned to another technician."))
        if line.skill != booking_rules.Skill.GENERAL and line.skill not in technician.skills:
            raise Conflict(_("This operation needs a skill you are not registered for."))
        if first_status := rules.status_when_work_starts(order.status, line.skill):
            await self._move(order, first_status, Actor.of(principal))
        elif order.status not in rules.WORKING:
            raise Conflict(_("Work cannot start while the repair order is “%(status)s”.",
                             status=rules.status_label(order.status)))
        try:
            async with self.session.begin_nested():
                self.session.add(RepairOrderClock(labour_id=line.id, technician_id=technician.id, started_at=utcnow()))
                await self.session.flush()
        except IntegrityError as exc:  # the partial unique index: one running clock per technician
            raise Conflict(_("Your clock is already running on another job: stop it first.")) from exc
        line.technician_id, line.status = technician.id, "in_progress"
        return line

    async def _stop(self, technician_id: int, now: datetime) -> RepairOrderClock | None:
        clock = await repository.stop_clock(self.session, technician_id, now)
        if clock is not None:
            line = await repository.labour_line(self.session, clock.labour_id)
            line.clocked_minutes += rules.clocked_minutes(clock.started_at, clock.stopped_at)
        return clock

    async def stop_clock(self, principal: Principal) -> RepairOrderClock:
        technician = await self.technician_for(principal)
        clock = await self._stop(technician.id, utcnow())
        if clock is None:
            raise Conflict(_("Your clock is not running."))
        return clock

    async def finish_line(self, principal: Principal, line_id: int) -> RepairOrderLabour:
        """Mark an operation done (stopping the clock on it); when the last one is done the order goes to
        quality check by itself."""
        technician = await self.technician_for(principal)
        line, order = await self._line_for(technician, line_id)
        if line.status == "done":
            raise Conflict(_("This operation is already done."))
        if line.technician_id not in (None, technician.id):
            raise Conflict(_("This operation is assigned to another technician."))
        if order.status not in rules.WORKING:
            raise Conflict(_("Work cannot be finished while the repair order is “%(status)s”.",
                             status=rules.status_label(order.status)))
        now = utcnow()
        running = await repository.running_clock(self.session, technician.id)
        if running is not None and running.labour_id == line.id:
            await self._stop(technician.id, now)
        line.technician_id, line.status, line.done_at = technician.id, "done", now
        await self.session.flush()
        facts = await self._facts(order)
        next_status = rules.status_when_last_line_done(order.status)
        if next_status and not facts.open_labour_lines and not facts.running_clocks:
            await self._move(order, next_status, Actor.of(principal))
        return line

    async def report_finding(self, principal: Principal, order_id: int, data: FindingIn,
                             photo: bytes | None = None) -> RepairOrderFinding:
        """Extra work found in the workshop goes to the customer as an item to approve, with its price."""
        if principal.role not in rules.WORKSHOP_ROLES:
            raise Forbidden()
        processed = (await _processed([photo]))[0] if photo else None
        order = await self._order(order_id, scope=principal.branch_scope, for_update=True)
        if order.status not in FINDING_STATUSES:
            raise Conflict(_("Extra work cannot be proposed while the repair order is “%(status)s”.",
                             status=rules.status_label(order.status)))
        settings = await booking_repository.settings_for(self.session, order.branch_id)
        rate = settings.labour_rate if settings else Decimal("380.00")
        finding = RepairOrderFinding(
            repair_order_id=order.id, description=data.description, note=data.note, labour_hours=data.labour_hours,
            parts_price=data.parts_price, price=rules.finding_price(data.labour_hours, rate, data.parts_price),
            reported_by_id=principal.id if principal.kind == "staff" else None, reported_by_name=principal.name)
        if processed is not None:
            finding.photo_id = (await self._add_photo(order, "finding", processed)).id
        self.session.add(finding)
        await self.session.flush()
        if order.status != Status.AWAITING_APPROVAL:
            await self._move(order, Status.AWAITING_APPROVAL, Actor.of(principal))
        await audit.record_by(self.session, principal, action="create", entity="repair_order_finding",
                              entity_id=finding.id, branch_id=order.branch_id,
                              after={"order": order.number, "description": finding.description,
                                     "price": str(finding.price)})
        return finding

    async def _add_photo(self, order: RepairOrder, kind: str, processed: photos.ProcessedPhoto) -> RepairOrderPhoto:
        key = photos.new_key()
        await asyncio.to_thread(photos.store, key, processed)
        row = RepairOrderPhoto(repair_order_id=order.id, kind=kind, file_key=key, width=processed.width,
                               height=processed.height)
        self.session.add(row)
        await self.session.flush()
        return row

    async def assign(self, principal: Principal, line_id: int, technician_id: int) -> RepairOrderLabour:
        line = await repository.labour_line(self.session, line_id)
        if line is None:
            raise NotFound()
        order = await self._order(line.repair_order_id, scope=principal.branch_scope, for_update=True)
        technician = await booking_repository.technician_by_id(self.session, technician_id)
        if technician is None or technician.branch_id != order.branch_id or not technician.active:
            message = _("Choose a technician of this branch.")
            raise Invalid(message, fields={"technician_id": message})
        if line.skill != booking_rules.Skill.GENERAL and line.skill not in technician.skills:
            message = _("%(name)s does not have the skill this operation needs.", name=technician.name)
            raise Invalid(message, fields={"technician_id": message})
        if order.status not in rules.ACTIVE or line.status == "done":
            raise Conflict(_("This operation can no longer be reassigned."))
        line = await repository.labour_line(self.session, line_id, for_update=True)
        if line.status == "in_progress" and line.technician_id not in (None, technician_id):
            raise Conflict(_("Another technician's clock is on this operation; they must stop it first."))
        before = line.technician_id
        line.technician_id = technician.id
        await audit.record_by(self.session, principal, action="update", entity="repair_order_labour",
                              entity_id=line.id, branch_id=order.branch_id, before={"technician": before},
                              after={"technician": technician.id})
        return line

    async def add_part(self, principal: Principal, order_id: int, data: PartIn) -> RepairOrderPart:
        order = await self._order(order_id, scope=principal.branch_scope, for_update=True)
        if order.status not in rules.ACTIVE:
            raise Conflict(_("This repair order is “%(status)s” and can no longer change.",
                             status=rules.status_label(order.status)))
        part = RepairOrderPart(repair_order_id=order.id, part_number=data.part_number, description=data.description,
                               quantity=data.quantity, unit_cost=data.unit_cost, unit_price=data.unit_price,
                               origin="added")
        self.session.add(part)
        order.version += 1
        await self.session.flush()
        await audit.record_by(self.session, principal, action="create", entity="repair_order_part",
                              entity_id=part.id, branch_id=order.branch_id,
                              after={"order": order.number, "part_number": part.part_number,
                                     "quantity": str(part.quantity)})
        return part

    # -- the customer's approvals -------------------------------------------------------------

    async def decide(self, order_id: int, decisions: Sequence[tuple[int, str]], *, customer_id: int,
                     by: str = "customer (tracking link)") -> list[RepairOrderFinding]:
        """The customer answers items, all or nothing: an unknown word, or an item already answered, and
        no answer of the request is kept. When the last item is answered the work goes on by itself."""
        parsed = []
        for item_id, word in decisions:
            decision = rules.decision_from(word)
            if decision is None:
                raise Invalid(_("Answer approve or decline."), fields={"decision": _("Answer approve or decline.")})
            parsed.append((item_id, decision))
        if len({item_id for item_id, _d in parsed}) != len(parsed):
            raise Invalid(_("Answer each item once."), fields={"decisions": _("Answer each item once.")})
        order = await self._order(order_id, scope=None, for_update=True)
        if order.status not in rules.ACTIVE:
            raise Conflict(_("This repair order is “%(status)s” and can no longer change.",
                             status=rules.status_label(order.status)))
        now = utcnow()
        answered = []
        async with self.session.begin_nested():
            for item_id, decision in parsed:
                finding = await repository.decide(self.session, order.id, item_id, decision, now, by)
                if finding is None:
                    existing = next((f for f in await repository.findings_of(self.session, order.id)
                                     if f.id == item_id), None)
                    if existing is None:
                        raise NotFound(_("There is no such item on this repair order."))
                    raise Conflict(_("“%(item)s” was already answered (%(decision)s).", item=existing.description,
                                     decision=str(rules.DECISION_LABELS[Decision(existing.decision)]).lower()))
                if decision == Decision.APPROVED:
                    self._add_extra_work(order, finding)
                answered.append(finding)
            await self.session.flush()
            await audit.record(self.session, actor_kind="customer", actor_id=customer_id, actor_label=by,
                               action="update", entity="repair_order_finding", entity_id=order.id,
                               branch_id=order.branch_id,
                               after={str(f.id): f.decision for f in answered})
            order.version += 1
            if not await repository.pending_count(self.session, order.id):
                if next_status := rules.after_last_answer(order.status):
                    await self._move(order, next_status, Actor.customer(customer_id),
                                     note=_("Every item answered."))
                await self._tell_advisor(order)
        return answered

    def _add_extra_work(self, order: RepairOrder, finding: RepairOrderFinding) -> None:
        labour = booking_rules.money(finding.price - finding.parts_price)
        self.session.add(RepairOrderLabour(
            repair_order_id=order.id, name_en=finding.description, name_zh=finding.description, skill="general",
            standard_hours=finding.labour_hours, price=labour, origin="extra", finding_id=finding.id))
        if finding.parts_price > 0:
            self.session.add(RepairOrderPart(
                repair_order_id=order.id, part_number=f"EXTRA-{finding.id}", description=finding.description[:200],
                quantity=Decimal(1), unit_price=finding.parts_price, origin="extra", finding_id=finding.id))

    # -- notifications ------------------------------------------------------------------------

    def _params(self, order: RepairOrder, branch: Branch) -> dict:
        return {"number": order.number, "branch": branch.name, "branch_en": branch.name_en or branch.name,
                "promised_at": order.promised_at.isoformat() if order.promised_at else None, "tz": branch.timezone}

    async def _tell_customer(self, order: RepairOrder, branch: Branch, template: str, event: str) -> None:
        customer = (await booking_repository.customers_by_id(self.session, [order.customer_id]))[order.customer_id]
        token = await customers.issue_tracking_link(self.session, customer=customer, record_type=REPAIR_ORDER,
                                                    record_id=order.id, valid_for=LINK_VALID_FOR)
        await notifications.notify(self.session, NotificationRequest(
            key=f"{REPAIR_ORDER}:{order.id}:{event}:customer", recipient_kind="customer", recipient_id=customer.id,
            template=template, params=self._params(order, branch), url=f"/track/{token}", branch_id=branch.id,
            urgency="high" if template != "repair_order.checked_in" else "normal"))

    async def _tell_advisor(self, order: RepairOrder) -> None:
        if order.advisor_id is None:
            return
        branch = await branch_repository.branch_by_id(self.session, order.branch_id)
        await notifications.notify(self.session, NotificationRequest(
            key=f"{REPAIR_ORDER}:{order.id}:answered:{order.version}:staff", recipient_kind="staff",
            recipient_id=order.advisor_id, template="repair_order.approvals_answered",
            params=self._params(order, branch), url=f"/repair-orders/{order.id}", branch_id=order.branch_id))

    async def _schedule_survey(self, order: RepairOrder, branch: Branch, now: datetime) -> None:
        customer = (await booking_repository.customers_by_id(self.session, [order.customer_id]))[order.customer_id]
        token = await customers.issue_tracking_link(self.session, customer=customer, record_type=REPAIR_ORDER,
                                                    record_id=order.id, valid_for=timedelta(days=30))
        await scheduler.schedule(self.session, key=f"{REPAIR_ORDER}:{order.id}:survey", kind="notify",
                                 due_at=now + SURVEY_AFTER, record_type=REPAIR_ORDER, record_id=order.id,
                                 branch_id=order.branch_id, payload={
                                     "recipient_kind": "customer", "recipient_id": customer.id,
                                     "template": "repair_order.survey", "params": self._params(order, branch),
                                     "url": scheduler.sealed_url(f"/track/{token}#survey")})

    # -- the customer's link ------------------------------------------------------------------

    async def resolve(self, token: str | None) -> TrackingLink:
        link = await customers.resolve_tracking_link(self.session, token)
        if link is None or link.record_type not in (REPAIR_ORDER, APPOINTMENT):
            raise NotFound(_("This link has expired or is not valid."))
        return link

    async def tracked(self, token: str | None) -> tuple[TrackingLink, OrderView | None, AppointmentView | None]:
        """What a link shows: its repair order, or its appointment (and the order it became once checked in)."""
        link = await self.resolve(token)
        if link.record_type == REPAIR_ORDER:
            order = await repository.order_by_id(self.session, link.record_id)
            if order is None or order.customer_id != link.customer_id:
                raise NotFound(_("This link has expired or is not valid."))
            return link, await self.view(order), None
        appointment = await booking_repository.appointment_by_id(self.session, link.record_id)
        if appointment is None or appointment.customer_id != link.customer_id:
            raise NotFound(_("This link has expired or is not valid."))
        order = await repository.order_for_appointment(self.session, appointment.id)
        if order is not None:
            return link, await self.view(order), None
        return link, None, await self.booking.view(appointment.id, appointment=appointment)

    async def decide_by_link(self, token: str | None, decisions: Sequence[tuple[int, str]]) -> OrderView:
        link, view, _appointment = await self.tracked(token)
        if view is None:
            raise Conflict(_("Your car has not been checked in yet: there is nothing to approve."))
        await self.decide(view.order.id, decisions, customer_id=link.customer_id)
        return await self.view(await self._order(view.order.id, scope=None))

    async def answer_survey(self, token: str | None, score: int, comment: str) -> OrderView:
        link, view, _appointment = await self.tracked(token)
        if view is None or view.order.status != Status.DELIVERED:
            raise Conflict(_("You can rate the service once you have collected your car."))
        order = await self._order(view.order.id, scope=None, for_update=True)
        if order.survey_at is not None:
            raise Conflict(_("Thank you, we already have your answer."))
        order.survey_score, order.survey_comment, order.survey_at = score, comment or None, utcnow()
        await audit.record(self.session, actor_kind="customer", actor_id=link.customer_id, actor_label="customer",
                           action="update", entity=REPAIR_ORDER, entity_id=order.id, branch_id=order.branch_id,
                           after={"survey_score": score})
        return await self.view(order)

    async def photo_for_link(self, token: str | None, file_name: str):
        parsed = photos.parse_name(file_name)
        link, view, _appointment = await self.tracked(token)
        if parsed is None or view is None or parsed[0] not in {p.file_key for p in view.photos}:
            raise NotFound()
        return self._photo_path(*parsed)

    async def photo_for_staff(self, principal: Principal, file_name: str):
        parsed = photos.parse_name(file_name)
        row = await repository.photo_by_key(self.session, parsed[0]) if parsed else None
        if row is None:
            raise NotFound()
        await self._order(row.repair_order_id, scope=principal.branch_scope)
        return self._photo_path(*parsed)

    def _photo_path(self, key: str, thumbnail: bool):
        path = photos.path_for(key, thumbnail)
        if path is None:
            raise NotFound()
        return path

    async def lookup(self, ro_number: str, *, phone: str | None, plate: str | None, ip: str) -> str:
        """Repair-order number plus the customer's mobile or the car's plate -> a fresh tracking link.
        Whatever was wrong, the answer is the same NotFound; every try counts against the limits."""
        number = rules.normalize_ro_number(ro_number)
        for key, limit in ((f"track-lookup:ip:{ip}", LOOKUPS_PER_IP),
                           (f"track-lookup:order:{number or 'malformed'}", LOOKUPS_PER_ORDER)):
            state = await ratelimit.hit(self.redis, key, limit, LOOKUP_WINDOW_SECONDS)
            if not state.allowed:
                raise RateLimited(retry_after=state.retry_after)
        order = await repository.order_by_number(self.session, number) if number else None
        matched = False
        if order is not None:
            customer = (await booking_repository.customers_by_id(self.session, [order.customer_id]))[
                order.customer_id]
            vehicle = await booking_repository.vehicle_by_id(self.session, order.vehicle_id)
            wanted_phone = customer_rules.normalize_phone(phone) if phone else None
            wanted_plate = booking_rules.normalize_plate(plate) if plate else None
            matched = bool((wanted_phone and customer.phone == wanted_phone)
                           or (wanted_plate and vehicle.plate == wanted_plate))
        if not matched:
            raise NotFound(_("We could not find a repair order with these details."))
        return await customers.issue_tracking_link(self.session, customer=customer, record_type=REPAIR_ORDER,
                                                   record_id=order.id, valid_for=LOOKUP_LINK_VALID_FOR)

    # -- the advisor board --------------------------------------------------------------------

    async def board(self, principal: Principal, day: date | None, branch_id: int | None = None) -> dict:
        """A branch's appointments of ``day`` (today in the branch's zone by default) and its open orders
        by status."""
        scope = principal.branch_scope
        branches = await branch_repository.list_branches(self.session, only_id=scope)
        branch = next((b for b in branches if b.id == (scope or branch_id)), branches[0] if branches else None)
        if branch is None:
            raise NotFound()
        day = day or booking_rules.local_day(utcnow(), branch.timezone)
        day_info = await self.booking.day_for_staff(principal, day, branch)
        orders = await repository.active_orders(self.session, branch.id)
        vehicles = await booking_repository.vehicles_by_id(self.session, [o.vehicle_id for o in orders])
        people = await booking_repository.customers_by_id(self.session, [o.customer_id for o in orders])
        columns = {status: [] for status in rules.ACTIVE_ORDERED}
        for order in orders:
            columns[Status(order.status)].append((order, vehicles.get(order.vehicle_id), people.get(order.customer_id)))
        return {"branch": branch, "branches": branches, "day": day, "columns": columns, **day_info}
