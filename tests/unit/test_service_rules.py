"""Pure rules of the service half: plates, VINs, slot maths, capacity, estimates, the repair-order life
cycle, approvals and totals. No database."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from backend.domains.repair_orders import rules as ro
from backend.domains.repair_orders.rules import OrderFacts, Status
from backend.domains.service_booking import rules
from backend.domains.service_booking.rules import OperationSpec, SlotState, TechnicianSpec
from backend.lib import i18n

SHANGHAI = "Asia/Shanghai"
WEEK = {d: ["08:30", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")} | {"sun": None}


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


# -- plates and VINs ----------------------------------------------------------------------------


@pytest.mark.parametrize("typed, normalized", [
    ("沪A12345", "沪A12345"),
    ("沪a 12345", "沪A12345"),
    ("浙A·D12345", "浙AD12345"),
    ("浙Ａ・Ｄ１２３４５".replace("・", "·"), "浙AD12345"),  # full-width, as some phone keyboards type
    ("粤B-12345D", "粤B12345D"),
])
def test_plates_are_normalized_and_accepted(typed, normalized):
    assert rules.normalize_plate(typed) == normalized
    assert rules.plate_problem(normalized) is None


@pytest.mark.parametrize("plate", [
    "沪A1234",  # one character short
    "沪A1234567",  # too long
    "XA12345",  # no province
    "沪112345",  # the city code is a letter
    "沪AI2345",  # I is never used
    "沪AO2345",  # nor O
    "浙AX123456",  # 6 characters but not a new-energy pattern
    "浙AD1234X",  # small NEV: the last four are digits
    "",
])
def test_bad_plates_are_refused_with_a_message(plate):
    problem = rules.plate_problem(rules.normalize_plate(plate))
    assert problem and isinstance(problem, str)


def test_special_plates_and_display():
    assert rules.plate_problem("粤Z1234港") is None
    assert rules.plate_problem("沪A1234学") is None
    assert rules.display_plate("浙AD12345") == "浙A·D12345"
    assert rules.display_plate(None) == ""


def test_vin_reuses_the_iso_3779_check_digit():
    good = "1M8GDM9AXKP042788"  # the textbook example: its check digit is X
    assert rules.vin_problem(rules.normalize_vin(" 1m8gdm9axkp 042788 ")) is None
    assert "check digit" in rules.vin_problem(good[:8] + "1" + good[9:])
    assert "17 characters" in rules.vin_problem("LSVAU2180")
    assert "I, O or Q" in rules.vin_problem("LSVAU2180N21832I4")


# -- estimates and capacity ---------------------------------------------------------------------

OIL = OperationSpec("OIL", Decimal("0.5"), Decimal("560"), "general")
BATTERY = OperationSpec("EV", Decimal("1.0"), Decimal("300"), "ev")
ODD = OperationSpec("ODD", Decimal("0.33"), Decimal("99.995"), "tyres")


def test_minutes_round_up_and_requirements_count_skills():
    assert rules.minutes_for(Decimal("0.5")) == 30
    assert rules.minutes_for(Decimal("0.33")) == 20
    assert rules.minutes_for(Decimal("0.25")) == 15
    assert rules.minutes_for(Decimal("1.01")) == 61
    assert rules.requirements([OIL, BATTERY]) == {"labour": 90, "bays": 90, "skill:ev": 60}
    assert rules.requirements([OIL]) == {"labour": 30, "bays": 30}


def test_estimate_and_labour_share():
    assert rules.estimate([OIL, BATTERY, ODD]) == (110, Decimal("960.00"))
    parts = [{"quantity": "1", "unit_price": "320"}, {"quantity": 2, "unit_price": "30.005"}]
    assert rules.parts_total(parts) == Decimal("380.01")
    assert rules.labour_price(Decimal("560"), parts) == Decimal("179.99")
    assert rules.labour_price(Decimal("100"), parts) == Decimal("0.00")  # never negative


def test_day_capacity_sums_working_technicians_by_skill_and_bays():
    monday, sunday = date(2026, 11, 30), date(2026, 11, 29)
    techs = [TechnicianSpec(("general", "ev"), {"mon": ["08:30", "17:30"]}),
             TechnicianSpec(("general",), {"mon": ["09:00", "13:00"], "sun": ["09:00", "17:00"]})]
    capacity = rules.day_capacity(monday, techs, bays=3, opening_hours=WEEK)
    assert capacity["labour"] == 9 * 60 + 4 * 60
    assert capacity["skill:ev"] == 9 * 60 and capacity["skill:tyres"] == 0
    assert capacity["bays"] == 3 * (9 * 60 + 30)
    # The branch is closed on Sunday: nobody's hours count.
    assert set(rules.day_capacity(sunday, techs, bays=3, opening_hours=WEEK).values()) == {0}
    # A holiday closes a working day the same way.
    assert set(rules.day_capacity(monday, techs, bays=3, opening_hours=WEEK, holiday=True).values()) == {0}


def test_checkin_slots_follow_opening_hours_in_the_branch_zone():
    slots = rules.checkin_slots(date(2026, 11, 30), WEEK, SHANGHAI, 15, 60)
    assert slots[0] == datetime(2026, 11, 30, 8, 30, tzinfo=ZoneInfo(SHANGHAI))
    assert slots[-1] == datetime(2026, 11, 30, 17, 0, tzinfo=ZoneInfo(SHANGHAI))
    assert len(slots) == 35
    assert slots[0].astimezone(UTC).hour == 0  # 08:30 in Shanghai is 00:30 UTC
    assert rules.checkin_slots(date(2026, 11, 29), WEEK, SHANGHAI, 15, 60) == []
    assert rules.checkin_slots(date(2026, 11, 30), WEEK, SHANGHAI, 15, 60, holiday=True) == []


def test_free_slots_need_a_checkin_place_and_every_resource():
    day = date(2026, 11, 30)
    at = [datetime(2026, 11, 30, h, 0, tzinfo=ZoneInfo(SHANGHAI)) for h in (9, 10, 11)]
    slots = [SlotState(at[0], 0), SlotState(at[1], 2), SlotState(at[2], 1)]
    needed = {"labour": 90, "bays": 90, "skill:ev": 60}
    roomy = {day: {"labour": 100, "bays": 500, "skill:ev": 60}}
    assert [s.start for s in rules.free_slots(slots, roomy, needed, tz=SHANGHAI, earliest=at[0])] == at[1:]
    assert rules.free_slots(slots, roomy, needed, tz=SHANGHAI, earliest=at[0], limit=1)[0].start == at[1]
    assert [s.start for s in rules.free_slots(slots, roomy, needed, tz=SHANGHAI, earliest=at[2])] == at[2:]
    no_ev = {day: {"labour": 100, "bays": 500, "skill:ev": 59}}
    assert rules.free_slots(slots, no_ev, needed, tz=SHANGHAI, earliest=at[0]) == []
    assert rules.free_slots(slots, {}, needed, tz=SHANGHAI, earliest=at[0]) == []  # unknown day: nothing
    assert rules.free_slots(slots, roomy, needed, tz=SHANGHAI, earliest=at[0], exclude=at[1])[0].start == at[2]


def test_slot_problems():
    now = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    valid = rules.checkin_slots(date(2026, 11, 30), WEEK, SHANGHAI, 15, 60)
    ok = datetime(2026, 11, 30, 11, 0, tzinfo=ZoneInfo(SHANGHAI))
    kwargs = {"valid_slots": valid, "now": now, "min_notice_minutes": 60, "horizon_days": 60}
    assert rules.slot_problem(ok, **kwargs) is None
    assert "passed" in rules.slot_problem(datetime(2026, 11, 30, 8, 30, tzinfo=ZoneInfo(SHANGHAI)), **kwargs)
    assert "60 minutes ahead" in rules.slot_problem(datetime(2026, 11, 30, 9, 30, tzinfo=ZoneInfo(SHANGHAI)),
                                                    **kwargs)
    assert "offered" in rules.slot_problem(datetime(2026, 11, 30, 11, 7, tzinfo=ZoneInfo(SHANGHAI)), **kwargs)
    assert "60 days" in rules.slot_problem(ok + timedelta(days=61), **kwargs)
    assert "time zone" in rules.slot_problem(datetime(2026, 11, 30, 11, 0), **kwargs)


def test_walk_in_takes_the_current_slot():
    valid = rules.checkin_slots(date(2026, 11, 30), WEEK, SHANGHAI, 15, 60)
    assert rules.walk_in_slot(datetime(2026, 11, 30, 10, 7, tzinfo=ZoneInfo(SHANGHAI)), valid).minute == 0
    assert rules.walk_in_slot(datetime(2026, 11, 30, 7, 0, tzinfo=ZoneInfo(SHANGHAI)), valid) == valid[0]
    assert rules.walk_in_slot(datetime(2026, 11, 30, 20, 0, tzinfo=ZoneInfo(SHANGHAI)), valid) == valid[-1]
    assert rules.walk_in_slot(datetime(2026, 11, 30, 10, 0, tzinfo=UTC), []) is None


def test_mileage_and_day_problems():
    assert rules.mileage_problem(20000, 19000, show_last=False) is None
    assert rules.mileage_problem(20000, None, show_last=False) is None
    assert "19,000" not in rules.mileage_problem(18000, 19000, show_last=False)  # the public never learns it
    assert "19000" in rules.mileage_problem(18000, 19000, show_last=True)
    assert rules.mileage_problem(-1, None, show_last=True)
    assert rules.day_problem(date(2026, 11, 29), today=date(2026, 11, 30), horizon_days=60)
    assert rules.day_problem(date(2027, 3, 1), today=date(2026, 11, 30), horizon_days=60)
    assert rules.day_problem(date(2026, 11, 30), today=date(2026, 11, 30), horizon_days=60) is None


def test_counters_are_always_updated_in_one_order():
    keys = [(date(2026, 12, 2), "labour"), (date(2026, 12, 1), "skill:ev"), (date(2026, 12, 1), "bays")]
    assert rules.counter_order(keys) == [(date(2026, 12, 1), "bays"), (date(2026, 12, 1), "skill:ev"),
                                         (date(2026, 12, 2), "labour")]


def test_appointment_transitions():
    assert rules.appointment_transition_problem("booked", "confirmed") is None
    assert rules.appointment_transition_problem("confirmed", "checked_in") is None
    assert "cannot become" in rules.appointment_transition_problem("cancelled", "booked")
    assert rules.appointment_transition_problem("checked_in", "no_show")
    assert rules.appointment_transition_problem("booked", "nonsense")


# -- the repair-order life cycle ----------------------------------------------------------------


def test_the_whole_happy_path_is_allowed():
    path = [Status.OPEN, Status.DIAGNOSING, Status.AWAITING_APPROVAL, Status.AWAITING_PARTS, Status.IN_PROGRESS,
            Status.QUALITY_CHECK, Status.READY_FOR_PICKUP, Status.DELIVERED]
    facts = {Status.AWAITING_APPROVAL: OrderFacts(pending_approvals=1)}
    for current, target in zip(path, path[1:], strict=False):
        assert ro.transition_problem(current, target, facts.get(target, OrderFacts())) is None, (current, target)


@pytest.mark.parametrize("current, target, fragment", [
    (Status.OPEN, Status.READY_FOR_PICKUP, "cannot become"),
    (Status.DELIVERED, Status.IN_PROGRESS, "can no longer change"),
    (Status.CANCELLED, Status.OPEN, "can no longer change"),
    (Status.READY_FOR_PICKUP, Status.CANCELLED, "cannot become"),
    (Status.IN_PROGRESS, Status.IN_PROGRESS, "already"),
    (Status.QUALITY_CHECK, Status.DELIVERED, "cannot become"),
    ("in_progress", "flying", "Unknown status"),
])
def test_transitions_not_allowed(current, target, fragment):
    assert fragment in ro.transition_problem(current, target)


def test_guards_approvals_clocks_and_open_work():
    assert "no extra work" in ro.transition_problem(Status.DIAGNOSING, Status.AWAITING_APPROVAL, OrderFacts())
    waiting = OrderFacts(pending_approvals=2)
    assert "2 waiting" in ro.transition_problem(Status.AWAITING_APPROVAL, Status.IN_PROGRESS, waiting)
    assert ro.transition_problem(Status.AWAITING_APPROVAL, Status.CANCELLED, waiting) is None
    assert "clock" in ro.transition_problem(Status.IN_PROGRESS, Status.QUALITY_CHECK, OrderFacts(running_clocks=1))
    assert "not done" in ro.transition_problem(Status.IN_PROGRESS, Status.QUALITY_CHECK,
                                               OrderFacts(open_labour_lines=1))


def test_roles_and_automatic_moves():
    assert ro.role_may_move("service_advisor", Status.DELIVERED)
    assert ro.role_may_move("technician", Status.QUALITY_CHECK)
    assert not ro.role_may_move("technician", Status.READY_FOR_PICKUP)
    assert not ro.role_may_move("technician", Status.CANCELLED)
    assert not ro.role_may_move("sales", Status.IN_PROGRESS)
    assert ro.after_last_answer(Status.AWAITING_APPROVAL) == Status.IN_PROGRESS
    assert ro.after_last_answer(Status.IN_PROGRESS) is None
    assert ro.status_when_work_starts(Status.OPEN, "diagnosis") == Status.DIAGNOSING
    assert ro.status_when_work_starts(Status.OPEN, "general") == Status.IN_PROGRESS
    assert ro.status_when_work_starts(Status.IN_PROGRESS, "general") is None
    assert ro.status_when_last_line_done(Status.IN_PROGRESS) == Status.QUALITY_CHECK
    assert ro.status_when_last_line_done(Status.DIAGNOSING) is None


def test_decisions_prices_clocks_and_totals():
    assert ro.decision_from(" Approve ") == ro.Decision.APPROVED
    assert ro.decision_from("declined") == ro.Decision.DECLINED
    assert ro.decision_from("pending") is None and ro.decision_from("") is None
    assert ro.finding_price(Decimal("1.2"), Decimal("380"), Decimal("860")) == Decimal("1316.00")
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert ro.clocked_minutes(start, start + timedelta(minutes=42, seconds=40)) == 43
    assert ro.clocked_minutes(start, start + timedelta(seconds=5)) == 1
    assert ro.clocked_minutes(start, start) == 0
    totals = ro.totals([Decimal("180"), Decimal("456")],
                       [{"quantity": Decimal("1"), "unit_price": Decimal("320"), "unit_cost": Decimal("180")},
                        {"quantity": Decimal("2"), "unit_price": Decimal("30"), "unit_cost": None}],
                       [Decimal("1316")])
    assert (totals.labour, totals.parts, totals.total) == (Decimal("636.00"), Decimal("380.00"), Decimal("1016.00"))
    assert totals.parts_cost == Decimal("180.00") and totals.pending == Decimal("1316.00")


def test_repair_order_numbers():
    assert ro.ro_number("sh01", 42) == "SH01-000042"
    assert ro.normalize_ro_number(" sh01-000042 ") == "SH01-000042"
    assert ro.normalize_ro_number("SH01-42") is None
    assert ro.normalize_ro_number("'; drop table") is None
    assert all(ro.CUSTOMER_WORDS[s] for s in Status)


def test_customers_book_online_and_staff_record_phone_or_walk_in():
    from backend.domains.service_booking.rules import Source, booking_source

    assert booking_source(None, staff=False) is Source.ONLINE
    assert booking_source(Source.ONLINE, staff=False) is Source.ONLINE
    assert booking_source(Source.WALK_IN, staff=False) is None  # only staff may say so
    assert booking_source(None, staff=True) is Source.PHONE
    assert booking_source(Source.WALK_IN, staff=True) is Source.WALK_IN
