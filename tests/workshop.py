"""Test data for the service half: a branch with a workshop (settings, bays, technicians), a catalogue,
bookings and checked-in repair orders. Every call makes fresh rows."""

from __future__ import annotations

import io
import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import select

from backend.domains.repair_orders import photos
from backend.domains.repair_orders.schemas import CheckInIn
from backend.domains.repair_orders.service import RepairOrderService
from backend.domains.service_booking import rules
from backend.domains.service_booking.models import ServiceBay, ServiceOperation, ServiceSettings, ServiceTechnician
from backend.domains.service_booking.schemas import BookingIn
from backend.domains.service_booking.service import BookingService
from backend.lib import i18n
from backend.lib.db import utcnow
from backend.lib.settings import get_settings
from tests.factories import as_principal, make_branch, make_user

_seq = itertools.count(1)


@pytest.fixture
def english():
    """Service-level messages are asserted in English (the configured default language is Chinese)."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(get_settings().default_locale)


@pytest.fixture
def media_in_tmp(tmp_path, monkeypatch):
    """Photos of a test go to its own temporary folder, not to var/media. Import it into a test module."""
    monkeypatch.setattr(photos, "media_dir", lambda: tmp_path / "media")
    return tmp_path / "media"
ALL_WEEK = {d: ["08:00", "20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
# code, hours, price, skill, parts
OPERATIONS = [
    ("OIL", "0.5", "560", "general", [{"part_number": "OIL-4L", "name": "Engine oil 4 L", "quantity": "1",
                                       "unit_cost": "180", "unit_price": "320"}]),
    ("INSPECT", "1.5", "980", "general", []),
    ("EVCHECK", "1.0", "300", "ev", []),
    ("BRAKES", "1.0", "900", "brakes", [{"part_number": "PAD-1", "name": "Brake pads", "quantity": "1",
                                         "unit_cost": "260", "unit_price": "520"}]),
]


async def make_catalogue(session) -> dict[str, ServiceOperation]:
    """The operations above; codes are unique per test (each test's transaction is rolled back)."""
    existing = {op.code: op for op in (await session.execute(select(ServiceOperation))).scalars()}
    for position, (code, hours, price, skill, parts) in enumerate(OPERATIONS):
        if code not in existing:
            existing[code] = ServiceOperation(code=code, name_en=f"{code} op", name_zh=f"{code} 项目",
                                               labour_hours=Decimal(hours), price=Decimal(price), skill=skill,
                                               parts=parts, position=position)
            session.add(existing[code])
    await session.flush()
    return existing


async def make_workshop(session, *, technicians=(("general", "ev", "brakes"), ("general",)), bays: int = 4,
                        checkins_per_slot: int = 4, tech_hours=None, labour_rate="400.00", min_notice=60,
                        code: str | None = None):
    """A branch open every day 08:00-20:00 with technicians of the given skills (08:00-16:00 each)."""
    branch = await make_branch(session, opening_hours=ALL_WEEK, code=code)
    session.add(ServiceSettings(branch_id=branch.id, bays=bays, checkins_per_slot=checkins_per_slot,
                                labour_rate=Decimal(labour_rate), min_notice_minutes=min_notice))
    session.add_all([ServiceBay(branch_id=branch.id, name=str(n)) for n in range(1, bays + 1)])
    hours = tech_hours or {d: ["08:00", "16:00"] for d in ALL_WEEK}
    for n, skills in enumerate(technicians):
        session.add(ServiceTechnician(branch_id=branch.id, name=f"Tech {n}", skills=list(skills),
                                      working_hours=hours))
    await session.flush()
    await make_catalogue(session)
    return branch


async def technician_user(session, redis, branch, skills=("general", "ev", "brakes")):
    """A staff account with the technician role, linked to a technician of ``branch``."""
    user = await make_user(session, redis, role="technician", branch=branch)
    session.add(ServiceTechnician(branch_id=branch.id, name=user.name, skills=list(skills), working_hours=ALL_WEEK,
                                  staff_user_id=user.id))
    await session.flush()
    return as_principal(user)


async def advisor(session, redis, branch):
    return as_principal(await make_user(session, redis, role="service_advisor", branch=branch))


async def free_slot(session, branch, codes=("OIL",), *, days_ahead: int = 2, index: int = 0) -> datetime:
    """A bookable slot ``days_ahead`` local days from now."""
    day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=days_ahead)
    availability = await BookingService(session).availability(branch.code, day, list(codes))
    return availability.slots[index].start


def a_phone() -> str:
    return f"139{next(_seq):08d}"


def a_plate() -> str:
    n = next(_seq)
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    return f"沪{letters[n % 24]}{n % 100000:05d}"


def booking(branch, slot, codes=("OIL",), **changes) -> BookingIn:
    values = {"branch": branch.code, "slot": slot, "operations": list(codes), "plate": a_plate(), "mileage_km": 20000,
              "name": "测试客户 Test Customer", "phone": a_phone(), "email": "customer@example.test",
              "privacy_consent": True, "locale": "en"}
    return BookingIn(**(values | changes))


async def book(session, branch, codes=("OIL",), *, principal=None, days_ahead=2, index=0, redis=None, **changes):
    slot = changes.pop("slot", None) or await free_slot(session, branch, codes, days_ahead=days_ahead, index=index)
    return await BookingService(session, redis).book(booking(branch, slot, codes, **changes), principal=principal)


async def checked_in(session, redis, branch, codes=("OIL",), *, staff=None, **changes):
    """A booked appointment checked in by an advisor: (order, advisor principal, appointment view)."""
    staff = staff or await advisor(session, redis, branch)
    view = await book(session, branch, codes, redis=redis, **changes)
    order = await RepairOrderService(session, redis).check_in(staff, view.appointment.id, CheckInIn(
        mileage_km=view.appointment.mileage_km, promised_at=utcnow() + timedelta(hours=6), energy_level=50))
    return order, staff, view


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()
