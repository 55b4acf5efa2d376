"""A manager's opening hours and holidays against the real PostgreSQL: what is stored, what is refused (and
stores nothing), who may change which branch, the audit trail, and what a holiday does to the test-drive
grid and to bookings already made (kept, and counted)."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from backend.domains.audit.models import AuditEntry
from backend.domains.branches import rules, service
from backend.domains.branches.models import Branch, BranchHoliday
from backend.domains.service_booking.models import ServiceAppointment
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from backend.lib.errors import Forbidden, Invalid, NotFound
from tests.factories import as_principal, make_user
from tests.showroom import booking, demo_car, english, free_start, make_showroom  # noqa: F401 - english: a fixture
from tests.workshop import book as book_service
from tests.workshop import make_workshop

pytestmark = pytest.mark.usefixtures("english")
WEEK = {"mon": ["09:00", "18:00"], "tue": ["09:00", "18:00"], "wed": ["09:00", "18:00"], "thu": ["09:00", "18:00"],
        "fri": ["09:00", "18:00"], "sat": ["10:00", "15:30"], "sun": None}


async def audit_entries(session, entity: str, branch_id: int) -> list[AuditEntry]:
    return list((await session.execute(select(AuditEntry).where(AuditEntry.entity == entity,
                                                                AuditEntry.branch_id == branch_id)
                                        .order_by(AuditEntry.id))).scalars())


async def stored_hours(session, branch_id: int) -> dict:
    return (await session.execute(select(Branch.opening_hours).where(Branch.id == branch_id))).scalar_one()


def in_days(branch, n: int):
    return rules.local_today(utcnow(), branch.timezone) + timedelta(days=n)


async def test_a_manager_sets_the_week_and_the_audit_keeps_before_and_after(session, redis):
    showroom = await make_showroom(session, redis)
    branch_id = showroom.branch.id
    before = await stored_hours(session, branch_id)
    saved = await service.set_opening_hours(session, showroom.manager, branch_id, WEEK)
    assert saved.opening_hours == WEEK and await stored_hours(session, branch_id) == WEEK
    [entry] = await audit_entries(session, "opening_hours", branch_id)
    assert entry.action == "update" and entry.entity_id == str(branch_id)
    assert entry.before == {"opening_hours": before} and entry.after == {"opening_hours": WEEK}
    assert entry.actor_label == showroom.manager.email
    # Saving the same week again changes nothing and records nothing.
    await service.set_opening_hours(session, showroom.manager, branch_id, dict(WEEK))
    assert len(await audit_entries(session, "opening_hours", branch_id)) == 1
    # The manager's own branch is the default.
    assert (await service.managed_branch(session, showroom.manager)).id == branch_id


async def test_bad_weeks_are_refused_per_day_and_store_nothing(session, redis):
    showroom = await make_showroom(session, redis)
    branch_id = showroom.branch.id
    before = await stored_hours(session, branch_id)
    with pytest.raises(Invalid) as refused:
        await service.set_opening_hours(session, showroom.manager, branch_id,
                                        WEEK | {"sat": ["15:00", "10:00"], "mon": ["9am", "18:00"]})
    assert refused.value.fields == {"sat": "The closing time must be after the opening time.",
                                    "mon": "Enter times as HH:MM on a 24-hour clock, e.g. 09:00."}
    with pytest.raises(Invalid) as missing:
        await service.set_opening_hours(session, showroom.manager, branch_id, {"mon": None})
    assert set(missing.value.fields) == {"tue", "wed", "thu", "fri", "sat", "sun"}
    assert await stored_hours(session, branch_id) == before
    assert await audit_entries(session, "opening_hours", branch_id) == []


async def test_who_may_change_which_branch(session, redis):
    showroom = await make_showroom(session, redis)
    other = await make_showroom(session, redis)
    branch_id = showroom.branch.id
    before = await stored_hours(session, branch_id)
    for principal, error in ((showroom.sales, Forbidden), (other.manager, NotFound)):
        with pytest.raises(error):
            await service.set_opening_hours(session, principal, branch_id, WEEK)
        with pytest.raises(error):
            await service.add_holiday(session, principal, branch_id, in_days(showroom.branch, 3))
        with pytest.raises(error):
            await service.managed_branch(session, principal, branch_id)
    advisor = as_principal(await make_user(session, redis, role="service_advisor", branch=showroom.branch))
    with pytest.raises(Forbidden):
        await service.managed_branch(session, advisor)
    with pytest.raises(NotFound):
        await service.managed_branch(session, showroom.manager, 2**40)
    assert await stored_hours(session, branch_id) == before
    assert await service.holidays(session, showroom.branch) == []
    # An admin (and a group manager) may change any branch.
    admin = as_principal(await make_user(session, redis, role="admin"))
    group_manager = as_principal(await make_user(session, redis, role="manager"))
    await service.set_opening_hours(session, admin, branch_id, WEEK)
    await service.add_holiday(session, group_manager, branch_id, in_days(showroom.branch, 3), "Stocktaking")
    assert await stored_hours(session, branch_id) == WEEK
    assert [h.name for h in await service.holidays(session, showroom.branch)] == ["Stocktaking"]


async def test_a_new_holiday_empties_that_days_test_drive_grid_and_keeps_its_bookings(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    drives = TestDriveService(session, redis)
    day = in_days(showroom.branch, 2)
    assert len((await drives.availability(car.id, day)).slots) == 18
    booked = await drives.book(booking(car, await free_start(session, car, days_ahead=2)))

    added = await service.add_holiday(session, showroom.manager, showroom.branch.id, day, "  Dragon Boat Festival ")
    assert added.holiday.day == day and added.holiday.name == "Dragon Boat Festival"
    assert added.booked_test_drives == 1 and added.booked_service_appointments == 0
    after = await drives.availability(car.id, day)
    assert after.slots == [] and after.next_available
    assert rules.local_today(after.next_available[0].start, showroom.branch.timezone) == day + timedelta(days=1)
    await session.refresh(booked.drive)
    assert booked.drive.status == "booked"  # not moved, not cancelled
    [entry] = await audit_entries(session, "branch_holiday", showroom.branch.id)
    assert entry.action == "create" and entry.entity_id == day.isoformat()
    assert entry.after == {"date": day.isoformat(), "name": "Dragon Boat Festival", "booked_test_drives": 1,
                           "booked_service_appointments": 0}

    # Removing it opens the day again.
    removed = await service.remove_holiday(session, showroom.manager, showroom.branch.id, day)
    assert removed.name == "Dragon Boat Festival"
    reopened = [s.start for s in (await drives.availability(car.id, day)).slots]
    assert len(reopened) > 10 and booked.drive.starts_at not in reopened  # the booked drive still holds its car
    entries = await audit_entries(session, "branch_holiday", showroom.branch.id)
    assert [e.action for e in entries] == ["create", "delete"]
    assert entries[1].before == {"date": day.isoformat(), "name": "Dragon Boat Festival"}
    with pytest.raises(NotFound) as gone:
        await service.remove_holiday(session, showroom.manager, showroom.branch.id, day)
    assert "no holiday" in gone.value.message


async def test_the_counts_cover_service_appointments_on_that_local_day_only(session, redis):
    branch = await make_workshop(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    await book_service(session, branch, days_ahead=2, redis=redis)
    await book_service(session, branch, days_ahead=2, index=1, redis=redis)
    cancelled = await book_service(session, branch, days_ahead=2, index=2, redis=redis)
    cancelled.appointment.status = "cancelled"
    await book_service(session, branch, days_ahead=3, redis=redis)
    await session.flush()
    added = await service.add_holiday(session, manager, branch.id, in_days(branch, 2))
    assert added.booked_service_appointments == 2 and added.booked_test_drives == 0
    booked = (await session.execute(select(func.count()).select_from(ServiceAppointment).where(
        ServiceAppointment.branch_id == branch.id, ServiceAppointment.status == "booked"))).scalar_one()
    assert booked == 3  # nothing was cancelled by the holiday
    empty = await service.add_holiday(session, manager, branch.id, in_days(branch, 4))
    assert (empty.booked_service_appointments, empty.booked_test_drives) == (0, 0)


async def test_bad_holidays_are_refused_and_a_date_is_taken_once(session, redis):
    showroom = await make_showroom(session, redis)
    branch_id = showroom.branch.id
    today = in_days(showroom.branch, 0)
    await service.add_holiday(session, showroom.manager, branch_id, today, "Closed at short notice")
    with pytest.raises(Invalid) as duplicate:
        await service.add_holiday(session, showroom.manager, branch_id, today, "Again")
    assert duplicate.value.fields == {"date": "This date is already a holiday."}
    with pytest.raises(Invalid) as past:
        await service.add_holiday(session, showroom.manager, branch_id, today - timedelta(days=1))
    assert past.value.fields == {"date": "This date has passed. Choose today or a later date."}
    with pytest.raises(Invalid) as long_name:
        await service.add_holiday(session, showroom.manager, branch_id, today + timedelta(days=1), "x" * 121)
    assert long_name.value.fields == {"name": "Use at most 120 characters."}
    rows = (await session.execute(select(BranchHoliday).where(BranchHoliday.branch_id == branch_id))).scalars()
    assert [(h.day, h.name) for h in rows] == [(today, "Closed at short notice")]
    assert len(await audit_entries(session, "branch_holiday", branch_id)) == 1
