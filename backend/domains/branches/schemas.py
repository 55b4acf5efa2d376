"""Shapes of what comes in and goes out for a branch's opening hours and holidays.

Field shapes only. Whether the times read as ``HH:MM`` and close after opening, and whether a holiday lies in
the past, are rules (``rules.py``) checked by the service with messages per field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .rules import HOLIDAY_NAME_MAX

# A day's hours: ["09:00", "18:00"], or null when the branch is closed that weekday.
DayHours = Annotated[list[Annotated[str, Field(max_length=8)]], Field(min_length=2, max_length=2)] | None


def _hours():
    return Field(description='Opening and closing time, e.g. ["09:00", "18:00"]; null when closed that day')


class OpeningHours(BaseModel):
    """A branch's week. Every weekday must be given (null for closed), so a PUT never drops a day by mistake."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "mon": ["09:00", "18:00"], "tue": ["09:00", "18:00"], "wed": ["09:00", "18:00"], "thu": ["09:00", "18:00"],
        "fri": ["09:00", "18:00"], "sat": ["10:00", "16:00"], "sun": None}})

    mon: DayHours = _hours()
    tue: DayHours = _hours()
    wed: DayHours = _hours()
    thu: DayHours = _hours()
    fri: DayHours = _hours()
    sat: DayHours = _hours()
    sun: DayHours = _hours()


class HolidayIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    date: dt.date = Field(description="Local date at the branch, YYYY-MM-DD; today or later")
    name: str = Field(default="", max_length=HOLIDAY_NAME_MAX, description="e.g. National Day")


class HolidayOut(BaseModel):
    date: dt.date
    name: str


class HolidayAdded(HolidayOut):
    """What a new holiday means for bookings already made: they are not moved or cancelled, someone calls."""

    booked_test_drives: int = Field(description="Booked test drives on that day (not moved or cancelled)")
    booked_service_appointments: int = Field(description="Booked service appointments on that day (kept)")
