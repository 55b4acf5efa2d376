"""The service catalogue, the workshop's capacity and the appointments that consume it.

Capacity lives in counter rows (``service_day_capacity``, ``service_slot_capacity``) that a booking
moves with one conditional ``UPDATE ... WHERE booked + n <= capacity``; their CHECK constraints make
an overbooked row impossible even for code that forgets the condition.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from .rules import AppointmentStatus, Skill, Source, Transport


def _one_of(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


def _created() -> Column:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ServiceSettings(SQLModel, table=True):
    """A branch's booking rules; a branch without a row uses the defaults of ``service.DEFAULTS``."""

    __tablename__ = "service_settings"
    __table_args__ = (
        CheckConstraint("slot_minutes BETWEEN 5 AND 120", name="slot_minutes_sane"),
        CheckConstraint("checkins_per_slot BETWEEN 1 AND 100", name="checkins_per_slot_sane"),
        CheckConstraint("labour_rate >= 0", name="labour_rate_not_negative"),
    )

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    slot_minutes: int = Field(default=15)
    checkins_per_slot: int = Field(default=4)
    last_checkin_before_close: int = Field(default=60)  # minutes
    min_notice_minutes: int = Field(default=60)
    horizon_days: int = Field(default=60)
    bays: int = Field(default=4)
    labour_rate: Decimal = Field(default=Decimal("380.00"), sa_column=Column(Numeric(10, 2), nullable=False))


class ServiceOperation(SQLModel, table=True):
    """A catalogue entry: standard labour hours, the parts it uses and the all-in menu price."""

    __tablename__ = "service_operation"
    __table_args__ = (
        CheckConstraint(_one_of("skill", Skill), name="skill_known"),
        CheckConstraint("labour_hours > 0 AND labour_hours <= 40", name="labour_hours_sane"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("code ~ '^[A-Z0-9_]{2,32}$'", name="code_shape"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name_en: str = Field(max_length=120)
    name_zh: str = Field(max_length=120)
    description_en: str = Field(default="", max_length=500)
    description_zh: str = Field(default="", max_length=500)
    labour_hours: Decimal = Field(sa_column=Column(Numeric(5, 2), nullable=False))
    # [{"part_number", "name", "quantity", "unit_cost", "unit_price"}]
    parts: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))
    price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    skill: str = Field(default=Skill.GENERAL.value, max_length=16)
    active: bool = Field(default=True)
    position: int = Field(default=0)


class ServiceBay(SQLModel, table=True):
    __tablename__ = "service_bay"
    __table_args__ = (UniqueConstraint("branch_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    name: str = Field(max_length=40)
    active: bool = Field(default=True)


class ServiceTechnician(SQLModel, table=True):
    """A technician of a branch, with skills and weekly hours; linked to a staff account to clock jobs."""

    __tablename__ = "service_technician"

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    staff_user_id: int | None = Field(default=None, foreign_key="staff_user.id", unique=True)
    name: str = Field(max_length=120)
    skills: list[str] = Field(default_factory=lambda: [Skill.GENERAL.value],
                              sa_column=Column(ARRAY(String(16)), nullable=False, server_default="{general}"))
    # {"mon": ["08:30", "17:30"], ..., "sun": null}
    working_hours: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    active: bool = Field(default=True)


class ServiceDayCapacity(SQLModel, table=True):
    """Minutes of one resource (``labour``, ``bays``, ``skill:ev``...) of a branch on a local day."""

    __tablename__ = "service_day_capacity"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="never_overbooked"),
    )

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    resource: str = Field(max_length=32, primary_key=True)
    capacity: int = Field(sa_column=Column(Integer, nullable=False))
    booked: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class ServiceSlotCapacity(SQLModel, table=True):
    """Advisor check-ins at one slot start (e.g. 4 per 15 minutes)."""

    __tablename__ = "service_slot_capacity"
    __table_args__ = (
        CheckConstraint("booked >= 0 AND booked <= capacity", name="never_overbooked"),
    )

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    starts_at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    capacity: int = Field(sa_column=Column(Integer, nullable=False))
    booked: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))


class ServiceVehicle(SQLModel, table=True):
    """A customer's car as the workshop knows it: plate and/or VIN, and the last odometer reading."""

    __tablename__ = "service_vehicle"
    __table_args__ = (
        CheckConstraint("plate IS NOT NULL OR vin IS NOT NULL", name="identified"),
        CheckConstraint("vin IS NULL OR vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name="vin_shape"),
        CheckConstraint("last_mileage_km IS NULL OR last_mileage_km >= 0", name="mileage_not_negative"),
        Index("uq_service_vehicle_plate", "plate", unique=True, postgresql_where=text("plate IS NOT NULL")),
        Index("uq_service_vehicle_vin", "vin", unique=True, postgresql_where=text("vin IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    plate: str | None = Field(default=None, max_length=12)
    vin: str | None = Field(default=None, max_length=17)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    description: str = Field(default="", max_length=120)
    last_mileage_km: int | None = Field(default=None)
    last_mileage_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(default=None, sa_column=_created())


class ServiceAppointment(SQLModel, table=True):
    __tablename__ = "service_appointment"
    __table_args__ = (
        CheckConstraint(_one_of("status", AppointmentStatus), name="status_known"),
        CheckConstraint(_one_of("source", Source), name="source_known"),
        CheckConstraint(_one_of("transport", Transport), name="transport_known"),
        CheckConstraint("mileage_km >= 0", name="mileage_not_negative"),
        Index("ix_service_appointment_branch_day", "branch_id", "day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=16, unique=True)  # what the customer quotes on the phone
    branch_id: int = Field(foreign_key="branch.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    vehicle_id: int = Field(foreign_key="service_vehicle.id", index=True)
    slot_start: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    day: date = Field(sa_column=Column(Date, nullable=False))
    status: str = Field(default=AppointmentStatus.BOOKED.value, max_length=16)
    source: str = Field(default=Source.ONLINE.value, max_length=16)
    transport: str = Field(default=Transport.WAITING.value, max_length=16)
    mileage_km: int
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # The minutes it holds of each resource: released exactly, whatever the catalogue says later.
    resources: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    estimated_minutes: int = Field(default=0)
    estimated_price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    created_by_label: str = Field(default="customer", max_length=254)
    created_at: datetime | None = Field(default=None, sa_column=_created())
    updated_at: datetime | None = Field(default=None, sa_column=_created())
    cancelled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    checked_in_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ServiceAppointmentOperation(SQLModel, table=True):
    """The operations booked, as the catalogue priced them at the time."""

    __tablename__ = "service_appointment_operation"

    id: int | None = Field(default=None, primary_key=True)
    appointment_id: int = Field(sa_column=Column(Integer, ForeignKey("service_appointment.id", ondelete="CASCADE"),
                                                 nullable=False, index=True))
    operation_id: int = Field(foreign_key="service_operation.id")
    code: str = Field(max_length=32)
    name_en: str = Field(max_length=120)
    name_zh: str = Field(max_length=120)
    labour_hours: Decimal = Field(sa_column=Column(Numeric(5, 2), nullable=False))
    price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    skill: str = Field(max_length=16)
    parts: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))


class BookingIdempotency(SQLModel, table=True):
    """``Idempotency-Key`` -> the first answer, written in the booking's own transaction.

    Only a hash of the key is stored, and the answer (which holds the tracking link) is encrypted with a
    key derived from the client's key: whoever reads this table cannot open anyone's tracking link.
    """

    __tablename__ = "booking_idempotency"
    __table_args__ = (UniqueConstraint("scope", "key_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=32)
    key_hash: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    status_code: int = Field(default=201)
    response: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=False,
                                                                        server_default=func.now(), index=True))
