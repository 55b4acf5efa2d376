"""Pure rules about branches: opening hours and time zones."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, available_timezones

from backend.lib.i18n import lazy_gettext

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_OPENING_HOURS = {day: ["08:30", "18:00"] for day in WEEKDAYS[:6]} | {"sun": ["09:00", "17:00"]}


def valid_timezone(name: str) -> bool:
    return name in available_timezones()


def parse_hours(value: list[str] | None) -> tuple[time, time] | None:
    if not value:
        return None
    opens, closes = (time.fromisoformat(v) for v in value)
    if closes <= opens:
        raise ValueError("closing time must be after opening time")
    return opens, closes


def validate_opening_hours(hours: dict) -> dict:
    """Check a ``{"mon": ["08:30", "18:00"], "sun": None}`` map; raise ValueError on nonsense."""
    unknown = set(hours) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown days: {', '.join(sorted(unknown))}")
    for day in WEEKDAYS:
        parse_hours(hours.get(day))
    return {day: hours.get(day) for day in WEEKDAYS}


def is_open(hours: dict, at: datetime, tz: str) -> bool:
    local = at.astimezone(ZoneInfo(tz))
    window = parse_hours(hours.get(WEEKDAYS[local.weekday()]))
    return window is not None and window[0] <= local.time() < window[1]


def hours_on(hours: dict, at: datetime, tz: str) -> list[str] | None:
    """The opening hours of the local day that ``at`` falls on, or None when closed."""
    return hours.get(WEEKDAYS[at.astimezone(ZoneInfo(tz)).weekday()])


# -- what a manager may set: opening hours and holidays ---------------------------------------------------

HOLIDAY_NAME_MAX = 120
WEEKDAY_LABELS = {
    "mon": lazy_gettext("Monday"), "tue": lazy_gettext("Tuesday"), "wed": lazy_gettext("Wednesday"),
    "thu": lazy_gettext("Thursday"), "fri": lazy_gettext("Friday"), "sat": lazy_gettext("Saturday"),
    "sun": lazy_gettext("Sunday"),
}
_HH_MM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class HoursProblem(StrEnum):
    BAD_SHAPE = "bad_shape"  # not null and not a pair of times
    BAD_TIME = "bad_time"  # not HH:MM on a 24-hour clock
    CLOSE_NOT_AFTER_OPEN = "close_not_after_open"


class HolidayProblem(StrEnum):
    IN_THE_PAST = "in_the_past"
    NAME_TOO_LONG = "name_too_long"


def day_hours_problem(value: object) -> HoursProblem | None:
    """What is wrong with one day's ``["09:00", "18:00"]`` (None: closed, or fine); for opening hours and for a
    salesperson's working hours alike."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        return HoursProblem.BAD_SHAPE
    if not all(isinstance(v, str) and _HH_MM.fullmatch(v) for v in value):
        return HoursProblem.BAD_TIME
    return HoursProblem.CLOSE_NOT_AFTER_OPEN if value[1] <= value[0] else None


def opening_hours_problems(hours: Mapping[str, object]) -> dict[str, HoursProblem]:
    """What is wrong with a week of ``{"mon": ["09:00", "18:00"], "sun": None}`` as a manager sets it, by day.

    Stricter than :func:`validate_opening_hours`: times are ``HH:MM`` exactly (as stored), and every weekday
    is named (a day left out is a mistake, not "closed")."""
    problems: dict[str, HoursProblem] = {}
    for day in WEEKDAYS:
        if day not in hours:
            problems[day] = HoursProblem.BAD_SHAPE
        elif problem := day_hours_problem(hours[day]):
            problems[day] = problem
    return problems


def normalized_hours(hours: Mapping[str, object]) -> dict[str, list[str] | None]:
    """The stored form of a checked week: every weekday in order, a pair of strings or None."""
    return {day: (list(hours[day]) if hours.get(day) else None) for day in WEEKDAYS}  # type: ignore[arg-type]


def hours_from_form(values: Mapping[str, str]) -> dict[str, list[str] | None]:
    """The screen's fields (``mon_open``, ``mon_close``, ``mon_closed``) as a week; blank times on a day not
    marked closed stay blank so the checks say which ones are missing."""
    week: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        if values.get(f"{day}_closed") in ("on", "true", "1"):
            week[day] = None
        else:
            week[day] = [str(values.get(f"{day}_{edge}", "")).strip()[:8] for edge in ("open", "close")]
    return week


def holiday_problems(day: date, name: str, today: date) -> dict[str, HolidayProblem]:
    """A new holiday may be today (the branch closes at short notice) but not in the past."""
    problems: dict[str, HolidayProblem] = {}
    if day < today:
        problems["date"] = HolidayProblem.IN_THE_PAST
    if len(name) > HOLIDAY_NAME_MAX:
        problems["name"] = HolidayProblem.NAME_TOO_LONG
    return problems


def local_today(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The aware instants a local day starts and ends at (23 or 25 hours long on a DST change)."""
    zone = ZoneInfo(tz)
    return (datetime.combine(day, time.min, tzinfo=zone),
            datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone))


def upcoming_first(days: Iterable[date], today: date) -> list[date]:
    """Upcoming days (today included) soonest first, then past ones, latest first."""
    upcoming = sorted(d for d in days if d >= today)
    past = sorted((d for d in days if d < today), reverse=True)
    return upcoming + past
