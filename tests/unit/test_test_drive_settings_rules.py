"""What a manager may choose for test drives: booking rules in ranges that cannot break booking, drive lengths,
and salespeople's hours in the stored form the slot maths reads."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.domains.test_drives import rules
from backend.lib import i18n
from backend.lib.settings import get_settings

GOOD = {"slot_minutes": 30, "drive_minutes": 30, "buffer_minutes": 15, "min_notice_minutes": 60, "horizon_days": 30}


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")
    yield
    i18n.set_locale(get_settings().default_locale)


def test_the_defaults_and_the_edges_of_each_range_are_accepted():
    assert rules.settings_problems(**GOOD) == {} and rules.settings_problems(**rules.DEFAULT_RULES) == {}
    assert rules.settings_problems(slot_minutes=15, drive_minutes=15, buffer_minutes=0, min_notice_minutes=0,
                                   horizon_days=1) == {}
    assert rules.settings_problems(slot_minutes=120, drive_minutes=240, buffer_minutes=120, min_notice_minutes=2880,
                                   horizon_days=90) == {}


@pytest.mark.parametrize(("field", "value", "words"), [
    ("slot_minutes", 20, "every 15, 30"),  # not a multiple of the 15-minute lock bucket
    ("slot_minutes", 0, "every 15, 30"),
    ("slot_minutes", 135, "every 15, 30"),
    ("drive_minutes", 10, "15 to 240 minutes"),
    ("drive_minutes", 245, "15 to 240 minutes"),
    ("drive_minutes", 32, "steps of 5"),
    ("buffer_minutes", 121, "0 to 120 minutes"),
    ("buffer_minutes", 7, "steps of 5"),
    ("buffer_minutes", -5, "0 to 120"),
    ("min_notice_minutes", 2881, "0 to 2880"),
    ("horizon_days", 0, "1 to 90 days"),
    ("horizon_days", 91, "1 to 90 days"),
])
def test_values_that_would_break_booking_are_refused_with_what_is_allowed(field, value, words):
    problems = rules.settings_problems(**(GOOD | {field: value}))
    assert list(problems) == [field] and words in problems[field]


def test_every_allowed_slot_length_is_a_whole_number_of_lock_buckets():
    assert rules.SLOT_CHOICES == (15, 30, 45, 60, 75, 90, 105, 120)
    assert all(m % rules.LOCK_BUCKET_MINUTES == 0 for m in rules.SLOT_CHOICES)
    # Each grid start of a branch opening on the quarter hour is the first instant of a lock bucket.
    hours = {d: ["08:30", "18:00"] for d in rules.WEEKDAYS}
    for minutes in rules.SLOT_CHOICES:
        grid = rules.slot_grid(date(2030, 5, 2), hours, "Asia/Shanghai", slot_minutes=minutes, drive_minutes=15)
        assert grid and all(int(s.timestamp()) % (rules.LOCK_BUCKET_MINUTES * 60) == 0 for s in grid)


def test_a_model_drive_length():
    assert rules.drive_minutes_problem(45) is None
    assert "15 to 240" in rules.drive_minutes_problem(250)
    assert "steps of 5" in rules.drive_minutes_problem(44)


def test_working_hours_are_stored_with_every_weekday():
    stored, problems = rules.working_hours_problems({"mon": ["09:00", "18:00"], "sat": ["10:00", "14:00"]})
    assert problems == {}
    assert stored == {"mon": ["09:00", "18:00"], "tue": None, "wed": None, "thu": None, "fri": None,
                      "sat": ["10:00", "14:00"], "sun": None}
    # Stored this way, the slot maths reads it: Monday at 10 yes, Tuesday no.
    zone = ZoneInfo("Asia/Shanghai")
    monday = datetime(2030, 5, 6, 10, tzinfo=zone)
    assert rules.works_during(stored, monday, monday + timedelta(minutes=30), "Asia/Shanghai")
    tuesday = monday + timedelta(days=1)
    assert not rules.works_during(stored, tuesday, tuesday + timedelta(minutes=30), "Asia/Shanghai")


def test_empty_hours_mean_the_branch_and_a_week_off_is_not_empty():
    assert rules.working_hours_problems(None) == ({}, {})
    assert rules.working_hours_problems({}) == ({}, {})
    off, problems = rules.working_hours_problems(dict.fromkeys(rules.WEEKDAYS))
    assert problems == {} and off == dict.fromkeys(rules.WEEKDAYS) and off  # truthy: not "the branch's hours"


@pytest.mark.parametrize(("hours", "field", "words"), [
    ({"mon": ["18:00", "09:00"]}, "mon", "after its start"),
    ({"tue": ["09:00", "09:00"]}, "tue", "after its start"),
    ({"wed": ["9", "18:00"]}, "wed", "e.g. 09:00"),
    ({"thu": ["09:00"]}, "thu", "e.g. 09:00"),
    ({"fri": ["09:00", ""]}, "fri", "e.g. 09:00"),
    ({"sat": ["24:00", "25:00"]}, "sat", "e.g. 09:00"),
    ({"sun": "09:00-18:00"}, "sun", "e.g. 09:00"),
    ({"monday": ["09:00", "18:00"]}, "working_hours", "Unknown weekday"),
])
def test_hours_that_cannot_be_read_are_refused_per_day(hours, field, words):
    _stored, problems = rules.working_hours_problems(hours)
    assert field in problems and words in problems[field]
