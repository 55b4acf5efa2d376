"""Test drives, what they need (demo cars, salespeople's hours, drive lengths, a branch's settings) and the
minimal lead record a booking creates or advances.

No double booking is the database's job: ``test_drive.during`` (a generated ``tstzrange`` from the start
to the end of the buffer after the drive) is covered by two exclusion constraints, one per car and one
per salesperson, for the drives that hold them (booked or checked out). pgserver has no btree_gist, so
the id takes part through a one-element range: ``int8range(id, id, '[]') WITH =``. A concurrent second
booking waits for the first to commit and then fails with SQLSTATE 23P01, which the service turns into
a 409 with the next free slots.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Column, Computed, Date, DateTime, Index, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE, ExcludeConstraint
from sqlmodel import Field, SQLModel

from .rules import ACTIVE, DriveStatus, LeadStage, Source

ACTIVE_SQL = "status IN (" + ", ".join(f"'{s.value}'" for s in ACTIVE) + ")"
VEHICLE_BUSY = "ex_test_drive_vehicle_busy"
SALESPERSON_BUSY = "ex_test_drive_salesperson_busy"


def _one_of(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


def _at(nullable: bool = True) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable)


def _created() -> Column:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class TestDriveSettings(SQLModel, table=True):
    """A branch's test-drive rules; a branch without a row uses these defaults (see ``service.settings_for``)."""

    __tablename__ = "test_drive_settings"
    __test__ = False  # not a pytest class, whatever its name says
    __table_args__ = (
        CheckConstraint("slot_minutes BETWEEN 5 AND 120", name="slot_minutes_sane"),
        CheckConstraint("drive_minutes BETWEEN 10 AND 240", name="drive_minutes_sane"),
        CheckConstraint("buffer_minutes BETWEEN 0 AND 120", name="buffer_minutes_sane"),
        CheckConstraint("min_notice_minutes BETWEEN 0 AND 2880", name="min_notice_sane"),
        CheckConstraint("horizon_days BETWEEN 1 AND 365", name="horizon_sane"),
    )

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    slot_minutes: int = Field(default=30)  # the grid customers tap on
    drive_minutes: int = Field(default=30)  # unless the model says otherwise
    buffer_minutes: int = Field(default=15)  # after each drive: refuel, clean, hand the key back
    min_notice_minutes: int = Field(default=60)  # online bookings only
    horizon_days: int = Field(default=30)


class TestDriveModelLength(SQLModel, table=True):
    """How long a drive of a model takes at a branch (a big SUV or a sports car may need more than the
    default). Per branch: one branch's manager never changes another branch's drives."""

    __tablename__ = "test_drive_model_length"
    __test__ = False
    __table_args__ = (CheckConstraint("drive_minutes BETWEEN 10 AND 240", name="drive_minutes_sane"),)

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    make: str = Field(max_length=40, primary_key=True)
    model: str = Field(max_length=60, primary_key=True)
    drive_minutes: int


class TestDriveCar(SQLModel, table=True):
    """An in-stock car a manager has marked drivable. (Cars with the stock status "demo" need no row.)"""

    __tablename__ = "test_drive_car"
    __test__ = False

    vehicle_id: int = Field(foreign_key="vehicle.id", primary_key=True)
    marked_by_label: str = Field(max_length=254)
    marked_at: datetime | None = Field(default=None, sa_column=_created())


class SalespersonHours(SQLModel, table=True):
    """When a salesperson is available for test drives. Salespeople without a row work the branch's opening
    hours; ``takes_online`` False keeps someone out of the automatic assignment of online bookings."""

    __tablename__ = "test_drive_salesperson"

    staff_user_id: int = Field(foreign_key="staff_user.id", primary_key=True)
    # {"mon": ["09:00", "18:00"], ..., "sun": null}
    working_hours: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    takes_online: bool = Field(default=True)


class Lead(SQLModel, table=True):
    """A sales opportunity: the minimal record test drives need until the CRM exists. At most one open lead
    per customer (a partial unique index); a closed one (delivered, lost) lets a new one start."""

    __tablename__ = "lead"
    __table_args__ = (
        CheckConstraint(_one_of("stage", LeadStage), name="stage_known"),
        CheckConstraint("interest IS NULL OR interest BETWEEN 1 AND 5", name="interest_1_to_5"),
        Index("uq_lead_open_per_customer", "customer_id", unique=True,
              postgresql_where=text("stage NOT IN ('delivered', 'lost')")),
    )

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    salesperson_id: int | None = Field(default=None, foreign_key="staff_user.id")
    stage: str = Field(default=LeadStage.NEW.value, max_length=16)
    channel: str = Field(max_length=16)  # where it came from: online, phone, walk_in
    vehicle_interest: str = Field(default="", max_length=120)  # "BYD Han"
    interest: int | None = Field(default=None, sa_column=Column(SmallInteger))  # 1-5, from the last drive
    last_test_drive_at: datetime | None = Field(default=None, sa_column=_at())
    created_at: datetime | None = Field(default=None, sa_column=_created())
    updated_at: datetime | None = Field(default=None, sa_column=_created())


class TestDrive(SQLModel, table=True):
    __tablename__ = "test_drive"
    __test__ = False
    __table_args__ = (
        CheckConstraint(_one_of("status", DriveStatus), name="status_known"),
        CheckConstraint(_one_of("source", Source), name="source_known"),
        CheckConstraint("starts_at < ends_at AND ends_at <= blocked_until", name="times_in_order"),
        CheckConstraint("interest IS NULL OR interest BETWEEN 1 AND 5", name="interest_1_to_5"),
        CheckConstraint("customer_rating IS NULL OR customer_rating BETWEEN 1 AND 5", name="rating_1_to_5"),
        CheckConstraint("energy_level_in IS NULL OR energy_level_in BETWEEN 0 AND 100", name="energy_percent"),
        CheckConstraint("odometer_out IS NULL OR odometer_out >= 0", name="odometer_not_negative"),
        CheckConstraint("odometer_in IS NULL OR (odometer_out IS NOT NULL AND odometer_in >= odometer_out)",
                        name="odometer_never_goes_back"),
        CheckConstraint("status NOT IN ('checked_out', 'returned', 'followed_up') OR (licence_number IS NOT NULL "
                        "AND licence_expiry IS NOT NULL AND odometer_out IS NOT NULL AND key_handed_over)",
                        name="checked_out_with_licence_key_and_odometer"),
        CheckConstraint("status NOT IN ('returned', 'followed_up') OR odometer_in IS NOT NULL",
                        name="returned_with_odometer"),
        ExcludeConstraint((text("int8range(vehicle_id, vehicle_id, '[]')"), "="), ("during", "&&"),
                          using="gist", where=text(ACTIVE_SQL), name=VEHICLE_BUSY),
        ExcludeConstraint((text("int8range(salesperson_id, salesperson_id, '[]')"), "="), ("during", "&&"),
                          using="gist", where=text(ACTIVE_SQL), name=SALESPERSON_BUSY),
        Index("ix_test_drive_branch_starts_at", "branch_id", "starts_at"),
        Index("ix_test_drive_vehicle_starts_at", "vehicle_id", "starts_at"),
        Index("ix_test_drive_salesperson_starts_at", "salesperson_id", "starts_at"),
        Index("ix_test_drive_follow_up", "salesperson_id", "follow_up_due_on",
              postgresql_where=text("follow_up_due_on IS NOT NULL AND followed_up_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=16, unique=True)  # what the customer quotes on the phone
    branch_id: int = Field(foreign_key="branch.id")
    vehicle_id: int = Field(foreign_key="vehicle.id")
    salesperson_id: int = Field(foreign_key="staff_user.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    lead_id: int | None = Field(default=None, foreign_key="lead.id")
    status: str = Field(default=DriveStatus.BOOKED.value, max_length=16)
    source: str = Field(default=Source.ONLINE.value, max_length=16)
    starts_at: datetime = Field(sa_column=_at(nullable=False))
    ends_at: datetime = Field(sa_column=_at(nullable=False))  # the end of the drive
    blocked_until: datetime = Field(sa_column=_at(nullable=False))  # the end of the buffer after it
    # What the exclusion constraints compare; the database derives it, so it can never disagree.
    during: object | None = Field(default=None, sa_column=Column(
        TSTZRANGE, Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True)))
    created_by_label: str = Field(default="customer", max_length=254)
    created_at: datetime | None = Field(default=None, sa_column=_created())
    updated_at: datetime | None = Field(default=None, sa_column=_created())
    cancelled_at: datetime | None = Field(default=None, sa_column=_at())
    # Check-out: the licence seen, the key handed over, the odometer read.
    checked_out_at: datetime | None = Field(default=None, sa_column=_at())
    licence_number: str | None = Field(default=None, max_length=120)  # sealed (rules.LICENCE_SEAL); see 0008
    licence_last4: str | None = Field(default=None, max_length=4)  # what screens and the API show
    licence_expiry: date | None = Field(default=None, sa_column=Column(Date))
    licence_photo_key: str | None = Field(default=None, max_length=32)
    key_handed_over: bool = Field(default=False)
    odometer_out: int | None = Field(default=None)
    # Return.
    returned_at: datetime | None = Field(default=None, sa_column=_at())
    odometer_in: int | None = Field(default=None)
    energy_level_in: int | None = Field(default=None, sa_column=Column(SmallInteger))  # fuel or charge, percent
    return_notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    interest: int | None = Field(default=None, sa_column=Column(SmallInteger))  # 1-5, the salesperson's view
    no_show_at: datetime | None = Field(default=None, sa_column=_at())
    # Follow-up: due the morning after the drive, done by the salesperson; the customer's own rating.
    follow_up_due_on: date | None = Field(default=None, sa_column=Column(Date))
    followed_up_at: datetime | None = Field(default=None, sa_column=_at())
    follow_up_note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    customer_rating: int | None = Field(default=None, sa_column=Column(SmallInteger))
    customer_comment: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
