"""Customers: the people a dealership serves. The CRM grows from this; today it holds contact
details, language and consent, which notifications need."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, func
from sqlmodel import Field, SQLModel


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id", index=True)
    name: str = Field(max_length=120)
    phone: str | None = Field(default=None, max_length=32, index=True)
    email: str | None = Field(default=None, max_length=254)
    locale: str | None = Field(default=None, max_length=8)
    marketing_consent: bool = Field(default=False)
    consent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class TrackingLink(SQLModel, table=True):
    """A customer's way to their record without an account: a random token (256 bits), stored as a
    SHA-256 hash, expiring and revocable. Later features point it at their records."""

    __tablename__ = "tracking_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    branch_id: int = Field(foreign_key="branch.id")
    record_type: str = Field(max_length=64)
    record_id: int
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
