"""Notifications, every delivery attempt, Web Push subscriptions and per-person preferences."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, ForeignKey, Index, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import String
from sqlmodel import Field, SQLModel

RECIPIENT_KINDS = "recipient_kind IN ('staff', 'customer')"


class Notification(SQLModel, table=True):
    """One message to one person. ``key`` makes it idempotent: the same event never notifies twice."""

    __tablename__ = "notification"
    __table_args__ = (
        CheckConstraint(RECIPIENT_KINDS, name="recipient_kind_known"),
        CheckConstraint("category IN ('service', 'marketing')", name="category_known"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed', 'suppressed')", name="status_known"),
        Index("ix_notification_recipient", "recipient_kind", "recipient_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    key: str = Field(max_length=200, unique=True)
    branch_id: int | None = Field(default=None, foreign_key="branch.id", index=True)
    recipient_kind: str = Field(max_length=16)
    recipient_id: int
    category: str = Field(default="service", max_length=16)
    template: str = Field(max_length=64)
    params: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    url: str | None = Field(default=None, max_length=500)
    urgency: str = Field(default="normal", max_length=8)  # very-low | low | normal | high
    ttl_seconds: int = Field(default=86400)
    status: str = Field(default="pending", max_length=16)
    channel: str | None = Field(default=None, max_length=16)  # the channel that delivered it
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    notification_id: int = Field(
        sa_column=Column(BigInteger, ForeignKey("notification.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    channel: str = Field(max_length=16)
    target: str = Field(default="", max_length=200)  # masked: push host, e-mail or phone
    status: str = Field(max_length=16)  # sent | retry | failed | gone | skipped
    error: str | None = Field(default=None, max_length=500)
    at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class PushSubscription(SQLModel, table=True):
    __tablename__ = "push_subscription"
    __table_args__ = (
        CheckConstraint("owner_kind IN ('staff', 'customer')", name="owner_kind_known"),
        Index("ix_push_subscription_owner", "owner_kind", "owner_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=1000, unique=True)
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)
    owner_kind: str = Field(max_length=16)
    owner_id: int
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    last_success_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class NotificationPreference(SQLModel, table=True):
    """Which channels a person wants, in order, and whether they agreed to marketing."""

    __tablename__ = "notification_preference"
    __table_args__ = (
        UniqueConstraint("recipient_kind", "recipient_id"),
        CheckConstraint(RECIPIENT_KINDS, name="recipient_kind_known"),
    )

    id: int | None = Field(default=None, primary_key=True)
    recipient_kind: str = Field(max_length=16)
    recipient_id: int
    channels: list[str] = Field(
        default_factory=lambda: ["push", "email", "sms"], sa_column=Column(ARRAY(String(16)), nullable=False)
    )
    marketing_consent: bool = Field(default=False)
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
