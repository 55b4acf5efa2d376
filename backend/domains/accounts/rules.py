"""Pure rules about staff: roles, what spans the group, who may do what. No I/O."""

from __future__ import annotations

from enum import StrEnum

from backend.lib.i18n import lazy_gettext


class StaffRole(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    SALES = "sales"
    SERVICE_ADVISOR = "service_advisor"
    TECHNICIAN = "technician"
    DISPATCHER = "dispatcher"


ROLE_LABELS = {
    StaffRole.ADMIN: lazy_gettext("Administrator"),
    StaffRole.MANAGER: lazy_gettext("Manager"),
    StaffRole.SALES: lazy_gettext("Salesperson"),
    StaffRole.SERVICE_ADVISOR: lazy_gettext("Service advisor"),
    StaffRole.TECHNICIAN: lazy_gettext("Technician"),
    StaffRole.DISPATCHER: lazy_gettext("Dispatcher"),
}

PASSWORD_MIN_LENGTH = 10


def spans_group(role: str, branch_id: int | None) -> bool:
    """Admins see every branch; a manager without a branch is the group's manager."""
    return role == StaffRole.ADMIN or (role == StaffRole.MANAGER and branch_id is None)


def branch_scope(role: str, branch_id: int | None) -> int | None:
    """The branch a person's queries are limited to, or None when they see the whole group."""
    return None if spans_group(role, branch_id) else branch_id


def needs_branch(role: str) -> bool:
    """Everyone but admins and group managers works at one branch."""
    return role not in (StaffRole.ADMIN, StaffRole.MANAGER)


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return "too_short"
    if len(password) > 256:
        return "too_long"
    if password.strip() != password or not password.strip():
        return "whitespace"
    return None


def normalize_email(email: str) -> str:
    return email.strip().lower()
