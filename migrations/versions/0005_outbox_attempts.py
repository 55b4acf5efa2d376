"""outbox: count the errors of an event's handler, so a poison event is given up, not retried forever

``errors`` counts the times the handler raised (its effects rolled back); after
``FORECOURT_OUTBOX_MAX_ERRORS`` the event is marked failed. ``ix_outbox_failed`` serves the staff
screen's list of failed events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('errors', sa.Integer(), server_default='0', nullable=False))
    op.create_index('ix_outbox_failed', 'outbox', ['processed_at'], unique=False,
                    postgresql_where=sa.text("status = 'failed'"))


def downgrade() -> None:
    op.drop_index('ix_outbox_failed', table_name='outbox', postgresql_where=sa.text("status = 'failed'"))
    op.drop_column('outbox', 'errors')
