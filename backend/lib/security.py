"""Security headers on every answer, and CSRF that stays out of the way of API-key callers."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

# No inline script anywhere: htmx is configured through a <meta> tag and our JS is a file.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "object-src 'none'",
])


# Only the API reference page (/schema) loads the Scalar viewer from its CDN with an inline bootstrap;
# it shows no customer data. /schema/openapi.json is plain JSON and needs none of this.
DOCS_CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
    "font-src 'self' data: https://cdn.jsdelivr.net https://fonts.gstatic.com",
    "img-src 'self' data: https://cdn.jsdelivr.net",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
])


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                docs = scope["path"] in ("/schema", "/schema/") or scope["path"].startswith("/schema/scalar")
                headers["content-security-policy"] = DOCS_CONTENT_SECURITY_POLICY if docs else CONTENT_SECURITY_POLICY
                headers["x-content-type-options"] = "nosniff"
                headers["x-frame-options"] = "DENY"
                headers["referrer-policy"] = "same-origin"
                headers["permissions-policy"] = "camera=(self), geolocation=(self), microphone=()"
                headers["cross-origin-opener-policy"] = "same-origin"
                if self.hsts:
                    headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CSRFUnlessBearerMiddleware(CSRFMiddleware):
    """Litestar's double-submit CSRF check, skipped for ``Authorization: Bearer`` API calls.

    A bearer token is never sent by a browser on its own, so such requests cannot be forged
    cross-site; cookie-authenticated requests (pages, htmx, the service worker) are always checked.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"")
            if auth[:7].lower() == b"bearer ":
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
