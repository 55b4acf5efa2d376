"""Test drives against the real PostgreSQL and Redis: what may be driven, availability, booking with the
database deciding who gets a car and a salesperson, refusals that store nothing, idempotency, rescheduling,
cancelling, the lead."""

from datetime import UTC, date, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from backend.domains.audit.models import AuditEntry
from backend.domains.branches.models import BranchHoliday
from backend.domains.customers import service as customers
from backend.domains.customers.models import Customer
from backend.domains.notifications import delivery
from backend.domains.notifications.models import Notification
from backend.domains.scheduler.models import ScheduledTask
from backend.domains.test_drives import models, rules
from backend.domains.test_drives.models import Lead, SalespersonHours, TestDrive, TestDriveModelLength
from backend.domains.test_drives.service import TestDriveService, violated_exclusion
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from tests.factories import as_principal, make_user
from tests.showroom import a_phone, booking, daytime_showroom, demo_car, english, free_start, make_showroom  # noqa: F401 - english: a fixture
from tests.stock_factories import make_vehicle

pytestmark = pytest.mark.usefixtures("english")


async def drives(session, car) -> list[TestDrive]:
    return list((await session.execute(select(TestDrive).where(TestDrive.vehicle_id == car.id)
                                        .order_by(TestDrive.id))).scalars())


async def count(session, model, *where) -> int:
    return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


def day_after_tomorrow(showroom) -> date:
    return rules.local_day(utcnow(), showroom.branch.timezone) + timedelta(days=2)


# -- what may be driven, and when ------------------------------------------------------------------


async def test_availability_offers_the_grid_where_car_and_a_salesperson_are_free(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    result = await TestDriveService(session).availability(car.id, day)
    # Open 09:00-18:00, a start every 30 minutes while the 30-minute drive ends by closing.
    assert len(result.slots) == 18 and result.drive_minutes == 30 and result.next_available == []
    first = result.slots[0]
    assert first.start.hour == 9 and first.start.utcoffset() == timedelta(hours=8)
    assert first.end - first.start == timedelta(minutes=30)


async def test_drive_length_per_model_and_salespeople_hours_shape_the_slots(session, redis):
    afternoons = {d: ["13:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    showroom = await make_showroom(session, redis, salesperson_hours=afternoons)
    car = await demo_car(session, showroom)
    session.add(TestDriveModelLength(branch_id=showroom.branch.id, make=car.make, model=car.model,
                                     drive_minutes=60))
    await session.flush()
    result = await TestDriveService(session).availability(car.id, day_after_tomorrow(showroom))
    assert result.drive_minutes == 60
    assert [s.start.hour for s in result.slots][:2] == [13, 13] and result.slots[-1].start.hour == 17
    assert all(s.end - s.start == timedelta(hours=1) for s in result.slots)


async def test_holidays_and_closed_days_offer_the_next_free_times(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    session.add(BranchHoliday(branch_id=showroom.branch.id, day=day, name="Dragon Boat Festival"))
    await session.flush()
    result = await TestDriveService(session).availability(car.id, day)
    assert result.slots == [] and len(result.next_available) == 3
    assert rules.local_day(result.next_available[0].start, showroom.branch.timezone) == day + timedelta(days=1)
    with pytest.raises(Invalid) as past:
        await TestDriveService(session).availability(car.id, day - timedelta(days=5))
    assert "passed" in past.value.fields["date"]


async def test_which_cars_may_be_driven(session, redis):
    showroom = await make_showroom(session, redis)
    demo = await demo_car(session, showroom)
    in_stock = await make_vehicle(session, showroom.branch, status="in_stock")
    sold = await make_vehicle(session, showroom.branch, status="sold")
    service = TestDriveService(session, redis)
    day = day_after_tomorrow(showroom)
    for car, words in ((in_stock, "not available for test drives"), (sold, "has been sold")):
        with pytest.raises(Invalid) as refused:
            await service.availability(car.id, day)
        assert words in refused.value.fields["vehicle_id"]
    with pytest.raises(Invalid):
        await service.availability(987654321, day)
    # A manager marks the in-stock car drivable; a salesperson may not.
    with pytest.raises(Forbidden):
        await service.set_drivable(showroom.sales, in_stock.id, True)
    await service.set_drivable(showroom.manager, in_stock.id, True)
    assert len((await service.availability(in_stock.id, day)).slots) == 18
    assert {v.id for v, _minutes in await service.cars(branch_id=showroom.branch.id)} == {demo.id, in_stock.id}
    with pytest.raises(Invalid):  # a demonstrator needs no mark, a sold car cannot have one
        await service.set_drivable(showroom.manager, sold.id, True)
    await service.set_drivable(showroom.manager, in_stock.id, False)
    assert {v.id for v, _minutes in await service.cars(branch_id=showroom.branch.id)} == {demo.id}


# -- booking --------------------------------------------------------------------------------------


async def test_an_online_booking_assigns_a_salesperson_and_tells_everyone(session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    view = await TestDriveService(session, redis).book(booking(car, start), ip="198.51.100.9")
    drive = view.drive
    assert drive.status == "booked" and drive.source == "online" and drive.starts_at == start
    assert drive.ends_at == start + timedelta(minutes=30) and drive.blocked_until == start + timedelta(minutes=45)
    assert drive.salesperson_id in {p.id for p in showroom.salespeople} and view.salesperson.id == drive.salesperson_id
    during = (await session.execute(text("SELECT lower(during), upper(during) FROM test_drive WHERE id = :id"),
                                    {"id": drive.id})).one()
    assert tuple(during) == (start, drive.blocked_until)  # the database derives the range it compares
    # The customer, their lead at the test-drive stage, and a link of which only the hash is stored.
    assert view.customer.phone and view.customer.name == "试驾客户 Test Driver"
    lead = await session.get(Lead, drive.lead_id)
    assert (lead.stage, lead.channel, lead.customer_id) == ("test_drive", "online", view.customer.id)
    link = await customers.resolve_tracking_link(session, view.token)
    assert (link.record_type, link.record_id) == ("test_drive", drive.id) and len(view.token) >= 22
    # The confirmation, the salesperson's heads-up and the two reminders.
    told = {n.key: n for n in (await session.execute(select(Notification).where(
        Notification.key.like(f"test_drive:{drive.id}:%")))).scalars()}
    booked = told[f"test_drive:{drive.id}:booked:customer"]
    assert view.token not in booked.url and delivery.link_of(booked) == f"/test-drive/track/{view.token}"
    staff = told[f"test_drive:{drive.id}:assigned:{drive.salesperson_id}:staff"]
    assert staff.recipient_id == drive.salesperson_id and delivery.link_of(staff) == f"/test-drives/{drive.id}"
    tasks = (await session.execute(select(ScheduledTask).where(ScheduledTask.record_type == "test_drive",
                                                               ScheduledTask.record_id == drive.id)
                                   .order_by(ScheduledTask.due_at))).scalars().all()
    assert [t.due_at for t in tasks] == [start - timedelta(hours=24), start - timedelta(hours=2)]
    assert all("token" not in str(t.payload) and view.token not in str(t.payload) for t in tasks)
    entry = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "test_drive",
                                                            AuditEntry.entity_id == str(drive.id)))).scalar_one()
    assert entry.action == "create" and entry.after["source"] == "online"


@pytest.mark.parametrize("change, field, words", [
    ({"phone": "12345"}, "phone", "mobile number"),
    ({"phone": "+86 123 4567 8901"}, "phone", "mobile number"),
    ({"consent": False}, "consent", "agree"),
    ({"email": "not an address"}, "email", "e-mail"),
    ({"source": "walk_in"}, "source", "Only staff"),
])
async def test_bad_contact_details_are_refused_and_nothing_is_stored(session, redis, change, field, words):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    customers_before = await count(session, Customer)
    with pytest.raises(Invalid) as refused:
        await TestDriveService(session, redis).book(booking(car, start, **change))
    assert words in refused.value.fields[field]
    assert await drives(session, car) == [] and await count(session, Customer) == customers_before


async def test_bad_times_are_refused_each_with_its_reason(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)  # 09:00 local, two days ahead
    service = TestDriveService(session, redis)
    for wrong, words in ((start - timedelta(days=3), "already passed"),
                         (start - timedelta(minutes=30), "opening hours"),
                         (start + timedelta(hours=8, minutes=45), "opening hours"),  # would end after 18:00
                         (start + timedelta(minutes=10), "every 30 minutes"),
                         (start + timedelta(days=45), "30 days ahead"),
                         (start.replace(tzinfo=None), "time zone"),
                         (utcnow() + timedelta(minutes=20), "")):
        with pytest.raises(Invalid) as refused:
            await service.book(booking(car, wrong))
        assert words in refused.value.fields["start"], wrong
    assert await drives(session, car) == []


async def test_a_sold_car_is_refused(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    start = await free_start(session, car)
    car.status = "sold"
    await session.flush()
    with pytest.raises(Invalid) as refused:
        await TestDriveService(session, redis).book(booking(car, start))
    assert "sold" in refused.value.fields["vehicle_id"] and await drives(session, car) == []


async def test_the_same_car_and_time_twice_is_a_conflict_with_the_next_free_times(session, redis):
    showroom = await make_showroom(session, redis, salespeople=3)
    car = await demo_car(session, showroom)
    start = await free_start(session, car, index=4)  # 11:00
    service = TestDriveService(session, redis)
    await service.book(booking(car, start))
    for clash in (start, start - timedelta(minutes=30)):  # 10:30 would run into 11:00 (and its buffer)
        with pytest.raises(Conflict) as taken:
            await service.book(booking(car, clash))
        assert "just taken" in taken.value.message
        offered = [s["start"] for s in taken.value.extra["next_slots"]]
        assert len(offered) == 3 and clash.isoformat() not in offered
    # 11:30 overlaps the buffer (11:30-11:45) of the 11:00 drive; 12:00 is free again.
    slots = [s.start for s in (await service.availability(car.id, start.date())).slots]
    assert start not in slots and start + timedelta(minutes=30) not in slots and start + timedelta(hours=1) in slots
    assert len(await drives(session, car)) == 1


async def test_a_salesperson_is_in_one_drive_at_a_time(session, redis):
    showroom = await make_showroom(session, redis, salespeople=1)
    first, second = await demo_car(session, showroom), await demo_car(session, showroom)
    start = await free_start(session, first, index=2)
    service = TestDriveService(session, redis)
    await service.book(booking(first, start))
    assert start not in [s.start for s in (await service.availability(second.id, start.date())).slots]
    with pytest.raises(Conflict):
        await service.book(booking(second, start))
    # A second salesperson at the branch takes the other car at the same time.
    session.add(SalespersonHours(staff_user_id=(await make_user(session, redis, role="sales",
                                                                branch=showroom.branch)).id,
                                 working_hours={d: ["09:00", "18:00"] for d in rules.WEEKDAYS}))
    await session.flush()
    other = await service.book(booking(second, start))
    assert other.drive.salesperson_id != showroom.salespeople[0].id


async def test_salespeople_who_take_no_online_bookings_are_not_assigned_online(session, redis):
    showroom = await make_showroom(session, redis, salespeople=1)
    session.add(SalespersonHours(staff_user_id=showroom.salespeople[0].id, takes_online=False,
                                 working_hours={d: ["09:00", "18:00"] for d in rules.WEEKDAYS}))
    await session.flush()
    car = await demo_car(session, showroom)
    day = day_after_tomorrow(showroom)
    service = TestDriveService(session, redis)
    assert (await service.availability(car.id, day)).slots == []
    staff_slots = (await service.availability(car.id, day, principal=showroom.sales)).slots
    assert len(staff_slots) == 18  # but a phone booking by staff may use them
    view = await service.book(booking(car, staff_slots[0].start), principal=showroom.sales)
    assert view.drive.source == "phone" and view.drive.salesperson_id == showroom.salespeople[0].id


async def test_the_database_refuses_an_overlap_whatever_the_code_does(session, redis):
    """The exclusion constraints hold even for an insert that skips every check in Python."""
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    view = await TestDriveService(session, redis).book(booking(car, await free_start(session, car)))
    drive = view.drive
    other = next(p for p in showroom.salespeople if p.id != drive.salesperson_id)
    statement = text("INSERT INTO test_drive (reference, branch_id, vehicle_id, salesperson_id, customer_id, status, "
                     "source, starts_at, ends_at, blocked_until, created_by_label, key_handed_over, return_notes, "
                     "follow_up_note, customer_comment) VALUES (:ref, :branch, :vehicle, :person, :customer, "
                     ":status, 'online', :start, :end, :until, 'test', false, '', '', '')")
    values = {"branch": drive.branch_id, "customer": drive.customer_id, "status": "booked",
              "start": drive.starts_at + timedelta(minutes=40), "end": drive.starts_at + timedelta(minutes=70),
              "until": drive.starts_at + timedelta(minutes=85)}
    for ref, vehicle, person, constraint in (("X1", car.id, other.id, models.VEHICLE_BUSY),
                                             ("X2", (await demo_car(session, showroom)).id, drive.salesperson_id,
                                              models.SALESPERSON_BUSY)):
        with pytest.raises(IntegrityError) as refused:
            async with session.begin_nested():
                await session.execute(statement, values | {"ref": ref, "vehicle": vehicle, "person": person})
        assert violated_exclusion(refused.value) == constraint
    # Drives that no longer hold the car (cancelled, returned...) do not count.
    async with session.begin_nested():
        await session.execute(statement, values | {"ref": "X3", "vehicle": car.id, "person": other.id,
                                                   "status": "cancelled"})


async def test_a_salesperson_taken_at_the_last_moment_makes_way_for_the_next(session, redis):
    """Between offering and inserting, another booking may take the first choice: the database refuses it
    and the next free salesperson goes instead (the race itself is proven over HTTP in tests/concurrency)."""
    showroom = await make_showroom(session, redis, salespeople=2)
    first, second = await demo_car(session, showroom), await demo_car(session, showroom)
    start = await free_start(session, first)
    service = TestDriveService(session, redis)
    taken = await service.book(booking(first, start))
    other = next(p.id for p in showroom.salespeople if p.id != taken.drive.salesperson_id)
    original = service._candidates

    async def stale(*args, **kwargs):  # what a request that read before the first booking would offer
        return [taken.drive.salesperson_id, other], {p.id: p for p in showroom.salespeople}

    service._candidates = stale
    view = await service.book(booking(second, start))
    assert view.drive.salesperson_id == other
    service._candidates = original


async def test_the_same_customer_keeps_one_open_lead(session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    phone = a_phone()
    service = TestDriveService(session, redis)
    one = await service.book(booking(car, await free_start(session, car, index=0), phone=phone))
    two = await service.book(booking(car, await free_start(session, car, index=3), phone=phone, name="Someone else"))
    assert one.customer.id == two.customer.id and two.customer.name == "试驾客户 Test Driver"  # never overwritten
    assert one.drive.lead_id == two.drive.lead_id
    assert await count(session, Lead, Lead.customer_id == one.customer.id) == 1
    lead = await session.get(Lead, one.drive.lead_id)
    lead.stage = "lost"
    await session.flush()
    three = await service.book(booking(car, await free_start(session, car, index=6), phone=phone))
    assert three.drive.lead_id != one.drive.lead_id  # a lost lead stays lost; a new one starts


async def test_idempotency_key_returns_the_first_booking(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    data = booking(car, await free_start(session, car))
    service = TestDriveService(session, redis)
    first = await service.book(data, idempotency_key="retry-me-0001")
    again = await service.book(data, idempotency_key="retry-me-0001")
    assert again.replayed and again.drive.id == first.drive.id and again.token == first.token
    with pytest.raises(Invalid) as reused:
        await service.book(data.model_copy(update={"name": "Changed"}), idempotency_key="retry-me-0001")
    assert "different booking" in reused.value.message
    with pytest.raises(Invalid):
        await service.book(data, idempotency_key="short")
    assert len(await drives(session, car)) == 1


async def test_public_bookings_are_rate_limited_per_address(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    service = TestDriveService(session, redis)
    start = await free_start(session, car)
    for _ in range(20):
        with pytest.raises(Invalid):  # refused for the phone number, but counted
            await service.book(booking(car, start, phone="12345"), ip="192.0.2.50")
    with pytest.raises(RateLimited):
        await service.book(booking(car, start), ip="192.0.2.50")
    assert (await service.book(booking(car, start), ip="192.0.2.51")).drive.id  # another address
    assert (await service.book(booking(car, start + timedelta(hours=1)), principal=showroom.sales)).drive.id


async def test_a_walk_in_takes_the_slot_running_now_with_the_salesperson_who_booked(session, redis):
    showroom = await daytime_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    service = TestDriveService(session, redis)
    options = await service.walk_in_options(showroom.sales, car.id)
    now_slot = options["slots"][0].start
    assert now_slot <= utcnow() < now_slot + timedelta(minutes=30)
    with pytest.raises(Invalid) as public:
        await service.book(booking(car, now_slot))
    assert "passed" in public.value.fields["start"] or "minutes ahead" in public.value.fields["start"]
    view = await service.book(booking(car, now_slot, source="walk_in"), principal=showroom.sales)
    assert view.drive.source == "walk_in" and view.drive.salesperson_id == showroom.sales.id
    assert await count(session, Notification, Notification.key.like(f"test_drive:{view.drive.id}:assigned%")) == 0


async def test_staff_book_only_at_their_own_branch(session, redis):
    here = await make_showroom(session, redis)
    there = await make_showroom(session, redis)
    car = await demo_car(session, there)
    start = await free_start(session, car)
    with pytest.raises(Invalid) as refused:
        await TestDriveService(session, redis).book(booking(car, start), principal=here.sales)
    assert "own branch" in refused.value.fields["vehicle_id"]
    view = await TestDriveService(session, redis).book(booking(car, start))
    with pytest.raises(NotFound):
        await TestDriveService(session, redis).staff_view(here.sales, view.drive.id)
    admin = as_principal(await make_user(session, redis, role="admin"))
    assert (await TestDriveService(session, redis).staff_view(admin, view.drive.id)).drive.id == view.drive.id


# -- moving and cancelling ------------------------------------------------------------------------


async def test_rescheduling_moves_the_drive_and_its_reminders(session, redis):
    showroom = await make_showroom(session, redis, salespeople=2)
    car = await demo_car(session, showroom)
    service = TestDriveService(session, redis)
    start = await free_start(session, car, days_ahead=3)
    view = await service.book(booking(car, start))
    salesperson = view.drive.salesperson_id
    later = start + timedelta(hours=2)
    moved = await service.reschedule(view.drive.id, later, customer_label="customer (tracking link)")
    assert moved.drive.starts_at == later and moved.drive.salesperson_id == salesperson  # the same person
    assert moved.drive.blocked_until == later + timedelta(minutes=45)
    tasks = (await session.execute(select(ScheduledTask.key, ScheduledTask.status, ScheduledTask.due_at).where(
        ScheduledTask.record_id == view.drive.id, ScheduledTask.record_type == "test_drive"))).all()
    pending = sorted(due for _key, status, due in tasks if status == "pending")
    assert pending == [later - timedelta(hours=24), later - timedelta(hours=2)]
    assert sum(1 for _key, status, _due in tasks if status == "cancelled") == 2
    moved_key = f"test_drive:{view.drive.id}:rescheduled:{later.astimezone(UTC).isoformat()}:customer"
    assert await count(session, Notification, Notification.key == moved_key) == 1
    # The old time is free for someone else; a time taken by another booking is a conflict.
    other = await service.book(booking(car, start))
    with pytest.raises(Conflict) as taken:
        await service.reschedule(view.drive.id, start)
    assert taken.value.extra["next_slots"]
    with pytest.raises(Invalid):
        await service.reschedule(view.drive.id, later)  # already there
    await service.cancel(other.drive.id)
    with pytest.raises(Conflict):
        await service.reschedule(other.drive.id, start + timedelta(hours=5))


async def test_cancelling_frees_the_car_and_stops_the_reminders(session, redis):
    showroom = await make_showroom(session, redis)
    car = await demo_car(session, showroom)
    service = TestDriveService(session, redis)
    start = await free_start(session, car)
    view = await service.book(booking(car, start))
    cancelled = await service.cancel(view.drive.id, customer_label="customer (tracking link)")
    assert cancelled.drive.status == "cancelled" and cancelled.drive.cancelled_at is not None
    assert await count(session, ScheduledTask, ScheduledTask.record_id == view.drive.id,
                       ScheduledTask.record_type == "test_drive", ScheduledTask.status == "pending") == 0
    assert await count(session, Notification,
                       Notification.key == f"test_drive:{view.drive.id}:cancelled:customer") == 1
    assert (await service.book(booking(car, start))).drive.starts_at == start  # the slot is free again
    with pytest.raises(Conflict):
        await service.cancel(view.drive.id)
    actors = (await session.execute(select(AuditEntry.actor_kind, AuditEntry.action).where(
        AuditEntry.entity == "test_drive", AuditEntry.entity_id == str(view.drive.id)))).all()
    assert ("customer", "cancel") in [tuple(a) for a in actors]
