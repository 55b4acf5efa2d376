from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CustomerForm(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=120)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    locale: str | None = Field(default=None, max_length=8)
    marketing_consent: bool = False
