"""Demo data for the service half: catalogue, the two demo branches' workshops and capacity for the next
14 days, and a few customers whose cars are at various points of their repair.

Everything goes through the real use cases (booking, check-in, clocks, findings, status changes), so
the demo data obeys the same rules and counters as real data.
"""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.accounts.service import principal_for
from backend.domains.branches import repository as branch_repository
from backend.domains.service_booking import rules as booking_rules
from backend.domains.service_booking.models import ServiceBay, ServiceOperation, ServiceSettings, ServiceTechnician
from backend.domains.service_booking.schemas import BookingIn
from backend.domains.service_booking.service import BookingService
from backend.lib.db import utcnow

from .rules import Status
from .schemas import FindingIn, WalkInIn
from .service import RepairOrderService

WEEKDAYS_8_TO_5 = {day: ["08:30", "17:30"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}
EVERY_DAY = {day: ["09:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def _part(number: str, name: str, quantity: str, cost: str, price: str) -> dict:
    return {"part_number": number, "name": name, "quantity": quantity, "unit_cost": cost, "unit_price": price}


CATALOGUE = [
    ("OIL_SERVICE", "Oil and filter service", "机油及机油滤清器保养", "0.5", "560", "general",
     [_part("OIL-5W30-4L", "Engine oil 5W-30, 4 L", "1", "180", "320"),
      _part("FLT-OIL-01", "Oil filter", "1", "25", "60")]),
    ("INSPECT_20K", "20,000 km inspection", "2万公里保养检查", "1.5", "980", "general",
     [_part("FLT-AIR-01", "Air filter", "1", "45", "120"), _part("FLT-CAB-01", "Cabin filter", "1", "40", "110")]),
    ("BRAKE_PADS_FRONT", "Front brake pads", "更换前刹车片", "1.0", "900", "brakes",
     [_part("BRK-PAD-F1", "Front brake pad set", "1", "260", "520")]),
    ("TYRE_CHANGE", "Tyre change (set of four)", "更换轮胎（四条）", "1.0", "200", "tyres", []),
    ("WHEEL_ALIGNMENT", "Wheel alignment", "四轮定位", "0.75", "280", "tyres", []),
    ("EV_BATTERY_CHECK", "High-voltage battery check (EV)", "新能源高压电池检测", "1.0", "300", "ev", []),
    ("AIRCON_SERVICE", "Air-conditioning service", "空调系统保养", "1.0", "450", "general",
     [_part("AC-R1234YF", "Refrigerant R1234yf", "1", "90", "150")]),
    ("DIAGNOSIS", "Diagnosis (warning light, noise)", "故障诊断（故障灯、异响）", "1.0", "300", "diagnosis", []),
]

WORKSHOPS = {
    "SH01": {"bays": 6, "rate": "380.00", "technicians": [
        ("赵强 Zhao Qiang", ["general", "ev", "brakes", "diagnosis"], WEEKDAYS_8_TO_5, "tech@forecourt.test"),
        ("孙磊 Sun Lei", ["general", "tyres", "brakes"], WEEKDAYS_8_TO_5, None),
        ("吴婷 Wu Ting", ["general", "ev", "diagnosis"], EVERY_DAY, None),
    ]},
    "HZ01": {"bays": 4, "rate": "360.00", "technicians": [
        ("钱峰 Qian Feng", ["general", "tyres", "brakes"], EVERY_DAY, None),
        ("郑敏 Zheng Min", ["general", "ev", "diagnosis"], WEEKDAYS_8_TO_5, None),
    ]},
}


def _demo_photo(text: str) -> bytes:
    image = Image.new("RGB", (640, 400), (96, 104, 112))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 600, 360), outline=(230, 120, 40), width=8)
    draw.text((70, 180), text, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def _staff(session: AsyncSession, email: str):
    user = (await session.execute(select(StaffUser).where(StaffUser.email == email))).scalar_one_or_none()
    return principal_for(user) if user else None


async def seed_service(session: AsyncSession) -> None:
    """Catalogue, SH01/HZ01 workshops with capacity for 14 days, and demo repair orders."""
    for position, (code, name_en, name_zh, hours, price, skill, parts) in enumerate(CATALOGUE):
        session.add(ServiceOperation(code=code, name_en=name_en, name_zh=name_zh, labour_hours=Decimal(hours),
                                     price=Decimal(price), skill=skill, parts=parts, position=position))
    booking = BookingService(session)
    today = utcnow()
    for code, workshop in WORKSHOPS.items():
        branch = await branch_repository.branch_by_code(session, code)
        if branch is None:
            continue
        session.add(ServiceSettings(branch_id=branch.id, bays=workshop["bays"],
                                    labour_rate=Decimal(workshop["rate"])))
        session.add_all([ServiceBay(branch_id=branch.id, name=f"{n}") for n in range(1, workshop["bays"] + 1)])
        for name, skills, hours, email in workshop["technicians"]:
            account = await _staff(session, email) if email else None
            session.add(ServiceTechnician(branch_id=branch.id, name=name, skills=skills, working_hours=hours,
                                          staff_user_id=account.id if account else None))
        await session.flush()
        first = booking_rules.local_day(today, branch.timezone)
        await booking.plan_capacity(branch, [first + timedelta(days=n) for n in range(14)])
    await _demo_orders(session)


async def _demo_orders(session: AsyncSession) -> None:
    advisor, tech = await _staff(session, "advisor@forecourt.test"), await _staff(session, "tech@forecourt.test")
    if advisor is None or tech is None:
        return
    orders = RepairOrderService(session)
    now = utcnow()
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    # Promised for this afternoon, or for tomorrow's lunchtime when it is already late.
    promised = (local.replace(hour=17, minute=30, second=0, microsecond=0) if local.hour < 15
                else (local + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0))

    async def walk_in(name, phone, plate, mileage, operations, concerns=""):
        return await orders.walk_in(advisor, WalkInIn(
            branch="SH01", operations=operations, plate=plate, mileage_km=mileage, name=name, phone=phone,
            privacy_consent=True, locale="zh_CN", concerns=concerns, promised_at=promised, energy_level=60))

    async def first_line(order):
        from . import repository

        return (await repository.labour_of(session, [order.id]))[0]

    # Ready for pickup: the air-conditioning service is done and passed its quality check.
    done = await walk_in("陈静 Chen Jing", "13900139003", "沪B67890", 8800, ["AIRCON_SERVICE"])
    await orders.start_clock(tech, (await first_line(done)).id)
    await orders.finish_line(tech, (await first_line(done)).id)  # -> quality check
    await orders.move(advisor, done.id, Status.READY_FOR_PICKUP)

    # Waiting for the customer: a worn brake disc found during the inspection.
    waiting = await walk_in("刘洋 Liu Yang", "13800138002", "沪AD12345", 41230, ["INSPECT_20K"],
                            concerns="刹车时有异响 Noise when braking")
    await orders.start_clock(tech, (await first_line(waiting)).id)
    await orders.stop_clock(tech)
    await orders.report_finding(tech, waiting.id, FindingIn(
        description="更换前刹车盘 Replace front brake discs", note="刹车盘磨损超限 Discs worn below the limit",
        labour_hours=Decimal("1.2"), parts_price=Decimal("860")), _demo_photo("brake disc"))

    # Work in progress: an oil service, the technician's clock running.
    busy = await walk_in("张伟 Zhang Wei", "13800138001", "沪A12345", 20150, ["OIL_SERVICE"])
    await orders.start_clock(tech, (await first_line(busy)).id)

    # Tomorrow: a phone booking, not yet checked in.
    booking = BookingService(session)
    tomorrow = booking_rules.local_day(now, "Asia/Shanghai") + timedelta(days=1)
    availability = await booking.availability("SH01", tomorrow, ["INSPECT_20K", "TYRE_CHANGE"], staff=True)
    if availability.slots:
        slot = availability.slots[len(availability.slots) // 3].start
        await booking.book(BookingIn(
            branch="SH01", slot=slot, operations=["INSPECT_20K", "TYRE_CHANGE"], plate="沪C24680",
            mileage_km=19800, name="王芳 Wang Fang", phone="13700137004", privacy_consent=True, locale="zh_CN",
            transport="drop_off"), principal=advisor)
