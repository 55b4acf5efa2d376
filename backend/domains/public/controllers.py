"""Public pages and the PWA shell: home, offline page, web manifest, service worker."""

from __future__ import annotations

from litestar import Controller, MediaType, Request, Response, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.htmx import page
from backend.lib.i18n import gettext as _
from backend.lib.i18n import html_lang
from backend.lib.templating import asset, static_version

from . import service

# What the service worker keeps so the app opens (and shows the offline page) without a network.
SHELL_ASSETS = ("css/app.css", "js/app.js", "vendor/htmx/htmx.min.js", "icons/icon-192.png",
                "icons/favicon.svg")


class PublicController(Controller):
    include_in_schema = False

    @get("/")
    async def home(self, request: Request, db_session: AsyncSession) -> Template:
        return page(request, "public/home.html", await service.home(db_session))

    @get("/offline")
    async def offline(self, request: Request) -> Template:
        return page(request, "public/offline.html")

    @get("/manifest.webmanifest", media_type="application/manifest+json")
    async def manifest(self) -> Response:
        manifest = {
            "name": _("Forecourt — dealership"),
            "short_name": "Forecourt",
            "description": _("Stock, test drives, service and roadside help for your dealership."),
            "lang": html_lang(),
            "start_url": "/?source=pwa",
            "scope": "/",
            "display": "standalone",
            "orientation": "portrait",
            "background_color": "#ffffff",
            "theme_color": "#0f4c81",
            "icons": [
                {"src": asset("icons/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
                {"src": asset("icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
                {"src": asset("icons/maskable-512.png"), "sizes": "512x512", "type": "image/png",
                 "purpose": "maskable"},
            ],
        }
        return Response(manifest, media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache", "Vary": "Cookie, Accept-Language"})

    @get("/sw.js")
    async def service_worker(self) -> Template:
        return Template(
            "sw.js.j2",
            context={"version": static_version(), "precache": [asset(p) for p in SHELL_ASSETS],
                     "offline_url": "/offline"},
            media_type=MediaType.TEXT,
            headers={"Content-Type": "application/javascript; charset=utf-8", "Cache-Control": "no-cache",
                     "Service-Worker-Allowed": "/"},
        )
