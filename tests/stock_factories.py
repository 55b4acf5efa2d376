"""Stock test data: cars with valid, unique VINs, made straight in the database (fast) or via the service."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from backend.domains.stock.models import Vehicle
from backend.domains.stock.rules import with_check_digit

_serial = itertools.count(1)


def new_vin(prefix: str = "LTEST") -> str:
    """A valid VIN, unique within the test run (position 9 is the check digit)."""
    n = next(_serial)
    return with_check_digit(f"{prefix[:5]:A<5}AB0R{n % 100:02d}{n:06d}"[:17])


async def make_vehicle(session, branch, **overrides) -> Vehicle:
    values = dict(vin=new_vin(), make="BYD", model="Han", trim="Premium", model_year=2025, body="sedan",
                  powertrain="bev", battery_kwh=85.4, range_km=715, colour="Black", mileage_km=10,
                  condition="new", list_price=209_800, cost=180_000, status="in_stock",
                  arrival_date=date.today() - timedelta(days=12), branch_id=branch.id, lot_location="A-01",
                  features=["Heated seats"], internal_notes="Keys in safe 3")
    values.update(overrides)
    if values["status"] == "in_transit" and values.get("eta") is None:
        values["eta"] = date.today() + timedelta(days=10)
    if values["powertrain"] in ("petrol", "diesel"):
        values.setdefault("battery_kwh", None)
        values["battery_kwh"] = values["range_km"] = None
    vehicle = Vehicle(**values)
    session.add(vehicle)
    await session.flush()
    return vehicle
