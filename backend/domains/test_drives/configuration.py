"""What managers configure for test drives: a branch's booking rules, the drive length of each model and the
salespeople's working hours and online bookings. (A service of its own: ``service.py`` is about drives.)

Managers configure their own branch; admins and the group's manager pick one. Each change is one upsert
(``repository.upsert_*``) and one audit record with the values before and after. Drives already booked keep
their times: the slot maths reads these values only when it offers and books new ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.models import StaffUser
from backend.domains.audit import service as audit
from backend.domains.branches import repository as branch_repository
from backend.domains.branches.models import Branch
from backend.lib.errors import Forbidden, Invalid, NotFound
from backend.lib.i18n import gettext as _

from . import repository, rules
from .models import TestDriveSettings
from .schemas import MAX_ID, HoursIn, SettingsIn
from .service import MANAGER_ROLES, default_settings

SETTINGS_ENTITY = "test_drive_settings"
LENGTH_ENTITY = "test_drive_model_length"
HOURS_ENTITY = "salesperson_hours"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A make and model the branch has a drivable car of, with its own length (None: the default)."""

    make: str
    model: str
    minutes: int | None

    @property
    def key(self) -> str:
        return f"{self.make}|{self.model}"

    @property
    def label(self) -> str:
        return f"{self.make} {self.model}"


@dataclass(frozen=True, slots=True)
class SalespersonSetup:
    user: StaffUser
    working_hours: dict  # {} = the branch's opening hours
    takes_online: bool

    @property
    def same_as_branch(self) -> bool:
        return not self.working_hours


def _length_id(branch: Branch, make: str, model: str) -> str:
    """The audit's entity id of a branch's model length ("SH01 BYD Han"; the column holds 64 characters)."""
    return f"{branch.code} {make} {model}"[:64]


def settings_values(settings: TestDriveSettings) -> dict:
    return {name: getattr(settings, name) for name in repository.SETTINGS_FIELDS}


class TestDriveSetup:
    __test__ = False

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- whose branch ---------------------------------------------------------------------------------

    @staticmethod
    def _require_manager(principal) -> None:
        if principal.role not in MANAGER_ROLES:
            raise Forbidden(_("Only managers change how test drives are booked."))

    async def branch_for(self, principal, branch_id: int | None = None) -> Branch:
        """The principal's own branch; admins and the group's manager may name one (``branch_id``)."""
        scope = principal.branch_scope
        if scope is not None and branch_id is not None and branch_id != scope:
            raise Forbidden(_("You can only configure test drives at your own branch."))
        wanted = scope or branch_id or principal.branch_id
        if wanted is None:  # an admin without a branch of their own: the first one
            branch = next(iter(await branch_repository.list_branches(self.session)), None)
        else:  # a form's number may be any ten digits: beyond the column's range it is simply not found
            branch = await branch_repository.branch_by_id(self.session, wanted) if wanted <= MAX_ID else None
        if branch is None:
            raise NotFound()
        return branch

    async def branches(self, principal) -> list[Branch]:
        """The branches the principal may choose between (one for a branch manager)."""
        return await branch_repository.list_branches(self.session, only_id=principal.branch_scope)

    # -- booking rules ---------------------------------------------------------------------------------

    async def settings(self, branch: Branch) -> tuple[TestDriveSettings, bool]:
        """(the branch's rules, True when they are the unsaved defaults)."""
        saved = await repository.settings_for(self.session, branch.id)
        return (saved, False) if saved is not None else (default_settings(branch.id), True)

    async def save_settings(self, principal, branch: Branch, data: SettingsIn) -> TestDriveSettings:
        self._require_manager(principal)
        values = data.model_dump(include=set(repository.SETTINGS_FIELDS))
        problems = rules.settings_problems(**values)
        if problems:
            raise Invalid(fields=problems)
        before = await repository.settings_values(self.session, branch.id, lock=True)
        saved = await repository.upsert_settings(self.session, branch.id, values)
        if before != values:
            await audit.record_by(self.session, principal, action="update", entity=SETTINGS_ENTITY,
                                  entity_id=branch.id, branch_id=branch.id, before=before, after=values)
        return saved

    # -- drive length per model --------------------------------------------------------------------------

    async def model_choices(self, branch: Branch) -> list[ModelChoice]:
        """Each make and model the branch has a drivable car of, once, with the branch's length if one is set."""
        vehicles = await repository.drivable_vehicles(self.session, branch_id=branch.id, limit=1000)
        lengths = await repository.model_lengths(self.session, branch.id)
        seen = dict.fromkeys((v.make, v.model) for v in vehicles)
        return [ModelChoice(make, model, lengths.get((branch.id, make, model))) for make, model in sorted(seen)]

    async def set_model_length(self, principal, branch: Branch, make: str, model: str, minutes: int) -> ModelChoice:
        self._require_manager(principal)
        choice = next((c for c in await self.model_choices(branch) if (c.make, c.model) == (make, model)), None)
        problems = {}
        if choice is None:
            problems["model"] = _("Choose one of the models your branch offers for test drives.")
        if message := rules.drive_minutes_problem(minutes):
            problems["minutes"] = message
        if problems:
            raise Invalid(fields=problems)
        await repository.upsert_model_length(self.session, branch.id, make, model, minutes)
        if choice.minutes != minutes:
            await audit.record_by(self.session, principal, action="update", entity=LENGTH_ENTITY,
                                  entity_id=_length_id(branch, make, model), branch_id=branch.id,
                                  before={"branch_id": branch.id, "make": make, "model": model,
                                          "drive_minutes": choice.minutes},
                                  after={"branch_id": branch.id, "make": make, "model": model,
                                         "drive_minutes": minutes})
        return ModelChoice(make, model, minutes)

    async def remove_model_length(self, principal, branch: Branch, make: str, model: str) -> None:
        """Back to the branch's default length, at this branch only. A branch manager removes only their own
        branch's lengths (``branch`` comes from ``branch_for``, which refuses another branch)."""
        self._require_manager(principal)
        if principal.branch_scope is not None and not any(
                (c.make, c.model) == (make, model) for c in await self.model_choices(branch)):
            raise NotFound()
        minutes = await repository.delete_model_length(self.session, branch.id, make, model)
        if minutes is None:
            raise NotFound(_("This model has no drive length of its own."))
        await audit.record_by(self.session, principal, action="delete", entity=LENGTH_ENTITY,
                              entity_id=_length_id(branch, make, model), branch_id=branch.id,
                              before={"branch_id": branch.id, "make": make, "model": model,
                                      "drive_minutes": minutes}, after=None)

    # -- salespeople -----------------------------------------------------------------------------------

    async def salespeople(self, branch: Branch) -> list[SalespersonSetup]:
        return [SalespersonSetup(user, dict(hours.working_hours) if hours else {},
                                 hours.takes_online if hours else True)
                for user, hours in await repository.salespeople_of(self.session, branch.id)]

    async def set_hours(self, principal, staff_user_id: int, data: HoursIn) -> SalespersonSetup:
        """A salesperson of the principal's branch (another branch's is not found)."""
        self._require_manager(principal)
        found = await repository.salesperson_hours(self.session, staff_user_id, lock=True)
        scope = principal.branch_scope
        if found is None or (scope is not None and found[0].branch_id != scope):
            raise NotFound(_("No salesperson of your branch has this number."))
        user, stored, takes_online = found
        hours, problems = rules.working_hours_problems(data.working_hours)
        if problems:
            raise Invalid(fields=problems)
        await repository.upsert_hours(self.session, user.id, hours, data.takes_online)
        before = {"working_hours": stored or {}, "takes_online": takes_online}
        after = {"working_hours": hours, "takes_online": data.takes_online}
        if before != after:
            await audit.record_by(self.session, principal, action="update", entity=HOURS_ENTITY, entity_id=user.id,
                                  branch_id=user.branch_id, before=before, after=after)
        return SalespersonSetup(user, hours, data.takes_online)
