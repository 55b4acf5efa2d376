"""Use cases for the dealer group and its branches."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.errors import Invalid, NotFound
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

from . import repository, rules
from .models import Branch, DealerGroup


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
