"""Events written in the same transaction as the change they report, delivered after commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        # The sweeper's query: pending rows, oldest first. Partial, so it stays small however
        # many delivered rows the table keeps.
        Index("ix_outbox_pending", "available_at", postgresql_where=text("status = 'pending'")),
        # The staff screen's list of events given up on.
        Index("ix_outbox_failed", "processed_at", postgresql_where=text("status = 'failed'")),
        CheckConstraint("status IN ('pending', 'done', 'failed')", name="status_known"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    kind: str = Field(max_length=64)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | done | failed
    attempts: int = Field(default=0)
    # Times its handler raised (a bug or a poison payload, not a channel's temporary failure): after
    # ``outbox_max_errors`` the event is given up. Its own count, since channel retries are normal.
    errors: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    available_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    processed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str | None = Field(default=None, max_length=1000)
