"""Staff accounts and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, Index, func, text
from sqlmodel import Field, SQLModel

from .rules import StaffRole

ROLE_CHECK = "role IN (" + ", ".join(f"'{r.value}'" for r in StaffRole) + ")"


class StaffUser(SQLModel, table=True):
    __tablename__ = "staff_user"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role_known"),
        Index("uq_staff_user_email_lower", text("lower(email)"), unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254)
    name: str = Field(max_length=120)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=32)
    branch_id: int | None = Field(default=None, foreign_key="branch.id", index=True)
    locale: str | None = Field(default=None, max_length=8)
    is_active: bool = Field(default=True)
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    last_sign_in_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ApiKey(SQLModel, table=True):
    """An integration's key. Only a SHA-256 of the secret is stored; the prefix lets people tell keys apart."""

    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role_known"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=32)
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    created_by_id: int | None = Field(default=None, foreign_key="staff_user.id")
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    last_used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
