"""JSON API: Web Push subscriptions and the delivery log."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts.guards import roles_required
from backend.domains.accounts.rules import StaffRole
from backend.lib.errors import Invalid
from backend.lib.i18n import gettext as _

from . import service
from .schemas import AttemptOut, NotificationOut, SubscriptionIn, SubscriptionRenewal


def _out(notification, attempts) -> NotificationOut:
    return NotificationOut(
        id=notification.id, key=notification.key, recipient_kind=notification.recipient_kind,
        recipient_id=notification.recipient_id, template=notification.template, category=notification.category,
        status=notification.status, channel=notification.channel, created_at=notification.created_at,
        delivered_at=notification.delivered_at,
        attempts=[AttemptOut(channel=a.channel, target=a.target, status=a.status, error=a.error, at=a.at)
                  for a in attempts],
    )


class PushSubscriptionApi(Controller):
    path = "/api/v1/push/subscriptions"
    tags = ["push"]

    @post("/", status_code=HTTP_201_CREATED,
          summary="Subscribe this browser (staff session, or a customer's tracking_token)")
    async def subscribe(self, request: Request, data: SubscriptionIn, db_session: AsyncSession) -> dict:
        subscription = await service.subscribe(
            db_session, principal=request.user, endpoint=data.endpoint, p256dh=data.keys.p256dh,
            auth=data.keys.auth, tracking_token=data.tracking_token,
            user_agent=request.headers.get("user-agent"))
        return {"id": subscription.id}

    @post("/renew", summary="The service worker's pushsubscriptionchange: move to a new endpoint",
          exclude_from_csrf=True)
    async def renew(self, data: SubscriptionRenewal, db_session: AsyncSession) -> dict:
        subscription = await service.renew_subscription(db_session, old_endpoint=data.old_endpoint,
                                                        endpoint=data.endpoint, p256dh=data.keys.p256dh,
                                                        auth=data.keys.auth)
        return {"id": subscription.id}

    @delete("/", status_code=HTTP_204_NO_CONTENT, summary="Unsubscribe an endpoint you own")
    async def unsubscribe(self, request: Request, db_session: AsyncSession,
                          endpoint: Annotated[str, Parameter(min_length=10, max_length=1000)],
                          tracking_token: Annotated[str | None, Parameter(max_length=100)] = None) -> None:
        await service.unsubscribe(db_session, principal=request.user, endpoint=endpoint,
                                  tracking_token=tracking_token)


class NotificationApi(Controller):
    path = "/api/v1/notifications"
    tags = ["notifications"]
    guards = [roles_required(StaffRole.MANAGER)]

    @get("/", summary="The delivery log: notifications with every attempt, newest first")
    async def list_notifications(
        self, request: Request, db_session: AsyncSession,
        status: Annotated[str | None, Parameter(max_length=16)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> list[NotificationOut]:
        if status is not None and status not in ("pending", "delivered", "failed", "suppressed"):
            raise Invalid(_("Unknown status."), fields={"status": _("Choose one of the offered options.")})
        rows = await service.log_for(db_session, scope=request.user.branch_scope, status=status, limit=limit)
        return [_out(n, attempts) for n, attempts in rows]
