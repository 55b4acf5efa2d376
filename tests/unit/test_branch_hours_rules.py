"""Pure rules of a manager's opening hours and holidays: what is refused and why, the stored shape."""

from datetime import UTC, date, datetime, timedelta

from backend.domains.branches import rules
from backend.domains.branches.rules import HolidayProblem, HoursProblem

WEEK = {"mon": ["09:00", "18:00"], "tue": ["09:00", "18:00"], "wed": ["09:00", "18:00"], "thu": ["09:00", "18:00"],
        "fri": ["09:00", "18:00"], "sat": ["10:00", "16:00"], "sun": None}


def test_a_good_week_has_no_problems_and_keeps_the_stored_shape():
    assert rules.opening_hours_problems(WEEK) == {}
    stored = rules.normalized_hours(dict(reversed(WEEK.items())) | {"sat": ("10:00", "16:00")})
    assert list(stored) == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert stored["sat"] == ["10:00", "16:00"] and stored["sun"] is None
    # What the existing grids read still accepts it.
    assert rules.validate_opening_hours(stored) == stored


def test_each_bad_day_is_named_with_its_problem():
    week = WEEK | {"mon": ["18:00", "09:00"], "tue": ["09:00", "09:00"], "wed": ["9am", "18:00"],
                   "thu": ["09:00", "24:00"], "fri": ["09:00"], "sat": "09:00-18:00"}
    del week["sun"]
    assert rules.opening_hours_problems(week) == {
        "mon": HoursProblem.CLOSE_NOT_AFTER_OPEN, "tue": HoursProblem.CLOSE_NOT_AFTER_OPEN,
        "wed": HoursProblem.BAD_TIME, "thu": HoursProblem.BAD_TIME, "fri": HoursProblem.BAD_SHAPE,
        "sat": HoursProblem.BAD_SHAPE, "sun": HoursProblem.BAD_SHAPE}
    assert rules.opening_hours_problems(WEEK | {"mon": ["09:00:00", "18:00"]}) == {"mon": HoursProblem.BAD_TIME}
    assert rules.opening_hours_problems(WEEK | {"mon": [9, 18]}) == {"mon": HoursProblem.BAD_TIME}
    assert rules.opening_hours_problems(WEEK | {"mon": ["00:00", "23:59"]}) == {}


def test_the_form_becomes_a_week():
    form = {f"{d}_open": "08:30" for d in rules.WEEKDAYS} | {f"{d}_close": "17:30" for d in rules.WEEKDAYS}
    form |= {"sun_closed": "on", "sat_open": " 10:00 ", "sat_close": ""}
    week = rules.hours_from_form(form)
    assert week["mon"] == ["08:30", "17:30"] and week["sun"] is None and week["sat"] == ["10:00", ""]
    assert rules.opening_hours_problems(week) == {"sat": HoursProblem.BAD_TIME}
    assert rules.hours_from_form({})["mon"] == ["", ""]


def test_holidays_may_be_today_but_not_in_the_past_and_names_are_short():
    today = date(2026, 5, 1)
    assert rules.holiday_problems(today, "Labour Day", today) == {}
    assert rules.holiday_problems(today - timedelta(days=1), "", today) == {"date": HolidayProblem.IN_THE_PAST}
    assert rules.holiday_problems(today, "x" * 121, today) == {"name": HolidayProblem.NAME_TOO_LONG}
    assert rules.holiday_problems(today, "x" * 120, today) == {}


def test_the_local_day_and_its_bounds_follow_the_branch_zone():
    late_utc = datetime(2026, 4, 30, 20, 0, tzinfo=UTC)  # already 1 May in Shanghai
    assert rules.local_today(late_utc, "Asia/Shanghai") == date(2026, 5, 1)
    assert rules.local_today(late_utc, "Europe/London") == date(2026, 4, 30)
    first, last = rules.local_day_bounds(date(2026, 5, 1), "Asia/Shanghai")
    assert first.astimezone(UTC) == datetime(2026, 4, 30, 16, 0, tzinfo=UTC) and last - first == timedelta(days=1)
    spring = rules.local_day_bounds(date(2026, 3, 29), "Europe/Berlin")  # clocks go forward: 23 hours
    assert spring[1].astimezone(UTC) - spring[0].astimezone(UTC) == timedelta(hours=23)


def test_upcoming_holidays_first_then_the_past_latest_first():
    today = date(2026, 5, 1)
    days = [date(2026, 1, 1), date(2026, 10, 1), today, date(2026, 4, 5)]
    assert rules.upcoming_first(days, today) == [today, date(2026, 10, 1), date(2026, 4, 5), date(2026, 1, 1)]
