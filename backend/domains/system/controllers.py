"""Operations endpoints: liveness, readiness, metrics, the VAPID public key."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.plugins.prometheus import PrometheusController
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from . import service


class HealthController(Controller):
    tags = ["operations"]

    @get("/health", summary="The process is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Database and Redis answer")
    async def ready(self, db_session: AsyncSession, redis: Redis) -> Response[dict]:
        checks = await service.readiness(db_session, redis)
        ok = all(v == "ok" for v in checks.values())
        return Response({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)

    @get("/api/v1/push/vapid-public-key", summary="Public key for pushManager.subscribe", tags=["push"])
    async def vapid_public_key(self, db_session: AsyncSession) -> dict[str, str | None]:
        return {"public_key": await service.vapid_public_key(db_session)}


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
