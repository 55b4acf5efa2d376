"""Shapes of what comes in and goes out for test drives.

Field shapes only (types, lengths, ranges). Phone numbers, slots, licences and odometers are business
rules, checked by the service with messages that say what to fix.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .rules import MAX_ODOMETER_KM, Source

MAX_ID = 2**31 - 1


class BookingIn(BaseModel):
    """A booking, from the customer's form, a salesperson's walk-in screen, or the JSON API."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    vehicle_id: int = Field(ge=1, le=MAX_ID, description="A car offered by GET /api/v1/test-drives/cars")
    start: datetime = Field(description="A start offered by the availability endpoint, with its offset")
    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=5, max_length=32, description="Mainland mobile (13812345678) or E.164")
    consent: bool = Field(default=False, description="Must be true: agreement to be contacted about the drive")
    email: str | None = Field(default=None, max_length=254)
    locale: str | None = Field(default=None, max_length=8)
    marketing_consent: bool = False
    source: Source | None = Field(default=None, description="Staff only: phone or walk_in")

    @field_validator("email", "locale")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime


class CheckOutIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    licence_number: str = Field(min_length=1, max_length=40)
    licence_expiry: date
    key_handed_over: bool = Field(description="Must be true: the key leaves with the customer")
    odometer_out: int = Field(ge=0, le=MAX_ODOMETER_KM)


class ReturnIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    odometer_in: int = Field(ge=0, le=MAX_ODOMETER_KM)
    energy_level: int = Field(ge=0, le=100, description="Fuel or charge level on return, percent")
    notes: str = Field(default="", max_length=2000)
    interest: int = Field(ge=1, le=5, description="How interested the customer seemed, 1 to 5")


class FollowUpIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    note: str = Field(default="", max_length=2000)


class FeedbackIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=1000)


class SlotOut(BaseModel):
    start: datetime
    end: datetime


class CarOut(BaseModel):
    id: int
    make: str
    model: str
    trim: str
    model_year: int
    powertrain: str
    colour: str
    branch: str = Field(description="Branch code")
    drive_minutes: int


class AvailabilityOut(BaseModel):
    vehicle_id: int
    branch: str
    date: date
    timezone: str
    drive_minutes: int
    slots: list[SlotOut]
    next_available: list[SlotOut] = Field(description="When the day has no free slot: the next ones after it")


class TestDriveOut(BaseModel):
    __test__ = False

    id: int
    reference: str
    status: str
    source: str
    start: datetime
    end: datetime
    branch: str
    timezone: str
    car: CarOut
    salesperson: str
    tracking_url: str | None = Field(default=None, description="The customer's link (only when just booked)")


class StaffTestDriveOut(TestDriveOut):
    customer_name: str
    customer_phone: str | None
    licence_number: str | None = Field(description="Masked: the last four characters")
    licence_expiry: date | None
    odometer_out: int | None
    odometer_in: int | None
    energy_level_in: int | None
    interest: int | None
    return_notes: str


# -- what managers configure --------------------------------------------------------------------------
# Shapes only: the ranges a manager may choose are rules (``rules.settings_problems``), with messages that say
# what is allowed; these bounds only keep absurd numbers away from them.


class SettingsIn(BaseModel):
    """A branch's booking rules (PUT: all of them)."""

    model_config = ConfigDict(extra="forbid")

    slot_minutes: int = Field(ge=0, le=100_000, description="The grid customers tap on: 15, 30, ... 120")
    drive_minutes: int = Field(ge=0, le=100_000, description="Default drive length, 15-240, in steps of 5")
    buffer_minutes: int = Field(ge=0, le=100_000, description="After each drive, 0-120, in steps of 5")
    min_notice_minutes: int = Field(ge=0, le=100_000, description="Online bookings only, 0-2880")
    horizon_days: int = Field(ge=0, le=100_000, description="How many days ahead customers may book, 1-90")


class SettingsOut(SettingsIn):
    model_config = ConfigDict(extra="ignore")

    branch_id: int
    branch: str = Field(description="Branch code")
    is_default: bool = Field(description="True while the branch has saved nothing (these are the defaults)")


class ModelLengthIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    make: str = Field(min_length=1, max_length=40)
    model: str = Field(min_length=1, max_length=60)
    minutes: int = Field(ge=0, le=100_000, description="15-240, in steps of 5")


class ModelLengthOut(BaseModel):
    make: str
    model: str
    minutes: int


class HoursIn(BaseModel):
    """A salesperson's hours: ``{"mon": ["09:00", "18:00"], ..., "sun": null}``; null or {} for the branch's
    opening hours."""

    model_config = ConfigDict(extra="forbid")

    working_hours: dict[str, list[str] | None] | None = Field(default=None, max_length=7)
    takes_online: bool = Field(description="False keeps them out of the automatic assignment of online bookings")


class SalespersonOut(BaseModel):
    id: int
    name: str
    working_hours: dict[str, list[str] | None] = Field(description="{} means the branch's opening hours")
    same_as_branch: bool
    takes_online: bool
