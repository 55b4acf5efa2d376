"""Vehicles, their reservations and photos, imports, and the facet counts kept for fast stock search."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlmodel import Field, SQLModel

from .rules import PRICE_STEP, TOP_PRICE_STEP, Body, Condition, Powertrain, VehicleStatus


def _one_of(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in values) + ")"


PUBLIC_WHERE = text("status IN ('in_stock', 'in_transit')")
DIMENSIONS = ("status", "make", "model", "body", "powertrain", "model_year", "branch_id", "condition", "price_step")
# Every column the customer's search filters or sorts on.
SEARCHED = ("make", "model", "body", "powertrain", "branch_id", "model_year", "list_price", "mileage_km")


class Vehicle(SQLModel, table=True):
    __tablename__ = "vehicle"
    __table_args__ = (
        CheckConstraint(_one_of("status", VehicleStatus), name="status_known"),
        CheckConstraint(_one_of("body", Body), name="body_known"),
        CheckConstraint(_one_of("powertrain", Powertrain), name="powertrain_known"),
        CheckConstraint(_one_of("condition", Condition), name="condition_known"),
        CheckConstraint("vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name="vin_shape"),
        CheckConstraint("status <> 'in_transit' OR eta IS NOT NULL", name="in_transit_has_eta"),
        CheckConstraint("powertrain IN ('hev', 'phev', 'bev', 'fcev') OR (battery_kwh IS NULL AND range_km IS NULL)",
                        name="electrics_only_when_electrified"),
        CheckConstraint("list_price > 0", name="price_positive"),
        CheckConstraint("mileage_km >= 0", name="mileage_not_negative"),
        CheckConstraint("model_year BETWEEN 1980 AND 2100", name="model_year_sane"),
        # The customer search: one partial index per sort order over the cars customers may see, by
        # condition (the search walks each condition on its own), carrying every column it filters on so
        # that a walk reads no car's row (migration 0005).
        Index("ix_vehicle_public_price", "condition", "list_price", "id", postgresql_where=PUBLIC_WHERE,
              postgresql_include=[c for c in SEARCHED if c != "list_price"]),
        Index("ix_vehicle_public_newest", "condition", text("model_year DESC"), text("id DESC"),
              postgresql_where=PUBLIC_WHERE, postgresql_include=[c for c in SEARCHED if c != "model_year"]),
        Index("ix_vehicle_public_mileage", "condition", "mileage_km", "id", postgresql_where=PUBLIC_WHERE,
              postgresql_include=[c for c in SEARCHED if c != "mileage_km"]),
        Index("ix_vehicle_make_model", "make", "model"),
        Index("ix_vehicle_body_powertrain", "body", "powertrain"),
        Index("ix_vehicle_branch_status", "branch_id", "status"),
        Index("ix_vehicle_search_tsv", "search_tsv", postgresql_using="gin"),
    )

    id: int | None = Field(default=None, primary_key=True)
    vin: str = Field(max_length=17, unique=True)
    # What a salesperson reads off the windscreen: the VIN box also accepts these.
    vin_last6: str | None = Field(default=None, sa_column=Column(
        String(6), Computed("right(vin, 6)", persisted=True), index=True))
    make: str = Field(max_length=40)
    model: str = Field(max_length=60)
    trim: str = Field(default="", max_length=80)
    model_year: int = Field(sa_column=Column(SmallInteger, nullable=False))
    body: str = Field(max_length=16)
    powertrain: str = Field(max_length=8)
    battery_kwh: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 1)))
    range_km: int | None = Field(default=None)
    colour: str = Field(default="", max_length=40)
    mileage_km: int = Field(default=0)
    condition: str = Field(max_length=8)
    # Whole yuan, as dealers quote them; cost keeps cents and is never shown to customers.
    list_price: int = Field(sa_column=Column(Integer, nullable=False))
    cost: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))
    status: str = Field(max_length=12)
    eta: date | None = Field(default=None, sa_column=Column(Date))
    arrival_date: date | None = Field(default=None, sa_column=Column(Date))
    branch_id: int = Field(foreign_key="branch.id")
    lot_location: str = Field(default="", max_length=40)
    features: list[str] = Field(default_factory=list,
                                sa_column=Column(ARRAY(Text), nullable=False, server_default="{}"))
    internal_notes: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    price_step: int | None = Field(default=None, sa_column=Column(
        SmallInteger, Computed(f"LEAST(list_price / {PRICE_STEP}, {TOP_PRICE_STEP})::smallint", persisted=True)))
    search_tsv: str | None = Field(default=None, sa_column=Column(
        TSVECTOR, Computed("to_tsvector('simple'::regconfig, make || ' ' || model || ' ' || trim)", persisted=True)))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class VehicleReservation(SQLModel, table=True):
    """A hold on a car for a customer. At most one is open per car (a partial unique index)."""

    __tablename__ = "vehicle_reservation"
    __table_args__ = (
        Index("uq_vehicle_reservation_open", "vehicle_id", unique=True, postgresql_where=text("released_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id", index=True)
    branch_id: int = Field(foreign_key="branch.id")
    previous_status: str = Field(max_length=12)
    reason: str = Field(max_length=300)
    reserved_by_id: int | None = Field(default=None)
    reserved_by_kind: str = Field(max_length=16)
    reserved_by_label: str = Field(max_length=254)
    reserved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    released_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    released_by_label: str | None = Field(default=None, max_length=254)
    release_reason: str | None = Field(default=None, max_length=300)


class VehiclePhoto(SQLModel, table=True):
    """A photo re-encoded by us; ``file_key`` (random) names the files, never the uploaded name."""

    __tablename__ = "vehicle_photo"

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: int = Field(foreign_key="vehicle.id", index=True)
    file_key: str = Field(max_length=32, unique=True)
    position: int = Field(default=0)
    width: int
    height: int
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))


class VehicleImport(SQLModel, table=True):
    """An uploaded stock file and how its import went. The file itself is kept for the job to (re)read."""

    __tablename__ = "vehicle_import"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    filename: str = Field(max_length=200)
    file_format: str = Field(max_length=8)  # csv | xlsx
    file_sha256: str = Field(max_length=64, index=True)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    branch_id: int | None = Field(default=None, foreign_key="branch.id")  # the importer's scope
    created_by_id: int | None = Field(default=None)
    created_by_kind: str = Field(max_length=16)
    created_by_label: str = Field(max_length=254)
    locale: str | None = Field(default=None, max_length=8)  # rejected rows are explained in this language
    state: str = Field(default="queued", max_length=8)
    total_rows: int = Field(default=0)
    processed_rows: int = Field(default=0)
    inserted: int = Field(default=0)
    updated: int = Field(default=0)
    unchanged: int = Field(default=0)
    rejected: int = Field(default=0)
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()))
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class VehicleImportRejection(SQLModel, table=True):
    __tablename__ = "vehicle_import_rejection"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    import_id: int = Field(foreign_key="vehicle_import.id", index=True)
    row_number: int
    vin: str = Field(default="", max_length=40)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    raw: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))


class VehicleFacetCount(SQLModel, table=True):
    """How many unsold cars share each combination of the search's facet values.

    Kept exact, in the same transaction, by statement-level triggers on ``vehicle`` (see migration 0002),
    so that facet counts read a few thousand rows here instead of every car.
    """

    __tablename__ = "vehicle_facet_count"

    status: str = Field(primary_key=True, max_length=12)
    make: str = Field(primary_key=True, max_length=40)
    model: str = Field(primary_key=True, max_length=60)
    body: str = Field(primary_key=True, max_length=16)
    powertrain: str = Field(primary_key=True, max_length=8)
    model_year: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    branch_id: int = Field(primary_key=True)
    condition: str = Field(primary_key=True, max_length=8)
    price_step: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    n: int = Field(default=0)


class VehiclePublicFacetCount(SQLModel, table=True):
    """The same counts for the cars customers may see (in stock or in transit), without the status.

    What the customer's search counts from: a third of the rows of ``vehicle_facet_count`` and nothing to
    filter out. Kept exact by its own statement-level triggers on ``vehicle`` (migration 0005).
    """

    __tablename__ = "vehicle_public_facet_count"

    make: str = Field(primary_key=True, max_length=40)
    model: str = Field(primary_key=True, max_length=60)
    body: str = Field(primary_key=True, max_length=16)
    powertrain: str = Field(primary_key=True, max_length=8)
    model_year: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    branch_id: int = Field(primary_key=True)
    condition: str = Field(primary_key=True, max_length=8)
    price_step: int = Field(sa_column=Column(SmallInteger, primary_key=True))
    n: int = Field(default=0)
