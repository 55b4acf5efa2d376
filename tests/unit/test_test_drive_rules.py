"""Pure rules of test drives: life cycle, lead stages, the slot grid, who is free, licences, odometers,
reminders and the follow-up. No database."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.domains.test_drives import rules
from backend.domains.test_drives.rules import DriveStatus, LeadStage, SalespersonSpec
from backend.lib import i18n
from backend.lib.settings import get_settings

SHANGHAI = "Asia/Shanghai"
TZ = ZoneInfo(SHANGHAI)
WEEK = {d: ["09:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}
MONDAY = date(2030, 6, 3)


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")
    yield
    i18n.set_locale(get_settings().default_locale)


def at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


# -- life cycle and lead ------------------------------------------------------------------------


@pytest.mark.parametrize("current, target, allowed", [
    ("booked", "checked_out", True), ("booked", "no_show", True), ("booked", "cancelled", True),
    ("booked", "confirmed", True),
    ("confirmed", "checked_out", True), ("confirmed", "no_show", True), ("confirmed", "cancelled", True),
    ("checked_out", "returned", True), ("returned", "followed_up", True),
    ("booked", "returned", False), ("checked_out", "cancelled", False), ("cancelled", "booked", False),
    ("no_show", "checked_out", False), ("returned", "checked_out", False), ("booked", "teleported", False),
    ("confirmed", "returned", False), ("confirmed", "booked", False), ("cancelled", "confirmed", False),
    ("checked_out", "confirmed", False), ("no_show", "confirmed", False), ("returned", "confirmed", False),
])
def test_life_cycle(current, target, allowed):
    problem = rules.transition_problem(current, target)
    assert (problem is None) is allowed
    if not allowed:
        assert "cannot become" in problem


def test_booked_confirmed_and_checked_out_drives_hold_car_and_salesperson():
    assert set(rules.ACTIVE) == {DriveStatus.BOOKED, DriveStatus.CONFIRMED, DriveStatus.CHECKED_OUT}
    assert set(rules.UPCOMING) == {DriveStatus.BOOKED, DriveStatus.CONFIRMED}


def test_the_busy_query_names_exactly_the_states_that_hold_car_and_salesperson():
    """The slot maths' SQL spells the statuses out; it must offer no slot the exclusion constraints refuse."""
    from backend.domains.test_drives.models import ACTIVE_SQL
    from backend.domains.test_drives.repository import TEAM_AND_BUSY_SQL

    assert ACTIVE_SQL == "status IN ('booked', 'confirmed', 'checked_out')"
    assert "d." + ACTIVE_SQL in str(TEAM_AND_BUSY_SQL)


def test_confirmed_is_labelled_in_both_languages():
    assert rules.status_label("confirmed") == "Confirmed"
    i18n.set_locale("zh_CN")
    assert rules.status_label("confirmed") != "Confirmed"  # the word service appointments use too


@pytest.mark.parametrize("status, start_hours, problem", [
    ("booked", 2, None), ("confirmed", 2, None),  # twice is fine: nothing changes
    ("booked", -1, "has passed"), ("confirmed", -1, "has passed"), ("booked", 0, "has passed"),
    ("cancelled", 2, "“Cancelled” and can no longer be confirmed"),
    ("checked_out", 0, "“On the road” and can no longer be confirmed"),
    ("no_show", -1, "“No-show” and can no longer be confirmed"),
    ("returned", -1, "“Returned”"), ("followed_up", -30, "“Followed up”"),
])
def test_only_a_drive_still_to_happen_can_be_confirmed(status, start_hours, problem):
    now = at(10)
    found = rules.confirm_problem(status, now + timedelta(hours=start_hours), now)
    if problem is None:
        assert found is None
    else:
        assert problem in found


@pytest.mark.parametrize("current, after_booking", [
    (None, "test_drive"), ("new", "test_drive"), ("contacted", "test_drive"), ("presented", "test_drive"),
    ("test_drive", "test_drive"), ("negotiating", "negotiating"), ("contracted", "contracted"),
    ("lost", "lost"), ("delivered", "delivered"),
])
def test_a_booking_moves_a_lead_forward_never_back(current, after_booking):
    assert rules.lead_stage_after_booking(current) == after_booking


@pytest.mark.parametrize("current, interest, after", [
    ("test_drive", 5, "negotiating"), ("test_drive", 4, "negotiating"), ("test_drive", 3, "test_drive"),
    ("test_drive", 1, "test_drive"), ("new", 2, "test_drive"), ("contracted", 5, "contracted"),
    ("negotiating", 1, "negotiating"), ("lost", 5, "lost"),
])
def test_a_keen_customer_moves_to_negotiating_after_the_drive(current, interest, after):
    assert rules.lead_stage_after_return(current, interest) == after
    assert LeadStage(after)


# -- the grid -----------------------------------------------------------------------------------


def test_grid_runs_from_opening_while_the_drive_ends_by_closing():
    grid = rules.slot_grid(MONDAY, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30)
    assert grid[0] == at(9) and grid[-1] == at(17, 30) and len(grid) == 18
    assert all(s.tzinfo is not None for s in grid)
    long_drive = rules.slot_grid(MONDAY, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=60)
    assert long_drive[-1] == at(17)
    assert rules.slot_grid(MONDAY + timedelta(days=6), WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30) == []
    assert rules.slot_grid(MONDAY, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30, holidays=[MONDAY]) == []


def test_grid_in_another_time_zone_is_local_to_the_branch():
    grid = rules.slot_grid(MONDAY, WEEK, "Europe/Berlin", slot_minutes=60, drive_minutes=30)
    assert grid[0].astimezone(UTC).hour == 7  # 09:00 in Berlin in summer


def test_blocked_interval_includes_the_buffer():
    start, end, until = rules.blocked(at(10), 30, 15)
    assert (start, end, until) == (at(10), at(10, 30), at(10, 45))
    assert rules.overlaps((at(10), at(10, 45)), (at(10, 30), at(11)))
    assert not rules.overlaps((at(10), at(10, 45)), (at(10, 45), at(11, 30)))  # half-open, like tstzrange '[)'


def test_free_slots_respect_car_buffer_and_salespeople():
    grid = rules.slot_grid(MONDAY, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30)
    li = SalespersonSpec(1, WEEK)
    # The car is out 10:00-10:45 (drive plus buffer): 09:30 would run into it, 10:00 and 10:30 overlap it.
    free = rules.free_slots(grid, drive_minutes=30, buffer_minutes=15, car_busy=[(at(10), at(10, 45))],
                            salespeople=[li], tz=SHANGHAI, earliest=at(9))
    starts = [s.start for s in free]
    assert at(9) in starts and at(9, 30) not in starts and at(10) not in starts and at(10, 30) not in starts
    assert at(11) in starts and free[0].end == at(9, 30)
    # The only salesperson is out 14:00-14:45: nobody to sit beside the customer then.
    busy_li = SalespersonSpec(1, WEEK, busy=((at(14), at(14, 45)),))
    starts = [s.start for s in rules.free_slots(grid, drive_minutes=30, buffer_minutes=15, car_busy=[],
                                                salespeople=[busy_li], tz=SHANGHAI, earliest=at(9))]
    assert at(13) in starts and at(13, 30) not in starts and at(14) not in starts and at(15) in starts
    # A second salesperson covers it.
    wang = SalespersonSpec(2, WEEK)
    starts = [s.start for s in rules.free_slots(grid, drive_minutes=30, buffer_minutes=15, car_busy=[],
                                                salespeople=[busy_li, wang], tz=SHANGHAI, earliest=at(9))]
    assert at(14) in starts
    # Nobody at work: no slot at all. Earliest, limit and exclude.
    assert rules.free_slots(grid, drive_minutes=30, buffer_minutes=15, car_busy=[], salespeople=[], tz=SHANGHAI,
                            earliest=at(9)) == []
    limited = rules.free_slots(grid, drive_minutes=30, buffer_minutes=15, car_busy=[], salespeople=[wang],
                               tz=SHANGHAI, earliest=at(12, 1), limit=2, exclude=at(12, 30))
    assert [s.start for s in limited] == [at(13), at(13, 30)]


def test_salespeople_must_work_for_the_whole_drive_and_the_least_busy_come_first():
    mornings = {d: ["09:00", "12:00"] for d in ("mon", "tue")}
    early = SalespersonSpec(7, mornings)
    busy = SalespersonSpec(3, WEEK, busy=((at(9), at(9, 45)),))
    idle = SalespersonSpec(5, WEEK)
    assert rules.free_salespeople(at(11), 30, 15, [early, busy, idle], SHANGHAI) == [5, 7, 3]
    assert rules.free_salespeople(at(11, 30), 30, 15, [early, idle], SHANGHAI) == [5, 7]  # ends 12:00: fine
    assert rules.free_salespeople(at(11, 45), 30, 15, [early, idle], SHANGHAI) == [5]
    assert rules.free_salespeople(at(9, 30), 30, 15, [busy], SHANGHAI) == []


def test_the_current_slot_of_a_walk_in():
    grid = rules.slot_grid(MONDAY, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30)
    assert rules.current_slot(at(10, 10), grid, 30) == at(10)
    assert rules.current_slot(at(8, 50), grid, 30) is None


# -- refusals of a slot -----------------------------------------------------------------------------


def problem(slot, now=None, walk_in=False, min_notice=60, holidays=()):
    now = now or at(8, day=MONDAY - timedelta(days=1))
    day = slot.astimezone(TZ).date() if slot.tzinfo else slot.date()
    grid = rules.slot_grid(day, WEEK, SHANGHAI, slot_minutes=30, drive_minutes=30, holidays=holidays)
    window = rules.opening_window(day, WEEK, SHANGHAI, holidays)
    return rules.slot_problem(slot, grid=grid, window=window, now=now, min_notice_minutes=min_notice,
                              horizon_days=30, slot_minutes=30, drive_minutes=30, tz=SHANGHAI, walk_in=walk_in)


def test_slot_problems_each_say_what_to_do():
    assert problem(at(10)) is None
    assert "time zone" in problem(at(10).replace(tzinfo=None))
    assert "already passed" in problem(at(10), now=at(11))
    assert "minutes ahead" in problem(at(10), now=at(9, 30))
    assert "up to 30 days ahead" in problem(at(10, day=MONDAY + timedelta(days=40)))
    assert "closed" in problem(at(10, day=MONDAY + timedelta(days=6)))  # a Sunday
    assert "closed" in problem(at(10), holidays=[MONDAY])
    assert "opening hours (9:00\u202fAM–6:00\u202fPM)" in problem(at(8, 30))
    assert "opening hours" in problem(at(17, 45))  # the drive would end after closing
    assert "every 30 minutes" in problem(at(10, 10))
    assert problem(at(10), now=at(10, 12), walk_in=True) is None  # the slot running now, for a walk-in
    assert "already passed" in problem(at(10), now=at(10, 31), walk_in=True)
    # Seconds off the grid are off the grid, but the same instant in another zone is the same slot.
    assert "every 30 minutes" in problem(at(10) + timedelta(seconds=1))
    assert problem(at(10).astimezone(UTC)) is None


def test_day_problems():
    assert rules.day_problem(MONDAY, today=MONDAY, horizon_days=30) is None
    assert "passed" in rules.day_problem(MONDAY - timedelta(days=1), today=MONDAY, horizon_days=30)
    assert "30 days" in rules.day_problem(MONDAY + timedelta(days=31), today=MONDAY, horizon_days=30)


# -- licence, odometer, timing ----------------------------------------------------------------------


def test_licence_number_is_normalized_and_masked():
    assert rules.normalize_licence(" 3101 0119 9001 0112 3x ") == "31010119900101123X"
    assert rules.normalize_licence("ＡＢ-１２３４５６") == "AB123456"
    assert rules.mask_licence("123X") == "••••123X"
    assert rules.mask_licence(None) == ""


def test_licence_problems():
    today = date(2030, 6, 3)
    assert rules.licence_problems("31010119900101123X", today, today) == {}  # valid on its last day
    expired = rules.licence_problems("31010119900101123X", today - timedelta(days=1), today)
    assert list(expired) == ["licence_expiry"] and "expired on June 2, 2030" in expired["licence_expiry"]
    assert "licence_number" in rules.licence_problems("12-3", today, today)
    assert "licence_number" in rules.licence_problems("A" * 25, today, today)
    assert "licence_expiry" in rules.licence_problems("AB123456", None, today)


def test_odometer_rules():
    assert rules.odometer_out_problem(1200, 1100) is None and rules.odometer_out_problem(1200, None) is None
    assert "last recorded mileage (1100 km)" in rules.odometer_out_problem(1000, 1100)
    assert rules.odometer_out_problem(-1, None) and rules.odometer_out_problem(3_000_000, None)
    assert rules.odometer_in_problem(1215, 1200) is None and rules.odometer_in_problem(1200, 1200) is None
    assert "cannot be lower" in rules.odometer_in_problem(1199, 1200)
    assert "check the reading" in rules.odometer_in_problem(9000, 1200)


def test_check_out_and_no_show_timing():
    assert rules.check_out_problem(at(9, 5), at(10), SHANGHAI) is None
    assert "too early" in rules.check_out_problem(at(8, 55), at(10), SHANGHAI)
    assert rules.no_show_problem(at(10, 1), at(10), SHANGHAI) is None
    assert "has passed" in rules.no_show_problem(at(9, 59), at(10), SHANGHAI)


# -- reminders and follow-up ------------------------------------------------------------------------


def test_reminders_only_when_still_ahead():
    start = at(15)
    assert rules.reminder_times(start, at(9, day=MONDAY - timedelta(days=2))) == [
        ("24h", start - timedelta(hours=24)), ("2h", start - timedelta(hours=2))]
    assert rules.reminder_times(start, at(9)) == [("2h", at(13))]
    assert rules.reminder_times(start, at(13, 30)) == []


def test_follow_up_is_the_next_local_morning():
    late = datetime(2030, 6, 3, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    assert rules.follow_up_at(late, SHANGHAI) == at(10, day=MONDAY + timedelta(days=1))
    assert rules.follow_up_at(datetime(2030, 6, 3, 16, 30, tzinfo=UTC), SHANGHAI) == at(10, day=MONDAY + timedelta(
        days=2))  # 00:30 on Tuesday local: the follow-up is Wednesday morning


def test_lock_keys_make_overlapping_bookings_queue_and_others_not():
    car = rules.CAR_LOCKS

    def keys(start, end, resource=7):
        return set(rules.lock_keys(car, resource, start, end))

    nine = keys(at(9), at(9, 45))
    assert len(nine) == 3 and sorted(rules.lock_keys(car, 7, at(9), at(9, 45))) == rules.lock_keys(car, 7, at(9),
                                                                                                        at(9, 45))
    assert nine & keys(at(9, 30), at(10, 15))  # overlapping: they share a bucket
    assert nine & keys(at(9, 44), at(9, 50))
    assert not nine & keys(at(9, 45), at(10, 30))  # back to back on the grid: independent
    assert not nine & keys(at(14), at(14, 45))
    assert not nine & keys(at(9), at(9, 45), resource=8)  # another car
    assert not nine & set(rules.lock_keys(rules.SALESPERSON_LOCKS, 7, at(9), at(9, 45)))  # a salesperson
    assert all(0 < k < 2**63 for k in nine)
