"""Pure rules about vehicles: VIN check digits, status transitions, price bands, ages. No I/O."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from backend.lib.i18n import gettext as _
from backend.lib.i18n import lazy_gettext


class Powertrain(StrEnum):
    PETROL = "petrol"
    DIESEL = "diesel"
    HEV = "hev"
    PHEV = "phev"
    BEV = "bev"
    FCEV = "fcev"


class Body(StrEnum):
    SEDAN = "sedan"
    HATCHBACK = "hatchback"
    SUV = "suv"
    MPV = "mpv"
    WAGON = "wagon"
    COUPE = "coupe"
    CONVERTIBLE = "convertible"
    PICKUP = "pickup"
    VAN = "van"


class Condition(StrEnum):
    NEW = "new"
    USED = "used"
    DEMO = "demo"  # an ex-demonstrator for sale (not the same as the status "demo")


class VehicleStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    IN_STOCK = "in_stock"
    RESERVED = "reserved"
    SOLD = "sold"
    DEMO = "demo"  # used as the branch's demonstrator: not for sale now


class Sort(StrEnum):
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    NEWEST = "newest"
    MILEAGE = "mileage"


POWERTRAIN_LABELS = {
    Powertrain.PETROL: lazy_gettext("Petrol"),
    Powertrain.DIESEL: lazy_gettext("Diesel"),
    Powertrain.HEV: lazy_gettext("Hybrid (HEV)"),
    Powertrain.PHEV: lazy_gettext("Plug-in hybrid (PHEV)"),
    Powertrain.BEV: lazy_gettext("Electric (BEV)"),
    Powertrain.FCEV: lazy_gettext("Fuel cell (FCEV)"),
}
BODY_LABELS = {
    Body.SEDAN: lazy_gettext("Sedan"),
    Body.HATCHBACK: lazy_gettext("Hatchback"),
    Body.SUV: lazy_gettext("SUV"),
    Body.MPV: lazy_gettext("MPV"),
    Body.WAGON: lazy_gettext("Estate"),
    Body.COUPE: lazy_gettext("Coupé"),
    Body.CONVERTIBLE: lazy_gettext("Convertible"),
    Body.PICKUP: lazy_gettext("Pickup"),
    Body.VAN: lazy_gettext("Van"),
}
CONDITION_LABELS = {
    Condition.NEW: lazy_gettext("New"),
    Condition.USED: lazy_gettext("Used"),
    Condition.DEMO: lazy_gettext("Ex-demonstrator"),
}
STATUS_LABELS = {
    VehicleStatus.IN_TRANSIT: lazy_gettext("In transit"),
    VehicleStatus.IN_STOCK: lazy_gettext("In stock"),
    VehicleStatus.RESERVED: lazy_gettext("Reserved"),
    VehicleStatus.SOLD: lazy_gettext("Sold"),
    VehicleStatus.DEMO: lazy_gettext("Demonstrator"),
}
SORT_LABELS = {
    Sort.PRICE_ASC: lazy_gettext("Price: low to high"),
    Sort.PRICE_DESC: lazy_gettext("Price: high to low"),
    Sort.NEWEST: lazy_gettext("Newest first"),
    Sort.MILEAGE: lazy_gettext("Lowest mileage"),
}

ELECTRIFIED = frozenset({Powertrain.HEV, Powertrain.PHEV, Powertrain.BEV, Powertrain.FCEV})
# Customers see these; everything else (reserved, sold, demonstrators) only staff see.
PUBLIC_STATUSES = (VehicleStatus.IN_STOCK, VehicleStatus.IN_TRANSIT)
RESERVABLE = frozenset({VehicleStatus.IN_STOCK, VehicleStatus.IN_TRANSIT})
# An import may set these, and may move a car among them; reserved and sold cars keep their status.
IMPORTABLE_STATUSES = (VehicleStatus.IN_STOCK, VehicleStatus.IN_TRANSIT, VehicleStatus.DEMO)

TRANSITIONS: dict[VehicleStatus, frozenset[VehicleStatus]] = {
    VehicleStatus.IN_TRANSIT: frozenset({VehicleStatus.IN_STOCK, VehicleStatus.RESERVED, VehicleStatus.DEMO}),
    VehicleStatus.IN_STOCK: frozenset({VehicleStatus.IN_TRANSIT, VehicleStatus.RESERVED, VehicleStatus.SOLD,
                                       VehicleStatus.DEMO}),
    # Leaving "reserved" for in_stock / in_transit is a release (back to where it was before).
    VehicleStatus.RESERVED: frozenset({VehicleStatus.IN_STOCK, VehicleStatus.IN_TRANSIT, VehicleStatus.SOLD}),
    VehicleStatus.DEMO: frozenset({VehicleStatus.IN_STOCK, VehicleStatus.IN_TRANSIT, VehicleStatus.SOLD}),
    VehicleStatus.SOLD: frozenset(),
}

MIN_MODEL_YEAR = 1980
MAX_MODEL_YEAR = 2100
MAX_PRICE = 100_000_000  # yuan; anything above is a typing mistake
MAX_MILEAGE_KM = 2_000_000

# -- VIN (ISO 3779; GB 16735 makes the check digit in position 9 mandatory in China) -------------

VIN_LENGTH = 17
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
VIN_VALUES = {
    **{str(d): d for d in range(10)},
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}
VIN_FORBIDDEN = frozenset("IOQ")  # look like 1 and 0


class VinProblem(StrEnum):
    LENGTH = "length"
    CHARACTER = "character"
    CHECK_DIGIT = "check_digit"


def normalize_vin(value: str) -> str:
    """What people type or scan: lower case, spaces and dashes between groups."""
    return "".join(ch for ch in value.upper() if ch not in " -\t")


def vin_check_digit(vin: str) -> str:
    """The check digit (``0``–``9`` or ``X``) for a 17-character VIN of valid characters."""
    total = sum(VIN_VALUES[ch] * weight for ch, weight in zip(vin, VIN_WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def vin_problem(vin: str) -> tuple[VinProblem, str] | None:
    """Why ``vin`` (already normalized) is not a valid VIN, with a message; None when it is."""
    if len(vin) != VIN_LENGTH:
        return VinProblem.LENGTH, _("A VIN has 17 characters; this one has %(n)s.", n=len(vin))
    for position, ch in enumerate(vin, start=1):
        if ch in VIN_FORBIDDEN:
            return VinProblem.CHARACTER, _("A VIN never contains I, O or Q (position %(pos)s is “%(ch)s”).",
                                           pos=position, ch=ch)
        if ch not in VIN_VALUES:
            return VinProblem.CHARACTER, _("Character %(pos)s (“%(ch)s”) cannot appear in a VIN.",
                                           pos=position, ch=ch)
    expected = vin_check_digit(vin)
    if vin[8] != expected:
        return VinProblem.CHECK_DIGIT, _("The check digit (9th character) should be %(expected)s, not %(got)s: "
                                         "a character was probably mistyped.", expected=expected, got=vin[8])
    return None


def with_check_digit(vin: str) -> str:
    """``vin`` with position 9 set to its correct check digit (for making test and demo VINs)."""
    return vin[:8] + vin_check_digit(vin[:8] + "0" + vin[9:]) + vin[9:]


def vin_lookup_kind(text: str) -> str | None:
    """What the VIN box was given: ``"full"`` (17 characters), ``"last6"`` (6), or None (nothing usable)."""
    text = normalize_vin(text)
    if len(text) == VIN_LENGTH:
        return "full"
    if len(text) == 6 and all(ch in VIN_VALUES for ch in text):
        return "last6"
    return None


# -- status ---------------------------------------------------------------------------------------


def can_transition(current: str, target: str) -> bool:
    try:
        return VehicleStatus(target) in TRANSITIONS[VehicleStatus(current)]
    except ValueError:
        return False


def transition_problem(current: str, target: str, *, eta: date | None = None) -> str | None:
    """Why a car cannot move from ``current`` to ``target`` (a message), or None when it can."""
    if current == target:
        return _("The car is already “%(status)s”.", status=status_label(current))
    if current == VehicleStatus.SOLD:
        return _("This car has been sold; its status can no longer change.")
    if not can_transition(current, target):
        return _("A car that is “%(current)s” cannot become “%(target)s”.",
                 current=status_label(current), target=status_label(target))
    if target == VehicleStatus.IN_TRANSIT and eta is None:
        return _("Give the expected arrival date (ETA) of a car in transit.")
    return None


def reserve_problem(current: str) -> str | None:
    if current == VehicleStatus.RESERVED:
        return _("This car is already reserved.")
    if current == VehicleStatus.SOLD:
        return _("This car has been sold and cannot be reserved.")
    if current not in RESERVABLE:
        return _("A car that is “%(status)s” cannot be reserved.", status=status_label(current))
    return None


def release_target(previous_status: str | None) -> VehicleStatus:
    """Where a released car goes back to: where it was when it was reserved."""
    if previous_status == VehicleStatus.IN_TRANSIT:
        return VehicleStatus.IN_TRANSIT
    return VehicleStatus.IN_STOCK


def import_status(current: str | None, incoming: str) -> str:
    """The status an imported row leaves a car in: reserved and sold cars keep theirs (mirrored in SQL)."""
    if current in (VehicleStatus.RESERVED, VehicleStatus.SOLD):
        return current
    return incoming


def status_label(status: str) -> str:
    try:
        return str(STATUS_LABELS[VehicleStatus(status)])
    except ValueError:
        return status


# -- vehicle fields ----------------------------------------------------------------------------------


def electrics_problem(powertrain: str, battery_kwh, range_km) -> str | None:
    """Battery size and electric range belong to electrified cars only."""
    if powertrain not in ELECTRIFIED and (battery_kwh is not None or range_km is not None):
        return _("Only electrified cars (HEV, PHEV, BEV, FCEV) have a battery size and electric range.")
    return None


def days_in_stock(arrival: date | None, today: date) -> int | None:
    if arrival is None or arrival > today:
        return None
    return (today - arrival).days


# -- prices ------------------------------------------------------------------------------------------

# Facet counts are kept per 50,000-yuan step of the list price (step 20 holds 1,000,000 and above).
# Price filters whose bounds fall on steps (min a multiple of 50,000; max one yuan below one) are
# answered from those counts; other bounds are counted from the vehicles themselves (slower, same result).
PRICE_STEP = 50_000
TOP_PRICE_STEP = 20
# The bands customers pick from.
PRICE_EDGES = (100_000, 200_000, 300_000, 500_000, 1_000_000)


def price_step(price: int) -> int:
    return min(price // PRICE_STEP, TOP_PRICE_STEP)


def min_price_step(min_price: int | None) -> int | None:
    """The first step wholly at or above ``min_price``, if the bound falls on a step edge."""
    if min_price is None:
        return 0
    if min_price % PRICE_STEP == 0 and min_price // PRICE_STEP <= TOP_PRICE_STEP:
        return min_price // PRICE_STEP
    return None


def max_price_step(max_price: int | None) -> int | None:
    """The last step wholly at or below ``max_price``, if ``max_price + 1`` falls on a step edge."""
    if max_price is None:
        return TOP_PRICE_STEP
    if (max_price + 1) % PRICE_STEP == 0 and (max_price + 1) // PRICE_STEP <= TOP_PRICE_STEP:
        return (max_price + 1) // PRICE_STEP - 1
    return None


def price_bands() -> list[tuple[int | None, int | None]]:
    """[(None, 99999), (100000, 199999), ..., (1000000, None)]: what the price facet shows."""
    bands: list[tuple[int | None, int | None]] = []
    low = None
    for edge in PRICE_EDGES:
        bands.append((low, edge - 1))
        low = edge
    bands.append((low, None))
    return bands


def band_count(step_counts: dict[int, int], low: int | None, high: int | None) -> int:
    lo = 0 if low is None else price_step(low)
    hi = TOP_PRICE_STEP if high is None else price_step(high)
    return sum(n for step, n in step_counts.items() if lo <= step <= hi)
