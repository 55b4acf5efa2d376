"""Pure rules for test drives: the life cycle, the slot grid, who is free when, licences, odometers, the
lead's stage and when to remind and follow up. No I/O.

A drive of ``drive_minutes`` starting at ``start`` keeps its car and its salesperson busy until
``start + drive_minutes + buffer_minutes`` (time to refuel, clean and hand the key over). The database
enforces exactly that interval with two exclusion constraints (see ``models.TestDrive``); the functions
here compute the same intervals to *offer* slots, never to decide a race.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from backend.domains.branches.rules import WEEKDAYS, HoursProblem, day_hours_problem, parse_hours
from backend.domains.service_booking import rules as service_booking_rules
from backend.lib.i18n import format_date, format_time, lazy_gettext
from backend.lib.i18n import gettext as _

DEFAULT_DRIVE_MINUTES = 30
MAX_ODOMETER_KM = 2_000_000
MAX_KM_PER_DRIVE = 1_000  # more on a test drive is a typing mistake
CHECK_OUT_EARLY_MINUTES = 60  # a drive may leave this long before its start
FOLLOW_UP_AT = time(10, 0)  # local time, the day after the drive
REMINDERS = (("24h", timedelta(hours=24)), ("2h", timedelta(hours=2)))


class DriveStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"  # the customer said they are coming (on their page, or on the phone to a salesperson)
    CHECKED_OUT = "checked_out"
    RETURNED = "returned"
    FOLLOWED_UP = "followed_up"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


# Still to happen: may be checked out, marked a no-show, cancelled or moved, and is reminded of. A confirmed drive
# behaves exactly like a booked one; moving it makes it booked again (the new time is not confirmed).
UPCOMING = (DriveStatus.BOOKED, DriveStatus.CONFIRMED)
# The states that hold the car and the salesperson: the WHERE of the exclusion constraints (mirrored in SQL).
ACTIVE = (*UPCOMING, DriveStatus.CHECKED_OUT)

STATUS_LABELS = {
    DriveStatus.BOOKED: lazy_gettext("Booked"),
    DriveStatus.CONFIRMED: lazy_gettext("Confirmed"),
    DriveStatus.CHECKED_OUT: lazy_gettext("On the road"),
    DriveStatus.RETURNED: lazy_gettext("Returned"),
    DriveStatus.FOLLOWED_UP: lazy_gettext("Followed up"),
    DriveStatus.NO_SHOW: lazy_gettext("No-show"),
    DriveStatus.CANCELLED: lazy_gettext("Cancelled"),
}
TRANSITIONS: dict[DriveStatus, frozenset[DriveStatus]] = {
    DriveStatus.BOOKED: frozenset({DriveStatus.CONFIRMED, DriveStatus.CHECKED_OUT, DriveStatus.NO_SHOW,
                                   DriveStatus.CANCELLED}),
    DriveStatus.CONFIRMED: frozenset({DriveStatus.CHECKED_OUT, DriveStatus.NO_SHOW, DriveStatus.CANCELLED}),
    DriveStatus.CHECKED_OUT: frozenset({DriveStatus.RETURNED}),
    DriveStatus.RETURNED: frozenset({DriveStatus.FOLLOWED_UP}),
    DriveStatus.FOLLOWED_UP: frozenset(),
    DriveStatus.NO_SHOW: frozenset(),
    DriveStatus.CANCELLED: frozenset(),
}


# Where a booking came from: the same words as service bookings.
Source, SOURCE_LABELS = service_booking_rules.Source, service_booking_rules.SOURCE_LABELS
booking_source = service_booking_rules.booking_source


def label(labels: Mapping, value: str) -> str:
    for key, text in labels.items():
        if key == value:
            return str(text)
    return value


def status_label(status: str) -> str:
    return label(STATUS_LABELS, status)


def transition_problem(current: str, target: str) -> str | None:
    """Why a drive that is ``current`` cannot become ``target``, or None."""
    try:
        allowed = DriveStatus(target) in TRANSITIONS[DriveStatus(current)]
    except ValueError:
        allowed = False
    if allowed:
        return None
    return _("A test drive that is “%(current)s” cannot become “%(target)s”.",
             current=status_label(current), target=status_label(target))


def confirm_problem(current: str, start: datetime, now: datetime) -> str | None:
    """Why a drive cannot be confirmed, or None (also None for one already confirmed: confirming twice is
    harmless). Only a drive still to happen can be: not one cancelled, under way, over, or whose time has passed."""
    if current not in UPCOMING:
        return _("This test drive is “%(status)s” and can no longer be confirmed.", status=status_label(current))
    if start <= now:
        return _("The time of this test drive has passed: it can no longer be confirmed.")
    return None


# -- the lead ---------------------------------------------------------------------------------------


class LeadStage(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    PRESENTED = "presented"
    TEST_DRIVE = "test_drive"
    NEGOTIATING = "negotiating"
    CONTRACTED = "contracted"
    DELIVERED = "delivered"
    LOST = "lost"


LEAD_ORDER = (LeadStage.NEW, LeadStage.CONTACTED, LeadStage.PRESENTED, LeadStage.TEST_DRIVE,
              LeadStage.NEGOTIATING, LeadStage.CONTRACTED, LeadStage.DELIVERED)
CLOSED_LEAD = (LeadStage.DELIVERED, LeadStage.LOST)
HOT_INTEREST = 4  # a customer this keen after the drive is ready to talk price
LEAD_STAGE_LABELS = {
    LeadStage.NEW: lazy_gettext("New"),
    LeadStage.CONTACTED: lazy_gettext("Contacted"),
    LeadStage.PRESENTED: lazy_gettext("Presented"),
    LeadStage.TEST_DRIVE: lazy_gettext("Test drive"),
    LeadStage.NEGOTIATING: lazy_gettext("Negotiating"),
    LeadStage.CONTRACTED: lazy_gettext("Contracted"),
    LeadStage.DELIVERED: lazy_gettext("Delivered"),
    LeadStage.LOST: lazy_gettext("Lost"),
}


def _at_least(current: str, stage: LeadStage) -> str:
    """A lead only moves forward: ``stage`` if it is further than ``current``."""
    if current in CLOSED_LEAD:
        return current
    try:
        return stage.value if LEAD_ORDER.index(LeadStage(current)) < LEAD_ORDER.index(stage) else current
    except ValueError:
        return stage.value


def lead_stage_after_booking(current: str | None) -> str:
    """Booking a drive moves an open lead to "test drive" (a new lead starts there)."""
    return _at_least(current or LeadStage.NEW, LeadStage.TEST_DRIVE)


def lead_stage_after_return(current: str | None, interest: int) -> str:
    """After the drive a keen customer (interest 4-5) is ready to negotiate; others stay at "test drive"."""
    target = LeadStage.NEGOTIATING if interest >= HOT_INTEREST else LeadStage.TEST_DRIVE
    return _at_least(current or LeadStage.NEW, target)


# -- time: opening hours, the slot grid, who is free -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime  # the end of the drive (the buffer comes after it)


@dataclass(frozen=True, slots=True)
class SalespersonSpec:
    """A salesperson as the slot maths sees them: when they work and when they are already out driving."""

    id: int
    working_hours: Mapping[str, list[str] | None]
    busy: tuple[tuple[datetime, datetime], ...] = field(default_factory=tuple)


def local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


@lru_cache(maxsize=512)
def _parsed_pair(opens: str, closes: str) -> tuple[time, time] | None:
    return parse_hours([opens, closes])


def _parsed(value: list[str] | None) -> tuple[time, time] | None:
    """``parse_hours``, remembered: the slot maths asks for the same few hours thousands of times a second."""
    if value and len(value) == 2 and all(isinstance(v, str) for v in value):
        return _parsed_pair(*value)
    return parse_hours(value)


def _window(hours: Mapping[str, list[str] | None], day: date, tz: str) -> tuple[datetime, datetime] | None:
    window = _parsed(hours.get(WEEKDAYS[day.weekday()]))
    if window is None:
        return None
    zone = ZoneInfo(tz)
    return datetime.combine(day, window[0], tzinfo=zone), datetime.combine(day, window[1], tzinfo=zone)


def opening_window(day: date, opening_hours: Mapping[str, list[str] | None], tz: str,
                   holidays: Iterable[date] = ()) -> tuple[datetime, datetime] | None:
    """When the branch is open on a local day (aware datetimes), or None: closed that weekday or a holiday."""
    if day in set(holidays):
        return None
    return _window(opening_hours, day, tz)


def slot_grid(day: date, opening_hours: Mapping[str, list[str] | None], tz: str, *, slot_minutes: int,
              drive_minutes: int, holidays: Iterable[date] = ()) -> list[datetime]:
    """The starts a drive may have on a local day: every ``slot_minutes`` from opening, while the drive
    itself ends by closing time (the buffer may run past it)."""
    window = opening_window(day, opening_hours, tz, holidays)
    if window is None or slot_minutes <= 0:
        return []
    opens, closes = window
    starts, at = [], opens
    while at + timedelta(minutes=drive_minutes) <= closes:
        starts.append(at)
        at += timedelta(minutes=slot_minutes)
    return starts


def blocked(start: datetime, drive_minutes: int, buffer_minutes: int) -> tuple[datetime, datetime, datetime]:
    """(start, end of the drive, end of the buffer): the last two are what the database stores."""
    end = start + timedelta(minutes=drive_minutes)
    return start, end, end + timedelta(minutes=buffer_minutes)


def overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """Half-open intervals [start, end), like PostgreSQL's ``tstzrange(a, b, '[)') && ...``."""
    return a[0] < b[1] and b[0] < a[1]


def works_during(working_hours: Mapping[str, list[str] | None], start: datetime, end: datetime, tz: str) -> bool:
    """The whole drive (not the buffer) lies within the person's working hours of that local day."""
    window = _window(working_hours, local_day(start, tz), tz)
    return window is not None and window[0] <= start and end <= window[1]


LOCK_BUCKET_MINUTES = 15
CAR_LOCKS = 1 << 62  # advisory lock namespaces (the bigint form; stock uses the two-integer form)
SALESPERSON_LOCKS = 1 << 61


def lock_keys(namespace: int, resource_id: int, start: datetime, until: datetime) -> list[int]:
    """Advisory lock keys for a resource over [start, until): one per 15-minute bucket it touches, ascending.

    Two overlapping intervals always share a bucket, so bookings that could collide queue on each other
    while bookings of the same car at other times of the day do not."""
    size = LOCK_BUCKET_MINUTES * 60
    first, last = int(start.timestamp()) // size, (int(until.timestamp()) - 1) // size
    return [namespace | (resource_id << 24) | (bucket % (1 << 24)) for bucket in range(first, last + 1)]


def free_salespeople(start: datetime, drive_minutes: int, buffer_minutes: int, salespeople: Sequence[SalespersonSpec],
                     tz: str) -> list[int]:
    """Who could take a drive at ``start``: at work for the whole drive and not out on another one.
    The least busy come first (online bookings are spread over the team)."""
    _start, end, until = blocked(start, drive_minutes, buffer_minutes)
    free = [s for s in salespeople
            if works_during(s.working_hours, start, end, tz) and not any(overlaps((start, until), b) for b in s.busy)]
    return [s.id for s in sorted(free, key=lambda s: (len(s.busy), s.id))]


def free_slots(grid: Sequence[datetime], *, drive_minutes: int, buffer_minutes: int,
               car_busy: Sequence[tuple[datetime, datetime]], salespeople: Sequence[SalespersonSpec], tz: str,
               earliest: datetime, limit: int | None = None, exclude: datetime | None = None) -> list[Slot]:
    """Grid starts at or after ``earliest`` where the car is free (buffer included) and a salesperson is."""
    found = []
    for start in sorted(grid):
        if start < earliest or start == exclude:
            continue
        _start, end, until = blocked(start, drive_minutes, buffer_minutes)
        if any(overlaps((start, until), busy) for busy in car_busy):
            continue
        if not any(works_during(s.working_hours, start, end, tz)
                   and not any(overlaps((start, until), b) for b in s.busy) for s in salespeople):
            continue  # nobody to go along (the same test as free_salespeople, stopping at the first one)
        found.append(Slot(start, end))
        if limit is not None and len(found) >= limit:
            break
    return found


def current_slot(now: datetime, grid: Sequence[datetime], slot_minutes: int) -> datetime | None:
    """The grid slot a walk-in takes right now: the one that started less than a slot ago."""
    started = [s for s in grid if s <= now < s + timedelta(minutes=slot_minutes)]
    return started[-1] if started else None


def slot_problem(slot: datetime, *, grid: Sequence[datetime], window: tuple[datetime, datetime] | None,
                 now: datetime, min_notice_minutes: int, horizon_days: int, slot_minutes: int,
                 drive_minutes: int, tz: str, walk_in: bool = False) -> str | None:
    """Why ``slot`` cannot be booked (a message the person can act on), or None.

    Order matters: a time in the past is "passed" even when it was never on the grid; a drive that would
    end after closing time is "outside the opening hours"."""
    if slot.tzinfo is None:
        return _("Give the time with its time zone, e.g. 2030-05-01T10:00:00+08:00.")
    if walk_in and slot in grid and slot <= now < slot + timedelta(minutes=slot_minutes):
        return None  # the customer is here: the slot that is running now is fine
    if slot <= now:
        return _("That time has already passed. Choose a later one.")
    if slot < now + timedelta(minutes=min_notice_minutes):
        return _("Book at least %(minutes)s minutes ahead, or call the branch.", minutes=min_notice_minutes)
    if slot > now + timedelta(days=horizon_days):
        return _("Test drives can be booked up to %(days)s days ahead. Choose an earlier date.", days=horizon_days)
    if window is None:
        return _("The branch is closed on %(day)s. Choose another day.", day=format_date(slot, tz, "full"))
    if slot < window[0] or slot + timedelta(minutes=drive_minutes) > window[1]:
        return _("That time is outside the branch's opening hours (%(opens)s–%(closes)s).",
                 opens=format_time(window[0], tz), closes=format_time(window[1], tz))
    if slot not in grid:
        return _("That is not one of the offered times: test drives start every %(minutes)s minutes.",
                 minutes=slot_minutes)
    return None


def day_problem(day: date, *, today: date, horizon_days: int) -> str | None:
    if day < today:
        return _("That date has already passed.")
    if day > today + timedelta(days=horizon_days):
        return _("Test drives can be booked up to %(days)s days ahead. Choose an earlier date.", days=horizon_days)
    return None


# -- the drive itself: licence, odometer, timing ----------------------------------------------------

_LICENCE = re.compile(r"^[A-Z0-9]{6,24}$")
_LICENCE_SEPARATORS = re.compile(r"[\s\-·./]")


def normalize_licence(value: str) -> str:
    """Full-width characters, spaces and dashes as people type them off a card."""
    return _LICENCE_SEPARATORS.sub("", unicodedata.normalize("NFKC", value or "")).upper()


LICENCE_SEAL = "driving-licence"  # the sealing purpose of test_drive.licence_number


def mask_licence(last4: str | None) -> str:
    """Staff screens and the API show the last four characters only."""
    return "••••" + last4 if last4 else ""


def licence_problems(number: str, expiry: date | None, today: date) -> dict[str, str]:
    """Field -> message for a driving licence that cannot be accepted (expired on the day is still valid)."""
    problems = {}
    if not _LICENCE.match(number or ""):
        problems["licence_number"] = _("Enter the driving licence number: 6 to 24 letters and digits.")
    if expiry is None:
        problems["licence_expiry"] = _("Enter the licence's expiry date.")
    elif expiry < today:
        problems["licence_expiry"] = _("This driving licence expired on %(day)s: the customer may not drive.",
                                       day=format_date(expiry, None, "long"))
    return problems


def odometer_out_problem(reading: int, last_known: int | None) -> str | None:
    if reading < 0 or reading > MAX_ODOMETER_KM:
        return _("Enter the odometer reading in kilometres.")
    if last_known is not None and reading < last_known:
        return _("The odometer cannot read less than the car's last recorded mileage (%(km)s km).", km=last_known)
    return None


def odometer_in_problem(reading: int, out: int) -> str | None:
    if reading < out:
        return _("The odometer on return (%(back)s km) cannot be lower than at check-out (%(out)s km).",
                 back=reading, out=out)
    if reading - out > MAX_KM_PER_DRIVE:
        return _("That would be %(km)s km on one test drive. Please check the reading.", km=reading - out)
    return None


def check_out_problem(now: datetime, start: datetime, tz: str) -> str | None:
    if now < start - timedelta(minutes=CHECK_OUT_EARLY_MINUTES):
        return _("It is too early to hand over the car: this drive starts at %(when)s.",
                 when=format_time(start, tz))
    return None


def no_show_problem(now: datetime, start: datetime, tz: str) -> str | None:
    if now < start:
        return _("A no-show can be recorded once the start time (%(when)s) has passed.", when=format_time(start, tz))
    return None


# -- reminders and follow-up ------------------------------------------------------------------------


def reminder_times(start: datetime, now: datetime) -> list[tuple[str, datetime]]:
    """The reminders still worth sending: 24 h and 2 h before the drive, if those moments lie ahead."""
    return [(name, start - before) for name, before in REMINDERS if start - before > now]


def follow_up_at(drive_end: datetime, tz: str) -> datetime:
    """The morning after the drive, local time."""
    day = local_day(drive_end, tz) + timedelta(days=1)
    return datetime.combine(day, FOLLOW_UP_AT, tzinfo=ZoneInfo(tz))


# -- what managers configure: booking rules, drive lengths, salespeople's hours ---------------------
#
# The database's CHECK constraints (``models.TestDriveSettings``) are the last line; these ranges are what
# a manager may choose, tighter, so that no saved value can break booking:
# - the slot grid is a multiple of the 15-minute advisory-lock bucket (``lock_keys``), so slots that start on
#   the quarter hours never straddle buckets and the walk-in "slot running now" is always one of them;
# - a drive lasts 15 minutes to 4 hours (the car and a salesperson are away that long), in 5-minute steps;
# - the buffer after a drive is 0 to 2 hours in 5-minute steps (it is part of the interval the exclusion
#   constraints keep free, ``blocked_until``);
# - online bookings need 0 minutes to 2 days' notice (the column's own limit);
# - customers book 1 to 90 days ahead (a quarter: further out a demonstrator may well be sold).

WEEKDAY_LABELS = dict(zip(WEEKDAYS, (lazy_gettext("Monday"), lazy_gettext("Tuesday"), lazy_gettext("Wednesday"),
                                     lazy_gettext("Thursday"), lazy_gettext("Friday"), lazy_gettext("Saturday"),
                                     lazy_gettext("Sunday")), strict=True))
SLOT_CHOICES = tuple(range(LOCK_BUCKET_MINUTES, 121, LOCK_BUCKET_MINUTES))  # 15, 30, ... 120
DRIVE_MINUTES_RANGE = (15, 240)
BUFFER_MINUTES_RANGE = (0, 120)
NOTICE_MINUTES_RANGE = (0, 2880)
HORIZON_DAYS_RANGE = (1, 90)
MINUTE_STEP = 5
DEFAULT_RULES = {"slot_minutes": 30, "drive_minutes": DEFAULT_DRIVE_MINUTES, "buffer_minutes": 15,
                 "min_notice_minutes": 60, "horizon_days": 30}  # a branch that saved none (``default_settings``)


def _in_steps(value: int, low: int, high: int, step: int = 1) -> bool:
    return low <= value <= high and value % step == 0


def drive_minutes_problem(minutes: int) -> str | None:
    """Why a drive length cannot be used (the default and each model's), or None."""
    low, high = DRIVE_MINUTES_RANGE
    if not _in_steps(minutes, low, high, MINUTE_STEP):
        return _("A test drive lasts %(low)s to %(high)s minutes, in steps of %(step)s.", low=low, high=high,
                 step=MINUTE_STEP)
    return None


def settings_problems(*, slot_minutes: int, drive_minutes: int, buffer_minutes: int, min_notice_minutes: int,
                      horizon_days: int) -> dict[str, str]:
    """Field -> message for booking rules that cannot be saved (empty when they can)."""
    problems: dict[str, str] = {}
    if slot_minutes not in SLOT_CHOICES:
        problems["slot_minutes"] = _("Test drives start every 15, 30, 45, 60, 75, 90, 105 or 120 minutes.")
    if message := drive_minutes_problem(drive_minutes):
        problems["drive_minutes"] = message
    low, high = BUFFER_MINUTES_RANGE
    if not _in_steps(buffer_minutes, low, high, MINUTE_STEP):
        problems["buffer_minutes"] = _("The time after each drive is %(low)s to %(high)s minutes, in steps of "
                                       "%(step)s.", low=low, high=high, step=MINUTE_STEP)
    low, high = NOTICE_MINUTES_RANGE
    if not _in_steps(min_notice_minutes, low, high):
        problems["min_notice_minutes"] = _("The notice for online bookings is %(low)s to %(high)s minutes "
                                           "(two days).", low=low, high=high)
    low, high = HORIZON_DAYS_RANGE
    if not _in_steps(horizon_days, low, high):
        problems["horizon_days"] = _("Customers can book %(low)s to %(high)s days ahead.", low=low, high=high)
    return problems




def working_hours_problems(hours: Mapping[str, object] | None) -> tuple[dict, dict[str, str]]:
    """Check a salesperson's ``{"mon": ["09:00", "18:00"], ..., "sun": None}`` and give it back in the stored
    form (every weekday, "HH:MM" strings, None for a day off), with day -> message for what is wrong.

    Empty (``{}`` or None) means "the branch's opening hours" and is stored as ``{}``: the slot maths reads
    ``working_hours or branch.opening_hours``, so a person who works no day at all is seven Nones, not ``{}``."""
    if not hours:
        return {}, {}
    problems: dict[str, str] = {}
    unknown = [str(day) for day in hours if day not in WEEKDAYS]
    if unknown:
        problems["working_hours"] = _("Unknown weekday: %(days)s. Use mon, tue, wed, thu, fri, sat, sun.",
                                      days=", ".join(sorted(unknown))[:80])
    stored: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        value = hours.get(day)
        if value is None or value == [] or value == ["", ""]:
            stored[day] = None
            continue
        problem = day_hours_problem(value)  # the same check as a branch's opening hours
        if problem == HoursProblem.CLOSE_NOT_AFTER_OPEN:
            problems[day] = _("The end of the working day must be after its start.")
        elif problem is not None:
            problems[day] = _("Enter the start and end as hours and minutes, e.g. 09:00 and 18:00.")
        else:
            stored[day] = [value[0], value[1]]
    return stored, problems
