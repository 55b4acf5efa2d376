"""Screens: sign-in, sign-out, language switch, API keys (admin)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.di import Provide
from litestar.response import Redirect, Template
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.branches import service as branches
from backend.lib.errors import Invalid, RateLimited
from backend.lib.forms import parse_form
from backend.lib.htmx import page
from backend.lib.i18n import LANG_COOKIE
from backend.lib.i18n import gettext as _
from backend.lib.sessions import SESSION_COOKIE

from .guards import Principal, roles_required, sessions_only, staff_required
from .rules import ROLE_LABELS, StaffRole
from .schemas import ApiKeyCreate, LanguageForm, SignInForm, safe_next
from .service import AccountService


def provide_accounts(db_session: AsyncSession, redis: Redis) -> AccountService:
    return AccountService(db_session, redis)


account_dependencies = {"accounts": Provide(provide_accounts, sync_to_thread=False)}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class SignInController(Controller):
    include_in_schema = False
    dependencies = account_dependencies

    @get("/sign-in", name="sign_in")
    async def show(self, request: Request, next: str | None = None) -> Template | Redirect:
        if request.user is not None:
            return Redirect(safe_next(next), status_code=303)
        return page(request, "accounts/sign_in.html", {"next": safe_next(next), "values": {}, "errors": {}})

    @post("/sign-in")
    async def submit(self, request: Request, accounts: AccountService, state: State) -> Response:
        form = await request.form()
        values, errors = parse_form(SignInForm, form)
        context = {"next": safe_next(form.get("next")), "values": {"email": form.get("email", "")},
                   "errors": errors}
        if values is None:
            return page(request, "accounts/sign_in.html", context, status_code=422)
        try:
            _principal, session_id = await accounts.sign_in(values.email, values.password, _client_ip(request))
        except RateLimited as exc:
            context["form_error"] = exc.message
            return page(request, "accounts/sign_in.html", context, status_code=429,
                        headers={"Retry-After": str(exc.extra.get("retry_after", 60))})
        except Invalid as exc:
            context["form_error"] = exc.message
            return page(request, "accounts/sign_in.html", context, status_code=422)
        settings = state.settings
        cookie = Cookie(key=SESSION_COOKIE, value=session_id, httponly=True, secure=settings.cookies_secure,
                        samesite="lax", path="/", max_age=settings.session_absolute_hours * 3600)
        return Redirect(safe_next(values.next), status_code=303, cookies=[cookie])

    @post("/sign-out", guards=[staff_required, sessions_only])
    async def sign_out(self, request: Request, accounts: AccountService) -> Redirect:
        await accounts.sign_out(request.user)
        response = Redirect("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


class LanguageController(Controller):
    include_in_schema = False
    dependencies = account_dependencies

    @post("/lang")
    async def switch(self, request: Request, accounts: AccountService) -> Response:
        form = await request.form()
        values, errors = parse_form(LanguageForm, form)
        if values is None:
            raise Invalid(fields=errors)
        chosen = await accounts.set_language(request.user, values.lang)
        target = safe_next(values.next, default="/")
        cookie = Cookie(key=LANG_COOKIE, value=chosen, max_age=365 * 24 * 3600, path="/", samesite="lax",
                        httponly=True, secure=request.app.state.settings.cookies_secure)
        return Redirect(target, status_code=303, cookies=[cookie])


class ApiKeyScreenController(Controller):
    path = "/admin/api-keys"
    include_in_schema = False
    guards = [roles_required(StaffRole.ADMIN), sessions_only]
    dependencies = account_dependencies

    async def _context(self, accounts: AccountService, db_session: AsyncSession, principal: Principal,
                       **extra) -> dict:
        return {
            "keys": await accounts.list_api_keys(),
            "branches": await branches.visible_branches(db_session, scope=principal.branch_scope),
            "roles": ROLE_LABELS,
            "errors": {},
            "values": {},
            **extra,
        }

    @get("/")
    async def index(self, request: Request, accounts: AccountService, db_session: AsyncSession) -> Template:
        return page(request, "accounts/api_keys.html",
                    await self._context(accounts, db_session, request.user), block="keys")

    @post("/")
    async def create(self, request: Request, accounts: AccountService, db_session: AsyncSession) -> Template:
        form = dict(await request.form())
        form["branch_id"] = form.get("branch_id") or None
        values, errors = parse_form(ApiKeyCreate, form)
        if values is None:
            return page(request, "accounts/api_keys.html",
                        await self._context(accounts, db_session, request.user, errors=errors, values=form),
                        block="keys", status_code=422)
        key, secret = await accounts.create_api_key(request.user, name=values.name, role=values.role,
                                                    branch_id=values.branch_id)
        return page(request, "accounts/api_keys.html",
                    await self._context(accounts, db_session, request.user, new_key=key, new_secret=secret),
                    block="keys", status_code=201)

    @post("/{key_id:int}/revoke")
    async def revoke(self, request: Request, key_id: int, accounts: AccountService,
                     db_session: AsyncSession) -> Template:
        key = await accounts.revoke_api_key(request.user, key_id)
        return page(request, "accounts/api_keys.html",
                    await self._context(accounts, db_session, request.user,
                                        notice=_("Key “%(name)s” was revoked.", name=key.name)),
                    block="keys")
