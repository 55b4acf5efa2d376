"""Who is calling (:class:`Principal`) and the guards that routers and controllers declare."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from backend.lib.errors import Forbidden

from .rules import StaffRole, branch_scope, spans_group


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    kind: str  # "staff" or "api_key"
    name: str
    role: str
    branch_id: int | None
    email: str | None = None
    locale: str | None = None
    session_id: str | None = None

    @property
    def spans_group(self) -> bool:
        return spans_group(self.role, self.branch_id)

    @property
    def branch_scope(self) -> int | None:
        return branch_scope(self.role, self.branch_id)

    @property
    def audit_label(self) -> str:
        return self.email or f"api-key:{self.name}"


def current_principal(connection: ASGIConnection) -> Principal | None:
    return connection.scope.get("user")


def staff_required(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if current_principal(connection) is None:
        raise NotAuthorizedException()


def roles_required(*allowed: StaffRole):
    """Guard: signed in (or an API key) with one of ``allowed`` roles; admins always pass."""
    names = {r.value for r in allowed} | {StaffRole.ADMIN.value}

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = current_principal(connection)
        if principal is None:
            raise NotAuthorizedException()
        if principal.role not in names:
            raise Forbidden()

    guard.__name__ = f"roles_required({','.join(sorted(names))})"
    return guard


def sessions_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Screens are for people: API keys are refused with a clear 403."""
    principal = current_principal(connection)
    if principal is not None and principal.kind != "staff":
        raise Forbidden()
