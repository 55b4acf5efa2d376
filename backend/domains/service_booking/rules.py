"""Pure rules for service bookings: plates and VINs, slot maths, capacity, estimates. No I/O.

Capacity is counted per branch and local day in minutes of three kinds of resource:

- ``labour``: the minutes every technician working that day brings (all of them);
- ``skill:<name>``: the minutes of the technicians who have a special skill (EV, tyres...), so that a
  day full of battery checks cannot be sold to a workshop whose only EV technician is busy;
- ``bays``: bays x the workshop's opening minutes.

A booking needs its operations' standard minutes from ``labour`` and ``bays``, and from each special
skill it uses; plus one advisor check-in slot (e.g. 4 per 15 minutes) at its time.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from backend.domains.branches.rules import WEEKDAYS, parse_hours
from backend.lib.i18n import gettext as _
from backend.lib.i18n import lazy_gettext

CENT = Decimal("0.01")
LABOUR = "labour"
BAYS = "bays"


class Skill(StrEnum):
    GENERAL = "general"  # every technician; consumes only the general pool
    EV = "ev"
    TYRES = "tyres"
    BRAKES = "brakes"
    DIAGNOSIS = "diagnosis"


SPECIAL_SKILLS = tuple(s for s in Skill if s is not Skill.GENERAL)
SKILL_LABELS = {
    Skill.GENERAL: lazy_gettext("General service"),
    Skill.EV: lazy_gettext("High-voltage (EV)"),
    Skill.TYRES: lazy_gettext("Tyres and wheels"),
    Skill.BRAKES: lazy_gettext("Brakes"),
    Skill.DIAGNOSIS: lazy_gettext("Diagnosis"),
}


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


APPOINTMENT_STATUS_LABELS = {
    AppointmentStatus.BOOKED: lazy_gettext("Booked"),
    AppointmentStatus.CONFIRMED: lazy_gettext("Confirmed"),
    AppointmentStatus.CHECKED_IN: lazy_gettext("Checked in"),
    AppointmentStatus.NO_SHOW: lazy_gettext("No-show"),
    AppointmentStatus.CANCELLED: lazy_gettext("Cancelled"),
}
APPOINTMENT_TRANSITIONS: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.BOOKED: frozenset({AppointmentStatus.CONFIRMED, AppointmentStatus.CHECKED_IN,
                                         AppointmentStatus.NO_SHOW, AppointmentStatus.CANCELLED}),
    AppointmentStatus.CONFIRMED: frozenset({AppointmentStatus.CHECKED_IN, AppointmentStatus.NO_SHOW,
                                            AppointmentStatus.CANCELLED}),
    AppointmentStatus.CHECKED_IN: frozenset(),
    AppointmentStatus.NO_SHOW: frozenset(),
    AppointmentStatus.CANCELLED: frozenset(),
}
OPEN_APPOINTMENT = frozenset({AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED})


class Transport(StrEnum):
    WAITING = "waiting"
    LOAN_CAR = "loan_car"
    DROP_OFF = "drop_off"


TRANSPORT_LABELS = {
    Transport.WAITING: lazy_gettext("I will wait at the branch"),
    Transport.LOAN_CAR: lazy_gettext("I would like a loan car"),
    Transport.DROP_OFF: lazy_gettext("I will drop the car off"),
}


class Source(StrEnum):
    ONLINE = "online"
    PHONE = "phone"
    WALK_IN = "walk_in"


SOURCE_LABELS = {
    Source.ONLINE: lazy_gettext("Online"),
    Source.PHONE: lazy_gettext("Phone"),
    Source.WALK_IN: lazy_gettext("Walk-in"),
}


def booking_source(asked: Source | None, *, staff: bool) -> Source | None:
    """Where a booking came from: customers book online; staff record phone (the default) or walk-in
    bookings. None when a customer asks for a source only staff may record."""
    if not staff:
        return Source.ONLINE if asked in (None, Source.ONLINE) else None
    return asked or Source.PHONE


def appointment_transition_problem(current: str, target: str) -> str | None:
    try:
        allowed = AppointmentStatus(target) in APPOINTMENT_TRANSITIONS[AppointmentStatus(current)]
    except ValueError:
        allowed = False
    if allowed:
        return None
    return _("An appointment that is “%(current)s” cannot become “%(target)s”.",
             current=_label(APPOINTMENT_STATUS_LABELS, current), target=_label(APPOINTMENT_STATUS_LABELS, target))


def appointment_status_label(status: str) -> str:
    return _label(APPOINTMENT_STATUS_LABELS, status)


def _label(labels: Mapping, value: str) -> str:
    for key, label in labels.items():
        if key == value:
            return str(label)
    return value


# -- licence plates (GA 36-2018) ----------------------------------------------------------------

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # no I or O: they look like 1 and 0
_REGULAR = re.compile(rf"^[{PROVINCES}][{_LETTER}][{_LETTER}0-9]{{4}}[{_LETTER}0-9学警挂港澳领]$")
_NEV_SMALL = re.compile(rf"^[{PROVINCES}][{_LETTER}][DF][{_LETTER}0-9][0-9]{{4}}$")
_NEV_LARGE = re.compile(rf"^[{PROVINCES}][{_LETTER}][0-9]{{5}}[DF]$")
_PLATE_SEPARATORS = re.compile(r"[\s·•.\-_]")


def normalize_plate(value: str) -> str:
    """What people type: full-width letters, lower case, a middle dot or spaces after the city letter."""
    text = unicodedata.normalize("NFKC", value or "")
    return _PLATE_SEPARATORS.sub("", text).upper()


def plate_problem(plate: str) -> str | None:
    """Why ``plate`` (normalized) is not a mainland plate, or None. New-energy plates have 6 characters
    after the city letter (D/F first for small cars, last for large ones)."""
    if not plate:
        return _("Enter the licence plate.")
    if plate[0] not in PROVINCES:
        return _("A plate starts with a province abbreviation such as 沪, 浙 or 粤.")
    if _REGULAR.match(plate) or _NEV_SMALL.match(plate) or _NEV_LARGE.match(plate):
        return None
    return _("Enter a mainland plate such as 沪A12345, or 浙A·D12345 for a new-energy car.")


def display_plate(plate: str | None) -> str:
    """沪A12345 -> 沪A·12345, the way plates are printed."""
    if not plate or len(plate) < 3:
        return plate or ""
    return f"{plate[:2]}·{plate[2:]}"


def vin_problem(value: str) -> str | None:
    """ISO 3779 with the check digit (GB 16735). The stock domain owns the algorithm; reuse it."""
    from backend.domains.stock import rules as stock_rules

    found = stock_rules.vin_problem(value)
    return found[1] if found else None


def normalize_vin(value: str) -> str:
    from backend.domains.stock import rules as stock_rules

    return stock_rules.normalize_vin(value or "")


# -- estimates ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperationSpec:
    """What the rules need to know about a catalogue operation."""

    code: str
    labour_hours: Decimal
    price: Decimal
    skill: str


def money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def minutes_for(hours: Decimal) -> int:
    """Standard hours to whole minutes, rounded up (0.25 h = 15 min, 0.33 h = 20 min)."""
    return max(0, math.ceil(Decimal(hours) * 60 - Decimal("0.0001")))


def requirements(operations: Iterable[OperationSpec]) -> dict[str, int]:
    """The minutes a booking needs of each resource (see the module docstring)."""
    needed: dict[str, int] = {LABOUR: 0, BAYS: 0}
    for op in operations:
        minutes = minutes_for(op.labour_hours)
        needed[LABOUR] += minutes
        needed[BAYS] += minutes
        if op.skill != Skill.GENERAL:
            key = f"skill:{op.skill}"
            needed[key] = needed.get(key, 0) + minutes
    return needed


def estimate(operations: Sequence[OperationSpec]) -> tuple[int, Decimal]:
    """Estimated duration (minutes) and price of a set of operations."""
    return (sum(minutes_for(op.labour_hours) for op in operations),
            money(sum((Decimal(op.price) for op in operations), Decimal(0))))


def parts_total(parts: Iterable[Mapping]) -> Decimal:
    return money(sum((Decimal(str(p.get("quantity", 1))) * Decimal(str(p.get("unit_price", 0))) for p in parts),
                     Decimal(0)))


def labour_price(price: Decimal, parts: Iterable[Mapping]) -> Decimal:
    """The labour share of an operation's all-in menu price."""
    return money(max(Decimal(0), Decimal(price) - parts_total(parts)))


# -- capacity -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TechnicianSpec:
    skills: tuple[str, ...]
    working_hours: Mapping[str, list[str] | None]


def _minutes_between(window: tuple[time, time]) -> int:
    opens, closes = window
    return (closes.hour * 60 + closes.minute) - (opens.hour * 60 + opens.minute)


def weekday_key(day: date) -> str:
    return WEEKDAYS[day.weekday()]


def day_capacity(day: date, technicians: Iterable[TechnicianSpec], bays: int,
                 opening_hours: Mapping[str, list[str] | None], *, holiday: bool = False) -> dict[str, int]:
    """Minutes available on ``day`` of every resource; zero everywhere when the branch is closed (its weekly
    day off or a holiday)."""
    key = weekday_key(day)
    branch_window = None if holiday else parse_hours(opening_hours.get(key))
    capacity = {LABOUR: 0, BAYS: 0, **{f"skill:{s}": 0 for s in SPECIAL_SKILLS}}
    if branch_window is None:
        return capacity
    for tech in technicians:
        window = parse_hours(tech.working_hours.get(key))
        if window is None:
            continue
        minutes = _minutes_between(window)
        capacity[LABOUR] += minutes
        for skill in tech.skills:
            if skill != Skill.GENERAL and f"skill:{skill}" in capacity:
                capacity[f"skill:{skill}"] += minutes
    capacity[BAYS] = max(0, bays) * _minutes_between(branch_window)
    return capacity


def checkin_slots(day: date, opening_hours: Mapping[str, list[str] | None], tz: str, slot_minutes: int,
                  last_before_close: int, *, holiday: bool = False) -> list[datetime]:
    """The advisor check-in slot starts of a local day (aware datetimes in the branch's zone); none on a
    holiday."""
    window = None if holiday else parse_hours(opening_hours.get(weekday_key(day)))
    if window is None or slot_minutes <= 0:
        return []
    zone = ZoneInfo(tz)
    start = datetime.combine(day, window[0], tzinfo=zone)
    last = datetime.combine(day, window[1], tzinfo=zone) - timedelta(minutes=last_before_close)
    slots = []
    at = start
    while at <= last:
        slots.append(at)
        at += timedelta(minutes=slot_minutes)
    return slots


def local_day(at: datetime, tz: str) -> date:
    return at.astimezone(ZoneInfo(tz)).date()


def fits(remaining: Mapping[str, int], needed: Mapping[str, int]) -> bool:
    return all(remaining.get(resource, 0) >= minutes for resource, minutes in needed.items() if minutes > 0)


@dataclass(frozen=True, slots=True)
class SlotState:
    start: datetime
    remaining_checkins: int


def free_slots(slots: Sequence[SlotState], day_remaining: Mapping[date, Mapping[str, int]],
               needed: Mapping[str, int], *, tz: str, earliest: datetime, limit: int | None = None,
               exclude: datetime | None = None) -> list[SlotState]:
    """Slots at or after ``earliest`` with a check-in place left on a day where every resource fits."""
    found = []
    for slot in sorted(slots, key=lambda s: s.start):
        if slot.start < earliest or slot.remaining_checkins <= 0 or slot.start == exclude:
            continue
        if not fits(day_remaining.get(local_day(slot.start, tz), {}), needed):
            continue
        found.append(slot)
        if limit is not None and len(found) >= limit:
            break
    return found


def slot_problem(slot: datetime, *, valid_slots: Sequence[datetime], now: datetime, min_notice_minutes: int,
                 horizon_days: int) -> str | None:
    """Why a customer cannot book ``slot``: in the past, too soon, too far ahead, or not a slot."""
    if slot.tzinfo is None:
        return _("Give the time with its time zone.")
    if slot <= now:
        return _("That time has already passed. Choose a later one.")
    if slot < now + timedelta(minutes=min_notice_minutes):
        return _("Book at least %(minutes)s minutes ahead, or call the branch.", minutes=min_notice_minutes)
    if slot > now + timedelta(days=horizon_days):
        return _("Bookings open %(days)s days ahead. Choose an earlier date.", days=horizon_days)
    if slot not in valid_slots:
        return _("That is not one of the offered check-in times.")
    return None


def walk_in_slot(now: datetime, valid_slots: Sequence[datetime]) -> datetime | None:
    """The check-in slot a walk-in takes: the current one (the latest that has started), else the next."""
    started = [s for s in valid_slots if s <= now]
    if started:
        return started[-1]
    upcoming = [s for s in valid_slots if s > now]
    return upcoming[0] if upcoming else None


def day_problem(day: date, *, today: date, horizon_days: int) -> str | None:
    if day < today:
        return _("That date has already passed.")
    if day > today + timedelta(days=horizon_days):
        return _("Bookings open %(days)s days ahead. Choose an earlier date.", days=horizon_days)
    return None


def mileage_problem(mileage: int, last_recorded: int | None, *, show_last: bool) -> str | None:
    """An odometer never goes back: refuse a reading below the last one (staff are told which)."""
    if mileage < 0:
        return _("Enter the mileage in kilometres.")
    if mileage > 2_000_000:
        return _("That mileage is not plausible.")
    if last_recorded is not None and mileage < last_recorded:
        if show_last:
            return _("The mileage is lower than the last one recorded for this car (%(km)s km).", km=last_recorded)
        return _("The mileage is lower than the last one we recorded for this car. Please check the odometer.")
    return None


def counter_order(resource_keys: Iterable[tuple[date, str]]) -> list[tuple[date, str]]:
    """Every booking updates counter rows in this one order, so two bookings never deadlock."""
    return sorted(resource_keys)
