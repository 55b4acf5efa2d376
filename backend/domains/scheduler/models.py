"""'Do X at time T for record R', kept in PostgreSQL so nothing scheduled is lost with Redis."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class ScheduledTask(SQLModel, table=True):
    __tablename__ = "scheduled_task"
    __table_args__ = (
        # Due rows among millions in milliseconds: only pending rows are indexed.
        Index("ix_scheduled_task_due", "due_at", postgresql_where=text("status = 'pending'")),
        Index("ix_scheduled_task_record", "record_type", "record_id"),
        CheckConstraint("status IN ('pending', 'done', 'cancelled', 'failed')", name="status_known"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    key: str = Field(max_length=200, unique=True)  # e.g. "test_drive:42:reminder_24h"
    kind: str = Field(max_length=64)
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    record_type: str | None = Field(default=None, max_length=64)
    record_id: int | None = Field(default=None)
    branch_id: int | None = Field(default=None, foreign_key="branch.id")
    payload: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | done | cancelled | failed
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    done_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
