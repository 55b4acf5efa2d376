"""Repair orders, their timeline, labour and parts lines, technicians' clocks, findings and photos."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Text,
    func,
    text,
)
from sqlmodel import Field, SQLModel

from .rules import Decision, Status


def _one_of(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


def _created() -> Column:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


def _ro_fk(nullable: bool = False) -> Column:
    return Column(Integer, ForeignKey("repair_order.id", ondelete="CASCADE"), nullable=nullable, index=True)


class RepairOrderCounter(SQLModel, table=True):
    """Each branch numbers its orders itself: ``UPDATE ... SET last = last + 1 RETURNING last``."""

    __tablename__ = "repair_order_counter"

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    last: int = Field(default=0)


class RepairOrder(SQLModel, table=True):
    __tablename__ = "repair_order"
    __table_args__ = (
        CheckConstraint(_one_of("status", Status), name="status_known"),
        CheckConstraint("mileage_in >= 0", name="mileage_not_negative"),
        CheckConstraint("energy_level IS NULL OR energy_level BETWEEN 0 AND 100", name="energy_level_percent"),
        CheckConstraint("survey_score IS NULL OR survey_score BETWEEN 0 AND 10", name="survey_score_0_10"),
        Index("ix_repair_order_branch_status", "branch_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    branch_id: int = Field(foreign_key="branch.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    vehicle_id: int = Field(foreign_key="service_vehicle.id", index=True)
    appointment_id: int | None = Field(default=None, foreign_key="service_appointment.id", unique=True)
    status: str = Field(default=Status.OPEN.value, max_length=20)
    # Optimistic locking: every change bumps it; a change made against an old version is refused.
    version: int = Field(default=1)
    mileage_in: int
    energy_level: int | None = Field(default=None)  # fuel or charge, percent
    concerns: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    promised_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    advisor_id: int | None = Field(default=None, foreign_key="staff_user.id")
    advisor_name: str = Field(default="", max_length=120)
    checked_in_at: datetime | None = Field(default=None, sa_column=_created())
    status_changed_at: datetime | None = Field(default=None, sa_column=_created())
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    survey_score: int | None = Field(default=None)
    survey_comment: str | None = Field(default=None, sa_column=Column(Text))
    survey_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(default=None, sa_column=_created())


class RepairOrderEvent(SQLModel, table=True):
    """The timeline: every status change with when and who (staff, API key, the customer, the system)."""

    __tablename__ = "repair_order_event"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    repair_order_id: int = Field(sa_column=_ro_fk())
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    at: datetime | None = Field(default=None, sa_column=_created())
    actor_kind: str = Field(max_length=16)  # staff | api_key | customer | system
    actor_id: int | None = Field(default=None)
    actor_label: str = Field(max_length=254)
    note: str = Field(default="", max_length=500)


class RepairOrderPhoto(SQLModel, table=True):
    """A photo re-encoded by us (existing damage at check-in, or a finding); named by a random key."""

    __tablename__ = "repair_order_photo"
    __table_args__ = (CheckConstraint("kind IN ('damage', 'finding')", name="kind_known"),)

    id: int | None = Field(default=None, primary_key=True)
    repair_order_id: int = Field(sa_column=_ro_fk())
    kind: str = Field(max_length=16)
    file_key: str = Field(max_length=32, unique=True)
    width: int
    height: int
    created_at: datetime | None = Field(default=None, sa_column=_created())


class RepairOrderFinding(SQLModel, table=True):
    """Extra work found in the workshop, put to the customer as one item to approve or decline."""

    __tablename__ = "repair_order_finding"
    __table_args__ = (
        CheckConstraint(_one_of("decision", Decision), name="decision_known"),
        CheckConstraint("(decision = 'pending') = (decided_at IS NULL)", name="decided_has_time"),
        CheckConstraint("price >= 0 AND parts_price >= 0 AND labour_hours >= 0", name="amounts_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repair_order_id: int = Field(sa_column=_ro_fk())
    description: str = Field(max_length=200)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    labour_hours: Decimal = Field(sa_column=Column(Numeric(5, 2), nullable=False))
    parts_price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    photo_id: int | None = Field(default=None, foreign_key="repair_order_photo.id")
    reported_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    reported_by_name: str = Field(default="", max_length=120)
    decision: str = Field(default=Decision.PENDING.value, max_length=16)
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    decided_by: str | None = Field(default=None, max_length=254)  # "customer (tracking link)" or a staff label
    created_at: datetime | None = Field(default=None, sa_column=_created())


class RepairOrderLabour(SQLModel, table=True):
    __tablename__ = "repair_order_labour"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'in_progress', 'done')", name="status_known"),
        CheckConstraint("origin IN ('booked', 'added', 'extra')", name="origin_known"),
        CheckConstraint("standard_hours >= 0 AND price >= 0 AND clocked_minutes >= 0", name="amounts_not_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repair_order_id: int = Field(sa_column=_ro_fk())
    operation_id: int | None = Field(default=None, foreign_key="service_operation.id")
    name_en: str = Field(max_length=200)
    name_zh: str = Field(max_length=200)
    skill: str = Field(default="general", max_length=16)
    standard_hours: Decimal = Field(sa_column=Column(Numeric(5, 2), nullable=False))
    price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    technician_id: int | None = Field(default=None, foreign_key="service_technician.id", index=True)
    status: str = Field(default="pending", max_length=16)
    clocked_minutes: int = Field(default=0)
    origin: str = Field(default="booked", max_length=16)
    finding_id: int | None = Field(default=None, foreign_key="repair_order_finding.id")
    done_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class RepairOrderPart(SQLModel, table=True):
    __tablename__ = "repair_order_part"
    __table_args__ = (
        CheckConstraint("quantity > 0 AND unit_price >= 0 AND (unit_cost IS NULL OR unit_cost >= 0)",
                        name="amounts_sane"),
        CheckConstraint("origin IN ('booked', 'added', 'extra')", name="origin_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repair_order_id: int = Field(sa_column=_ro_fk())
    part_number: str = Field(max_length=40)
    description: str = Field(max_length=200)
    quantity: Decimal = Field(sa_column=Column(Numeric(8, 2), nullable=False))
    unit_cost: Decimal | None = Field(default=None, sa_column=Column(Numeric(10, 2)))
    unit_price: Decimal = Field(sa_column=Column(Numeric(10, 2), nullable=False))
    origin: str = Field(default="booked", max_length=16)
    finding_id: int | None = Field(default=None, foreign_key="repair_order_finding.id")


class RepairOrderClock(SQLModel, table=True):
    """A technician on an operation. One running clock per technician, enforced by a partial unique index."""

    __tablename__ = "repair_order_clock"
    __table_args__ = (
        Index("uq_repair_order_clock_running", "technician_id", unique=True,
              postgresql_where=text("stopped_at IS NULL")),
        CheckConstraint("stopped_at IS NULL OR stopped_at >= started_at", name="stops_after_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    labour_id: int = Field(sa_column=Column(Integer, ForeignKey("repair_order_labour.id", ondelete="CASCADE"),
                                            nullable=False, index=True))
    technician_id: int = Field(foreign_key="service_technician.id")
    started_at: datetime | None = Field(default=None, sa_column=_created())
    stopped_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
