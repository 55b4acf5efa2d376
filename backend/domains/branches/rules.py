"""Pure rules about branches: opening hours and time zones."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo, available_timezones

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
