"""Managers configure test drives against the real PostgreSQL: booking rules, a model's drive length and a
salesperson's hours change the slots ``availability`` offers; drives already booked keep their times; every
change is audited; bad input, wrong roles and other branches change nothing; saves at once never fail."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from backend.domains.audit.models import AuditEntry
from backend.domains.test_drives import rules
from backend.domains.test_drives.configuration import TestDriveSetup
from backend.domains.test_drives.models import SalespersonHours, TestDriveModelLength, TestDriveSettings
from backend.domains.test_drives.schemas import HoursIn, SettingsIn
from backend.domains.test_drives.service import TestDriveService
from backend.lib.db import utcnow
from backend.lib.errors import Forbidden, Invalid, NotFound
from tests.factories import as_principal, make_branch, make_user
from tests.showroom import booking, demo_car, english, make_showroom  # noqa: F401 - english: a fixture

pytestmark = pytest.mark.usefixtures("english")
RULES = {"slot_minutes": 30, "drive_minutes": 30, "buffer_minutes": 15, "min_notice_minutes": 60, "horizon_days": 30}


def day_after_tomorrow(showroom):
    return rules.local_day(utcnow(), showroom.branch.timezone) + timedelta(days=2)


async def audits(session, entity: str) -> list[AuditEntry]:
    return list((await session.execute(select(AuditEntry).where(AuditEntry.entity == entity)
                                        .order_by(AuditEntry.id))).scalars())


def hhmm(slots) -> list[str]:
    return [s.start.strftime("%H:%M") for s in slots]


async def test_a_branch_without_rules_shows_the_defaults_and_saving_them_changes_the_grid(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    setup = TestDriveSetup(session)
    settings, is_default = await setup.settings(showroom.branch)
    assert is_default and {k: getattr(settings, k) for k in RULES} == RULES
    day = day_after_tomorrow(showroom)
    assert len((await TestDriveService(session).availability(car.id, day)).slots) == 18

    await setup.save_settings(showroom.manager, showroom.branch, SettingsIn(**RULES | {"slot_minutes": 60}))
    _settings, is_default = await setup.settings(showroom.branch)
    assert not is_default
    slots = (await TestDriveService(session).availability(car.id, day)).slots
    assert hhmm(slots) == ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00", "17:00"]
    [entry] = await audits(session, "test_drive_settings")
    assert entry.action == "update" and entry.entity_id == str(showroom.branch.id) and entry.before is None
    assert entry.after == RULES | {"slot_minutes": 60} and entry.actor_label == showroom.manager.email


async def test_a_longer_buffer_changes_the_free_slots_but_moves_no_booked_drive(session, redis):
    showroom = await make_showroom(session, redis, **RULES)
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    service = TestDriveService(session, redis)
    eleven = next(s.start for s in (await service.availability(car.id, day)).slots if s.start.hour == 11)
    booked = (await service.book(booking(car, eleven), principal=showroom.sales)).drive
    assert booked.blocked_until == eleven + timedelta(minutes=45)
    before = hhmm((await service.availability(car.id, day)).slots)
    assert "10:00" in before and "10:30" not in before and "11:30" not in before and "12:00" in before

    setup = TestDriveSetup(session)
    await setup.save_settings(showroom.manager, showroom.branch, SettingsIn(**RULES | {"buffer_minutes": 60}))
    after = hhmm((await service.availability(car.id, day)).slots)
    # A 10:00 drive would now keep the car until 11:30, into the booked 11:00 one: no longer offered.
    assert "10:00" not in after and "09:30" in after and "12:00" in after
    await session.refresh(booked)
    assert booked.starts_at == eleven and booked.blocked_until == eleven + timedelta(minutes=45)
    [entry] = await audits(session, "test_drive_settings")
    assert entry.before == RULES and entry.after == RULES | {"buffer_minutes": 60}


async def test_a_models_drive_length_changes_its_slots_and_removing_it_restores_the_default(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    setup, service = TestDriveSetup(session), TestDriveService(session)
    assert [(c.make, c.model, c.minutes) for c in await setup.model_choices(showroom.branch)] == \
        [(car.make, car.model, None)]

    await setup.set_model_length(showroom.manager, showroom.branch, car.make, car.model, 45)
    result = await service.availability(car.id, day)
    assert result.drive_minutes == 45 and all(s.end - s.start == timedelta(minutes=45) for s in result.slots)
    assert hhmm(result.slots)[-1] == "17:00"  # 17:30 would end after closing at 18:00
    await setup.set_model_length(showroom.manager, showroom.branch, car.make, car.model, 90)
    assert (await service.availability(car.id, day)).drive_minutes == 90
    await setup.remove_model_length(showroom.manager, showroom.branch, car.make, car.model)
    assert (await service.availability(car.id, day)).drive_minutes == 30
    entries = await audits(session, "test_drive_model_length")
    assert [(e.action, e.before["drive_minutes"], (e.after or {}).get("drive_minutes")) for e in entries] == \
        [("update", None, 45), ("update", 45, 90), ("delete", 90, None)]
    assert {(e.branch_id, e.before["branch_id"], e.entity_id) for e in entries} == \
        {(showroom.branch.id, showroom.branch.id, f"{showroom.branch.code} {car.make} {car.model}")}
    with pytest.raises(NotFound):
        await setup.remove_model_length(showroom.manager, showroom.branch, car.make, car.model)


async def test_only_the_branchs_own_models_and_sensible_lengths(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    elsewhere = await make_showroom(session, redis)
    their_car = await demo_car(session, elsewhere)
    setup = TestDriveSetup(session)
    with pytest.raises(Invalid) as refused:
        await setup.set_model_length(showroom.manager, showroom.branch, their_car.make, their_car.model, 45)
    assert "models your branch offers" in refused.value.fields["model"]
    with pytest.raises(Invalid) as refused:
        await setup.set_model_length(showroom.manager, showroom.branch, car.make, car.model, 300)
    assert "15 to 240" in refused.value.fields["minutes"]
    with pytest.raises(Forbidden):
        await setup.set_model_length(showroom.sales, showroom.branch, car.make, car.model, 45)
    session.add(TestDriveModelLength(branch_id=elsewhere.branch.id, make=their_car.make, model=their_car.model,
                                     drive_minutes=60))
    await session.flush()
    with pytest.raises(NotFound):  # another branch's model: not this manager's to remove
        await setup.remove_model_length(showroom.manager, showroom.branch, their_car.make, their_car.model)
    with pytest.raises(Forbidden):  # nor through the other branch
        await setup.branch_for(showroom.manager, elsewhere.branch.id)
    count = select(func.count()).select_from(TestDriveModelLength).where(
        TestDriveModelLength.model.in_([car.model, their_car.model]))
    assert (await session.execute(count)).scalar_one() == 1
    assert await audits(session, "test_drive_model_length") == []


async def test_a_branchs_model_length_leaves_another_branchs_same_model_alone(session, redis):
    """Branch A's manager sets the BYD Han to 45 minutes: branch B's Han keeps B's default 30-minute slots."""
    a = await make_showroom(session, redis)
    b = await make_showroom(session, redis)
    car_a = await demo_car(session, a)
    car_b = await demo_car(session, b, model=car_a.model)  # the same make and model at both branches
    day = day_after_tomorrow(a)
    setup, service = TestDriveSetup(session), TestDriveService(session)
    b_before = await service.availability(car_b.id, day)
    assert b_before.drive_minutes == 30 and len(b_before.slots) == 18

    await setup.set_model_length(a.manager, a.branch, car_a.make, car_a.model, 45)
    a_after = await service.availability(car_a.id, day)
    assert a_after.drive_minutes == 45 and all(s.end - s.start == timedelta(minutes=45) for s in a_after.slots)
    b_after = await service.availability(car_b.id, day)
    assert b_after.drive_minutes == 30 and hhmm(b_after.slots) == hhmm(b_before.slots)
    assert all(s.end - s.start == timedelta(minutes=30) for s in b_after.slots)
    assert [(c.model, c.minutes) for c in await setup.model_choices(b.branch)] == [(car_b.model, None)]
    assert [(c.model, c.minutes) for c in await setup.model_choices(a.branch)] == [(car_a.model, 45)]
    cars = {v.id: minutes for v, minutes in await service.cars(like=car_a)}
    assert cars[car_a.id] == 45 and cars[car_b.id] == 30
    assert [m for _v, m in await service.cars(branch_id=b.branch.id)] == [30]
    assert (await service.plan_for(car_b)).drive_minutes == 30
    assert (await service.bookable(car_b.id)).drive_minutes == 30

    await setup.set_model_length(b.manager, b.branch, car_b.make, car_b.model, 60)  # B's own, A keeps 45
    assert (await service.availability(car_b.id, day)).drive_minutes == 60
    assert (await service.availability(car_a.id, day)).drive_minutes == 45
    await setup.remove_model_length(a.manager, a.branch, car_a.make, car_a.model)
    assert (await service.availability(car_a.id, day)).drive_minutes == 30
    assert (await service.availability(car_b.id, day)).drive_minutes == 60


async def test_a_salespersons_hours_and_online_bookings_change_the_slots(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    person = showroom.salespeople[0]
    setup, service = TestDriveSetup(session), TestDriveService(session)
    [listed] = await setup.salespeople(showroom.branch)
    assert listed.user.id == person.id and listed.same_as_branch and listed.takes_online

    afternoons = {d: ["13:00", "18:00"] for d in rules.WEEKDAYS}
    await setup.set_hours(showroom.manager, person.id, HoursIn(working_hours=afternoons, takes_online=True))
    assert hhmm((await service.availability(car.id, day)).slots)[0] == "13:00"
    stored = await session.get(SalespersonHours, person.id)
    assert stored.working_hours == afternoons  # the stored form: every weekday, "HH:MM" pairs

    await setup.set_hours(showroom.manager, person.id, HoursIn(working_hours=None, takes_online=False))
    assert (await service.availability(car.id, day)).slots == []  # nobody takes online bookings
    staff = await service.availability(car.id, day, principal=showroom.sales)
    assert hhmm(staff.slots)[0] == "09:00"  # back on the branch's hours, and staff still book them
    assert (await session.get(SalespersonHours, person.id)).working_hours == {}
    entries = await audits(session, "salesperson_hours")
    assert [e.entity_id for e in entries] == [str(person.id)] * 2
    assert entries[0].before == {"working_hours": {}, "takes_online": True}
    assert entries[1].after == {"working_hours": {}, "takes_online": False}


async def test_hours_of_another_branch_wrong_roles_and_bad_input_change_nothing(session, redis):
    showroom = await make_showroom(session, redis)
    elsewhere = await make_showroom(session, redis)
    setup = TestDriveSetup(session)
    theirs = elsewhere.salespeople[0]
    with pytest.raises(NotFound):
        await setup.set_hours(showroom.manager, theirs.id, HoursIn(takes_online=False))
    with pytest.raises(NotFound):  # a manager is no salesperson
        await setup.set_hours(showroom.manager, showroom.manager.id, HoursIn(takes_online=False))
    with pytest.raises(Forbidden):
        await setup.set_hours(showroom.sales, showroom.sales.id, HoursIn(takes_online=False))
    with pytest.raises(Invalid) as refused:
        await setup.set_hours(showroom.manager, showroom.sales.id,
                              HoursIn(working_hours={"mon": ["18:00", "09:00"]}, takes_online=True))
    assert "after its start" in refused.value.fields["mon"]
    with pytest.raises(Invalid) as refused:
        await setup.save_settings(showroom.manager, showroom.branch,
                                  SettingsIn(**RULES | {"slot_minutes": 20, "horizon_days": 365}))
    assert set(refused.value.fields) == {"slot_minutes", "horizon_days"}
    with pytest.raises(Forbidden):
        await setup.save_settings(showroom.sales, showroom.branch, SettingsIn(**RULES))
    with pytest.raises(Forbidden):  # a branch manager names another branch
        await setup.branch_for(showroom.manager, elsewhere.branch.id)
    hours = select(func.count()).select_from(SalespersonHours).where(
        SalespersonHours.staff_user_id.in_([theirs.id, showroom.sales.id]))
    saved = select(func.count()).select_from(TestDriveSettings).where(
        TestDriveSettings.branch_id.in_([showroom.branch.id, elsewhere.branch.id]))
    assert (await session.execute(hours)).scalar_one() == 0 and (await session.execute(saved)).scalar_one() == 0
    assert await audits(session, "salesperson_hours") == [] and await audits(session, "test_drive_settings") == []


async def test_an_admin_picks_the_branch_and_may_set_any_salespersons_hours(session, redis):
    showroom = await make_showroom(session, redis)
    admin = as_principal(await make_user(session, redis, role="admin"))
    setup = TestDriveSetup(session)
    assert (await setup.branch_for(admin, showroom.branch.id)).id == showroom.branch.id
    with pytest.raises(NotFound):
        await setup.branch_for(admin, 2**31 - 1)
    person = await setup.set_hours(admin, showroom.sales.id, HoursIn(takes_online=False))
    assert person.takes_online is False and person.same_as_branch


# -- saves at once: real transactions on separate connections --------------------------------------------


@pytest.fixture
async def committed_branch(engine):
    maker = async_sessionmaker(engine, expire_on_commit=False)

    class NoRedis:
        pass

    async with maker() as session, session.begin():
        branch = await make_branch(session)
        manager = as_principal(await make_user(session, NoRedis(), role="manager", branch=branch))
    yield maker, branch, manager
    async with maker() as session, session.begin():
        for statement in ("DELETE FROM test_drive_settings WHERE branch_id = :b",
                          "DELETE FROM audit_log WHERE branch_id = :b",
                          "DELETE FROM staff_user WHERE branch_id = :b",
                          "DELETE FROM branch WHERE id = :b"):
            await session.execute(text(statement), {"b": branch.id})


async def test_several_managers_saving_at_once_all_succeed_and_the_last_one_wins(committed_branch):
    maker, branch, manager = committed_branch
    start = asyncio.Event()

    async def save(buffer: int) -> str:
        async with maker() as session:
            async with session.begin():
                await session.execute(text("SELECT 1"))  # every transaction is open before any writes
                await start.wait()
                await TestDriveSetup(session).save_settings(manager, branch, SettingsIn(**RULES | {
                    "buffer_minutes": buffer}))
            return "saved"

    tasks = [asyncio.create_task(save(buffer)) for buffer in (0, 5, 10, 20, 25, 30)]
    await asyncio.sleep(0.2)
    start.set()
    assert await asyncio.gather(*tasks) == ["saved"] * 6
    async with maker() as session:
        rows = (await session.execute(select(TestDriveSettings.buffer_minutes).where(
            TestDriveSettings.branch_id == branch.id))).scalars().all()
        entries = (await session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.entity == "test_drive_settings", AuditEntry.branch_id == branch.id))).scalar_one()
    assert len(rows) == 1 and rows[0] in (0, 5, 10, 20, 25, 30) and entries == 6
