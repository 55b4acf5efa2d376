"""Service bookings against the real PostgreSQL and Redis: availability, booking, capacity counters,
refusals that change nothing, idempotency, rescheduling and cancelling."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from backend.domains.audit.models import AuditEntry
from backend.domains.customers import service as customers
from backend.domains.customers.models import Customer
from backend.domains.notifications import delivery
from backend.domains.notifications.models import Notification
from backend.domains.scheduler.models import ScheduledTask
from backend.domains.service_booking import rules, service
from backend.domains.service_booking.models import (
    BookingIdempotency,
    ServiceAppointment,
    ServiceDayCapacity,
    ServiceSlotCapacity,
    ServiceVehicle,
)
from backend.domains.service_booking.service import BookingService
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Invalid, RateLimited
from tests.workshop import a_phone, advisor, book, booking, english, free_slot, make_workshop  # noqa: F401 - english: a fixture

pytestmark = pytest.mark.usefixtures("english")


async def counters(session, branch):
    rows = (await session.execute(select(ServiceDayCapacity).where(ServiceDayCapacity.branch_id == branch.id)
                                  .order_by(ServiceDayCapacity.day, ServiceDayCapacity.resource))).scalars()
    return {(r.day, r.resource): (r.booked, r.capacity) for r in rows}


async def slot_booked(session, branch, slot):
    row = await session.get(ServiceSlotCapacity, (branch.id, slot))
    return row.booked if row else 0


async def appointments(session, branch):
    return (await session.execute(select(func.count()).select_from(ServiceAppointment)
                                  .where(ServiceAppointment.branch_id == branch.id))).scalar_one()


async def test_availability_estimates_and_offers_only_slots_that_fit(session):
    branch = await make_workshop(session)
    booking_service = BookingService(session)
    day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)
    result = await booking_service.availability(branch.code, day, ["OIL", "EVCHECK"])
    assert result.estimated_minutes == 90 and str(result.estimated_price) == "860.00"
    # Open 08:00-20:00, last check-in an hour before closing, every 15 minutes.
    assert len(result.slots) == 45 and all(s.remaining_checkins == 4 for s in result.slots)
    assert result.slots[0].start.hour == 8 and result.next_available == []
    with pytest.raises(Invalid) as unknown:
        await booking_service.availability(branch.code, day, ["OIL", "WARP_DRIVE"])
    assert "WARP_DRIVE" in unknown.value.fields["operations"]
    with pytest.raises(Invalid) as past:
        await booking_service.availability(branch.code, day - timedelta(days=5), ["OIL"])
    assert "passed" in past.value.fields["date"]
    with pytest.raises(Invalid) as no_branch:
        await booking_service.availability("NOPE", day, ["OIL"])
    assert "branch" in no_branch.value.fields


async def test_a_day_without_ev_technicians_offers_no_ev_work_but_says_when(session):
    branch = await make_workshop(session, technicians=(("general",),),
                                 tech_hours={"mon": ["08:00", "16:00"], "tue": ["08:00", "16:00"],
                                             "wed": ["08:00", "16:00"], "thu": ["08:00", "16:00"],
                                             "fri": ["08:00", "16:00"], "sat": ["08:00", "16:00"],
                                             "sun": ["08:00", "16:00"]})
    day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)
    result = await BookingService(session).availability(branch.code, day, ["EVCHECK"])
    assert result.slots == [] and result.next_available == []  # nobody can do it in the next two weeks
    assert (await BookingService(session).availability(branch.code, day, ["OIL"])).slots


async def test_booking_takes_capacity_and_tells_the_customer(session, redis):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch, ["OIL", "EVCHECK"])
    view = await BookingService(session, redis).book(booking(branch, slot, ["OIL", "EVCHECK"], plate="沪a·12345"),
                                                     ip="198.51.100.1")
    a = view.appointment
    assert a.status == "booked" and a.source == "online" and a.slot_start == slot
    assert a.resources == {"labour": 90, "bays": 90, "skill:ev": 60, "checkin": 1}
    assert view.vehicle.plate == "沪A12345" and [op.code for op in view.operations] == ["OIL", "EVCHECK"]
    day = rules.local_day(slot, branch.timezone)
    state = await counters(session, branch)
    assert state[(day, "labour")] == (90, 960) and state[(day, "skill:ev")] == (60, 480)
    assert state[(day, "bays")][0] == 90 and await slot_booked(session, branch, slot) == 1
    # The token opens this appointment, and only its hash is stored.
    link = await customers.resolve_tracking_link(session, view.token)
    assert (link.record_type, link.record_id, link.customer_id) == ("service_appointment", a.id, a.customer_id)
    assert len(view.token) >= 22  # 128 bits and more
    notification = (await session.execute(select(Notification).where(
        Notification.key == f"service_appointment:{a.id}:booked:customer"))).scalar_one()
    assert notification.template == "service_appointment.booked"
    assert view.token not in notification.url  # the link is sealed at rest and opened at send time
    assert delivery.link_of(notification) == f"/track/{view.token}"
    reminder = (await session.execute(select(ScheduledTask).where(
        ScheduledTask.key == f"service_appointment:{a.id}:reminder"))).scalar_one()
    assert reminder.due_at == slot - timedelta(hours=24) and reminder.payload["recipient_id"] == a.customer_id
    assert view.token not in reminder.payload["url"]  # sealed in the task row too
    audit = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "service_appointment",
                                                            AuditEntry.entity_id == str(a.id)))).scalar_one()
    assert audit.action == "create" and audit.after["operations"] == ["OIL", "EVCHECK"]


@pytest.mark.parametrize("change, field", [
    ({"plate": "沪A1234"}, "plate"),
    ({"plate": None, "vin": "1M8GDM9A1KP042788"}, "vin"),  # wrong check digit
    ({"plate": None, "vin": None}, "plate"),
    ({"phone": "12345"}, "phone"),
    ({"email": "not an address"}, "email"),
    ({"privacy_consent": False}, "privacy_consent"),
    ({"operations": ["OIL", "NOT_IN_CATALOGUE"]}, "operations"),
    ({"source": "walk_in"}, "source"),  # only staff record walk-ins
])
async def test_bad_input_is_refused_and_changes_nothing(session, redis, change, field):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch)
    before = await counters(session, branch)
    with pytest.raises(Invalid) as refused:
        await BookingService(session, redis).book(booking(branch, slot, **change))
    assert field in refused.value.fields and refused.value.fields[field]
    assert await counters(session, branch) == before and await appointments(session, branch) == 0


async def test_slots_in_the_past_too_soon_or_off_the_grid_are_refused(session, redis):
    branch = await make_workshop(session)
    slot = await free_slot(session, branch)
    booking_service = BookingService(session, redis)
    for wrong, words in ((slot - timedelta(days=3), "passed"), (slot + timedelta(minutes=7), "offered"),
                         (slot + timedelta(days=90), "days ahead"), (utcnow() + timedelta(minutes=20), "")):
        with pytest.raises(Invalid) as refused:
            await booking_service.book(booking(branch, wrong))
        assert words in refused.value.fields["slot"]
    assert await appointments(session, branch) == 0


async def test_mileage_lower_than_the_last_recorded_is_refused(session, redis):
    branch = await make_workshop(session)
    session.add(ServiceVehicle(plate="沪B54321", last_mileage_km=30000))
    await session.flush()
    slot = await free_slot(session, branch)
    with pytest.raises(Invalid) as refused:
        await BookingService(session, redis).book(booking(branch, slot, plate="沪B54321", mileage_km=29999))
    assert "lower than the last" in refused.value.fields["mileage_km"] and "30000" not in refused.value.message
    staff = await advisor(session, redis, branch)
    with pytest.raises(Invalid) as for_staff:
        await BookingService(session, redis).book(booking(branch, slot, plate="沪B54321", mileage_km=100),
                                                  principal=staff)
    assert "30000" in for_staff.value.message  # staff are told the number
    view = await BookingService(session, redis).book(booking(branch, slot, plate="沪B54321", mileage_km=30000))
    assert view.vehicle.last_mileage_km == 30000


TWO_HOURS = {d: ["08:00", "10:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def test_the_last_technician_minutes_go_to_one_booking_and_the_next_gets_409_with_other_slots(session, redis):
    branch = await make_workshop(session, technicians=(("general",),), tech_hours=TWO_HOURS)
    slots = [await free_slot(session, branch, index=n) for n in range(5)]
    booking_service = BookingService(session, redis)
    for slot in slots[:4]:  # 4 x 30 minutes fill the day's 120
        await booking_service.book(booking(branch, slot))
    day = rules.local_day(slots[0], branch.timezone)
    before = await counters(session, branch)
    assert before[(day, "labour")] == (120, 120)
    with pytest.raises(Conflict) as full:
        await booking_service.book(booking(branch, slots[4]))
    offered = full.value.extra["next_slots"]
    assert len(offered) == 3 and all(s["start"][:10] > day.isoformat() for s in offered)
    assert await counters(session, branch) == before and await appointments(session, branch) == 4
    assert await slot_booked(session, branch, slots[4]) == 0
    # The day is no longer offered; the next one is.
    availability = await booking_service.availability(branch.code, day, ["OIL"])
    assert availability.slots == [] and availability.next_available[0].start.isoformat() == offered[0]["start"]


async def test_four_checkins_per_quarter_hour_then_the_neighbouring_slots(session, redis):
    branch = await make_workshop(session, checkins_per_slot=4)
    slot = await free_slot(session, branch, index=10)
    booking_service = BookingService(session, redis)
    for _ in range(4):
        await booking_service.book(booking(branch, slot))
    with pytest.raises(Conflict) as taken:
        await booking_service.book(booking(branch, slot))
    starts = [s["start"] for s in taken.value.extra["next_slots"]]
    assert slot.isoformat() not in starts and len(starts) == 3
    assert await slot_booked(session, branch, slot) == 4 and await appointments(session, branch) == 4


async def test_an_idempotency_key_returns_the_first_booking(session, redis):
    branch = await make_workshop(session)
    data = booking(branch, await free_slot(session, branch))
    booking_service = BookingService(session, redis)
    first = await booking_service.book(data, idempotency_key="retry-key-0001")
    again = await booking_service.book(data, idempotency_key="retry-key-0001")
    assert again.replayed and not first.replayed
    assert again.appointment.id == first.appointment.id and again.token == first.token
    assert await appointments(session, branch) == 1
    stored = (await session.execute(select(BookingIdempotency))).scalars().all()
    assert len(stored) == 1 and first.token.encode() not in stored[0].response  # sealed, not readable
    assert "retry-key-0001" not in stored[0].key_hash
    with pytest.raises(Invalid) as reused:
        await booking_service.book(booking(branch, data.slot), idempotency_key="retry-key-0001")
    assert "different booking" in reused.value.message
    with pytest.raises(Invalid):
        await booking_service.book(data, idempotency_key="short")


async def test_public_bookings_are_rate_limited_per_address(session, redis, monkeypatch):
    monkeypatch.setattr(service, "BOOKINGS_PER_IP", 2)
    branch = await make_workshop(session)
    booking_service = BookingService(session, redis)
    for n in range(2):
        await booking_service.book(booking(branch, await free_slot(session, branch, index=n)), ip="192.0.2.9")
    with pytest.raises(RateLimited):
        await booking_service.book(booking(branch, await free_slot(session, branch, index=3)), ip="192.0.2.9")
    await booking_service.book(booking(branch, await free_slot(session, branch, index=3)), ip="192.0.2.10")
    staff = await advisor(session, redis, branch)  # staff are not limited
    await booking_service.book(booking(branch, await free_slot(session, branch, index=4)), principal=staff,
                               ip="192.0.2.9")


async def test_an_existing_customer_is_found_by_phone_and_never_changed_by_the_public_form(session, redis):
    branch = await make_workshop(session)
    phone = a_phone()
    existing = await customers.create_customer(session, branch_id=branch.id, name="Original", phone=phone,
                                               email="original@example.test")
    view = await book(session, branch, phone=phone, name="Somebody Else", email="other@example.test", redis=redis)
    assert view.appointment.customer_id == existing.id
    customer = await session.get(Customer, existing.id)
    assert (customer.name, customer.email) == ("Original", "original@example.test")


async def test_staff_book_by_phone_without_notice_and_only_at_their_branch(session, redis):
    branch = await make_workshop(session, min_notice=240)
    other = await make_workshop(session)
    staff = await advisor(session, redis, branch)
    day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=1)
    slot = (await BookingService(session).availability(branch.code, day, ["OIL"], staff=True)).slots[0].start
    view = await BookingService(session, redis).book(booking(branch, slot), principal=staff)
    assert view.appointment.source == "phone" and view.appointment.created_by_label == staff.email
    with pytest.raises(Invalid) as elsewhere:
        await BookingService(session, redis).book(booking(other, await free_slot(session, other)), principal=staff)
    assert "own branch" in elsewhere.value.message


async def test_reschedule_moves_the_capacity_and_the_reminder(session, redis):
    branch = await make_workshop(session)
    view = await book(session, branch, ["OIL", "EVCHECK"], redis=redis)
    old = view.appointment.slot_start
    new = await free_slot(session, branch, ["OIL", "EVCHECK"], days_ahead=3, index=4)
    moved = await BookingService(session, redis).reschedule(view.appointment.id, new, token=view.token)
    assert moved.appointment.slot_start == new
    state = await counters(session, branch)
    assert state[(rules.local_day(old, branch.timezone), "labour")][0] == 0
    assert state[(rules.local_day(new, branch.timezone), "labour")][0] == 90
    assert state[(rules.local_day(new, branch.timezone), "skill:ev")][0] == 60
    assert await slot_booked(session, branch, old) == 0 and await slot_booked(session, branch, new) == 1
    reminder = (await session.execute(select(ScheduledTask).where(
        ScheduledTask.key == f"service_appointment:{view.appointment.id}:reminder"))).scalar_one()
    assert reminder.due_at == new - timedelta(hours=24)
    with pytest.raises(Invalid):
        await BookingService(session, redis).reschedule(view.appointment.id, new - timedelta(days=10))


async def test_reschedule_into_a_full_slot_changes_nothing(session, redis):
    branch = await make_workshop(session, checkins_per_slot=1)
    full = await free_slot(session, branch, index=2)
    await BookingService(session, redis).book(booking(branch, full))
    view = await book(session, branch, redis=redis, index=5)
    before = await counters(session, branch)
    with pytest.raises(Conflict) as refused:
        await BookingService(session, redis).reschedule(view.appointment.id, full)
    assert refused.value.extra["next_slots"]
    assert await counters(session, branch) == before
    assert (await session.get(ServiceAppointment, view.appointment.id)).slot_start == view.appointment.slot_start


async def test_cancel_gives_the_capacity_back_once(session, redis):
    branch = await make_workshop(session)
    view = await book(session, branch, redis=redis)
    day = rules.local_day(view.appointment.slot_start, branch.timezone)
    await BookingService(session, redis).cancel(view.appointment.id, customer_label="customer", token=view.token)
    assert (await counters(session, branch))[(day, "labour")][0] == 0
    assert (await session.get(ServiceAppointment, view.appointment.id)).status == "cancelled"
    task = (await session.execute(select(ScheduledTask).where(
        ScheduledTask.key == f"service_appointment:{view.appointment.id}:reminder"))).scalar_one()
    assert task.status == "cancelled"
    with pytest.raises(Conflict) as twice:
        await BookingService(session, redis).cancel(view.appointment.id)
    assert "can no longer be changed" in twice.value.message
    assert (await counters(session, branch))[(day, "labour")][0] == 0


async def test_the_database_refuses_an_overbooked_counter_even_without_the_condition(session):
    branch = await make_workshop(session)
    day = rules.local_day(utcnow(), branch.timezone) + timedelta(days=2)
    await BookingService(session).plan_capacity(branch, [day])
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            await session.execute(text("UPDATE service_day_capacity SET booked = capacity + 1 "
                                       "WHERE branch_id = :b AND resource = 'labour'"), {"b": branch.id})


async def test_replanning_never_drops_capacity_below_what_is_booked(session, redis):
    branch = await make_workshop(session, technicians=(("general",),), tech_hours=TWO_HOURS)
    view = await book(session, branch, redis=redis)
    day = rules.local_day(view.appointment.slot_start, branch.timezone)
    from backend.domains.service_booking.models import ServiceTechnician

    for tech in (await session.execute(select(ServiceTechnician).where(
            ServiceTechnician.branch_id == branch.id))).scalars():
        tech.active = False
    await session.flush()
    await BookingService(session).plan_capacity(branch, [day])
    assert (await counters(session, branch))[(day, "labour")] == (30, 30)


async def test_plate_and_vin_of_two_different_cars_are_refused(session, redis):
    branch = await make_workshop(session)
    session.add_all([ServiceVehicle(plate="沪C11111"), ServiceVehicle(vin="1M8GDM9AXKP042788")])
    await session.flush()
    with pytest.raises(Invalid) as refused:
        await book(session, branch, plate="沪C11111", vin="1M8GDM9AXKP042788", redis=redis)
    assert "do not match" in refused.value.fields["vin"]


async def test_a_holiday_closes_the_day_for_new_bookings_and_keeps_the_booked_ones(session, redis):
    from backend.domains.branches.models import BranchHoliday

    branch = await make_workshop(session)
    booking_service = BookingService(session, redis)
    slot = await free_slot(session, branch)
    kept = await booking_service.book(booking(branch, slot))
    day = rules.local_day(slot, branch.timezone)
    session.add(BranchHoliday(branch_id=branch.id, day=day, name="Dragon Boat Festival"))
    await session.flush()

    result = await booking_service.availability(branch.code, day, ["OIL"])
    assert result.slots == [] and result.next_available
    assert all(rules.local_day(s.start, branch.timezone) > day for s in result.next_available)
    before = await appointments(session, branch)
    with pytest.raises(Invalid) as refused:
        await booking_service.book(booking(branch, slot + timedelta(minutes=15)))
    assert "closed on that day" in refused.value.fields["slot"]
    assert await appointments(session, branch) == before
    assert (await session.get(ServiceAppointment, kept.appointment.id)).status == "booked"
    # The next day is open as usual.
    assert (await booking_service.availability(branch.code, day + timedelta(days=1), ["OIL"])).slots
