"""Test drive use cases: the cars to drive, availability, booking, rescheduling and cancelling, the drive
itself (check-out, return, no-show), the follow-up, and what staff and customers see.

Booking offers slots from the busy intervals it reads, but the database decides: the drive is inserted in
a savepoint and the exclusion constraints refuse a car or a salesperson that is already out. A refused
salesperson means "try the next free one"; a refused car means the slot is gone, and the caller gets a
Conflict with the next free slots. The same methods serve the customer's screens, the salesperson's
screens, the JSON API and the worker.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.accounts.rules import StaffRole
from backend.domains.audit import service as audit
from backend.domains.branches import repository as branch_repository
from backend.domains.branches.models import Branch
from backend.domains.customers import rules as customer_rules
from backend.domains.customers import service as customers
from backend.domains.customers.models import Customer, TrackingLink
from backend.domains.notifications import service as notifications
from backend.domains.notifications.service import NotificationRequest
from backend.domains.scheduler import service as scheduler
from backend.domains.service_booking import idempotency
from backend.domains.service_booking import repository as idempotency_store
from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import VehicleStatus
from backend.lib import ratelimit, sealing
from backend.lib.db import after_transaction, utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound
from backend.lib.i18n import current_locale, normalize
from backend.lib.i18n import gettext as _
from backend.lib.singleflight import Flights, Leader

from . import (
    messages,  # noqa: F401 - registers the templates this service sends
    photos,
    repository,
    rules,
)
from .models import SALESPERSON_BUSY, VEHICLE_BUSY, Lead, TestDrive, TestDriveSettings
from .rules import DriveStatus, SalespersonSpec, Slot, Source
from .schemas import BookingIn, CheckOutIn, ReturnIn

TEST_DRIVE = "test_drive"
BOOKING_ROLES = frozenset({StaffRole.ADMIN.value, StaffRole.MANAGER.value, StaffRole.SALES.value})
MANAGER_ROLES = frozenset({StaffRole.ADMIN.value, StaffRole.MANAGER.value})
BOOKINGS_PER_IP = 20  # public bookings per address and hour; staff are not limited
BOOKING_WINDOW_SECONDS = 3600
SEARCH_DAYS = 14  # how far "the next free slots" look
NEXT_SLOTS = 3
MAX_SALESPERSON_TRIES = 5
TRACKING_VALID_FOR = timedelta(days=60)
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def default_settings(branch_id: int) -> TestDriveSettings:
    """A branch nobody configured still takes test drives, with these (unsaved) settings."""
    return TestDriveSettings(branch_id=branch_id, **rules.DEFAULT_RULES)


def car_label(vehicle: Vehicle) -> str:
    return f"{vehicle.make} {vehicle.model}"


def branch_label(branch: Branch) -> str:
    return branch.name if current_locale() == "zh_CN" or not branch.name_en else branch.name_en


def slot_json(slots: Sequence[Slot]) -> list[dict]:
    return [{"start": s.start.isoformat(), "end": s.end.isoformat()} for s in slots]


def violated_exclusion(exc: IntegrityError) -> str | None:
    """The exclusion constraint (SQLSTATE 23P01) an insert or update ran into, if that is what happened."""
    original = getattr(exc, "orig", None)
    cause = getattr(original, "__cause__", None)
    state = getattr(original, "sqlstate", None) or getattr(cause, "sqlstate", None)
    if state != "23P01":
        return None
    return getattr(cause, "constraint_name", None) or getattr(original, "constraint_name", None) or ""


@dataclass(slots=True)
class Plan:
    """What one car's test drives are made of, loaded once per use case."""

    vehicle: Vehicle
    branch: Branch
    settings: TestDriveSettings
    drive_minutes: int

    @property
    def tz(self) -> str:
        return self.branch.timezone

    @property
    def buffer(self) -> int:
        return self.settings.buffer_minutes

    def today(self, now: datetime) -> date:
        return rules.local_day(now, self.tz)

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(self.tz))

    def grid(self, day: date, holidays: set[date]) -> list[datetime]:
        return rules.slot_grid(day, self.branch.opening_hours, self.tz, slot_minutes=self.settings.slot_minutes,
                               drive_minutes=self.drive_minutes, holidays=holidays)


@dataclass(slots=True)
class Availability:
    vehicle: Vehicle
    branch: Branch
    day: date
    drive_minutes: int
    slots: list[Slot]
    next_available: list[Slot] = field(default_factory=list)


@dataclass(slots=True)
class DriveView:
    drive: TestDrive
    vehicle: Vehicle
    branch: Branch
    customer: Customer
    salesperson: StaffUser | Salesperson | None
    token: str | None = None  # only right after booking (or its replay), or on the customer's own link
    replayed: bool = False
    landing: bool = False  # a booking that leads a flight: it tells the waiting requests once it commits

    @property
    def car(self) -> str:
        return car_label(self.vehicle)

    @property
    def tz(self) -> str:
        return self.branch.timezone


@dataclass(frozen=True, slots=True)
class Salesperson:
    """Who goes along, as a booking's answer and messages show them (read with the busy times, no ORM load)."""

    id: int
    name: str


class _Taken(Exception):
    """Raised inside the booking savepoint so that it rolls back; becomes a Conflict outside. Carries what
    was read about the car and the salespeople, when that is current enough to offer the next slots from."""

    def __init__(self, slot: datetime, car_busy: list | None = None, team: list | None = None, *,
                 car: bool = False) -> None:
        self.slot, self.car_busy, self.team = slot, car_busy, team
        self.car = car  # the car itself is out then (committed), not only every salesperson


class _Busy(Exception):
    """A salesperson someone else is booking at this time right now (rolls back the try's savepoint)."""


class _Replay(Exception):
    def __init__(self, record) -> None:
        self.record = record


class TestDriveService:
    __test__ = False  # not a pytest class

    def __init__(self, session: AsyncSession, redis: Redis | None = None, flights: Flights | None = None) -> None:
        self.session = session
        self.redis = redis
        self.flights = flights  # public bookings of the same car and start wait for one another (see book)

    # -- cars and plans -----------------------------------------------------------------------------

    async def _settings(self, branch_id: int) -> TestDriveSettings:
        return await repository.settings_for(self.session, branch_id) or default_settings(branch_id)

    async def plan_for(self, vehicle: Vehicle, branch: Branch | None = None) -> Plan:
        branch = branch or await branch_repository.branch_by_id(self.session, vehicle.branch_id)
        settings = await self._settings(branch.id)
        minutes = await repository.drive_minutes_for(self.session, branch.id, vehicle.make, vehicle.model)
        return Plan(vehicle=vehicle, branch=branch, settings=settings, drive_minutes=minutes or settings.drive_minutes)

    async def car(self, vehicle_id: int | None, *, principal=None) -> Vehicle:
        """A car that may be test-driven now; the refusal says why not (sold, not a demonstrator...)."""
        return (await self.bookable(vehicle_id, principal=principal)).vehicle

    async def bookable(self, vehicle_id: int | None, *, principal=None) -> Plan:
        """The plan of a car that may be test-driven now (one query); Invalid says why not."""
        found = await repository.vehicle_plan(self.session, vehicle_id or 0)
        if found is None:
            message = _("Choose one of the cars offered for test drives.")
            raise Invalid(message, fields={"vehicle_id": message})
        vehicle, marked, branch, settings, minutes = found
        if principal is not None and principal.branch_scope is not None and principal.branch_scope != vehicle.branch_id:
            message = _("You can only book test drives at your own branch.")
            raise Invalid(message, fields={"vehicle_id": message})
        if vehicle.status == VehicleStatus.SOLD:
            message = _("This car has been sold. Choose another car to test-drive.")
            raise Invalid(message, fields={"vehicle_id": message})
        if not (vehicle.status == VehicleStatus.DEMO or (vehicle.status == VehicleStatus.IN_STOCK and marked)):
            message = _("This car is not available for test drives. Choose one of our demonstrators.")
            raise Invalid(message, fields={"vehicle_id": message})
        settings = settings or default_settings(branch.id)
        return Plan(vehicle=vehicle, branch=branch, settings=settings, drive_minutes=minutes or settings.drive_minutes)

    async def cars(self, *, branch_id: int | None = None, like: Vehicle | None = None) -> list[tuple[Vehicle, int]]:
        """Cars that may be test-driven, with their drive length; ``like`` narrows to its make and model."""
        vehicles = await repository.drivable_vehicles(self.session, branch_id=branch_id,
                                                      make=like.make if like else None,
                                                      model=like.model if like else None)
        lengths = await repository.model_lengths(self.session, branch_id)
        settings: dict[int, TestDriveSettings] = {}
        found = []
        for v in vehicles:
            if v.branch_id not in settings:
                settings[v.branch_id] = await self._settings(v.branch_id)
            found.append((v, lengths.get((v.branch_id, v.make, v.model)) or settings[v.branch_id].drive_minutes))
        return found

    async def choose_car(self, vehicle_id: int | None) -> tuple[Vehicle | None, Vehicle | None]:
        """What the booking page drives when it is opened for a car: (the car to drive, the car asked about).

        A car from the stock search that is not a demonstrator is driven as a demonstrator of the same make
        and model (one at its own branch first); without one, nothing is chosen."""
        found = await repository.vehicle_by_id(self.session, vehicle_id or 0)
        if found is None or found[0].status == VehicleStatus.SOLD:
            return None, None
        asked, marked = found
        if asked.status == VehicleStatus.DEMO or (asked.status == VehicleStatus.IN_STOCK and marked):
            return asked, asked
        same = [v for v, _minutes in await self.cars(like=asked)]
        same.sort(key=lambda v: (v.branch_id != asked.branch_id, v.id))
        return (same[0] if same else None), asked

    async def branches(self) -> dict[int, Branch]:
        return {b.id: b for b in await branch_repository.list_branches(self.session)}

    # -- who is free when -----------------------------------------------------------------------------

    async def _busy(self, plan: Plan, first: datetime, last: datetime, *, online: bool,
                    ignore_drive: int | None = None, with_people: bool = False,
                    days: tuple[date, date] | None = None) -> tuple:
        """When the car is busy, and the salespeople who could go along with when they are busy (one query, no
        ORM objects); ``with_people`` adds who they are by id, ``days`` the branch's holidays on those days."""
        first_day, last_day = days or (date.max, date.min)
        rows, drives, holidays = await repository.team_and_busy(
            self.session, branch_id=plan.branch.id, vehicle_id=plan.vehicle.id, first=first, last=last,
            first_day=first_day, last_day=last_day)
        rows = [row for row in rows if not online or row[3]]
        car_busy: list[tuple[datetime, datetime]] = []
        busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        for vehicle_id, person, start, until, drive_id in drives:
            if drive_id == ignore_drive:
                continue
            if vehicle_id == plan.vehicle.id:
                car_busy.append((start, until))
            busy[person].append((start, until))
        team = [SalespersonSpec(id=person_id, busy=tuple(busy[person_id]),
                                working_hours=hours or plan.branch.opening_hours)
                for person_id, _name, hours, _online in rows]
        found = (car_busy, team)
        if with_people:
            found += ({person_id: Salesperson(person_id, name) for person_id, name, _h, _o in rows},)
        if days is not None:
            found += (holidays,)
        return found

    async def _free(self, plan: Plan, first: date, last: date, *, earliest: datetime, online: bool,
                    limit: int | None = None, exclude: datetime | None = None,
                    ignore_drive: int | None = None) -> list[Slot]:
        """Free slots of the car from local day ``first`` to ``last`` (three queries whatever the span)."""
        start, end = plan.day_start(first), plan.day_start(last + timedelta(days=1))
        # Drives that started the evening before can still hold someone in the morning.
        window = (start - timedelta(days=1), end + timedelta(days=1))
        car_busy, team, holidays = await self._busy(plan, *window, online=online, ignore_drive=ignore_drive,
                                                    days=(first, last))
        grid = [at for n in range((last - first).days + 1) for at in plan.grid(first + timedelta(days=n), holidays)]
        return rules.free_slots(grid, drive_minutes=plan.drive_minutes, buffer_minutes=plan.buffer, car_busy=car_busy,
                                salespeople=team, tz=plan.tz, earliest=earliest, limit=limit, exclude=exclude)

    def _earliest(self, plan: Plan, now: datetime, *, staff: bool) -> datetime:
        """Customers book with notice; staff may take the slot that is running now (a walk-in)."""
        if staff:
            return now - timedelta(minutes=plan.settings.slot_minutes) + timedelta(seconds=1)
        return now + timedelta(minutes=plan.settings.min_notice_minutes)

    async def next_free(self, plan: Plan, *, after: datetime, online: bool, exclude: datetime | None = None,
                        ignore_drive: int | None = None, limit: int = NEXT_SLOTS) -> list[Slot]:
        now = utcnow()
        first = rules.local_day(after, plan.tz)
        last = min(first + timedelta(days=SEARCH_DAYS), plan.today(now) + timedelta(days=plan.settings.horizon_days))
        if last < first:
            return []
        return await self._free(plan, first, last, earliest=after, online=online, limit=limit, exclude=exclude,
                                ignore_drive=ignore_drive)

    async def availability(self, vehicle_id: int | None, day: date, *, principal=None) -> Availability:
        staff = principal is not None
        plan = await self.bookable(vehicle_id, principal=principal)
        vehicle = plan.vehicle
        now = utcnow()
        if problem := rules.day_problem(day, today=plan.today(now), horizon_days=plan.settings.horizon_days):
            raise Invalid(problem, fields={"date": problem})
        earliest = self._earliest(plan, now, staff=staff)
        slots = await self._free(plan, day, day, earliest=earliest, online=not staff)
        result = Availability(vehicle=vehicle, branch=plan.branch, day=day, drive_minutes=plan.drive_minutes,
                              slots=slots)
        if not slots:
            result.next_available = await self.next_free(plan, after=max(earliest, plan.day_start(day + timedelta(1))),
                                                         online=not staff)
        return result

    # -- booking --------------------------------------------------------------------------------------

    async def book(self, data: BookingIn, *, principal=None, ip: str = "unknown",
                   idempotency_key: str | None = None) -> DriveView:
        """Book a drive. Refusals: Invalid (422) for bad input, Conflict (409, with ``next_slots``) when the car
        or every salesperson is taken, RateLimited (429) for too many public bookings from one address."""
        staff = principal is not None
        submitted, done = await idempotency.submission(self.session, TEST_DRIVE, idempotency_key,
                                                       data.model_dump(mode="json"))
        request_hash, key_hash = submitted.request_hash, submitted.key_hash
        if done is not None:  # a retry of a request that already succeeded: its answer, nothing else
            return await self._replay(done, idempotency_key, request_hash)
        if not staff:
            await ratelimit.enforce(self.redis, f"test-drive-booking:ip:{ip}", BOOKINGS_PER_IP,
                                    BOOKING_WINDOW_SECONDS)

        source = self._source(data, staff)
        phone = self._contact(data)
        leader = None
        if not staff and self.flights is not None and data.start.tzinfo is not None:
            # A rush on one car and start: one request books (or learns it is taken), the others wait for it
            # without a database connection and are answered from what its committed transaction proved.
            joined = await self.flights.join(f"test-drive:{data.vehicle_id}:{data.start.timestamp():.0f}")
            if isinstance(joined, Leader):
                leader = joined
            elif joined.outcome is not None:
                if key_hash is not None:  # the leader may have been this very request's first try
                    record = await idempotency_store.idempotency_record(self.session, TEST_DRIVE, key_hash)
                    if record is not None and record.status_code:
                        return await self._replay(record, idempotency_key, request_hash)
                found = joined.outcome["next_slots"]
                raise Conflict(self._taken_message(found), next_slots=found)
        try:
            view = await self._book(data, principal=principal, source=source, phone=phone, key_hash=key_hash,
                                    idempotency_key=idempotency_key, request_hash=request_hash, leader=leader)
            if leader is not None and not view.landing:  # answered without booking (a replay): nothing proved
                await self.flights.land(leader, None)
        except Conflict as exc:
            if leader is not None:  # a car taken by a committed booking is taken for every waiter too; "nobody is
                # free" may only mean that the salespeople tried were being booked for other cars just then
                taken = exc.extra.get("car_taken", False)
                await self.flights.land(leader, {"next_slots": exc.extra["next_slots"]} if taken else None)
            raise
        except BaseException:
            if leader is not None:
                await self.flights.land(leader, None)
            raise
        return view

    async def _book(self, data: BookingIn, *, principal, source: str, phone: str, key_hash: str | None,
                    idempotency_key: str | None, request_hash: str, leader: Leader | None) -> DriveView:
        staff = principal is not None
        plan = await self.bookable(data.vehicle_id, principal=principal)
        vehicle = plan.vehicle
        now = utcnow()
        online = source == Source.ONLINE
        seen = await self._look(plan, data.start, online=online)
        start = await self._slot(plan, data.start, now, staff=staff, holidays=seen[3] if seen else None)
        start, end, until = rules.blocked(start, plan.drive_minutes, plan.buffer)
        try:
            # A first look without queueing: when the car is already taken (committed), refuse at once rather
            # than wait behind bookings of the same car at other times. The look after queueing decides.
            await self._candidates(plan, start, online=online, principal=principal, seen=seen)
            customer = await repository.customer_by_phone(self.session, plan.branch.id, phone)
            async with self.session.begin_nested():
                claim_id = None
                if key_hash is not None:  # first: a retry waits here for the request it repeats
                    claim_id = await idempotency_store.claim_idempotency_key(self.session, TEST_DRIVE, key_hash,
                                                                             request_hash)
                    if claim_id is None:  # the same key committed while we were checking
                        raise _Replay(await idempotency_store.idempotency_record(self.session, TEST_DRIVE, key_hash))
                await repository.queue_for(self.session, rules.lock_keys(rules.CAR_LOCKS, vehicle.id, start,
                                                                         until))  # see _insert
                candidates, people = await self._candidates(plan, start, online=online, principal=principal)
                # Only a booking that is about to win writes the customer and the lead (the losers queued
                # behind it do nothing but look); the lead first, so the drive is inserted with it.
                customer = customer or await self._new_customer(plan.branch, data, phone, principal)
                lead, guessed = await self._lead_for_booking(plan.branch.id, customer, vehicle, source,
                                                             candidates[0], now)
                drive = await self._insert(candidates, {
                    "reference": self._reference(), "branch_id": plan.branch.id, "vehicle_id": vehicle.id,
                    "customer_id": customer.id, "status": DriveStatus.BOOKED.value, "source": source,
                    "starts_at": start, "ends_at": end, "blocked_until": until, "key_handed_over": False,
                    "lead_id": lead.id, "created_by_label": principal.audit_label if staff else "customer"})
                if guessed and lead.salesperson_id != drive.salesperson_id:  # another salesperson went along
                    lead.salesperson_id = drive.salesperson_id
                token = await customers.issue_tracking_link(self.session, customer=customer, record_type=TEST_DRIVE,
                                                            record_id=drive.id, valid_for=TRACKING_VALID_FOR)
                view = DriveView(drive=drive, vehicle=vehicle, branch=plan.branch, customer=customer, token=token,
                                 salesperson=people.get(drive.salesperson_id))
                await self._tell_customer(view, "test_drive.booked", token)
                await self._schedule_reminders(view, now)
                if online:
                    await self._tell_salesperson(view, "test_drive.assigned", event="assigned")
                await audit.record_by(self.session, principal, action="create", entity=TEST_DRIVE, entity_id=drive.id,
                                      branch_id=plan.branch.id,
                                      after={"reference": drive.reference, "start": start.isoformat(),
                                             "vehicle_id": vehicle.id, "salesperson_id": drive.salesperson_id,
                                             "source": source})
                if claim_id is not None:
                    await idempotency_store.store_idempotent_answer(
                        self.session, claim_id, 201,
                        idempotency.seal(TEST_DRIVE, idempotency_key, {"drive_id": drive.id, "token": token}))
            if leader is not None:  # what the requests waiting for this car and start will be told
                await self._land_after_commit(leader, plan, start)
                view.landing = True
        except _Replay as replay:
            return await self._replay(replay.record, idempotency_key, request_hash)
        except _Taken as taken:
            if key_hash is not None:  # the request this one repeats may have committed in the meantime
                record = await idempotency_store.idempotency_record(self.session, TEST_DRIVE, key_hash)
                if record is not None and record.status_code:
                    return await self._replay(record, idempotency_key, request_hash)
            found = await self._next_after_taken(plan, taken, after=max(self._earliest(plan, now, staff=staff), start),
                                                 online=online)
            raise Conflict(self._taken_message(found), next_slots=slot_json(found), car_taken=taken.car) from None
        return view

    async def _land_after_commit(self, leader: Leader, plan: Plan, start: datetime) -> None:
        outcome = {"next_slots": slot_json(await self.next_free(plan, after=start, online=True, exclude=start))}
        flights = self.flights

        async def land(committed: bool) -> None:
            await flights.land(leader, outcome if committed else None)

        after_transaction(self.session, land)

    @staticmethod
    def _taken_message(found: Sequence[Slot]) -> str:
        return (_("That time was just taken. These are the next free times.") if found else
                _("There is no free time for this car in the next two weeks. Please call the branch."))

    async def _candidates(self, plan: Plan, start: datetime, *, online: bool, principal=None,
                          ignore_drive: int | None = None, seen: tuple | None = None
                          ) -> tuple[list[int], dict[int, Salesperson]]:
        """The salespeople who could go along, best first (and who they are); raises _Taken when the car or
        everyone is busy. Called after queueing for the car, so the car's busy times are current; the
        salespeople's may not be, and the exclusion constraints decide. ``seen``: what :meth:`_look` read."""
        _start, end, until = rules.blocked(start, plan.drive_minutes, plan.buffer)
        if seen is None:
            seen = await self._busy(plan, *self._window(plan, start), online=online, ignore_drive=ignore_drive,
                                    with_people=True)
        car_busy, team, people = seen[:3]
        if any(rules.overlaps((start, until), busy) for busy in car_busy):
            raise _Taken(start, car_busy, team, car=True)
        free = rules.free_salespeople(start, plan.drive_minutes, plan.buffer, team, plan.tz)
        if principal is not None and principal.kind == "staff" and principal.id in free:
            free.remove(principal.id)  # a salesperson booking a walk-in goes along themselves
            free.insert(0, principal.id)
        if not free:
            raise _Taken(start, car_busy, team)
        return free[:MAX_SALESPERSON_TRIES], people

    def _window(self, plan: Plan, start: datetime) -> tuple[datetime, datetime]:
        """The busy times that matter for a drive starting at ``start`` (the day before to the day after)."""
        day = plan.day_start(rules.local_day(start, plan.tz))
        return day - timedelta(days=1), day + timedelta(days=2)

    async def _look(self, plan: Plan, wanted: datetime, *, online: bool) -> tuple | None:
        """One query for everything a booking's first look needs: the car's and the team's busy times around
        the wanted day, who the salespeople are, and that day's holidays (None for a time without a zone,
        which :meth:`_slot` refuses)."""
        if wanted.tzinfo is None:
            return None
        day = rules.local_day(wanted, plan.tz)
        return await self._busy(plan, *self._window(plan, wanted), online=online, with_people=True, days=(day, day))

    async def _next_after_taken(self, plan: Plan, taken: _Taken, *, after: datetime, online: bool,
                                ignore_drive: int | None = None) -> list[Slot]:
        """The next free slots for a 409: from what the refusal already read (the rest of that day) when that
        is enough, else from the database."""
        if taken.car_busy is not None and rules.local_day(after, plan.tz) == rules.local_day(taken.slot, plan.tz):
            day = rules.local_day(taken.slot, plan.tz)
            found = rules.free_slots(plan.grid(day, set()), drive_minutes=plan.drive_minutes,
                                     buffer_minutes=plan.buffer, car_busy=taken.car_busy, salespeople=taken.team,
                                     tz=plan.tz, earliest=after, limit=NEXT_SLOTS, exclude=taken.slot)
            if len(found) == NEXT_SLOTS:
                return found
        return await self.next_free(plan, after=after, online=online, exclude=taken.slot, ignore_drive=ignore_drive)

    async def _insert(self, candidates: Sequence[int], values: dict) -> TestDrive:
        """Insert the drive with the first salesperson the database accepts (each try in its own savepoint).

        An exclusion constraint is checked after the new row is in the index, so two transactions inserting
        overlapping drives at the same moment would each find the other's row and wait for it: a deadlock
        that PostgreSQL breaks only after ``deadlock_timeout`` by failing one of them. So a booking first queues
        on advisory locks for the car over the drive's time (``rules.lock_keys``: the caller takes them, then
        reads the car's busy times, which are then current), and each try here on the salesperson's (released
        when its savepoint rolls back): overlapping inserts come one after the other, bookings at other times
        do not wait, and the constraint answers at once. Cars are always locked before salespeople, each in
        ascending order, so no two bookings wait for each other. The constraint still decides; the locks only
        keep the losers from waiting on each other.

        A salesperson whose lock another booking holds (the same person for another car at the same time: the
        least busy is everybody's first choice) is skipped rather than waited for, which would mean waiting for
        that booking's commit; only the last candidate is waited for."""
        last = len(candidates) - 1
        for n, salesperson_id in enumerate(candidates):
            keys = rules.lock_keys(rules.SALESPERSON_LOCKS, salesperson_id, values["starts_at"],
                                   values["blocked_until"])
            try:
                async with self.session.begin_nested():
                    if n < last:
                        if not await repository.try_queue_for(self.session, keys):
                            raise _Busy()
                    else:
                        await repository.queue_for(self.session, keys)
                    result = await self.session.execute(insert(TestDrive).values(salesperson_id=salesperson_id,
                                                                                 **values).returning(TestDrive))
                    return result.scalar_one()
            except _Busy:
                continue  # someone is booking this salesperson at this time right now: the next one
            except IntegrityError as exc:
                constraint = violated_exclusion(exc)
                if constraint == SALESPERSON_BUSY:
                    continue  # someone else just took this salesperson: the next one
                if constraint == VEHICLE_BUSY:
                    raise _Taken(values["starts_at"], car=True) from None
                raise
        raise _Taken(values["starts_at"])

    async def _replay(self, record, key: str, request_hash: str) -> DriveView:
        answer = idempotency.replayed_answer(TEST_DRIVE, record, key, request_hash)
        view = await self.view(await repository.drive_by_id(self.session, answer["drive_id"]))
        view.token, view.replayed = answer["token"], True
        return view

    def _source(self, data: BookingIn, staff: bool) -> str:
        source = rules.booking_source(data.source, staff=staff)
        if source is None:
            message = _("Only staff can record phone or walk-in bookings.")
            raise Invalid(message, fields={"source": message})
        return source.value

    def _contact(self, data: BookingIn) -> str:
        fields: dict[str, str] = {}
        phone = customer_rules.normalize_phone(data.phone)
        if phone is None:
            fields["phone"] = _("Enter a mobile number such as 13812345678, or an international number such as "
                                "+4915112345678.")
        if data.email and ("@" not in data.email or " " in data.email):
            fields["email"] = _("Enter a valid e-mail address.")
        if not data.consent:
            fields["consent"] = _("Please agree that we may contact you about this test drive.")
        if fields:
            raise Invalid(next(iter(fields.values())), fields=fields)
        return phone

    async def _slot(self, plan: Plan, wanted: datetime, now: datetime, *, staff: bool,
                    holidays: set[date] | None = None) -> datetime:
        if wanted.tzinfo is None:
            message = _("Give the time with its time zone, e.g. 2030-05-01T10:00:00+08:00.")
            raise Invalid(message, fields={"start": message})
        slot = wanted.astimezone(ZoneInfo(plan.tz))
        day = rules.local_day(slot, plan.tz)
        if holidays is None:
            holidays = await branch_repository.holidays_between(self.session, plan.branch.id, day, day)
        problem = rules.slot_problem(
            slot, grid=plan.grid(day, holidays),
            window=rules.opening_window(day, plan.branch.opening_hours, plan.tz, holidays), now=now,
            min_notice_minutes=0 if staff else plan.settings.min_notice_minutes,
            horizon_days=plan.settings.horizon_days, slot_minutes=plan.settings.slot_minutes,
            drive_minutes=plan.drive_minutes, tz=plan.tz, walk_in=staff)
        if problem:
            raise Invalid(problem, fields={"start": problem})
        return slot

    async def _new_customer(self, branch: Branch, data: BookingIn, phone: str, principal) -> Customer:
        """A customer for a mobile number the branch does not know yet (the caller looked it up first: a public
        form never changes an existing customer's details, since anyone may type anyone's number)."""
        return await customers.create_customer(
            self.session, branch_id=branch.id, name=data.name, phone=phone, email=data.email,
            locale=normalize(data.locale) or current_locale(), marketing_consent=data.marketing_consent,
            actor=principal)

    def _reference(self) -> str:
        return "D" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(7))

    async def _lead_for_booking(self, branch_id: int, customer: Customer, vehicle: Vehicle, source: str,
                                salesperson_id: int, now: datetime) -> tuple[Lead, bool]:
        """Create the customer's open lead at the test-drive stage, or move theirs forward, just before the drive
        is inserted with it. The lead's salesperson is the one likely to go along; True when it was set so, for
        the caller to correct once the drive has its own."""
        lead = await repository.start_lead(self.session, {
            "branch_id": branch_id, "customer_id": customer.id, "salesperson_id": salesperson_id,
            "stage": rules.lead_stage_after_booking(None), "channel": source,
            "vehicle_interest": car_label(vehicle)[:120]})
        if lead is not None:
            await audit.record(self.session, actor_kind="system", actor_id=None, actor_label="test drive",
                               action="create", entity="lead", entity_id=lead.id, branch_id=lead.branch_id,
                               after={"stage": lead.stage, "channel": lead.channel})
            return lead, True
        lead = await repository.open_lead(self.session, customer.id, for_update=True)
        before = lead.stage
        lead.stage = rules.lead_stage_after_booking(lead.stage)
        lead.vehicle_interest = car_label(vehicle)[:120]
        guessed = lead.salesperson_id is None
        lead.salesperson_id = lead.salesperson_id or salesperson_id
        lead.updated_at = now
        if lead.stage != before:
            await audit.record(self.session, actor_kind="system", actor_id=None, actor_label="test drive",
                               action="update", entity="lead", entity_id=lead.id, branch_id=lead.branch_id,
                               before={"stage": before}, after={"stage": lead.stage})
        return lead, guessed

    # -- one drive ------------------------------------------------------------------------------------

    async def view(self, drive: TestDrive | None) -> DriveView:
        if drive is None:
            raise NotFound()
        vehicle = (await repository.vehicles_by_id(self.session, [drive.vehicle_id]))[drive.vehicle_id]
        branch = await branch_repository.branch_by_id(self.session, drive.branch_id)
        customer = (await repository.customers_by_id(self.session, [drive.customer_id]))[drive.customer_id]
        salesperson = (await repository.staff_by_id(self.session, [drive.salesperson_id])).get(drive.salesperson_id)
        return DriveView(drive=drive, vehicle=vehicle, branch=branch, customer=customer, salesperson=salesperson)

    async def views(self, drives: Sequence[TestDrive]) -> list[DriveView]:
        """Many drives with their cars, people and branches (four queries, no N+1)."""
        vehicles = await repository.vehicles_by_id(self.session, [d.vehicle_id for d in drives])
        people = await repository.customers_by_id(self.session, [d.customer_id for d in drives])
        staff = await repository.staff_by_id(self.session, [d.salesperson_id for d in drives])
        branches = await self.branches() if drives else {}
        return [DriveView(drive=d, vehicle=vehicles[d.vehicle_id], branch=branches[d.branch_id],
                          customer=people[d.customer_id], salesperson=staff.get(d.salesperson_id)) for d in drives]

    async def for_staff(self, principal, drive_id: int, *, for_update: bool = False) -> TestDrive:
        drive = await repository.drive_by_id(self.session, drive_id, for_update=for_update)
        if drive is None or (principal.branch_scope is not None and drive.branch_id != principal.branch_scope):
            raise NotFound()  # another branch's drive looks exactly like a missing one
        return drive

    async def staff_view(self, principal, drive_id: int) -> DriveView:
        return await self.view(await self.for_staff(principal, drive_id))

    def _check(self, drive: TestDrive, target: DriveStatus) -> None:
        if problem := rules.transition_problem(drive.status, target):
            raise Conflict(problem, current_status=drive.status)

    async def reschedule(self, drive_id: int, wanted: datetime, *, principal=None, customer_label: str | None = None,
                         token: str | None = None) -> DriveView:
        """Move a drive still to happen: the same salesperson if they are free then, another free one if not.
        Nothing changes if the new time is not free. A confirmed drive is booked again: the customer confirmed
        the old time, not the new one."""
        drive = await repository.drive_by_id(self.session, drive_id, for_update=True)
        if drive is None:
            raise NotFound()
        if drive.status not in rules.UPCOMING:
            raise Conflict(_("This test drive is “%(status)s” and can no longer be moved.",
                             status=rules.status_label(drive.status)), current_status=drive.status)
        staff = principal is not None
        plan = await self.bookable(drive.vehicle_id, principal=principal)
        now = utcnow()
        start = await self._slot(plan, wanted, now, staff=staff)
        if start == drive.starts_at:
            message = _("The test drive is already at that time.")
            raise Invalid(message, fields={"start": message})
        start, end, until = rules.blocked(start, plan.drive_minutes, plan.buffer)
        online = not staff and drive.source == Source.ONLINE
        try:
            await repository.queue_for(self.session, rules.lock_keys(rules.CAR_LOCKS, drive.vehicle_id, start, until))
            candidates, _people = await self._candidates(plan, start, online=online, ignore_drive=drive.id)
            if drive.salesperson_id in candidates:  # keep the customer's salesperson when possible
                candidates.remove(drive.salesperson_id)
                candidates.insert(0, drive.salesperson_id)
            await self._move(drive, candidates, start, end, until)
        except _Taken as taken:
            found = await self._next_after_taken(plan, taken, after=max(self._earliest(plan, now, staff=staff), start),
                                                 online=online, ignore_drive=drive.id)
            raise Conflict(_("That time is not free. These are the next free times."),
                           next_slots=slot_json(found)) from None
        before, status_before = drive.starts_at, drive.status
        await self.session.refresh(drive)
        view = await self.view(drive)
        changed = {"status": drive.status} if drive.status != status_before else {}
        await self._record(principal, customer_label, drive, "reschedule",
                           {"start": before.isoformat()} | ({"status": status_before} if changed else {}),
                           {"start": start.isoformat(), "salesperson_id": drive.salesperson_id} | changed)
        await scheduler.cancel(self.session, record_type=TEST_DRIVE, record_id=drive.id)
        await self._tell_customer(view, "test_drive.rescheduled", token,
                                  event=f"rescheduled:{start.astimezone(UTC).isoformat()}")
        await self._schedule_reminders(view, now)
        return view

    async def _move(self, drive: TestDrive, candidates: Sequence[int], start: datetime, end: datetime,
                    until: datetime) -> None:
        """Like :meth:`_insert`, for an update (the caller has queued on the car): the salespeople in turn."""
        drive_id = drive.id
        for salesperson_id in candidates:
            try:
                async with self.session.begin_nested():
                    await repository.queue_for(self.session, rules.lock_keys(rules.SALESPERSON_LOCKS,
                                                                             salesperson_id, start, until))
                    await self.session.execute(
                        update(TestDrive).where(TestDrive.id == drive_id)
                        .values(starts_at=start, ends_at=end, blocked_until=until, salesperson_id=salesperson_id,
                                status=DriveStatus.BOOKED.value, updated_at=utcnow())
                        .execution_options(synchronize_session=False))
                    return
            except IntegrityError as exc:
                constraint = violated_exclusion(exc)
                if constraint == SALESPERSON_BUSY:
                    continue
                if constraint == VEHICLE_BUSY:
                    raise _Taken(start) from None
                raise
        raise _Taken(start)

    async def cancel(self, drive_id: int, *, principal=None, customer_label: str | None = None,
                     token: str | None = None) -> DriveView:
        drive = await repository.drive_by_id(self.session, drive_id, for_update=True)
        if drive is None:
            raise NotFound()
        self._check(drive, DriveStatus.CANCELLED)
        now = utcnow()
        before = drive.status
        drive.status, drive.cancelled_at, drive.updated_at = DriveStatus.CANCELLED.value, now, now
        await self.session.flush()
        await scheduler.cancel(self.session, record_type=TEST_DRIVE, record_id=drive.id)
        await self._record(principal, customer_label, drive, "cancel", {"status": before}, {"status": drive.status})
        view = await self.view(drive)
        await self._tell_customer(view, "test_drive.cancelled", token)
        return view

    # -- the drive: check-out, return, no-show, follow-up --------------------------------------------------

    async def check_out(self, principal, drive_id: int, data: CheckOutIn, photo: bytes | None = None) -> DriveView:
        """The licence seen (and not expired), the key handed over, the odometer read: the car leaves."""
        drive = await self.for_staff(principal, drive_id, for_update=True)
        self._check(drive, DriveStatus.CHECKED_OUT)
        view = await self.view(drive)
        now = utcnow()
        if problem := rules.check_out_problem(now, drive.starts_at, view.tz):
            raise Conflict(problem)
        if view.vehicle.status == VehicleStatus.SOLD:
            raise Conflict(_("This car has been sold in the meantime and cannot be driven."))
        number = rules.normalize_licence(data.licence_number)
        fields = rules.licence_problems(number, data.licence_expiry, rules.local_day(now, view.tz))
        if not data.key_handed_over:
            fields["key_handed_over"] = _("Hand the key over and tick the box: the car only leaves with its key.")
        if problem := rules.odometer_out_problem(data.odometer_out, view.vehicle.mileage_km):
            fields["odometer_out"] = problem
        if fields:
            raise Invalid(next(iter(fields.values())), fields=fields)
        photo_key = None
        if photo:
            try:
                processed = await asyncio.to_thread(photos.process, photo)  # CPU-heavy: off the event loop
            except photos.PhotoError as exc:
                raise Invalid(str(exc), fields={"photo": str(exc)}) from exc
            photo_key = photos.new_key()
            await asyncio.to_thread(photos.store, photo_key, processed)
        before = drive.status
        drive.status, drive.checked_out_at, drive.updated_at = DriveStatus.CHECKED_OUT.value, now, now
        # Sealed at rest: a Chinese licence number is the holder's identity card number.
        drive.licence_number, drive.licence_last4 = sealing.seal(number, rules.LICENCE_SEAL), number[-4:]
        drive.licence_expiry = data.licence_expiry
        drive.key_handed_over, drive.odometer_out, drive.licence_photo_key = True, data.odometer_out, photo_key
        await self.session.flush()
        await scheduler.cancel(self.session, record_type=TEST_DRIVE, record_id=drive.id)  # no reminder now
        # The licence number stays out of the audit log (personal data); that it was seen is what counts.
        await audit.record_by(self.session, principal, action="check_out", entity=TEST_DRIVE, entity_id=drive.id,
                              branch_id=drive.branch_id, before={"status": before},
                              after={"status": drive.status, "odometer_out": data.odometer_out,
                                     "licence_photo": bool(photo_key)})
        return view

    async def return_car(self, principal, drive_id: int, data: ReturnIn) -> DriveView:
        drive = await self.for_staff(principal, drive_id, for_update=True)
        self._check(drive, DriveStatus.RETURNED)
        if problem := rules.odometer_in_problem(data.odometer_in, drive.odometer_out):
            raise Invalid(problem, fields={"odometer_in": problem})
        now = utcnow()
        drive.status, drive.returned_at, drive.updated_at = DriveStatus.RETURNED.value, now, now
        drive.odometer_in, drive.energy_level_in = data.odometer_in, data.energy_level
        drive.return_notes, drive.interest = data.notes, data.interest
        await self.session.flush()
        await repository.record_mileage(self.session, drive.vehicle_id, data.odometer_in)
        view = await self.view(drive)
        await self._lead_after_return(drive, data.interest, now)
        await scheduler.schedule(self.session, key=f"{TEST_DRIVE}:{drive.id}:follow_up", kind="test_drive.follow_up",
                                 due_at=rules.follow_up_at(now, view.tz), record_type=TEST_DRIVE,
                                 record_id=drive.id, branch_id=drive.branch_id)
        await audit.record_by(self.session, principal, action="return", entity=TEST_DRIVE, entity_id=drive.id,
                              branch_id=drive.branch_id, before={"status": DriveStatus.CHECKED_OUT.value},
                              after={"status": drive.status, "odometer_in": data.odometer_in,
                                     "km": data.odometer_in - drive.odometer_out, "interest": data.interest})
        return view

    async def _lead_after_return(self, drive: TestDrive, interest: int, now: datetime) -> None:
        lead = await repository.lead_by_id(self.session, drive.lead_id) if drive.lead_id else None
        if lead is None:
            return
        before = lead.stage
        lead.stage = rules.lead_stage_after_return(lead.stage, interest)
        lead.interest, lead.last_test_drive_at, lead.updated_at = interest, now, now
        await audit.record(self.session, actor_kind="system", actor_id=None, actor_label="test drive",
                           action="update", entity="lead", entity_id=lead.id, branch_id=lead.branch_id,
                           before={"stage": before}, after={"stage": lead.stage, "interest": interest})

    async def no_show(self, principal, drive_id: int) -> DriveView:
        drive = await self.for_staff(principal, drive_id, for_update=True)
        self._check(drive, DriveStatus.NO_SHOW)
        branch = await branch_repository.branch_by_id(self.session, drive.branch_id)
        now = utcnow()
        if problem := rules.no_show_problem(now, drive.starts_at, branch.timezone):
            raise Conflict(problem)
        before = drive.status
        drive.status, drive.no_show_at, drive.updated_at = DriveStatus.NO_SHOW.value, now, now
        await self.session.flush()
        await scheduler.cancel(self.session, record_type=TEST_DRIVE, record_id=drive.id)
        await audit.record_by(self.session, principal, action="no_show", entity=TEST_DRIVE, entity_id=drive.id,
                              branch_id=drive.branch_id, before={"status": before},
                              after={"status": drive.status})
        return await self.view(drive)

    async def staff_cancel(self, principal, drive_id: int) -> DriveView:
        await self.for_staff(principal, drive_id)
        return await self.cancel(drive_id, principal=principal)

    async def confirm(self, drive_id: int, *, principal=None, customer_label: str | None = None) -> DriveView:
        """The customer says they are coming (on their page, or to a salesperson on the phone). Confirming a
        confirmed drive changes nothing (no second audit record); Conflict for a drive that is no longer to
        happen or whose time has passed. Nobody is notified: the salesperson sees it on their day."""
        drive = await repository.drive_by_id(self.session, drive_id, for_update=True)
        if drive is None:
            raise NotFound()
        if problem := rules.confirm_problem(drive.status, drive.starts_at, utcnow()):
            raise Conflict(problem, current_status=drive.status)
        if drive.status != DriveStatus.CONFIRMED:
            drive.status, drive.updated_at = DriveStatus.CONFIRMED.value, utcnow()
            await self.session.flush()
            await self._record(principal, customer_label, drive, "confirm", {"status": DriveStatus.BOOKED.value},
                               {"status": drive.status})
        return await self.view(drive)

    async def staff_confirm(self, principal, drive_id: int) -> DriveView:
        await self.for_staff(principal, drive_id)
        return await self.confirm(drive_id, principal=principal)

    async def complete_follow_up(self, principal, drive_id: int, note: str) -> DriveView:
        drive = await self.for_staff(principal, drive_id, for_update=True)
        self._check(drive, DriveStatus.FOLLOWED_UP)
        now = utcnow()
        drive.status, drive.followed_up_at, drive.updated_at = DriveStatus.FOLLOWED_UP.value, now, now
        drive.follow_up_note = note
        await self.session.flush()
        await scheduler.cancel(self.session, record_type=TEST_DRIVE, record_id=drive.id)
        await audit.record_by(self.session, principal, action="follow_up", entity=TEST_DRIVE, entity_id=drive.id,
                              branch_id=drive.branch_id, before={"status": DriveStatus.RETURNED.value},
                              after={"status": drive.status})
        return await self.view(drive)

    async def licence_photo(self, principal, drive_id: int, key: str | None, thumbnail: bool) -> bytes:
        """The drive's licence photo (JPEG bytes, opened from its sealed file) for the branch's staff; NotFound
        for another key, a missing file or one that no longer opens (the secret was changed)."""
        drive = await self.for_staff(principal, drive_id)
        if not key or key != drive.licence_photo_key:
            raise NotFound()
        content = await asyncio.to_thread(photos.read, key, thumbnail)  # file I/O and decryption: off the loop
        if content is None:
            raise NotFound()
        return content

    async def _record(self, principal, customer_label: str | None, drive: TestDrive, action: str, before: dict,
                      after: dict) -> None:
        if principal is None:
            await audit.record(self.session, actor_kind="customer", actor_id=drive.customer_id,
                               actor_label=customer_label or "customer", action=action, entity=TEST_DRIVE,
                               entity_id=drive.id, branch_id=drive.branch_id, before=before, after=after)
        else:
            await audit.record_by(self.session, principal, action=action, entity=TEST_DRIVE, entity_id=drive.id,
                                  branch_id=drive.branch_id, before=before, after=after)

    # -- notifications ------------------------------------------------------------------------------

    def params(self, view: DriveView) -> dict:
        return {"reference": view.drive.reference, "car": view.car, "start": view.drive.starts_at.isoformat(),
                "tz": view.tz, "branch": view.branch.name, "branch_en": view.branch.name_en or view.branch.name,
                "customer": view.customer.name, "confirmed": view.drive.status == DriveStatus.CONFIRMED}

    async def _tell_customer(self, view: DriveView, template: str, token: str | None, *,
                             event: str | None = None) -> None:
        event = event or template.rsplit(".", 1)[-1]
        token = token or await self.issue_link(view)
        await notifications.notify(self.session, NotificationRequest(
            key=f"{TEST_DRIVE}:{view.drive.id}:{event}:customer", recipient_kind="customer",
            recipient_id=view.customer.id, template=template, params=self.params(view),
            url=tracking_path(token), branch_id=view.branch.id))

    async def _tell_salesperson(self, view: DriveView, template: str, *, event: str) -> None:
        await notifications.notify(self.session, NotificationRequest(
            key=f"{TEST_DRIVE}:{view.drive.id}:{event}:{view.drive.salesperson_id}:staff", recipient_kind="staff",
            recipient_id=view.drive.salesperson_id, template=template, params=self.params(view),
            url=f"/test-drives/{view.drive.id}", branch_id=view.branch.id, urgency="high"))

    async def issue_link(self, view: DriveView) -> str:
        """A fresh link for a message sent later (reminders, follow-up): no token waits in a stored payload."""
        return await customers.issue_tracking_link(self.session, customer=view.customer, record_type=TEST_DRIVE,
                                                   record_id=view.drive.id, valid_for=TRACKING_VALID_FOR)

    async def _schedule_reminders(self, view: DriveView, now: datetime) -> None:
        """24 h and 2 h before. The keys carry the start, and the handler checks the drive is still to happen at
        that very time, so a moved or cancelled drive never reminds at its old time."""
        start = view.drive.starts_at.astimezone(UTC).isoformat()
        for name, due in rules.reminder_times(view.drive.starts_at, now):
            await scheduler.schedule(self.session, key=f"{TEST_DRIVE}:{view.drive.id}:reminder_{name}:{start}",
                                     kind="test_drive.remind", due_at=due, record_type=TEST_DRIVE,
                                     record_id=view.drive.id, branch_id=view.branch.id,
                                     payload={"which": name, "starts_at": start})

    async def remind(self, drive_id: int, which: str, starts_at: str) -> bool:
        """The scheduled reminder (booked or confirmed drives alike); False (nothing sent) when the drive was moved,
        cancelled or has begun."""
        drive = await repository.drive_by_id(self.session, drive_id)
        if (drive is None or drive.status not in rules.UPCOMING
                or drive.starts_at != datetime.fromisoformat(starts_at)):
            return False
        if which not in {name for name, _before in rules.REMINDERS}:
            raise ValueError(f"unknown reminder {which!r}")
        view = await self.view(drive)
        await self._tell_customer(view, f"test_drive.reminder_{which}", None, event=f"reminder_{which}:{starts_at}")
        return True

    async def follow_up(self, drive_id: int, due_at: datetime) -> bool:
        """The morning after: the task appears in the salesperson's day, the customer is asked how it was."""
        drive = await repository.drive_by_id(self.session, drive_id, for_update=True)
        if drive is None or drive.status != DriveStatus.RETURNED:
            return False
        view = await self.view(drive)
        drive.follow_up_due_on = rules.local_day(due_at, view.tz)
        await self.session.flush()
        await self._tell_customer(view, "test_drive.how_was_it", None)
        await self._tell_salesperson(view, "test_drive.follow_up_due", event="follow_up")
        return True

    # -- the customer's link ------------------------------------------------------------------------

    async def resolve(self, token: str | None) -> TrackingLink:
        link = await customers.resolve_tracking_link(self.session, token)
        if link is None or link.record_type != TEST_DRIVE:
            raise NotFound(_("This link has expired or is not valid."))
        return link

    async def tracked(self, token: str | None) -> DriveView:
        link = await self.resolve(token)
        drive = await repository.drive_by_id(self.session, link.record_id)
        if drive is None or drive.customer_id != link.customer_id:
            raise NotFound(_("This link has expired or is not valid."))
        view = await self.view(drive)
        view.token = token
        return view

    async def reschedule_by_link(self, token: str | None, wanted: datetime) -> DriveView:
        view = await self.tracked(token)
        moved = await self.reschedule(view.drive.id, wanted, customer_label="customer (tracking link)", token=token)
        moved.token = token
        return moved

    async def confirm_by_link(self, token: str | None) -> DriveView:
        view = await self.tracked(token)
        confirmed = await self.confirm(view.drive.id, customer_label="customer (tracking link)")
        confirmed.token = token
        return confirmed

    async def cancel_by_link(self, token: str | None) -> DriveView:
        view = await self.tracked(token)
        cancelled = await self.cancel(view.drive.id, customer_label="customer (tracking link)", token=token)
        cancelled.token = token
        return cancelled

    async def reschedule_options(self, view: DriveView, day: date) -> list[Slot]:
        """Free times of the same car from ``day`` on, for the customer's link."""
        plan = await self.plan_for(view.vehicle, view.branch)
        now = utcnow()
        if rules.day_problem(day, today=plan.today(now), horizon_days=plan.settings.horizon_days):
            return []
        after = max(self._earliest(plan, now, staff=False), plan.day_start(day))
        return await self.next_free(plan, after=after, online=True, exclude=view.drive.starts_at,
                                    ignore_drive=view.drive.id, limit=12)

    async def feedback(self, token: str | None, rating: int, comment: str) -> DriveView:
        view = await self.tracked(token)
        drive = await repository.drive_by_id(self.session, view.drive.id, for_update=True)
        if drive.status not in (DriveStatus.RETURNED, DriveStatus.FOLLOWED_UP):
            raise Conflict(_("You can rate the drive once you have driven the car."))
        if drive.customer_rating is not None:
            raise Conflict(_("Thank you, we already have your answer."))
        drive.customer_rating, drive.customer_comment = rating, comment
        await self.session.flush()
        await audit.record(self.session, actor_kind="customer", actor_id=drive.customer_id,
                           actor_label="customer (tracking link)", action="feedback", entity=TEST_DRIVE,
                           entity_id=drive.id, branch_id=drive.branch_id, after={"customer_rating": rating})
        view.drive = drive
        return view

    # -- what staff see -------------------------------------------------------------------------------

    async def staff_branch(self, principal, branch_id: int | None = None) -> Branch:
        branches = await branch_repository.list_branches(self.session, only_id=principal.branch_scope)
        branch = next((b for b in branches if b.id == (principal.branch_scope or branch_id or principal.branch_id)),
                      branches[0] if branches else None)
        if branch is None:
            raise NotFound()
        return branch

    async def my_day(self, principal, day: date | None = None, branch_id: int | None = None) -> dict:
        """A salesperson's drives of the day in order, and their follow-up tasks; managers see the branch's."""
        branch = await self.staff_branch(principal, branch_id)
        day = day or rules.local_day(utcnow(), branch.timezone)
        start = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(branch.timezone))
        mine = principal.id if principal.role == StaffRole.SALES and principal.kind == "staff" else None
        drives = await repository.drives_between(self.session, first=start, last=start + timedelta(days=1),
                                                 branch_id=branch.id, salesperson_id=mine)
        follow_ups = await repository.follow_ups_due(self.session, day=day, branch_id=branch.id, salesperson_id=mine)
        return {"branch": branch, "day": day, "drives": await self.views(drives),
                "follow_ups": await self.views(follow_ups), "mine": mine is not None}

    async def week(self, principal, vehicle_id: int | None, first: date | None = None,
                   branch_id: int | None = None) -> dict:
        """One demo car's week, day by day (the cars of the branch to choose from)."""
        branch = await self.staff_branch(principal, branch_id)
        cars = [v for v, _minutes in await self.cars(branch_id=branch.id)]
        vehicle = next((v for v in cars if v.id == vehicle_id), cars[0] if cars else None)
        first = first or rules.local_day(utcnow(), branch.timezone)
        days = [first + timedelta(days=n) for n in range(7)]
        by_day: dict[date, list[DriveView]] = {day: [] for day in days}
        if vehicle is not None:
            start = datetime.combine(first, datetime.min.time(), tzinfo=ZoneInfo(branch.timezone))
            drives = await repository.drives_between(self.session, first=start, last=start + timedelta(days=7),
                                                     vehicle_id=vehicle.id, include_closed=False)
            for view in await self.views(drives):
                by_day[rules.local_day(view.drive.starts_at, branch.timezone)].append(view)
        return {"branch": branch, "cars": cars, "vehicle": vehicle, "first": first, "days": days, "by_day": by_day}

    async def walk_in_options(self, principal, vehicle_id: int | None) -> dict:
        """The branch's cars, and for the chosen one the slots left today (the one running now first)."""
        branch = await self.staff_branch(principal)
        cars = [v for v, _minutes in await self.cars(branch_id=branch.id)]
        vehicle = next((v for v in cars if v.id == vehicle_id), None)
        slots: list[Slot] = []
        if vehicle is not None:
            plan = await self.plan_for(vehicle, branch)
            now = utcnow()
            today = plan.today(now)
            slots = await self._free(plan, today, today, earliest=self._earliest(plan, now, staff=True), online=False)
        return {"branch": branch, "cars": cars, "vehicle": vehicle, "slots": slots}

    async def set_drivable(self, principal, vehicle_id: int, drivable: bool) -> Vehicle:
        """Managers mark an in-stock car drivable (demonstrators always are) or take the mark away."""
        if principal.role not in MANAGER_ROLES:
            raise Forbidden(_("Only managers choose which cars may be test-driven."))
        found = await repository.vehicle_by_id(self.session, vehicle_id)
        if found is None or (principal.branch_scope is not None and found[0].branch_id != principal.branch_scope):
            raise NotFound()
        vehicle, marked = found
        if drivable:
            if vehicle.status != VehicleStatus.IN_STOCK:
                message = _("Only a car in stock can be marked drivable; demonstrators always are.")
                raise Invalid(message, fields={"vehicle_id": message})
            changed = await repository.mark_drivable(self.session, vehicle.id, principal.audit_label)
        else:
            changed = await repository.unmark_drivable(self.session, vehicle.id)
        if changed:
            await audit.record_by(self.session, principal, action="update", entity="vehicle", entity_id=vehicle.id,
                                  branch_id=vehicle.branch_id, before={"test_drives": marked},
                                  after={"test_drives": drivable})
        return vehicle


def tracking_path(token: str) -> str:
    return f"/test-drive/track/{token}"


# -- scheduled work (run by the worker's scheduler) -------------------------------------------------------
# The tasks carry ids and the start they were scheduled for, never a tracking token: each handler reloads the
# drive, does nothing if it no longer applies (moved, cancelled, already begun) and issues a fresh link.


@scheduler.handler("test_drive.remind")
async def _remind(session: AsyncSession, task) -> None:
    await TestDriveService(session).remind(task.record_id, task.payload["which"], task.payload["starts_at"])


@scheduler.handler("test_drive.follow_up")
async def _follow_up(session: AsyncSession, task) -> None:
    await TestDriveService(session).follow_up(task.record_id, task.due_at)
