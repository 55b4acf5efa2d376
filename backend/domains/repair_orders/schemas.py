"""Shapes of what comes in and goes out for repair orders, the workshop and the customer's tracking page."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from backend.domains.service_booking.schemas import BookingIn

from .rules import Status


class CheckInIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    mileage_km: int = Field(ge=0, le=2_000_000)
    energy_level: int | None = Field(default=None, ge=0, le=100, description="Fuel or charge, percent")
    concerns: str = Field(default="", max_length=2000)
    promised_at: datetime = Field(description="When the customer was told the car will be ready")


class WalkInIn(BookingIn):
    """A car that arrives without an appointment: booked now (same path, same capacity) and checked in."""

    slot: datetime | None = None  # type: ignore[assignment] - a walk-in takes the current slot
    energy_level: int | None = Field(default=None, ge=0, le=100)
    concerns: str = Field(default="", max_length=2000)
    promised_at: datetime


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    version: int | None = Field(default=None, ge=1, description="The version you saw; a newer one gets 409")
    note: str = Field(default="", max_length=500)


class FindingIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    description: str = Field(min_length=2, max_length=200)
    note: str = Field(default="", max_length=2000)
    labour_hours: Decimal = Field(ge=0, le=40, decimal_places=2)
    parts_price: Decimal = Field(default=Decimal(0), ge=0, le=1_000_000, decimal_places=2)


class PartIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    part_number: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1, max_length=200)
    quantity: Decimal = Field(gt=0, le=1000, decimal_places=2)
    unit_cost: Decimal | None = Field(default=None, ge=0, le=1_000_000, decimal_places=2)
    unit_price: Decimal = Field(ge=0, le=1_000_000, decimal_places=2)


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    technician_id: int = Field(ge=1)


class ItemDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_id: int = Field(ge=1)
    decision: str = Field(min_length=2, max_length=16, description="approve or decline")


class DecisionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decisions: list[ItemDecision] = Field(min_length=1, max_length=50)


class LookupIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    ro_number: str = Field(min_length=1, max_length=40)
    phone: str | None = Field(default=None, max_length=32)
    plate: str | None = Field(default=None, max_length=16)


class SurveyIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    score: int = Field(ge=0, le=10)
    comment: str = Field(default="", max_length=2000)


# -- answers ------------------------------------------------------------------------------------


class EventOut(BaseModel):
    status: str
    status_label: str
    at: datetime
    by: str | None = None
    note: str = ""


class LabourOut(BaseModel):
    id: int
    name: str
    standard_hours: Decimal
    price: Decimal
    technician: str | None
    status: str
    clocked_minutes: int
    origin: str


class PartOut(BaseModel):
    id: int
    part_number: str
    description: str
    quantity: Decimal
    unit_cost: Decimal | None
    unit_price: Decimal


class ItemOut(BaseModel):
    id: int
    description: str
    note: str
    price: Decimal
    photo_url: str | None
    decision: str
    decided_at: datetime | None


class TotalsOut(BaseModel):
    labour: Decimal
    parts: Decimal
    total: Decimal
    waiting_for_approval: Decimal


class RepairOrderOut(BaseModel):
    """What staff see."""

    id: int
    number: str
    branch: str
    appointment_id: int | None
    status: str
    status_label: str
    version: int
    customer: str
    phone: str | None
    plate: str | None
    vin: str | None
    mileage_in: int
    energy_level: int | None
    concerns: str
    promised_at: datetime | None
    checked_in_at: datetime | None
    timeline: list[EventOut]
    labour: list[LabourOut]
    parts: list[PartOut]
    items: list[ItemOut]
    totals: TotalsOut
    parts_cost: Decimal


class TrackingOut(BaseModel):
    """What the customer sees through their link: no costs, no staff details."""

    kind: str = Field(description="repair_order or appointment")
    reference: str
    status: str
    status_text: str
    branch: str
    promised_at: datetime | None = None
    slot_start: datetime | None = None
    timeline: list[EventOut] = []
    items: list[ItemOut] = []
    total_so_far: Decimal | None = None
    waiting_for_approval: Decimal | None = None
    can_change: bool = False
