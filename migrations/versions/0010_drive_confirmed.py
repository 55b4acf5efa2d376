"""test drives may be "confirmed": the customer said they are coming

A confirmed drive behaves like a booked one: it keeps its car and its salesperson, so the status check and
both exclusion constraints (``ex_test_drive_vehicle_busy``, ``ex_test_drive_salesperson_busy``) now name
'confirmed' as well. The exclusion constraints are dropped and created again with the wider WHERE (the
rows they already hold stay free of overlaps: no booked or checked-out drive is added). Going down turns
confirmed drives back into booked ones first, so nothing is lost but the confirmation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = 'test_drive'
STATUS_CHECK = 'ck_test_drive_status_known'
STATUSES = ('booked', 'confirmed', 'checked_out', 'returned', 'followed_up', 'no_show', 'cancelled')
ACTIVE = ('booked', 'confirmed', 'checked_out')
EXCLUSIONS = {'ex_test_drive_vehicle_busy': 'vehicle_id', 'ex_test_drive_salesperson_busy': 'salesperson_id'}


def _in(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _constraints(statuses: Sequence[str], active: Sequence[str]) -> None:
    op.drop_constraint(op.f(STATUS_CHECK), TABLE, type_='check')
    op.create_check_constraint(op.f(STATUS_CHECK), TABLE, _in(statuses))
    for name, column in EXCLUSIONS.items():
        op.drop_constraint(name, TABLE)
        op.execute(sa.text(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} EXCLUDE USING gist "
            f"(int8range({column}, {column}, '[]') WITH =, during WITH &&) WHERE ({_in(active)})"))


def upgrade() -> None:
    _constraints(STATUSES, ACTIVE)


def downgrade() -> None:
    op.execute(sa.text("UPDATE test_drive SET status = 'booked' WHERE status = 'confirmed'"))
    _constraints(tuple(s for s in STATUSES if s != 'confirmed'), tuple(s for s in ACTIVE if s != 'confirmed'))
