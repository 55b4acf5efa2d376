"""Who is calling, and in which language to answer them.

Puts a :class:`Principal` (or None) into ``scope["user"]``: a staff session from the ``fc_session``
cookie, or an integration's ``Authorization: Bearer fc_...`` API key. Then fixes the request's locale:
the user's setting, the ``fc_lang`` cookie, ``Accept-Language``, the default.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from litestar.types import ASGIApp, Receive, Scope, Send

from backend.lib import i18n
from backend.lib.sessions import SESSION_COOKIE

from .service import AccountService


def _cookies(scope: Scope) -> dict[str, str]:
    raw = dict(scope["headers"]).get(b"cookie", b"").decode("latin-1")
    jar = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed cookie header must not break the request
        return {}
    return {k: v.value for k, v in jar.items()}


class AuthAndLocaleMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        state = scope["litestar_app"].state
        headers = dict(scope["headers"])
        cookies = _cookies(scope)
        principal = None
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            async with state.session_maker() as db:
                principal = await AccountService(db, state.redis).principal_from_api_key(auth[7:].strip())
                await db.commit()
        elif session_id := cookies.get(SESSION_COOKIE):
            principal = await AccountService(None, state.redis).principal_from_session(session_id)
        scope["user"] = principal
        scope["auth"] = principal.kind if principal else None
        i18n.set_locale(i18n.negotiate(
            principal.locale if principal else None,
            cookies.get(i18n.LANG_COOKIE),
            headers.get(b"accept-language", b"").decode("latin-1"),
        ))
        await self.app(scope, receive, send)
