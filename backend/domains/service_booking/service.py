"""Service booking use cases: the catalogue, availability, booking, rescheduling and cancelling.

A booking takes its minutes and its advisor check-in place with conditional counter updates (see
``repository.take_day_minutes``) inside a savepoint: when anything does not fit, the savepoint is
rolled back (its row locks go with it) and the caller gets a Conflict with the next free slots. The
same method serves the customer's form, staff phone and walk-in bookings, and the JSON API.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.audit import service as audit
from backend.domains.branches import repository as branch_repository
from backend.domains.branches.models import Branch
from backend.domains.customers import rules as customer_rules
from backend.domains.customers import service as customers
from backend.domains.customers.models import Customer
from backend.domains.notifications import service as notifications
from backend.domains.notifications.service import NotificationRequest
from backend.domains.scheduler import service as scheduler
from backend.lib import ratelimit
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Invalid, NotFound
from backend.lib.i18n import current_locale, normalize
from backend.lib.i18n import gettext as _

from . import (
    idempotency,
    messages,  # noqa: F401 - registers the templates this service sends
    repository,
    rules,
)
from .models import (
    ServiceAppointment,
    ServiceAppointmentOperation,
    ServiceOperation,
    ServiceSettings,
    ServiceTechnician,
    ServiceVehicle,
)
from .rules import AppointmentStatus, OperationSpec, SlotState, Source
from .schemas import BookingIn

APPOINTMENT = "service_appointment"
BOOKINGS_PER_IP = 20  # public bookings per address and hour; staff are not limited
BOOKING_WINDOW_SECONDS = 3600
SEARCH_DAYS = 14  # how far the "next free slots" look
TRACKING_VALID_FOR = timedelta(days=120)
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def default_settings(branch_id: int) -> ServiceSettings:
    """A branch nobody configured still takes bookings, with these (unsaved) settings."""
    return ServiceSettings(branch_id=branch_id)


@dataclass(slots=True)
class Plan:
    """What a branch's capacity is made of, loaded once per use case."""

    branch: Branch
    settings: ServiceSettings
    technicians: list[rules.TechnicianSpec]
    bays: int
    holidays: frozenset[date] = frozenset()  # the branch's holidays from a month back to the horizon

    @property
    def tz(self) -> str:
        return self.branch.timezone

    def day_capacity(self, day: date) -> dict[str, int]:
        return rules.day_capacity(day, self.technicians, self.bays, self.branch.opening_hours,
                                  holiday=day in self.holidays)

    def slots(self, day: date) -> list[datetime]:
        return rules.checkin_slots(day, self.branch.opening_hours, self.tz, self.settings.slot_minutes,
                                   self.settings.last_checkin_before_close, holiday=day in self.holidays)

    def today(self, now: datetime) -> date:
        return rules.local_day(now, self.tz)


@dataclass(slots=True)
class AppointmentView:
    appointment: ServiceAppointment
    operations: list[ServiceAppointmentOperation]
    vehicle: ServiceVehicle
    branch: Branch
    customer: Customer | None = None
    token: str | None = None  # only right after booking (or its replay)
    replayed: bool = False


@dataclass(slots=True)
class Availability:
    branch: Branch
    day: date
    operations: list[ServiceOperation]
    estimated_minutes: int
    estimated_price: Decimal
    slots: list[SlotState]
    next_available: list[SlotState] = field(default_factory=list)


class _NoCapacity(Exception):
    """Raised inside the booking savepoint so that it rolls back; turned into a Conflict outside."""


class _Replay(Exception):
    def __init__(self, record) -> None:
        self.record = record


def spec(op) -> OperationSpec:
    return OperationSpec(code=op.code, labour_hours=op.labour_hours, price=op.price, skill=op.skill)


def slot_json(slots: Sequence[SlotState]) -> list[dict]:
    return [{"start": s.start.isoformat(), "remaining_checkins": s.remaining_checkins} for s in slots]


def localized(obj, field_name: str) -> str:
    """``name_zh`` for Chinese readers, ``name_en`` otherwise."""
    zh = getattr(obj, f"{field_name}_zh", "")
    en = getattr(obj, f"{field_name}_en", "")
    return (zh or en) if current_locale() == "zh_CN" else (en or zh)


def branch_label(branch: Branch) -> str:
    return branch.name if current_locale() == "zh_CN" or not branch.name_en else branch.name_en


class BookingService:
    def __init__(self, session: AsyncSession, redis: Redis | None = None) -> None:
        self.session = session
        self.redis = redis

    # -- catalogue and plan -------------------------------------------------------------------

    async def catalogue(self) -> list[ServiceOperation]:
        return await repository.active_operations(self.session)

    async def branch(self, code: str | None) -> Branch:
        branch = await branch_repository.branch_by_code(self.session, (code or "").strip()[:16]) if code else None
        if branch is None:
            raise Invalid(_("Unknown branch."), fields={"branch": _("Choose one of our branches.")})
        return branch

    async def operations(self, codes: Sequence[str]) -> list[ServiceOperation]:
        if not codes:
            message = _("Choose at least one operation.")
            raise Invalid(message, fields={"operations": message})
        found = await repository.operations_by_code(self.session, codes)
        unknown = [code for code in codes if code not in found]
        if unknown:
            message = _("Unknown operation: %(codes)s.", codes=", ".join(unknown[:5]))
            raise Invalid(message, fields={"operations": message})
        return [found[code] for code in codes]

    async def plan(self, branch: Branch) -> Plan:
        settings = await repository.settings_for(self.session, branch.id) or default_settings(branch.id)
        technicians = [rules.TechnicianSpec(skills=tuple(t.skills), working_hours=t.working_hours)
                       for t in await repository.technicians_of(self.session, branch.id)]
        today = rules.local_day(utcnow(), branch.timezone)
        holidays = await branch_repository.holidays_between(
            self.session, branch.id, today - timedelta(days=31), today + timedelta(days=settings.horizon_days + 1))
        return Plan(branch=branch, settings=settings, technicians=technicians,
                    bays=await repository.bay_count(self.session, branch.id), holidays=frozenset(holidays))

    async def plan_capacity(self, branch: Branch, days: Sequence[date], *, replan: bool = True) -> None:
        """Write the counters for ``days`` from today's technicians, bays and hours (never below what is
        booked). Run after changing technicians or bays; booking creates missing counters by itself."""
        plan = await self.plan(branch)
        await self._ensure_counters(plan, days, replan=replan)

    async def _ensure_counters(self, plan: Plan, days: Sequence[date], *, replan: bool = False) -> None:
        if not replan:  # counters are written a day at a time; a day that has them needs nothing
            days = [day for day in days if not await repository.has_counters(self.session, plan.branch.id, day)]
            if not days:
                return
        day_rows = [(day, resource, minutes) for day in days for resource, minutes in plan.day_capacity(day).items()]
        await repository.ensure_day_counters(self.session, plan.branch.id, day_rows, replan=replan)
        slot_rows = [(at, plan.settings.checkins_per_slot) for day in days for at in plan.slots(day)]
        await repository.ensure_slot_counters(self.session, plan.branch.id, slot_rows, replan=replan)

    # -- availability -------------------------------------------------------------------------

    async def _states(self, plan: Plan, first: date, last: date) -> tuple[dict[date, dict[str, int]], list[SlotState]]:
        """Remaining minutes per day and check-in places per slot; a day without counters yet has its
        planned capacity."""
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        remaining = {day: plan.day_capacity(day) for day in days}
        for row in await repository.day_counters(self.session, plan.branch.id, first, last):
            remaining.setdefault(row.day, {})[row.resource] = row.capacity - row.booked
        starts = [at for day in days for at in plan.slots(day)]
        taken: dict[datetime, int] = {}
        if starts:
            for row in await repository.slot_counters(self.session, plan.branch.id, starts[0], starts[-1]):
                taken[row.starts_at] = row.capacity - row.booked
        slots = [SlotState(at, taken.get(at, plan.settings.checkins_per_slot)) for at in starts]
        return remaining, slots

    def _earliest(self, plan: Plan, now: datetime, *, staff: bool) -> datetime:
        return now + timedelta(minutes=0 if staff else plan.settings.min_notice_minutes)

    async def next_free(self, plan: Plan, needed: dict[str, int], *, after: datetime, limit: int = 3,
                        exclude: datetime | None = None) -> list[SlotState]:
        first = rules.local_day(after, plan.tz)
        horizon = plan.today(utcnow()) + timedelta(days=plan.settings.horizon_days)
        last = min(first + timedelta(days=SEARCH_DAYS), horizon)
        if last < first:
            return []
        remaining, slots = await self._states(plan, first, last)
        return rules.free_slots(slots, remaining, needed, tz=plan.tz, earliest=after, limit=limit, exclude=exclude)

    async def availability(self, branch_code: str | None, day: date, codes: Sequence[str], *,
                           staff: bool = False) -> Availability:
        branch = await self.branch(branch_code)
        operations = await self.operations(codes)
        plan = await self.plan(branch)
        now = utcnow()
        if problem := rules.day_problem(day, today=plan.today(now), horizon_days=plan.settings.horizon_days):
            raise Invalid(problem, fields={"date": problem})
        specs = [spec(op) for op in operations]
        needed = rules.requirements(specs)
        minutes, price = rules.estimate(specs)
        earliest = self._earliest(plan, now, staff=staff)
        remaining, slots = await self._states(plan, day, day)
        free = rules.free_slots(slots, remaining, needed, tz=plan.tz, earliest=earliest)
        result = Availability(branch=branch, day=day, operations=operations, estimated_minutes=minutes,
                              estimated_price=price, slots=free)
        if not free:
            next_day = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(plan.tz))
            result.next_available = await self.next_free(plan, needed, after=max(earliest, next_day))
        return result

    # -- booking ------------------------------------------------------------------------------

    async def book(self, data: BookingIn, *, principal=None, ip: str = "unknown",
                   idempotency_key: str | None = None) -> AppointmentView:
        """Book operations at a slot. Refusals: Invalid (422) for bad input, Conflict (409, with
        ``next_slots``) when the capacity is gone, RateLimited for too many public bookings."""
        staff = principal is not None
        submitted, done = await idempotency.submission(self.session, APPOINTMENT, idempotency_key,
                                                       data.model_dump(mode="json"))
        request_hash, key_hash = submitted.request_hash, submitted.key_hash
        if done is not None:  # a retry of a request that already succeeded: its answer, nothing else
            return await self._replay(done, idempotency_key, request_hash)
        if not staff:
            await ratelimit.enforce(self.redis, f"service-booking:ip:{ip}", BOOKINGS_PER_IP, BOOKING_WINDOW_SECONDS)

        branch = await self.branch(data.branch)
        if staff and principal.branch_scope is not None and principal.branch_scope != branch.id:
            raise Invalid(_("You can only book at your own branch."),
                          fields={"branch": _("You can only book at your own branch.")})
        operations = await self.operations(data.operations)
        plan = await self.plan(branch)
        now = utcnow()
        source = self._source(data, staff)
        slot, use_checkin = self._slot(plan, data.slot, now, source)
        plate, vin, phone = self._identify(data)
        vehicle = await self._vehicle(plate, vin)
        if vehicle is not None and (problem := rules.mileage_problem(data.mileage_km, vehicle.last_mileage_km,
                                                                     show_last=staff)):
            raise Invalid(problem, fields={"mileage_km": problem})

        specs = [spec(op) for op in operations]
        needed = rules.requirements(specs)
        minutes, price = rules.estimate(specs)
        try:
            async with self.session.begin_nested():
                claim_id = None
                if key_hash is not None:
                    claim_id = await repository.claim_idempotency_key(self.session, APPOINTMENT, key_hash,
                                                                      request_hash)
                    if claim_id is None:  # the same key committed while we were checking
                        raise _Replay(await repository.idempotency_record(self.session, APPOINTMENT, key_hash))
                await self._ensure_counters(plan, [rules.local_day(slot, plan.tz)])
                resources = dict(needed) | {"checkin": 1 if use_checkin else 0}
                if not await self._apply(plan, take=(slot, resources)):
                    raise _NoCapacity()
                customer = await self._customer(branch, data, phone, principal)
                if vehicle is None:
                    vehicle = await repository.add_vehicle(self.session, plate=plate, vin=vin,
                                                           customer_id=customer.id)
                appointment = ServiceAppointment(
                    reference=self._reference(), branch_id=branch.id, customer_id=customer.id, vehicle_id=vehicle.id,
                    slot_start=slot, day=rules.local_day(slot, plan.tz), source=source, transport=data.transport,
                    mileage_km=data.mileage_km, notes=data.notes, resources=resources, estimated_minutes=minutes,
                    estimated_price=price, created_by_label=principal.audit_label if staff else "customer")
                self.session.add(appointment)
                await self.session.flush()
                lines = [ServiceAppointmentOperation(
                    appointment_id=appointment.id, operation_id=op.id, code=op.code, name_en=op.name_en,
                    name_zh=op.name_zh, labour_hours=op.labour_hours, price=op.price, skill=op.skill,
                    parts=op.parts) for op in operations]
                self.session.add_all(lines)
                token = await customers.issue_tracking_link(self.session, customer=customer, record_type=APPOINTMENT,
                                                            record_id=appointment.id, valid_for=TRACKING_VALID_FOR)
                if source != Source.WALK_IN:  # a walk-in is checked in at once; that is what they hear about
                    await self._tell_customer(appointment, branch, customer, "service_appointment.booked", token)
                    await self._schedule_reminder(appointment, branch, customer, token, now)
                await audit.record_by(self.session, principal, action="create", entity=APPOINTMENT,
                                      entity_id=appointment.id, branch_id=branch.id,
                                      after={"reference": appointment.reference, "slot": slot.isoformat(),
                                             "operations": [op.code for op in operations], "source": source})
                if claim_id is not None:
                    await repository.store_idempotent_answer(
                        self.session, claim_id, 201,
                        idempotency.seal(APPOINTMENT, idempotency_key, {"appointment_id": appointment.id,
                                                                        "token": token}))
        except _Replay as replay:
            return await self._replay(replay.record, idempotency_key, request_hash)
        except _NoCapacity:
            earliest = max(self._earliest(plan, now, staff=staff), slot - timedelta(hours=2))
            found = await self.next_free(plan, needed, after=earliest, exclude=slot)
            message = (_("That time was just taken. These are the next free times.") if found else
                       _("There is no free time in the next two weeks for this work. Please call the branch."))
            raise Conflict(message, next_slots=slot_json(found)) from None
        return AppointmentView(appointment=appointment, operations=lines, vehicle=vehicle, branch=branch,
                               customer=customer, token=token)

    async def _replay(self, record, key: str, request_hash: str) -> AppointmentView:
        answer = idempotency.replayed_answer(APPOINTMENT, record, key, request_hash)
        view = await self.view(answer["appointment_id"])
        view.token, view.replayed = answer["token"], True
        return view

    def _source(self, data: BookingIn, staff: bool) -> str:
        source = rules.booking_source(data.source, staff=staff)
        if source is None:
            message = _("Only staff can record phone or walk-in bookings.")
            raise Invalid(message, fields={"source": message})
        return source.value

    def _slot(self, plan: Plan, wanted: datetime, now: datetime, source: str) -> tuple[datetime, bool]:
        """The slot to book, and whether it takes an advisor check-in place (a walk-in is already here)."""
        if source == Source.WALK_IN:
            slot = rules.walk_in_slot(now, plan.slots(plan.today(now)))
            if slot is None:
                message = _("The branch is closed today: book the car in for another day.")
                raise Invalid(message, fields={"slot": message})
            return slot, False
        if wanted.tzinfo is None:
            message = _("Give the time with its time zone.")
            raise Invalid(message, fields={"slot": message})
        slot = wanted.astimezone(ZoneInfo(plan.tz))
        if rules.local_day(slot, plan.tz) in plan.holidays:
            message = _("The branch is closed on that day (a holiday). Choose another day.")
            raise Invalid(message, fields={"slot": message})
        problem = rules.slot_problem(
            slot, valid_slots=plan.slots(rules.local_day(slot, plan.tz)), now=now,
            min_notice_minutes=0 if source != Source.ONLINE else plan.settings.min_notice_minutes,
            horizon_days=plan.settings.horizon_days)
        if problem:
            raise Invalid(problem, fields={"slot": problem})
        return slot, True

    def _identify(self, data: BookingIn) -> tuple[str | None, str | None, str]:
        fields: dict[str, str] = {}
        plate = rules.normalize_plate(data.plate) if data.plate else None
        vin = rules.normalize_vin(data.vin) if data.vin else None
        if not plate and not vin:
            fields["plate"] = _("Enter the licence plate or the VIN.")
        if plate and (problem := rules.plate_problem(plate)):
            fields["plate"] = problem
        if vin and (problem := rules.vin_problem(vin)):
            fields["vin"] = problem
        phone = customer_rules.normalize_phone(data.phone)
        if phone is None:
            fields["phone"] = _("Enter a mobile number such as 13812345678.")
        if data.email and ("@" not in data.email or len(data.email) > 254 or " " in data.email):
            fields["email"] = _("Enter a valid e-mail address.")
        if not data.privacy_consent:
            fields["privacy_consent"] = _("Please agree that we may contact you about this booking.")
        if fields:
            raise Invalid(next(iter(fields.values())), fields=fields)
        return plate, vin, phone

    async def _vehicle(self, plate: str | None, vin: str | None) -> ServiceVehicle | None:
        by_vin = await repository.vehicle_by_vin(self.session, vin) if vin else None
        by_plate = await repository.vehicle_by_plate(self.session, plate) if plate else None
        if by_vin and by_plate and by_vin.id != by_plate.id or (
                by_plate and vin and by_plate.vin and by_plate.vin != vin):
            message = _("The plate and the VIN do not match our records. Please check them or call the branch.")
            raise Invalid(message, fields={"vin": message})
        return by_vin or by_plate

    async def _customer(self, branch: Branch, data: BookingIn, phone: str, principal) -> Customer:
        """The branch's customer with this mobile number, else a new one. A public form never changes an
        existing customer's details (anyone may type anyone's number)."""
        existing = await repository.customer_by_phone(self.session, branch.id, phone)
        if existing is not None:
            return existing
        return await customers.create_customer(
            self.session, branch_id=branch.id, name=data.name, phone=phone, email=data.email,
            locale=normalize(data.locale) or current_locale(), marketing_consent=data.marketing_consent,
            actor=principal)

    def _reference(self) -> str:
        return "A" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))

    async def _apply(self, plan: Plan, *, take: tuple[datetime, dict] | None = None,
                     give_back: tuple[datetime, dict] | None = None) -> bool:
        """Move counters: give back one booking's resources and/or take another's, all in one fixed order
        (day, resource) then slots, so concurrent bookings and reschedules never deadlock. False when a
        take does not fit (the caller rolls back its savepoint)."""
        day_deltas: dict[tuple[date, str], int] = {}
        slot_deltas: dict[datetime, int] = {}
        for sign, item in ((1, take), (-1, give_back)):
            if item is None:
                continue
            slot, resources = item
            day = rules.local_day(slot, plan.tz)
            for resource, minutes in resources.items():
                if resource == "checkin":
                    if minutes:
                        slot_deltas[slot] = slot_deltas.get(slot, 0) + sign
                elif minutes:
                    day_deltas[(day, resource)] = day_deltas.get((day, resource), 0) + sign * minutes
        for day, resource in rules.counter_order(day_deltas):
            delta = day_deltas[(day, resource)]
            if delta > 0 and not await repository.take_day_minutes(self.session, plan.branch.id, day, resource, delta):
                return False
            if delta < 0:
                await repository.give_back_day_minutes(self.session, plan.branch.id, day, resource, -delta)
        for at in sorted(slot_deltas):
            delta = slot_deltas[at]
            if delta > 0 and not await repository.take_checkin(self.session, plan.branch.id, at):
                return False
            if delta < 0:
                await repository.give_back_checkin(self.session, plan.branch.id, at)
        return True

    # -- notifications ------------------------------------------------------------------------

    def _params(self, appointment: ServiceAppointment, branch: Branch) -> dict:
        return {"reference": appointment.reference, "slot": appointment.slot_start.isoformat(), "tz": branch.timezone,
                "branch": branch.name, "branch_en": branch.name_en or branch.name}

    async def _tell_customer(self, appointment: ServiceAppointment, branch: Branch, customer: Customer,
                             template: str, token: str | None, *, event: str | None = None) -> None:
        event = event or template.rsplit(".", 1)[-1]
        await notifications.notify(self.session, NotificationRequest(
            key=f"{APPOINTMENT}:{appointment.id}:{event}:customer", recipient_kind="customer",
            recipient_id=customer.id, template=template, params=self._params(appointment, branch),
            url=f"/track/{token}" if token else "/track", branch_id=branch.id))

    async def _schedule_reminder(self, appointment: ServiceAppointment, branch: Branch, customer: Customer,
                                 token: str | None, now: datetime) -> None:
        due = appointment.slot_start - timedelta(hours=24)
        key = f"{APPOINTMENT}:{appointment.id}:reminder"
        if due <= now:
            await scheduler.cancel(self.session, key=key)
            return
        await scheduler.schedule(self.session, key=key, kind="notify", due_at=due, record_type=APPOINTMENT,
                                 record_id=appointment.id, branch_id=branch.id, payload={
                                     "recipient_kind": "customer", "recipient_id": customer.id,
                                     "template": "service_appointment.reminder",
                                     "params": self._params(appointment, branch),
                                     "url": scheduler.sealed_url(f"/track/{token}" if token else "/track")})

    # -- one appointment ----------------------------------------------------------------------

    async def view(self, appointment_id: int, *, appointment: ServiceAppointment | None = None) -> AppointmentView:
        appointment = appointment or await repository.appointment_by_id(self.session, appointment_id)
        if appointment is None:
            raise NotFound()
        operations = (await repository.appointment_operations(self.session, [appointment.id]))[appointment.id]
        vehicle = await repository.vehicle_by_id(self.session, appointment.vehicle_id)
        branch = await branch_repository.branch_by_id(self.session, appointment.branch_id)
        customer = (await repository.customers_by_id(self.session, [appointment.customer_id])).get(
            appointment.customer_id)
        return AppointmentView(appointment=appointment, operations=operations, vehicle=vehicle, branch=branch,
                               customer=customer)

    async def for_staff(self, principal, appointment_id: int) -> AppointmentView:
        appointment = await repository.appointment_by_id(self.session, appointment_id)
        if appointment is None or (principal.branch_scope is not None
                                   and appointment.branch_id != principal.branch_scope):
            raise NotFound()  # another branch's appointment looks exactly like a missing one
        return await self.view(appointment.id, appointment=appointment)

    async def lock_open(self, appointment_id: int) -> ServiceAppointment:
        """The appointment, locked for this transaction, if it can still change."""
        appointment = await repository.appointment_by_id(self.session, appointment_id, for_update=True)
        if appointment is None:
            raise NotFound()
        if appointment.status == AppointmentStatus.CHECKED_IN:
            raise Conflict(_("This appointment has already been checked in."))
        if appointment.status not in rules.OPEN_APPOINTMENT:
            raise Conflict(_("This appointment is “%(status)s” and can no longer be changed.",
                             status=rules.appointment_status_label(appointment.status)))
        return appointment

    async def reschedule(self, appointment_id: int, wanted: datetime, *, principal=None,
                         customer_label: str | None = None, token: str | None = None) -> AppointmentView:
        """Move an open appointment to another slot: its old minutes and place are given back and the new
        ones taken in one step; nothing changes if the new slot does not fit."""
        appointment = await self.lock_open(appointment_id)
        view = await self.view(appointment.id, appointment=appointment)
        plan = await self.plan(view.branch)
        now = utcnow()
        source = Source.PHONE.value if principal is not None else Source.ONLINE.value
        slot, _checkin = self._slot(plan, wanted, now, source)
        if slot == appointment.slot_start:
            message = _("The appointment is already at that time.")
            raise Invalid(message, fields={"slot": message})
        resources = dict(appointment.resources)
        new_resources = resources | {"checkin": 1}
        try:
            async with self.session.begin_nested():
                await self._ensure_counters(plan, [rules.local_day(slot, plan.tz)])
                if not await self._apply(plan, take=(slot, new_resources), give_back=self._held(appointment, now)):
                    raise _NoCapacity()
        except _NoCapacity:
            needed = {k: v for k, v in resources.items() if k != "checkin"}
            found = await self.next_free(plan, needed, after=self._earliest(plan, now, staff=principal is not None),
                                         exclude=slot)
            raise Conflict(_("That time is not free. These are the next free times."),
                           next_slots=slot_json(found)) from None
        before = appointment.slot_start
        appointment.slot_start, appointment.day = slot, rules.local_day(slot, plan.tz)
        appointment.resources, appointment.updated_at = new_resources, now
        await self._record(principal, customer_label, appointment, "reschedule",
                           {"slot": before.isoformat()}, {"slot": slot.isoformat()})
        await self._tell_customer(appointment, view.branch, view.customer, "service_appointment.rescheduled", token,
                                  event=f"rescheduled:{slot.isoformat()}")
        await self._schedule_reminder(appointment, view.branch, view.customer, token, now)
        return await self.view(appointment.id, appointment=appointment)

    def _held(self, appointment: ServiceAppointment, now: datetime) -> tuple[datetime, dict] | None:
        """What an appointment still holds: nothing once its day has passed (the time was used or lost)."""
        if appointment.slot_start < now - timedelta(days=1):
            return None
        return appointment.slot_start, dict(appointment.resources)

    async def cancel(self, appointment_id: int, *, principal=None, customer_label: str | None = None,
                     token: str | None = None) -> AppointmentView:
        appointment = await self.lock_open(appointment_id)
        view = await self.view(appointment.id, appointment=appointment)
        plan = await self.plan(view.branch)
        now = utcnow()
        await self._apply(plan, give_back=self._held(appointment, now))
        before = appointment.status
        appointment.status, appointment.cancelled_at, appointment.updated_at = AppointmentStatus.CANCELLED, now, now
        await scheduler.cancel(self.session, key=f"{APPOINTMENT}:{appointment.id}:reminder")
        await self._record(principal, customer_label, appointment, "cancel", {"status": before},
                           {"status": appointment.status})
        await self._tell_customer(appointment, view.branch, view.customer, "service_appointment.cancelled", token)
        return view

    async def set_status(self, principal, appointment_id: int, target: str) -> AppointmentView:
        """Staff confirm an appointment or record a no-show (check-in is the repair order's business)."""
        if target not in (AppointmentStatus.CONFIRMED, AppointmentStatus.NO_SHOW):
            message = _("Choose one of the offered options.")
            raise Invalid(message, fields={"status": message})
        await self.for_staff(principal, appointment_id)
        appointment = await repository.appointment_by_id(self.session, appointment_id, for_update=True)
        if problem := rules.appointment_transition_problem(appointment.status, target):
            raise Conflict(problem)
        before = appointment.status
        appointment.status, appointment.updated_at = target, utcnow()
        await self._record(principal, None, appointment, "update", {"status": before}, {"status": target})
        if target == AppointmentStatus.NO_SHOW:
            await scheduler.cancel(self.session, key=f"{APPOINTMENT}:{appointment.id}:reminder")
        return await self.view(appointment.id, appointment=appointment)

    async def _record(self, principal, customer_label: str | None, appointment: ServiceAppointment, action: str,
                      before: dict, after: dict) -> None:
        if principal is None:
            await audit.record(self.session, actor_kind="customer", actor_id=appointment.customer_id,
                               actor_label=customer_label or "customer", action=action, entity=APPOINTMENT,
                               entity_id=appointment.id, branch_id=appointment.branch_id, before=before, after=after)
        else:
            await audit.record_by(self.session, principal, action=action, entity=APPOINTMENT,
                                  entity_id=appointment.id, branch_id=appointment.branch_id, before=before,
                                  after=after)

    # -- the advisor's day --------------------------------------------------------------------

    async def day_for_staff(self, principal, day: date, branch: Branch) -> dict:
        """A branch's appointments of a day, with customers, cars and operations (four queries), and
        how much of its capacity is booked."""
        appointments = await repository.appointments_on(self.session, branch.id, day)
        operations = await repository.appointment_operations(self.session, [a.id for a in appointments])
        vehicles = await repository.vehicles_by_id(self.session, [a.vehicle_id for a in appointments])
        people = await repository.customers_by_id(self.session, [a.customer_id for a in appointments])
        plan = await self.plan(branch)
        planned = plan.day_capacity(day)
        counters = {r.resource: r for r in await repository.day_counters(self.session, branch.id, day, day)}
        labour = counters.get(rules.LABOUR)
        return {
            "appointments": [AppointmentView(appointment=a, operations=operations.get(a.id, []),
                                             vehicle=vehicles.get(a.vehicle_id), branch=branch,
                                             customer=people.get(a.customer_id)) for a in appointments],
            "labour_booked": labour.booked if labour else 0,
            "labour_capacity": labour.capacity if labour else planned[rules.LABOUR],
        }

    async def technicians(self, branch_id: int) -> list[ServiceTechnician]:
        return await repository.technicians_of(self.session, branch_id)
