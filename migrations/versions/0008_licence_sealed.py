"""driving licence numbers sealed at rest; the last four characters kept apart for the screens

A Chinese driving licence number is the holder's identity card number: sensitive personal information. It
was stored as typed. Now ``test_drive.licence_number`` holds it sealed with AES-GCM under a key derived from
the app secret (``backend.lib.sealing``, purpose ``driving-licence``), so a copy of the table alone does not
give it away, and ``licence_last4`` holds what staff screens and the API show. Rows already checked out are
sealed here (with the secret the app runs with); going down opens them again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from backend.lib.sealing import open_sealed, seal

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PURPOSE = "driving-licence"


def upgrade() -> None:
    op.alter_column('test_drive', 'licence_number', type_=sqlmodel.sql.sqltypes.AutoString(length=120),
                    existing_type=sqlmodel.sql.sqltypes.AutoString(length=24), existing_nullable=True)
    op.add_column('test_drive', sa.Column('licence_last4', sqlmodel.sql.sqltypes.AutoString(length=4),
                                          nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, licence_number FROM test_drive WHERE licence_number IS NOT NULL "
                                      "AND licence_number NOT LIKE 'sealed:%'")).all()
    for row_id, number in rows:
        connection.execute(sa.text("UPDATE test_drive SET licence_number = :sealed, licence_last4 = :last4 "
                                   "WHERE id = :id"),
                           {"sealed": seal(number, PURPOSE), "last4": number[-4:], "id": row_id})


def downgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, licence_number FROM test_drive "
                                      "WHERE licence_number LIKE 'sealed:%'")).all()
    for row_id, sealed in rows:
        number = open_sealed(sealed, PURPOSE)
        connection.execute(sa.text("UPDATE test_drive SET licence_number = :number WHERE id = :id"),
                           {"number": (number or "unreadable")[:24], "id": row_id})
    op.drop_column('test_drive', 'licence_last4')
    op.alter_column('test_drive', 'licence_number', type_=sqlmodel.sql.sqltypes.AutoString(length=24),
                    existing_type=sqlmodel.sql.sqltypes.AutoString(length=120), existing_nullable=True)
