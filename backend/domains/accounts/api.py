"""JSON API for accounts: who am I, API keys."""

from __future__ import annotations

from litestar import Controller, Request, delete, get, post
from litestar.status_codes import HTTP_201_CREATED

from backend.lib.i18n import current_locale

from .controllers import account_dependencies
from .guards import roles_required, staff_required
from .rules import StaffRole
from .schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, Me
from .service import AccountService


def _public(key) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(key, from_attributes=True)


class MeApi(Controller):
    path = "/api/v1/me"
    tags = ["accounts"]
    guards = [staff_required]

    @get("/", summary="The signed-in person or API key")
    async def me(self, request: Request) -> Me:
        p = request.user
        return Me(id=p.id, kind=p.kind, name=p.name, email=p.email, role=p.role, branch_id=p.branch_id,
                  spans_group=p.spans_group, locale=current_locale())


class ApiKeyApi(Controller):
    path = "/api/v1/api-keys"
    tags = ["accounts"]
    guards = [roles_required(StaffRole.ADMIN)]
    dependencies = account_dependencies

    @get("/", summary="List API keys")
    async def list_keys(self, accounts: AccountService) -> list[ApiKeyPublic]:
        return [_public(k) for k in await accounts.list_api_keys()]

    @post("/", summary="Create an API key (the secret is shown once)", status_code=HTTP_201_CREATED)
    async def create_key(self, request: Request, data: ApiKeyCreate, accounts: AccountService) -> ApiKeyCreated:
        key, secret = await accounts.create_api_key(request.user, name=data.name, role=data.role,
                                                    branch_id=data.branch_id)
        return ApiKeyCreated(**_public(key).model_dump(), secret=secret)

    @delete("/{key_id:int}", summary="Revoke an API key", status_code=200)
    async def revoke_key(self, request: Request, key_id: int, accounts: AccountService) -> ApiKeyPublic:
        return _public(await accounts.revoke_api_key(request.user, key_id))
