"""Test data for test drives: a branch with salespeople and demo cars, bookings, and a time zone where it is
daytime now (so "the slot running now" always exists, whenever the suite runs). Every call makes fresh rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.domains.accounts.guards import Principal
from backend.domains.test_drives import photos, rules
from backend.domains.test_drives.models import SalespersonHours, TestDriveSettings
from backend.domains.test_drives.schemas import BookingIn, CheckOutIn, ReturnIn
from backend.domains.test_drives.service import TestDriveService
from backend.lib import i18n
from backend.lib.db import utcnow
from backend.lib.settings import get_settings
from tests.factories import as_principal, make_branch, make_user
from tests.stock_factories import make_vehicle

_seq = itertools.count(1)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NINE_TO_SIX = {d: ["09:00", "18:00"] for d in DAYS}
ALL_DAY = {d: ["00:00", "23:59"] for d in DAYS}
ZONES = ("Pacific/Kiritimati", "Pacific/Auckland", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Asia/Dubai",
         "Europe/Berlin", "UTC", "America/Sao_Paulo", "America/New_York", "America/Chicago", "America/Denver",
         "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Pago_Pago")


@pytest.fixture
def english():
    """Service-level messages are asserted in English (the configured default language is Chinese)."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(get_settings().default_locale)


@pytest.fixture
def media_in_tmp(tmp_path, monkeypatch):
    """Licence photos of a test go to its own temporary folder. Import it into a test module."""
    monkeypatch.setattr(photos, "media_dir", lambda: tmp_path / "media")
    monkeypatch.setattr(photos.STORE, "media_dir", lambda: tmp_path / "media")
    return tmp_path / "media"


def daytime_zone(now: datetime | None = None) -> str:
    """A time zone where it is now closest to 1 pm (so a branch there has hours left today)."""
    now = now or datetime.now(UTC)

    def distance(zone: str) -> float:
        local = now.astimezone(ZoneInfo(zone))
        return abs(local.hour + local.minute / 60 - 13)

    return min(ZONES, key=distance)


@dataclass
class Showroom:
    branch: object
    salespeople: list  # StaffUser
    manager: Principal

    @property
    def sales(self) -> Principal:
        return as_principal(self.salespeople[0])


async def make_showroom(session, redis, *, salespeople: int = 1, hours=NINE_TO_SIX, timezone="Asia/Shanghai",
                        salesperson_hours=None, **settings) -> Showroom:
    branch = await make_branch(session, opening_hours=hours, timezone=timezone)
    people = [await make_user(session, redis, role="sales", branch=branch, locale="en") for _ in range(salespeople)]
    for person in people:
        if salesperson_hours is not None:
            session.add(SalespersonHours(staff_user_id=person.id, working_hours=salesperson_hours))
    if settings:
        session.add(TestDriveSettings(branch_id=branch.id, **({"slot_minutes": 30, "drive_minutes": 30,
                                                               "buffer_minutes": 15, "min_notice_minutes": 60,
                                                               "horizon_days": 30} | settings)))
    await session.flush()
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch, locale="en"))
    return Showroom(branch=branch, salespeople=people, manager=manager)


async def daytime_showroom(session, redis, **kwargs) -> Showroom:
    """Open all day in a zone where it is daytime now: walk-ins, check-outs and returns can happen now."""
    return await make_showroom(session, redis, hours=ALL_DAY, timezone=daytime_zone(), **kwargs)


async def demo_car(session, showroom_or_branch, **overrides):
    branch = getattr(showroom_or_branch, "branch", showroom_or_branch)
    n = next(_seq)
    values = {"status": "demo", "make": "BYD", "model": f"Han {n}", "mileage_km": 1200, "condition": "demo"}
    return await make_vehicle(session, branch, **(values | overrides))


def a_phone() -> str:
    return f"137{next(_seq):08d}"


def booking(car, start: datetime, **changes) -> BookingIn:
    values = {"vehicle_id": car.id, "start": start, "name": "试驾客户 Test Driver", "phone": a_phone(),
              "email": "driver@example.test", "consent": True, "locale": "en"}
    return BookingIn(**(values | changes))


async def free_start(session, car, *, days_ahead: int = 2, index: int = 0, principal=None) -> datetime:
    tz = (await TestDriveService(session).plan_for(car)).tz
    day = rules.local_day(utcnow(), tz) + timedelta(days=days_ahead)
    availability = await TestDriveService(session).availability(car.id, day, principal=principal)
    return availability.slots[index].start


async def booked_now(session, redis, showroom: Showroom, car, **changes):
    """A walk-in booked by the salesperson for the slot running now (use a daytime showroom)."""
    service = TestDriveService(session, redis)
    options = await service.walk_in_options(showroom.sales, car.id)
    return await service.book(booking(car, options["slots"][0].start, source="walk_in", **changes),
                              principal=showroom.sales)


def check_out_data(**changes) -> CheckOutIn:
    values = {"licence_number": "310101199001011234", "licence_expiry": utcnow().date() + timedelta(days=700),
              "key_handed_over": True, "odometer_out": 1250}
    return CheckOutIn(**(values | changes))


def return_data(**changes) -> ReturnIn:
    values = {"odometer_in": 1268, "energy_level": 80, "notes": "Liked the seats", "interest": 4}
    return ReturnIn(**(values | changes))
