"""The customer confirms they are coming ("confirmed"), against the real PostgreSQL and Redis: on their link or
through a salesperson, once (a second time changes nothing), never for a drive that is over or whose time has
passed; a confirmed drive is checked out, marked a no-show, cancelled and reminded of like a booked one, holds
its car and salesperson like one, and goes back to booked when it is moved."""

from datetime import UTC, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from backend.domains.audit.models import AuditEntry
from backend.domains.branches import service as branches
from backend.domains.notifications.messages import render
from backend.domains.notifications.models import Notification
from backend.domains.scheduler import service as scheduler
from backend.domains.scheduler.models import ScheduledTask
from backend.domains.test_drives import models, rules
from backend.domains.test_drives.models import TestDrive
from backend.domains.test_drives.service import TestDriveService, violated_exclusion
from backend.lib.db import utcnow
from backend.lib.errors import Conflict, NotFound
from tests.factories import as_principal, make_user
from tests.showroom import (  # noqa: F401 - english, media_in_tmp: fixtures
    booking,
    check_out_data,
    demo_car,
    english,
    free_start,
    make_showroom,
    media_in_tmp,
)

pytestmark = pytest.mark.usefixtures("english", "media_in_tmp")


async def audit_of(session, drive_id: int, action: str = "confirm") -> list[AuditEntry]:
    return list((await session.execute(select(AuditEntry).where(
        AuditEntry.entity == "test_drive", AuditEntry.entity_id == str(drive_id), AuditEntry.action == action)
        .order_by(AuditEntry.id))).scalars())


async def notifications_of(session, drive_id: int) -> set[str]:
    return set((await session.execute(select(Notification.key).where(
        Notification.key.like(f"test_drive:{drive_id}:%")))).scalars())


async def booked(session, redis, **showroom_options):
    showroom = await make_showroom(session, redis, **showroom_options)
    car = await demo_car(session, showroom)
    view = await TestDriveService(session, redis).book(booking(car, await free_start(session, car, days_ahead=3)))
    return showroom, car, view


async def begins_now(session, drive: TestDrive) -> None:
    """The drive's time has come (started five minutes ago): check-out and no-show are possible."""
    start = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    drive.starts_at, drive.ends_at, drive.blocked_until = (start, start + timedelta(minutes=30),
                                                           start + timedelta(minutes=45))
    await session.flush()


# -- confirming ------------------------------------------------------------------------------------


async def test_the_customer_confirms_on_their_link_once_and_nobody_is_notified(session, redis):
    _showroom, _car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    sent_before = await notifications_of(session, view.drive.id)
    confirmed = await service.confirm_by_link(view.token)
    assert confirmed.drive.status == "confirmed" and confirmed.token == view.token
    stored = (await session.execute(select(TestDrive.status).where(TestDrive.id == view.drive.id))).scalar_one()
    assert stored == "confirmed"
    [entry] = await audit_of(session, view.drive.id)
    assert entry.actor_kind == "customer" and entry.actor_label == "customer (tracking link)"
    assert entry.before == {"status": "booked"} and entry.after == {"status": "confirmed"}
    again = await service.confirm_by_link(view.token)  # a second tap: the same answer, nothing recorded
    assert again.drive.status == "confirmed"
    assert len(await audit_of(session, view.drive.id)) == 1
    assert await notifications_of(session, view.drive.id) == sent_before  # the salesperson is not disturbed
    with pytest.raises(NotFound):
        await service.confirm_by_link("not-a-token")


async def test_a_salesperson_confirms_after_a_phone_call_at_their_own_branch_only(session, redis):
    showroom, _car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    stranger = as_principal(await make_user(session, redis, role="sales"))  # another branch
    with pytest.raises(NotFound):
        await service.staff_confirm(stranger, view.drive.id)
    assert (await session.get(TestDrive, view.drive.id)).status == "booked"
    confirmed = await service.staff_confirm(showroom.sales, view.drive.id)
    assert confirmed.drive.status == "confirmed"
    [entry] = await audit_of(session, view.drive.id)
    assert entry.actor_kind == "staff" and entry.actor_id == showroom.sales.id
    await service.staff_confirm(showroom.manager, view.drive.id)  # already confirmed: nothing changes
    assert len(await audit_of(session, view.drive.id)) == 1


async def test_a_drive_that_is_over_or_whose_time_has_passed_cannot_be_confirmed(session, redis):
    showroom, car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    await service.cancel(view.drive.id)
    with pytest.raises(Conflict) as cancelled:
        await service.confirm_by_link(view.token)
    assert "“Cancelled” and can no longer be confirmed" in cancelled.value.message
    assert cancelled.value.extra["current_status"] == "cancelled"

    late = await service.book(booking(car, await free_start(session, car, days_ahead=4)))
    await begins_now(session, late.drive)
    with pytest.raises(Conflict) as passed:
        await service.staff_confirm(showroom.sales, late.drive.id)
    assert "has passed" in passed.value.message

    await service.check_out(showroom.sales, late.drive.id, check_out_data())
    with pytest.raises(Conflict) as out:
        await service.confirm_by_link(late.token)
    assert "“On the road”" in out.value.message
    for drive_id in (view.drive.id, late.drive.id):
        assert await audit_of(session, drive_id) == []
    assert (await session.get(TestDrive, late.drive.id)).status == "checked_out"


# -- a confirmed drive behaves like a booked one ----------------------------------------------------


async def test_a_confirmed_drive_is_checked_out_like_a_booked_one(session, redis):
    showroom, _car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    await service.confirm_by_link(view.token)
    await begins_now(session, view.drive)
    out = await service.check_out(showroom.sales, view.drive.id, check_out_data())
    assert out.drive.status == "checked_out"
    [entry] = await audit_of(session, view.drive.id, "check_out")
    assert entry.before == {"status": "confirmed"}


async def test_a_confirmed_customer_who_does_not_come_is_a_no_show(session, redis):
    showroom, _car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    await service.staff_confirm(showroom.sales, view.drive.id)
    with pytest.raises(Conflict):  # not before the start, confirmed or not
        await service.no_show(showroom.sales, view.drive.id)
    await begins_now(session, view.drive)
    gone = await service.no_show(showroom.sales, view.drive.id)
    assert gone.drive.status == "no_show"
    [entry] = await audit_of(session, view.drive.id, "no_show")
    assert entry.before == {"status": "confirmed"}


async def test_a_confirmed_drive_is_cancelled_by_the_customer_or_by_staff(session, redis):
    showroom, car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    await service.confirm_by_link(view.token)
    cancelled = await service.cancel_by_link(view.token)
    assert cancelled.drive.status == "cancelled"
    assert (await audit_of(session, view.drive.id, "cancel"))[0].before == {"status": "confirmed"}
    other = await service.book(booking(car, await free_start(session, car, days_ahead=5)))
    await service.staff_confirm(showroom.sales, other.drive.id)
    assert (await service.staff_cancel(showroom.sales, other.drive.id)).drive.status == "cancelled"
    pending = (await session.execute(select(func.count()).select_from(ScheduledTask).where(
        ScheduledTask.record_id.in_([view.drive.id, other.drive.id]),
        ScheduledTask.status == "pending"))).scalar_one()
    assert pending == 0  # no reminder for a cancelled drive, confirmed before or not


async def test_a_moved_drive_is_booked_again_until_the_customer_confirms_the_new_time(session, redis):
    _showroom, _car, view = await booked(session, redis, salespeople=2)
    service = TestDriveService(session, redis)
    await service.confirm_by_link(view.token)
    later = view.drive.starts_at + timedelta(hours=2)
    moved = await service.reschedule_by_link(view.token, later)
    assert moved.drive.status == "booked" and moved.drive.starts_at == later
    [entry] = await audit_of(session, view.drive.id, "reschedule")
    assert entry.before["status"] == "confirmed" and entry.after["status"] == "booked"
    assert (await service.confirm_by_link(view.token)).drive.status == "confirmed"  # the new time, confirmed
    assert len(await audit_of(session, view.drive.id)) == 2


async def test_a_confirmed_drive_still_holds_its_car_and_salesperson(session, redis):
    showroom, car, view = await booked(session, redis, salespeople=2)
    service = TestDriveService(session, redis)
    await service.confirm_by_link(view.token)
    start = view.drive.starts_at
    with pytest.raises(Conflict) as taken:  # the API answers this with a 409
        await service.book(booking(car, start))
    assert "just taken" in taken.value.message and taken.value.extra["next_slots"]
    day = rules.local_day(start, showroom.branch.timezone)
    assert start not in [s.start for s in (await service.availability(car.id, day)).slots]
    # The database itself: an overlapping drive of the same car is refused by the exclusion constraint.
    drive = view.drive
    other = next(p for p in showroom.salespeople if p.id != drive.salesperson_id)
    with pytest.raises(IntegrityError) as refused:
        async with session.begin_nested():
            await session.execute(text(
                "INSERT INTO test_drive (reference, branch_id, vehicle_id, salesperson_id, customer_id, status, "
                "source, starts_at, ends_at, blocked_until, created_by_label, key_handed_over, return_notes, "
                "follow_up_note, customer_comment) VALUES ('CONF1', :branch, :vehicle, :person, :customer, "
                "'booked', 'online', :start, :end, :until, 'test', false, '', '', '')"),
                {"branch": drive.branch_id, "vehicle": car.id, "person": other.id, "customer": drive.customer_id,
                 "start": start + timedelta(minutes=10), "end": start + timedelta(minutes=40),
                 "until": start + timedelta(minutes=55)})
    assert violated_exclusion(refused.value) == models.VEHICLE_BUSY
    # A new holiday on that day warns about it like about any drive still to happen.
    assert (await branches.bookings_on(session, showroom.branch, day))[0] == 1


async def test_reminders_still_go_out_and_the_day_before_asks_to_confirm_unless_done(session, redis):
    _showroom, _car, view = await booked(session, redis)
    service = TestDriveService(session, redis)
    start = view.drive.starts_at.astimezone(UTC)
    unconfirmed = render("test_drive.reminder_24h", service.params(view), "en")
    assert "Please confirm with one tap on your page" in unconfirmed.body
    await service.confirm_by_link(view.token)
    await scheduler.run_due(session, now=start - timedelta(hours=24) + timedelta(seconds=1))
    key = f"test_drive:{view.drive.id}:reminder_24h:{start.isoformat()}:customer"
    sent = (await session.execute(select(Notification).where(Notification.key == key))).scalar_one()
    message = render(sent.template, sent.params, "en")
    assert "Thank you for confirming" in message.body and "Please confirm" not in message.body
    assert await service.remind(view.drive.id, "2h", start.isoformat())  # the 2 h one too
