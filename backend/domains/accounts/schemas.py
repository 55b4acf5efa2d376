"""Shapes of what comes in and goes out for accounts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .rules import StaffRole


class SignInForm(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    # Not EmailStr: sign-in must not reveal which addresses are acceptable, only whether they match.
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)
    next: str | None = Field(default=None, max_length=500)


class LanguageForm(BaseModel):
    lang: str = Field(min_length=2, max_length=10)
    next: str | None = Field(default=None, max_length=500)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    role: StaffRole
    branch_id: int | None = Field(default=None, ge=1)


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    role: str
    branch_id: int | None
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    secret: str = Field(description="Shown once. Send it as `Authorization: Bearer <secret>`.")


class Me(BaseModel):
    id: int
    kind: str
    name: str
    email: str | None
    role: str
    branch_id: int | None
    spans_group: bool
    locale: str


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """Only same-site paths, so sign-in cannot be used to bounce people to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
