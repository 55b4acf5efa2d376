"""A dealer group and its stores (branches). Every business row carries its branch."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class DealerGroup(SQLModel, table=True):
    __tablename__ = "dealer_group"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class Branch(SQLModel, table=True):
    __tablename__ = "branch"

    id: int | None = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="dealer_group.id", index=True)
    code: str = Field(max_length=16, unique=True)
    name: str = Field(max_length=120)
    name_en: str | None = Field(default=None, max_length=120)
    address: str = Field(default="", max_length=300)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    currency: str = Field(default="CNY", max_length=3)
    # {"mon": ["08:30", "18:00"], ..., "sun": null}: closed days are null.
    opening_hours: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class BranchHoliday(SQLModel, table=True):
    """A day a branch is closed although its weekday has opening hours (public holidays, stocktaking)."""

    __tablename__ = "branch_holiday"

    branch_id: int = Field(foreign_key="branch.id", primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    name: str = Field(default="", max_length=120)
