"""The Litestar application factory: the whole request path in one readable place.

    request -> RequestId -> SecurityHeaders -> AuthAndLocale -> CSRF -> router (guards)
            -> controller -> service -> rules / repository -> PostgreSQL
"""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

import backend.messages  # noqa: F401 - every message and follow-up handler, as in the worker
from backend.domains.accounts.middleware import AuthAndLocaleMiddleware
from backend.domains.outbox import service as outbox
from backend.lib import db
from backend.lib.errors import exception_handlers
from backend.lib.observability import RequestIdMiddleware, configure_logging
from backend.lib.redis import make_redis
from backend.lib.security import CSRFUnlessBearerMiddleware, SecurityHeadersMiddleware
from backend.lib.settings import Settings, get_settings
from backend.lib.singleflight import Flights
from backend.lib.templating import STATIC_DIR, template_engine
from backend.routes import route_handlers

log = logging.getLogger("forecourt")


def provide_redis(state: State) -> Redis:
    return state.redis


def create_app(
    settings: Settings | None = None,
    *,
    engine: AsyncEngine | None = None,
    session_maker: async_sessionmaker | None = None,
    redis: Redis | None = None,
) -> Litestar:
    """Build the app. Tests pass their own engine/session maker (one rolled-back transaction) and Redis."""
    settings = settings or get_settings()
    if engine is None and (not settings.database_url or not settings.redis_url):
        from backend.lib.embedded import ensure_services

        ensure_services()
    configure_logging(settings.log_level, settings.log_json)
    engine = engine or db.make_engine(settings.database_url)
    session_maker = session_maker or db.make_session_maker(engine)
    redis = redis or make_redis(settings.redis_url)

    async def on_startup(app: Litestar) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        from backend.domains.system.service import ensure_vapid_keys
        from workers.notification_jobs import enqueue_outbox_events

        async with db.unit_of_work(session_maker) as session:
            await ensure_vapid_keys(session)
        # Outbox events go to the queue after their transaction commits (see domains/outbox).
        app.state.arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        outbox.set_dispatcher(lambda ids: enqueue_outbox_events(app.state.arq, ids))
        # Identical public bookings arriving together wait for one another (backend/lib/singleflight.py).
        flights = Flights(redis, namespace="forecourt")
        try:
            await flights.start()
            app.state.flights = flights
        except Exception:  # noqa: BLE001 - without it every request takes the ordinary path
            log.warning("could not subscribe for single-flight bookings; continuing without", exc_info=True)

    async def on_shutdown(app: Litestar) -> None:
        if getattr(app.state, "flights", None) is not None:
            await app.state.flights.close()
        outbox.set_dispatcher(None)
        await outbox.drain_background()
        if getattr(app.state, "arq", None) is not None:
            await app.state.arq.aclose()
        await redis.aclose()

    csrf = CSRFConfig(
        secret=settings.secret_key,
        cookie_secure=settings.cookies_secure,
        cookie_httponly=True,
        cookie_samesite="lax",
        exclude=["/health", "/ready", "/metrics"],
    )
    prometheus = PrometheusConfig(app_name="forecourt", group_path=True, exclude=["/static", "/metrics"])

    return Litestar(
        route_handlers=[
            *route_handlers,
            create_static_files_router(
                path="/static", directories=[STATIC_DIR], name="static",
                cache_control=CacheControlHeader(max_age=31_536_000, public=True),
            ),
        ],
        state=State({"settings": settings, "session_maker": session_maker, "redis": redis}),
        dependencies={"redis": Provide(provide_redis, sync_to_thread=False)},
        plugins=[db.sqlalchemy_plugin(engine, session_maker), HTMXPlugin()],
        middleware=[
            RequestIdMiddleware,
            DefineMiddleware(SecurityHeadersMiddleware, hsts=settings.cookies_secure),
            prometheus.middleware,
            AuthAndLocaleMiddleware,
            DefineMiddleware(CSRFUnlessBearerMiddleware, config=csrf),
        ],
        template_config=TemplateConfig(instance=template_engine()),
        exception_handlers=exception_handlers,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Forecourt API",
            version="1",
            description="JSON API of Forecourt. Staff API keys: `Authorization: Bearer fc_...`.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            components=Components(security_schemes={
                "apiKey": SecurityScheme(type="http", scheme="bearer", description="An API key made by an admin."),
            }),
            security=[{"apiKey": []}],
        ),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        logging_config=None,  # ours (JSON with the request id) is set up above
        debug=False,
    )
