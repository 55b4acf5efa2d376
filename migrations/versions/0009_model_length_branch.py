"""a test-drive length per model belongs to a branch

``test_drive_model_length`` was keyed by (make, model), so a manager who set "BYD Han = 45 min" changed every
branch's BYD Han drives. Now the key is (branch_id, make, model). Each existing row applied to every branch,
so it is copied to every branch that exists (nothing changes for anyone) and the branchless original goes.
Going down keeps one row per make and model: the minutes most branches use (ties: the lowest branch id's).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = 'test_drive_model_length'
PK = 'pk_test_drive_model_length'
FK = 'fk_test_drive_model_length_branch_id_branch'


def upgrade() -> None:
    op.drop_constraint(op.f(PK), TABLE, type_='primary')
    op.add_column(TABLE, sa.Column('branch_id', sa.Integer(), nullable=True))
    op.execute(sa.text(
        "INSERT INTO test_drive_model_length (branch_id, make, model, drive_minutes) "
        "SELECT branch.id, length.make, length.model, length.drive_minutes "
        "FROM test_drive_model_length AS length CROSS JOIN branch WHERE length.branch_id IS NULL"))
    op.execute(sa.text("DELETE FROM test_drive_model_length WHERE branch_id IS NULL"))
    op.alter_column(TABLE, 'branch_id', existing_type=sa.Integer(), nullable=False)
    op.create_foreign_key(op.f(FK), TABLE, 'branch', ['branch_id'], ['id'])
    op.create_primary_key(op.f(PK), TABLE, ['branch_id', 'make', 'model'])


def downgrade() -> None:
    op.execute(sa.text(
        "DELETE FROM test_drive_model_length WHERE (branch_id, make, model) NOT IN ("
        " SELECT DISTINCT ON (make, model) branch_id, make, model FROM ("
        "  SELECT branch_id, make, model, count(*) OVER (PARTITION BY make, model, drive_minutes) AS branches"
        "  FROM test_drive_model_length) AS counted"
        " ORDER BY make, model, branches DESC, branch_id)"))
    op.drop_constraint(op.f(PK), TABLE, type_='primary')
    op.drop_constraint(op.f(FK), TABLE, type_='foreignkey')
    op.drop_column(TABLE, 'branch_id')
    op.create_primary_key(op.f(PK), TABLE, ['make', 'model'])
