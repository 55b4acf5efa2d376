"""Screens: my notification settings (staff), the delivery log (admins and managers)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required, sessions_only, staff_required
from backend.domains.accounts.rules import StaffRole
from backend.domains.system import service as system
from backend.lib.errors import DomainError, Invalid
from backend.lib.forms import parse_form
from backend.lib.htmx import page, toast
from backend.lib.i18n import gettext as _

from . import service
from .rules import CHANNELS
from .schemas import PreferenceForm

STATUSES = ("pending", "delivered", "failed", "suppressed")


def channel_labels() -> dict[str, str]:
    return {"push": _("Push notification"), "email": _("E-mail"), "sms": _("SMS")}


def status_labels() -> dict[str, str]:
    return {"pending": _("Waiting to be sent"), "delivered": _("Delivered"), "failed": _("Not sent"),
            "suppressed": _("Not sent: no channel or no consent")}


class MyNotificationsController(Controller):
    path = "/me/notifications"
    include_in_schema = False
    guards = [staff_required, sessions_only]

    async def _context(self, db_session: AsyncSession, request: Request, **extra) -> dict:
        principal = request.user
        pref = await service.preference(db_session, "staff", principal.id)
        return {
            "channels": pref.channels, "all_channels": CHANNELS, "labels": channel_labels(),
            "subscriptions": await service.my_subscriptions(db_session, principal),
            "vapid_public_key": await system.vapid_public_key(db_session),
            "errors": {}, **extra,
        }

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession) -> Template:
        return page(request, "notifications/me.html", await self._context(db_session, request), block="settings")

    @post("/channels")
    async def save_channels(self, request: Request, db_session: AsyncSession) -> Template:
        form = await request.form()
        chosen = [c for c in form.getall("channels", []) if c]
        values, errors = parse_form(PreferenceForm, {"channels": chosen})
        if values is None:
            context = await self._context(db_session, request, errors={"channels": _("Choose at least one channel.")})
            return page(request, "notifications/me.html", context, block="settings", status_code=422)
        await service.set_channels(db_session, request.user, values.channels)
        context = await self._context(db_session, request, notice=_("Saved."))
        return page(request, "notifications/me.html", context, block="settings")

    @post("/test")
    async def send_test(self, request: Request, db_session: AsyncSession) -> Template:
        created = await service.send_test(db_session, request.user)
        if created is None:
            return toast(_("A test was already sent this minute."), "info")
        return toast(_("Test notification sent. It should arrive in a few seconds."))


class NotificationLogController(Controller):
    path = "/admin/notifications"
    include_in_schema = False
    guards = [roles_required(StaffRole.MANAGER), sessions_only]

    async def _context(self, request: Request, db_session: AsyncSession, status: str | None, **extra) -> dict:
        scope = request.user.branch_scope
        given_up_count, given_up = await service.given_up(db_session, scope=scope)
        return {
            "rows": await service.log_for(db_session, scope=scope, status=status),
            "counts": await service.status_counts(db_session, scope=scope),
            "given_up_count": given_up_count, "given_up": given_up,
            "status": status, "statuses": STATUSES, "labels": channel_labels(), "status_labels": status_labels(),
            "can_resend": True, **extra,
        }

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession,
                    status: Annotated[str | None, Parameter(max_length=16)] = None) -> Template:
        if status is not None and status not in STATUSES:
            raise Invalid(fields={"status": _("Choose one of the offered options.")})
        return page(request, "notifications/log.html", await self._context(request, db_session, status),
                    block="log")

    @post("/{notification_id:int}/resend")
    async def resend(self, request: Request, db_session: AsyncSession, notification_id: int) -> Template:
        """A message that could not be sent, once more (a new message; the failed one stays as it was)."""
        try:
            await service.resend(db_session, request.user, notification_id)
        except DomainError as exc:
            context = await self._context(request, db_session, None, form_error=exc.message)
            return page(request, "notifications/log.html", context, block="log", status_code=exc.status_code)
        context = await self._context(request, db_session, None,
                                      notice=_("Sent again: the new message is at the top of the list."))
        return page(request, "notifications/log.html", context, block="log")
