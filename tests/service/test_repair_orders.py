"""Repair orders against the real PostgreSQL and Redis: check-in, the life cycle with who and when,
technicians' clocks, findings with photos, the customer's approvals, tracking links and the lookup."""

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from backend.domains.customers import service as customers
from backend.domains.notifications import delivery
from backend.domains.notifications.models import Notification
from backend.domains.repair_orders import photos, service
from backend.domains.repair_orders.models import (
    RepairOrder,
    RepairOrderClock,
    RepairOrderEvent,
    RepairOrderFinding,
    RepairOrderLabour,
    RepairOrderPart,
)
from backend.domains.repair_orders.schemas import CheckInIn, FindingIn, PartIn, WalkInIn
from backend.domains.repair_orders.service import RepairOrderService
from backend.domains.scheduler.models import ScheduledTask
from backend.domains.service_booking.models import ServiceAppointment, ServiceDayCapacity, ServiceVehicle
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from tests.factories import as_principal, make_user
from tests.workshop import (  # noqa: F401 - english and media_in_tmp are fixtures
    advisor,
    book,
    checked_in,
    english,
    make_workshop,
    media_in_tmp,
    png,
    technician_user,
)

pytestmark = pytest.mark.usefixtures("media_in_tmp", "english")


async def notified(session, key):
    return (await session.execute(select(Notification).where(Notification.key == key))).scalar_one_or_none()


async def lines(session, order):
    return (await session.execute(select(RepairOrderLabour).where(RepairOrderLabour.repair_order_id == order.id)
                                  .order_by(RepairOrderLabour.id))).scalars().all()


async def events(session, order):
    return [(e.from_status, e.to_status, e.actor_kind, e.actor_label) for e in (await session.execute(
        select(RepairOrderEvent).where(RepairOrderEvent.repair_order_id == order.id)
        .order_by(RepairOrderEvent.id))).scalars()]


async def decision_of(session, finding_id):
    return (await session.execute(select(RepairOrderFinding.decision).where(RepairOrderFinding.id == finding_id))
            ).scalar_one()


def finding(description="Replace front brake discs", hours="1.2", parts="860"):
    return FindingIn(description=description, note="Worn below the limit", labour_hours=Decimal(hours),
                     parts_price=Decimal(parts))


async def test_check_in_turns_the_appointment_into_a_repair_order(session, redis):
    branch = await make_workshop(session)
    order, staff, view = await checked_in(session, redis, branch, ["OIL", "INSPECT"])
    assert order.number.startswith(f"{branch.code}-") and order.status == "open" and order.version == 1
    assert order.advisor_id == staff.id and order.appointment_id == view.appointment.id
    assert (await session.get(ServiceAppointment, view.appointment.id)).status == "checked_in"
    labour = await lines(session, order)
    assert [(ln.name_en, ln.standard_hours, ln.price) for ln in labour] == [
        ("OIL op", Decimal("0.50"), Decimal("240.00")), ("INSPECT op", Decimal("1.50"), Decimal("980.00"))]
    parts = (await session.execute(select(RepairOrderPart).where(RepairOrderPart.repair_order_id == order.id))
             ).scalars()
    assert [(p.part_number, p.unit_cost, p.unit_price) for p in parts] == [("OIL-4L", Decimal("180.00"),
                                                                             Decimal("320.00"))]
    assert await events(session, order) == [(None, "open", "staff", staff.name)]
    assert (await session.get(ServiceVehicle, view.vehicle.id)).last_mileage_km == 20000
    told = await notified(session, f"repair_order:{order.id}:checked_in:customer")
    url = delivery.link_of(told)  # sealed at rest
    assert told.template == "repair_order.checked_in" and url.startswith("/track/") and url not in told.url
    link = await customers.resolve_tracking_link(session, url.rsplit("/", 1)[1])
    assert (link.record_type, link.record_id) == ("repair_order", order.id)
    # The appointment's own link now shows the repair order.
    _link, seen, appointment = await RepairOrderService(session).tracked(view.token)
    assert seen.order.id == order.id and appointment is None


async def test_check_in_refusals_change_nothing(session, redis):
    branch = await make_workshop(session)
    staff = await advisor(session, redis, branch)
    orders = RepairOrderService(session, redis)
    later = utcnow() + timedelta(hours=4)
    session.add(ServiceVehicle(plate="沪D99999", last_mileage_km=50000))
    await session.flush()
    second = await book(session, branch, redis=redis, plate="沪D99999", mileage_km=50000, index=3)
    with pytest.raises(Invalid) as odometer:
        await orders.check_in(staff, second.appointment.id, CheckInIn(mileage_km=49000, promised_at=later))
    assert "50000" in odometer.value.fields["mileage_km"]
    with pytest.raises(Invalid) as past:
        await orders.check_in(staff, second.appointment.id, CheckInIn(mileage_km=50100,
                                                                      promised_at=utcnow() - timedelta(hours=1)))
    assert "future" in past.value.fields["promised_at"]
    with pytest.raises(Invalid) as photo:
        await orders.check_in(staff, second.appointment.id, CheckInIn(mileage_km=50100, promised_at=later),
                              [b"GIF89a not really"])
    assert "photo" in photo.value.fields
    other_branch = await make_workshop(session)
    with pytest.raises(NotFound):
        await orders.check_in(await advisor(session, redis, other_branch), second.appointment.id,
                              CheckInIn(mileage_km=50100, promised_at=later))
    assert (await session.execute(select(func.count()).select_from(RepairOrder)
                                  .where(RepairOrder.branch_id == branch.id))).scalar_one() == 0
    assert (await session.get(ServiceAppointment, second.appointment.id)).status == "booked"
    order = await orders.check_in(staff, second.appointment.id, CheckInIn(mileage_km=50100, promised_at=later),
                                  [png()])
    with pytest.raises(Conflict) as twice:
        await orders.check_in(staff, second.appointment.id, CheckInIn(mileage_km=50100, promised_at=later))
    assert "already been checked in" in twice.value.message
    view = await orders.for_staff(staff, order.id)
    [damage] = view.damage_photos
    assert photos.path_for(damage.file_key, thumbnail=True).is_file()


async def test_walk_in_is_booked_into_today_and_checked_in_at_once(session, redis):
    branch = await make_workshop(session)
    staff = await advisor(session, redis, branch)
    order = await RepairOrderService(session, redis).walk_in(staff, WalkInIn(
        branch=branch.code, operations=["OIL"], plate="沪E12345", mileage_km=1000, name="Walk In", phone="13912345678",
        privacy_consent=True, promised_at=utcnow() + timedelta(hours=2), concerns="Noise"))
    appointment = await session.get(ServiceAppointment, order.appointment_id)
    assert appointment.source == "walk_in" and appointment.status == "checked_in"
    assert appointment.resources["checkin"] == 0 and order.concerns == "Noise"
    counter = (await session.execute(select(ServiceDayCapacity).where(
        ServiceDayCapacity.branch_id == branch.id, ServiceDayCapacity.day == appointment.day,
        ServiceDayCapacity.resource == "labour"))).scalar_one()
    assert counter.booked == 30
    assert await notified(session, f"service_appointment:{appointment.id}:booked:customer") is None
    with pytest.raises(Invalid):
        await RepairOrderService(session, redis).walk_in(staff, WalkInIn(
            branch=branch.code, operations=["OIL"], plate="沪E12346", mileage_km=1000, name="Late", phone="13912345679",
            privacy_consent=True, promised_at=utcnow() - timedelta(hours=1)))
    assert (await session.execute(select(func.count()).select_from(ServiceAppointment).where(
        ServiceAppointment.branch_id == branch.id))).scalar_one() == 1


async def test_life_cycle_moves_are_timestamped_with_who_and_refused_when_not_allowed(session, redis):
    branch = await make_workshop(session)
    order, staff, _view = await checked_in(session, redis, branch)
    orders = RepairOrderService(session, redis)
    await orders.move(staff, order.id, "diagnosing", version=1)
    assert (order.status, order.version) == ("diagnosing", 2)
    with pytest.raises(Conflict) as stale:
        await orders.move(staff, order.id, "in_progress", version=1)
    assert "Someone else changed" in stale.value.message and stale.value.extra["current_version"] == 2
    with pytest.raises(Conflict) as jump:
        await orders.move(staff, order.id, "ready_for_pickup")
    assert "cannot become" in jump.value.message
    with pytest.raises(Conflict) as nothing_to_approve:
        await orders.move(staff, order.id, "awaiting_approval")
    assert "no extra work" in nothing_to_approve.value.message
    tech = await technician_user(session, redis, branch)
    with pytest.raises(Forbidden):
        await orders.move(tech, order.id, "cancelled")
    assert (order.status, order.version) == ("diagnosing", 2)
    other = await advisor(session, redis, await make_workshop(session))
    with pytest.raises(NotFound):
        await orders.move(other, order.id, "in_progress")
    await orders.move(staff, order.id, "cancelled", note="Customer changed their mind")
    history = await events(session, order)
    assert history[-1] == ("diagnosing", "cancelled", "staff", staff.name) and len(history) == 3
    with pytest.raises(Conflict) as final:
        await orders.move(staff, order.id, "open")
    assert "can no longer change" in final.value.message


async def test_technician_clocks_work_one_job_at_a_time_and_finishing_goes_to_quality_check(session, redis):
    branch = await make_workshop(session)
    order, staff, _view = await checked_in(session, redis, branch, ["OIL", "EVCHECK"])
    second, _s, _v = await checked_in(session, redis, branch, ["INSPECT"], staff=staff, index=2)
    tech = await technician_user(session, redis, branch, skills=("general",))
    orders = RepairOrderService(session, redis)
    oil, ev = await lines(session, order)
    with pytest.raises(Conflict) as skill:
        await orders.start_clock(tech, ev.id)
    assert "skill" in skill.value.message
    await orders.start_clock(tech, oil.id)
    assert order.status == "in_progress" and oil.technician_id is not None and oil.status == "in_progress"
    [inspect] = await lines(session, second)
    with pytest.raises(Conflict) as busy:
        await orders.start_clock(tech, inspect.id)
    assert "already running" in busy.value.message
    clock = await orders.stop_clock(tech)
    assert clock.stopped_at >= clock.started_at and oil.clocked_minutes >= 0
    with pytest.raises(Conflict):
        await orders.stop_clock(tech)
    await orders.finish_line(tech, oil.id)
    assert order.status == "in_progress"  # the EV check is still to do
    ev_tech = await technician_user(session, redis, branch, skills=("general", "ev"))
    await orders.start_clock(ev_tech, ev.id)
    await orders.finish_line(ev_tech, ev.id)
    assert order.status == "quality_check"
    assert (await session.execute(select(func.count()).select_from(RepairOrderClock)
                                  .where(RepairOrderClock.stopped_at.is_(None),
                                         RepairOrderClock.technician_id == ev.technician_id))).scalar_one() == 0
    with pytest.raises(Forbidden):
        await orders.start_clock(staff, inspect.id)  # an advisor is not a technician


async def test_findings_go_to_the_customer_and_answers_are_recorded_item_by_item(session, redis):
    branch = await make_workshop(session, labour_rate="400.00")
    order, staff, view = await checked_in(session, redis, branch, ["INSPECT"])
    tech = await technician_user(session, redis, branch)
    orders = RepairOrderService(session, redis)
    [inspect] = await lines(session, order)
    await orders.start_clock(tech, inspect.id)
    await orders.stop_clock(tech)
    discs = await orders.report_finding(tech, order.id, finding(), png())
    assert order.status == "awaiting_approval" and discs.price == Decimal("1340.00")
    wipers = await orders.report_finding(tech, order.id, finding("Wiper blades", "0.1", "120"))
    assert await notified(session, f"repair_order:{order.id}:awaiting_approval:3:customer")
    with pytest.raises(Conflict):  # still waiting: the order cannot move on
        await orders.move(staff, order.id, "in_progress")

    customer_id, discs_id, wipers_id = order.customer_id, discs.id, wipers.id  # rolled-back savepoints expire rows
    await orders.decide(order.id, [(discs.id, "approve")], customer_id=customer_id)
    assert order.status == "awaiting_approval"
    with pytest.raises(Conflict) as again:
        await orders.decide(order.id, [(wipers_id, "decline"), (discs_id, "decline")], customer_id=customer_id)
    assert "already answered" in again.value.message
    assert await decision_of(session, wipers_id) == "pending"  # all or nothing
    with pytest.raises(NotFound):
        await orders.decide(order.id, [(999999, "approve")], customer_id=customer_id)
    with pytest.raises(Invalid):
        await orders.decide(order.id, [(wipers_id, "maybe")], customer_id=customer_id)

    await orders.decide(order.id, [(wipers_id, "decline")], customer_id=customer_id)
    await session.refresh(order)
    assert order.status == "in_progress"
    answered = {f.id: (f.decision, f.decided_at is not None, f.decided_by) for f in (await session.execute(
        select(RepairOrderFinding).where(RepairOrderFinding.repair_order_id == order.id))).scalars()}
    assert answered == {discs_id: ("approved", True, "customer (tracking link)"),
                        wipers_id: ("declined", True, "customer (tracking link)")}
    labour = await lines(session, order)
    assert [(ln.name_en, ln.price, ln.origin) for ln in labour][1:] == [
        ("Replace front brake discs", Decimal("480.00"), "extra")]
    assert (await events(session, order))[-1][1:3] == ("in_progress", "customer")
    assert await notified(session, f"repair_order:{order.id}:answered:{order.version}:staff")
    full = await orders.for_staff(staff, order.id)
    assert full.totals.total == Decimal("980.00") + Decimal("1340.00") and full.totals.pending == 0
    assert photos.path_for(full.photo_key(discs.photo_id), thumbnail=False).is_file()


async def test_a_bad_photo_refuses_the_finding_and_changes_nothing(session, redis):
    branch = await make_workshop(session)
    order, staff, _view = await checked_in(session, redis, branch)
    tech = await technician_user(session, redis, branch)
    orders = RepairOrderService(session, redis)
    await orders.start_clock(tech, (await lines(session, order))[0].id)
    for upload in (b"", b"%PDF-1.7 not a photo", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40):
        with pytest.raises(Invalid) as refused:
            await orders.report_finding(tech, order.id, finding(), upload or b" ")
        assert refused.value.fields["photo"]
    assert order.status == "in_progress"
    assert (await session.execute(select(func.count()).select_from(RepairOrderFinding).where(
        RepairOrderFinding.repair_order_id == order.id))).scalar_one() == 0


async def test_ready_for_pickup_tells_the_customer_and_delivery_schedules_the_survey(session, redis):
    branch = await make_workshop(session)
    order, staff, view = await checked_in(session, redis, branch)
    orders = RepairOrderService(session, redis)
    tech = await technician_user(session, redis, branch)
    [line] = await lines(session, order)
    await orders.start_clock(tech, line.id)
    await orders.finish_line(tech, line.id)
    await orders.move(staff, order.id, "ready_for_pickup")
    ready = await notified(session, f"repair_order:{order.id}:ready_for_pickup:{order.version}:customer")
    assert ready.template == "repair_order.ready" and ready.recipient_id == order.customer_id
    await orders.move(staff, order.id, "delivered")
    assert order.delivered_at is not None
    survey = (await session.execute(select(ScheduledTask).where(
        ScheduledTask.key == f"repair_order:{order.id}:survey"))).scalar_one()
    assert survey.payload["template"] == "repair_order.survey"
    assert timedelta(days=2, hours=23) < survey.due_at - utcnow() <= timedelta(days=3)
    await orders.answer_survey(view.token, 9, "Quick and friendly")
    assert order.survey_score == 9
    with pytest.raises(Conflict):
        await orders.answer_survey(view.token, 3, "")


async def test_parts_and_assignment(session, redis):
    branch = await make_workshop(session)
    order, staff, _view = await checked_in(session, redis, branch, ["EVCHECK"])
    orders = RepairOrderService(session, redis)
    part = await orders.add_part(staff, order.id, PartIn(part_number="HV-FUSE", description="HV fuse",
                                                         quantity=Decimal(2), unit_cost=Decimal(40),
                                                         unit_price=Decimal(95)))
    assert part.origin == "added" and order.version == 2
    [line] = await lines(session, order)
    general_only = await technician_user(session, redis, branch, skills=("general",))
    with pytest.raises(Invalid) as skill:
        await orders.assign(staff, line.id, (await orders.technician_for(general_only)).id)
    assert "skill" in skill.value.fields["technician_id"]
    ev = await technician_user(session, redis, branch, skills=("general", "ev"))
    assigned = await orders.assign(staff, line.id, (await orders.technician_for(ev)).id)
    assert assigned.technician_id == (await orders.technician_for(ev)).id
    foreign = await technician_user(session, redis, await make_workshop(session))
    with pytest.raises(Invalid):
        await orders.assign(staff, line.id, (await orders.technician_for(foreign)).id)
    _tech, jobs = await orders.my_jobs(ev)
    assert [j.line.id for j in jobs] == [line.id] and jobs[0].mine
    _tech, foreign_jobs = await orders.my_jobs(foreign)
    assert foreign_jobs == []


async def test_tracking_links_show_only_their_own_record(session, redis):
    branch = await make_workshop(session)
    first, _staff, first_view = await checked_in(session, redis, branch)
    second, _staff2, second_view = await checked_in(session, redis, branch, index=2)
    orders = RepairOrderService(session, redis)
    _link, view, _a = await orders.tracked(first_view.token)
    assert view.order.id == first.id
    for bad in (None, "", "x" * 101, "not-a-token", first_view.token[:-1] + ("A" if first_view.token[-1] != "A"
                                                                             else "B")):
        with pytest.raises(NotFound):
            await orders.tracked(bad)
    # A link cannot answer another order's items.
    tech = await technician_user(session, redis, branch)
    await orders.start_clock(tech, (await lines(session, second))[0].id)
    item = await orders.report_finding(tech, second.id, finding())
    with pytest.raises(NotFound):
        await orders.decide_by_link(first_view.token, [(item.id, "approve")])
    assert await decision_of(session, item.id) == "pending"
    await orders.decide_by_link(second_view.token, [(item.id, "approve")])
    # Expired and revoked links open nothing.
    await customers.revoke_tracking_link(session, second_view.token)
    with pytest.raises(NotFound):
        await orders.tracked(second_view.token)


async def test_lookup_needs_the_number_and_the_phone_or_plate_and_always_answers_alike(session, redis):
    branch = await make_workshop(session)
    order, _staff, view = await checked_in(session, redis, branch)
    orders = RepairOrderService(session, redis)
    phone, plate = view.customer.phone, view.vehicle.plate
    token = await orders.lookup(order.number.lower(), phone=f"+86 {phone}", plate=None, ip="203.0.113.1")
    assert (await orders.tracked(token))[1].order.id == order.id
    assert await orders.lookup(order.number, phone=None, plate=plate.replace(plate[:2], plate[:2] + "·"),
                               ip="203.0.113.1")
    messages = set()
    for number, phone_, plate_ in ((order.number, "13000000000", None), (order.number, None, "沪Z99999"),
                                   ("SH99-000001", phone, None), ("garbage", phone, None),
                                   (order.number, "not a phone", None)):
        with pytest.raises(NotFound) as miss:
            await orders.lookup(number, phone=phone_, plate=plate_, ip="203.0.113.2")
        messages.add(miss.value.message)
    assert len(messages) == 1
    for _ in range(service.LOOKUPS_PER_IP - 5):
        with pytest.raises(NotFound):
            await orders.lookup(order.number, phone="13000000000", plate=None, ip="203.0.113.2")
    with pytest.raises(RateLimited):  # even the right answer, once the address is over the limit
        await orders.lookup(order.number, phone=phone, plate=None, ip="203.0.113.2")


async def test_board_shows_the_day_and_open_orders_by_status(session, redis):
    branch = await make_workshop(session)
    order, staff, view = await checked_in(session, redis, branch)
    waiting = await book(session, branch, redis=redis, index=4)
    orders = RepairOrderService(session, redis)
    board = await orders.board(staff, view.appointment.day)
    assert board["branch"].id == branch.id
    assert {a.appointment.id for a in board["appointments"]} == {view.appointment.id, waiting.appointment.id}
    assert [o.id for o, _v, _c in board["columns"]["open"]] == [order.id]
    assert board["labour_booked"] == 60
    sales = as_principal(await make_user(session, redis, role="sales", branch=branch))
    assert (await orders.board(sales, None))["branch"].id == branch.id  # the screen's guard keeps sales out
