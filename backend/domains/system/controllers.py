"""Operations endpoints: liveness, readiness, metrics, the VAPID public key."""

from __future__ import annotations

from hmac import compare_digest

from litestar import Controller, Response, get, head
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusController
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.settings import get_settings

from . import service


class HealthController(Controller):
    tags = ["operations"]

    @get("/health", summary="The process is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @head("/health", summary="The process is up (for monitors that only send HEAD)")
    async def health_head(self) -> None:
        return None

    @get("/ready", summary="Database and Redis answer")
    async def ready(self, db_session: AsyncSession, redis: Redis) -> Response[dict]:
        checks = await service.readiness(db_session, redis)
        ok = all(v == "ok" for v in checks.values())
        return Response({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)

    @get("/api/v1/push/vapid-public-key", summary="Public key for pushManager.subscribe", tags=["push"])
    async def vapid_public_key(self, db_session: AsyncSession) -> dict[str, str | None]:
        return {"public_key": await service.vapid_public_key(db_session)}


def metrics_token_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """With FORECOURT_METRICS_TOKEN set, Prometheus must send it as a bearer token."""
    token = get_settings().metrics_token
    if token and not compare_digest(connection.headers.get("authorization", ""), f"Bearer {token}"):
        # Not NotAuthorizedException: a scraper gets a plain 401, not the sign-in redirect for people.
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"})


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
    guards = [metrics_token_guard]
