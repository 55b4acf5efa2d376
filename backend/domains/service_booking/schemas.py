"""Shapes of what comes in and goes out for service bookings.

Field shapes only (types, lengths, ranges). Plates, VINs, phone numbers, slots and capacity are
business rules, checked by the service with messages that say what to fix.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .rules import Source, Transport

MAX_OPERATIONS = 10


class BookingIn(BaseModel):
    """A booking, from the customer's form, a staff member's phone booking, or the JSON API."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    branch: str = Field(min_length=1, max_length=16, description="Branch code, e.g. SH01")
    slot: datetime = Field(description="A check-in time offered by the availability endpoint, with its offset")
    operations: list[str] = Field(min_length=1, max_length=MAX_OPERATIONS, description="Catalogue codes")
    plate: str | None = Field(default=None, max_length=16, description="Mainland plate, e.g. 沪A12345")
    vin: str | None = Field(default=None, max_length=24)
    mileage_km: int = Field(ge=0, le=2_000_000)
    name: str = Field(min_length=1, max_length=120)
    phone: str = Field(min_length=5, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    locale: str | None = Field(default=None, max_length=8)
    privacy_consent: bool = Field(default=False, description="Must be true: agreement to be contacted about it")
    marketing_consent: bool = False
    transport: Transport = Transport.WAITING
    notes: str = Field(default="", max_length=1000)
    source: Source | None = Field(default=None, description="Staff only: phone or walk_in")

    @field_validator("operations")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        codes = []
        for code in value:
            code = str(code).strip().upper()
            if not code or len(code) > 32:
                raise ValueError("operation codes have 1 to 32 characters")
            if code not in codes:
                codes.append(code)
        return codes

    @field_validator("plate", "vin", "email", "locale")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class RescheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot: datetime


class OperationOut(BaseModel):
    code: str
    name: str
    description: str
    labour_hours: Decimal
    minutes: int
    price: Decimal
    skill: str


class SlotOut(BaseModel):
    start: datetime
    remaining_checkins: int


class AvailabilityOut(BaseModel):
    branch: str
    date: date
    timezone: str
    operations: list[OperationOut]
    estimated_minutes: int
    estimated_price: Decimal
    slots: list[SlotOut]
    next_available: list[SlotOut] = Field(description="When the day is full: the next free slots after it")


class AppointmentOut(BaseModel):
    id: int
    reference: str
    status: str
    branch: str
    slot_start: datetime
    day: date
    operations: list[OperationOut]
    estimated_minutes: int
    estimated_price: Decimal
    transport: str
    source: str
    plate: str | None
    vin: str | None
    mileage_km: int
    tracking_url: str | None = Field(default=None, description="The customer's link (only when just booked)")
