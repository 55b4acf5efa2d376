"""Use cases for the dealer group and its branches, and a manager's opening hours and holidays.

Changing the hours or adding a holiday moves or cancels no booking already made: the screen says so and
counts the bookings on a new holiday, so the manager can call those customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.rules import StaffRole
from backend.domains.audit import service as audit
from backend.lib.db import utcnow
from backend.lib.errors import Forbidden, Invalid, NotFound
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from . import repository, rules
from .models import Branch, BranchHoliday, DealerGroup

MANAGING_ROLES = (StaffRole.ADMIN.value, StaffRole.MANAGER.value)
MAX_ID = 2**31 - 1


async def get_branch(session: AsyncSession, branch_id: int, *, scope: int | None) -> Branch:
    """A branch the caller may see (``scope`` is their branch, or None for the whole group)."""
    branch = await repository.branch_by_id(session, branch_id)
    if branch is None or (scope is not None and branch.id != scope):
        raise NotFound()
    return branch


async def visible_branches(session: AsyncSession, *, scope: int | None) -> list[Branch]:
    return await repository.list_branches(session, only_id=scope)


async def create_group(session: AsyncSession, name: str) -> DealerGroup:
    group = DealerGroup(name=name)
    session.add(group)
    await session.flush()
    return group


async def create_branch(
    session: AsyncSession, *, group_id: int, code: str, name: str, name_en: str | None = None,
    address: str = "", timezone: str | None = None, currency: str | None = None,
    opening_hours: dict | None = None,
) -> Branch:
    settings = get_settings()
    timezone = timezone or settings.default_timezone
    currency = currency or settings.default_currency
    if not rules.valid_timezone(timezone):
        raise Invalid(fields={"timezone": _("Unknown time zone.")})
    try:
        hours = rules.validate_opening_hours(opening_hours or rules.DEFAULT_OPENING_HOURS)
    except ValueError as exc:
        raise Invalid(fields={"opening_hours": str(exc)}) from exc
    branch = Branch(group_id=group_id, code=code.upper(), name=name, name_en=name_en, address=address,
                    timezone=timezone, currency=currency.upper(), opening_hours=hours)
    session.add(branch)
    await session.flush()
    return branch


# -- a manager's opening hours and holidays ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HolidayAdded:
    holiday: BranchHoliday
    booked_test_drives: int
    booked_service_appointments: int


def _hours_message(problem: rules.HoursProblem) -> str:
    if problem == rules.HoursProblem.CLOSE_NOT_AFTER_OPEN:
        return _("The closing time must be after the opening time.")
    if problem == rules.HoursProblem.BAD_TIME:
        return _("Enter times as HH:MM on a 24-hour clock, e.g. 09:00.")
    return _("Enter an opening and a closing time, or mark the day as closed.")


def _holiday_message(problem: rules.HolidayProblem) -> str:
    if problem == rules.HolidayProblem.IN_THE_PAST:
        return _("This date has passed. Choose today or a later date.")
    return _("Use at most %(n)s characters.", n=rules.HOLIDAY_NAME_MAX)


async def managed_branch(session: AsyncSession, principal, branch_id: int | None = None) -> Branch:
    """The branch whose hours ``principal`` may set: a branch manager's own (another branch is a 404, as if it
    did not exist); an admin or the group's manager may name one, else the first."""
    if principal is None or principal.role not in MANAGING_ROLES:
        raise Forbidden()
    scope = principal.branch_scope
    wanted = branch_id if branch_id is not None else scope
    if wanted is None:
        branches = await repository.list_branches(session)
        if not branches:
            raise NotFound()
        return branches[0]
    if not 1 <= wanted <= MAX_ID:
        raise NotFound()
    return await get_branch(session, wanted, scope=scope)


def opening_hours_of(branch: Branch) -> dict[str, list[str] | None]:
    return rules.normalized_hours(branch.opening_hours or {})


async def set_opening_hours(session: AsyncSession, principal, branch_id: int | None,
                            hours: Mapping[str, object]) -> Branch:
    """Replace the branch's week in one locked update (a concurrent save waits, then replaces it whole)."""
    branch = await managed_branch(session, principal, branch_id)
    problems = rules.opening_hours_problems(hours)
    if problems:
        raise Invalid(fields={day: _hours_message(p) for day, p in problems.items()})
    week = rules.normalized_hours(hours)
    locked = await repository.branch_for_update(session, branch.id)
    if locked is None:
        raise NotFound()
    before = dict(locked.opening_hours or {})
    if rules.normalized_hours(before) == week:
        return locked
    locked.opening_hours = week
    await session.flush()
    await audit.record_by(session, principal, action="update", entity="opening_hours", entity_id=locked.id,
                          branch_id=locked.id, before={"opening_hours": before}, after={"opening_hours": week})
    return locked


async def bookings_on(session: AsyncSession, branch: Branch, day: date) -> tuple[int, int]:
    """Booked test drives and service appointments of a branch on a local day: a new holiday keeps them."""
    first, last = rules.local_day_bounds(day, branch.timezone)
    return (await repository.booked_test_drives_between(session, branch.id, first, last),
            await repository.booked_service_appointments_on(session, branch.id, day))


async def holidays(session: AsyncSession, branch: Branch) -> list[BranchHoliday]:
    """All holidays of a branch the caller was already allowed to see (``managed_branch``), by date."""
    return await repository.holidays_of(session, branch.id)


async def add_holiday(session: AsyncSession, principal, branch_id: int | None, day: date, name: str = "",
                      *, now: datetime | None = None) -> HolidayAdded:
    branch = await managed_branch(session, principal, branch_id)
    name = (name or "").strip()
    problems = rules.holiday_problems(day, name, rules.local_today(now or utcnow(), branch.timezone))
    if problems:
        raise Invalid(fields={field: _holiday_message(p) for field, p in problems.items()})
    holiday = await repository.add_holiday(session, branch.id, day, name)
    if holiday is None:
        raise Invalid(fields={"date": _("This date is already a holiday.")})
    drives, visits = await bookings_on(session, branch, day)
    added = HolidayAdded(holiday=holiday, booked_test_drives=drives, booked_service_appointments=visits)
    await audit.record_by(session, principal, action="create", entity="branch_holiday", entity_id=day.isoformat(),
                          branch_id=branch.id, after={"date": day.isoformat(), "name": name,
                                                      "booked_test_drives": added.booked_test_drives,
                                                      "booked_service_appointments": added.booked_service_appointments})
    return added


async def remove_holiday(session: AsyncSession, principal, branch_id: int | None, day: date) -> BranchHoliday:
    branch = await managed_branch(session, principal, branch_id)
    removed = await repository.remove_holiday(session, branch.id, day)
    if removed is None:
        raise NotFound(_("There is no holiday on that date."))
    await audit.record_by(session, principal, action="delete", entity="branch_holiday", entity_id=day.isoformat(),
                          branch_id=branch.id, before={"date": day.isoformat(), "name": removed.name})
    return removed
