"""Shapes of what comes in and goes out for stock: search filters, vehicle payloads, answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from backend.lib.i18n import gettext as _

from . import rules
from .rules import Body, Condition, Powertrain, Sort, VehicleStatus

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_PAGE = 500  # deep pages cost more and nobody reads them; narrow the search instead
MAX_QUERY_LENGTH = 100

Text40 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)]
Text80 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=80)]


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """A stock search as plain values. ``branch`` is a branch code; ``vin``/``status`` are for staff."""

    make: str | None = None
    model: str | None = None
    body: str | None = None
    powertrain: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    year_from: int | None = None
    year_to: int | None = None
    branch: str | None = None
    condition: str | None = None
    q: str | None = None
    sort: str = Sort.PRICE_ASC.value
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    status: str | None = None
    vin: str | None = None

    def query_string(self, **changes: Any) -> str:
        """The URL query for these filters (defaults left out), e.g. for links to other pages."""
        values = replace(self, **changes) if changes else self
        defaults = SearchFilters()
        pairs = [(name, getattr(values, name)) for name in PUBLIC_PARAMS + STAFF_PARAMS
                 if getattr(values, name) not in (None, "") and getattr(values, name) != getattr(defaults, name)]
        return urlencode(pairs)

    @property
    def active(self) -> bool:
        return any(getattr(self, name) not in (None, "") for name in
                   ("make", "model", "body", "powertrain", "min_price", "max_price", "year_from", "year_to",
                    "branch", "condition", "q", "status", "vin"))


PUBLIC_PARAMS = ("make", "model", "body", "powertrain", "min_price", "max_price", "year_from", "year_to", "branch",
                 "condition", "q", "sort", "page", "page_size")
STAFF_PARAMS = ("status", "vin")
CHOICES = {
    "body": {b.value for b in Body},
    "powertrain": {p.value for p in Powertrain},
    "condition": {c.value for c in Condition},
    "sort": {s.value for s in Sort},
    "status": {s.value for s in VehicleStatus},
}
INTEGER_BOUNDS = {
    "min_price": (0, rules.MAX_PRICE),
    "max_price": (0, rules.MAX_PRICE),
    "year_from": (rules.MIN_MODEL_YEAR, rules.MAX_MODEL_YEAR),
    "year_to": (rules.MIN_MODEL_YEAR, rules.MAX_MODEL_YEAR),
    "page": (1, MAX_PAGE),
    "page_size": (1, MAX_PAGE_SIZE),
}


def parse_filters(params: Mapping[str, Any], *, staff: bool = False,
                  allow_unknown_names: bool = False) -> tuple[SearchFilters, dict[str, str]]:
    """Read query parameters into :class:`SearchFilters`.

    Returns the filters made of the values that could be read, and ``{parameter: problem}`` for the
    rest: the screen ignores those with a notice, the API answers 400 naming them.
    """
    allowed = PUBLIC_PARAMS + (STAFF_PARAMS if staff else ())
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in params:
        if name not in allowed and not allow_unknown_names:
            problems[name] = _("Unknown parameter.")
    for name in allowed:
        raw = params.get(name)
        if isinstance(raw, list | tuple):
            raw = raw[-1] if raw else None
        if raw is None:
            continue
        raw = str(raw).strip()
        if raw == "":
            continue
        if name in CHOICES:
            if raw.lower() not in CHOICES[name]:
                problems[name] = _("Unknown value “%(value)s”.", value=raw[:40])
                continue
            values[name] = raw.lower()
        elif name in INTEGER_BOUNDS:
            low, high = INTEGER_BOUNDS[name]
            try:
                number = int(raw)
            except ValueError:
                problems[name] = _("Enter a whole number.")
                continue
            if not low <= number <= high:
                if name == "page_size":
                    problems[name] = _("At most %(n)s results per page.", n=MAX_PAGE_SIZE)
                else:
                    problems[name] = _("Enter a number from %(low)s to %(high)s.", low=low, high=high)
                continue
            values[name] = number
        elif name == "q":
            if len(raw) > MAX_QUERY_LENGTH:
                problems[name] = _("Use at most %(n)s characters.", n=MAX_QUERY_LENGTH)
                continue
            values[name] = raw
        elif name == "vin":
            if rules.vin_lookup_kind(raw) is None:
                problems[name] = _("Enter the full VIN (17 characters) or its last 6 characters.")
                continue
            values[name] = rules.normalize_vin(raw)
        elif name == "branch":
            if len(raw) > 16:
                problems[name] = _("Unknown value “%(value)s”.", value=raw[:40])
                continue
            values[name] = raw.upper()
        else:  # make, model
            if len(raw) > 60:
                problems[name] = _("Use at most %(n)s characters.", n=60)
                continue
            values[name] = raw
    for low, high in (("min_price", "max_price"), ("year_from", "year_to")):
        if low in values and high in values and values[low] > values[high]:
            problems[high] = _("Must not be below “%(other)s”.", other=low)
            del values[high]
    return SearchFilters(**values), problems


# -- answers -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FacetValue:
    value: str
    label: str
    count: int


@dataclass(slots=True)
class SearchResult:
    filters: SearchFilters
    items: list[dict]
    total: int
    facets: dict[str, list[FacetValue]]
    price_steps: dict[int, int] = field(default_factory=dict)
    from_counts: bool = True  # facet counts came from the kept counts (fast path)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filters.page_size))


class FacetValueOut(BaseModel):
    value: str
    label: str
    count: int


class VehicleSummary(BaseModel):
    """A car in a list, as anyone may see it."""

    id: int
    vin: str
    make: str
    model: str
    trim: str
    model_year: int
    body: str
    powertrain: str
    battery_kwh: float | None
    range_km: int | None
    colour: str
    mileage_km: int
    condition: str
    list_price: int
    status: str
    eta: date | None
    branch_code: str
    photo_url: str | None


class VehicleStaffSummary(VehicleSummary):
    cost: Decimal | None
    arrival_date: date | None
    days_in_stock: int | None
    lot_location: str
    reserved_by: str | None
    reservation_reason: str | None
    reserved_at: datetime | None


class SearchResponse(BaseModel):
    items: list[VehicleStaffSummary] | list[VehicleSummary]
    total: int
    page: int
    page_size: int
    pages: int
    facets: dict[str, list[FacetValueOut]]


class PhotoOut(BaseModel):
    url: str
    thumbnail_url: str
    width: int
    height: int


class VehiclePublic(BaseModel):
    id: int
    vin: str
    make: str
    model: str
    trim: str
    model_year: int
    body: str
    powertrain: str
    battery_kwh: Decimal | None
    range_km: int | None
    colour: str
    mileage_km: int
    condition: str
    list_price: int
    status: str
    eta: date | None
    branch_id: int
    branch_code: str
    features: list[str]
    photos: list[PhotoOut]


class ReservationOut(BaseModel):
    reason: str
    reserved_by: str
    reserved_at: datetime | None


class VehicleStaff(VehiclePublic):
    cost: Decimal | None
    arrival_date: date | None
    days_in_stock: int | None
    lot_location: str
    internal_notes: str
    reservation: ReservationOut | None
    created_at: datetime | None
    updated_at: datetime | None


# -- what comes in --------------------------------------------------------------------------------


class VehicleFields(BaseModel):
    """Fields a person or an integration may set on a car (status changes go through their own door)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    make: str = Field(min_length=1, max_length=40)
    model: str = Field(min_length=1, max_length=60)
    trim: str = Field(default="", max_length=80)
    model_year: int = Field(ge=rules.MIN_MODEL_YEAR, le=rules.MAX_MODEL_YEAR)
    body: Body
    powertrain: Powertrain
    battery_kwh: Decimal | None = Field(default=None, gt=0, le=500, max_digits=5, decimal_places=1)
    range_km: int | None = Field(default=None, gt=0, le=3000)
    colour: str = Field(default="", max_length=40)
    mileage_km: int = Field(default=0, ge=0, le=rules.MAX_MILEAGE_KM)
    condition: Condition
    list_price: int = Field(gt=0, le=rules.MAX_PRICE)
    cost: Decimal | None = Field(default=None, ge=0, le=rules.MAX_PRICE, max_digits=12, decimal_places=2)
    arrival_date: date | None = None
    branch_id: int = Field(ge=1)
    lot_location: str = Field(default="", max_length=40)
    features: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=40)
    internal_notes: str = Field(default="", max_length=2000)


class VehicleCreate(VehicleFields):
    vin: str = Field(min_length=1, max_length=40)
    status: VehicleStatus = VehicleStatus.IN_STOCK
    eta: date | None = None

    @field_validator("vin")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return rules.normalize_vin(value)


class VehicleUpdate(BaseModel):
    """Any subset of :class:`VehicleFields`."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    make: str | None = Field(default=None, min_length=1, max_length=40)
    model: str | None = Field(default=None, min_length=1, max_length=60)
    trim: str | None = Field(default=None, max_length=80)
    model_year: int | None = Field(default=None, ge=rules.MIN_MODEL_YEAR, le=rules.MAX_MODEL_YEAR)
    body: Body | None = None
    powertrain: Powertrain | None = None
    battery_kwh: Decimal | None = Field(default=None, gt=0, le=500, max_digits=5, decimal_places=1)
    range_km: int | None = Field(default=None, gt=0, le=3000)
    colour: str | None = Field(default=None, max_length=40)
    mileage_km: int | None = Field(default=None, ge=0, le=rules.MAX_MILEAGE_KM)
    condition: Condition | None = None
    list_price: int | None = Field(default=None, gt=0, le=rules.MAX_PRICE)
    cost: Decimal | None = Field(default=None, ge=0, le=rules.MAX_PRICE, max_digits=12, decimal_places=2)
    arrival_date: date | None = None
    lot_location: str | None = Field(default=None, max_length=40)
    features: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]] | None = (
        Field(default=None, max_length=40))
    internal_notes: str | None = Field(default=None, max_length=2000)
    eta: date | None = None


class StatusChange(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    status: VehicleStatus
    reason: str = Field(default="", max_length=300)
    eta: date | None = None


class ReasonForm(BaseModel):
    """Reserve or release a car: a reason is required (it is what colleagues read)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=300)


class ImportOut(BaseModel):
    id: int
    filename: str
    state: str
    total_rows: int
    processed_rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None
