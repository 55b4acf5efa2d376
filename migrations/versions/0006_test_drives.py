"""test drives: demo cars, salespeople's hours, drive lengths, branch holidays, test drives, leads

No double booking is enforced here: ``test_drive.during`` is a generated ``tstzrange`` (start to the end of the
buffer) covered by two exclusion constraints, per car and per salesperson, for drives that are booked or checked
out. Core PostgreSQL only (no btree_gist): the id takes part as ``int8range(id, id, '[]') WITH =``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 15:51:21.872897
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('test_drive_model_length',
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('drive_minutes', sa.Integer(), nullable=False),
    sa.CheckConstraint('drive_minutes BETWEEN 10 AND 240', name=op.f('ck_test_drive_model_length_drive_minutes_sane')),
    sa.PrimaryKeyConstraint('make', 'model', name=op.f('pk_test_drive_model_length'))
    )
    op.create_table('branch_holiday',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_branch_holiday_branch_id_branch')),
    sa.PrimaryKeyConstraint('branch_id', 'day', name=op.f('pk_branch_holiday'))
    )
    op.create_table('test_drive_settings',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('drive_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_minutes', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.CheckConstraint('buffer_minutes BETWEEN 0 AND 120', name=op.f('ck_test_drive_settings_buffer_minutes_sane')),
    sa.CheckConstraint('drive_minutes BETWEEN 10 AND 240', name=op.f('ck_test_drive_settings_drive_minutes_sane')),
    sa.CheckConstraint('horizon_days BETWEEN 1 AND 365', name=op.f('ck_test_drive_settings_horizon_sane')),
    sa.CheckConstraint('min_notice_minutes BETWEEN 0 AND 2880', name=op.f('ck_test_drive_settings_min_notice_sane')),
    sa.CheckConstraint('slot_minutes BETWEEN 5 AND 120', name=op.f('ck_test_drive_settings_slot_minutes_sane')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_test_drive_settings_branch_id_branch')),
    sa.PrimaryKeyConstraint('branch_id', name=op.f('pk_test_drive_settings'))
    )
    op.create_table('lead',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('salesperson_id', sa.Integer(), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('vehicle_interest', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('interest', sa.SmallInteger(), nullable=True),
    sa.Column('last_test_drive_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("stage IN ('new', 'contacted', 'presented', 'test_drive', 'negotiating', 'contracted', 'delivered', 'lost')", name=op.f('ck_lead_stage_known')),
    sa.CheckConstraint('interest IS NULL OR interest BETWEEN 1 AND 5', name=op.f('ck_lead_interest_1_to_5')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_lead_branch_id_branch')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_lead_customer_id_customer')),
    sa.ForeignKeyConstraint(['salesperson_id'], ['staff_user.id'], name=op.f('fk_lead_salesperson_id_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead'))
    )
    op.create_index(op.f('ix_lead_branch_id'), 'lead', ['branch_id'], unique=False)
    op.create_index('uq_lead_open_per_customer', 'lead', ['customer_id'], unique=True, postgresql_where=sa.text("stage NOT IN ('delivered', 'lost')"))
    op.create_table('test_drive_car',
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('marked_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], name=op.f('fk_test_drive_car_vehicle_id_vehicle')),
    sa.PrimaryKeyConstraint('vehicle_id', name=op.f('pk_test_drive_car'))
    )
    op.create_table('test_drive_salesperson',
    sa.Column('staff_user_id', sa.Integer(), nullable=False),
    sa.Column('working_hours', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('takes_online', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_user.id'], name=op.f('fk_test_drive_salesperson_staff_user_id_staff_user')),
    sa.PrimaryKeyConstraint('staff_user_id', name=op.f('pk_test_drive_salesperson'))
    )
    op.create_table('test_drive',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('salesperson_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('during', postgresql.TSTZRANGE(), sa.Computed("tstzrange(starts_at, blocked_until, '[)')", persisted=True), nullable=True),
    sa.Column('created_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('licence_number', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('licence_expiry', sa.Date(), nullable=True),
    sa.Column('licence_photo_key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('key_handed_over', sa.Boolean(), nullable=False),
    sa.Column('odometer_out', sa.Integer(), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('odometer_in', sa.Integer(), nullable=True),
    sa.Column('energy_level_in', sa.SmallInteger(), nullable=True),
    sa.Column('return_notes', sa.Text(), server_default='', nullable=False),
    sa.Column('interest', sa.SmallInteger(), nullable=True),
    sa.Column('no_show_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('follow_up_due_on', sa.Date(), nullable=True),
    sa.Column('followed_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('follow_up_note', sa.Text(), server_default='', nullable=False),
    sa.Column('customer_rating', sa.SmallInteger(), nullable=True),
    sa.Column('customer_comment', sa.Text(), server_default='', nullable=False),
    postgresql.ExcludeConstraint((sa.text("int8range(salesperson_id, salesperson_id, '[]')"), '='), (sa.column('during'), '&&'), where=sa.text("status IN ('booked', 'checked_out')"), using='gist', name='ex_test_drive_salesperson_busy'),
    postgresql.ExcludeConstraint((sa.text("int8range(vehicle_id, vehicle_id, '[]')"), '='), (sa.column('during'), '&&'), where=sa.text("status IN ('booked', 'checked_out')"), using='gist', name='ex_test_drive_vehicle_busy'),
    sa.CheckConstraint("source IN ('online', 'phone', 'walk_in')", name=op.f('ck_test_drive_source_known')),
    sa.CheckConstraint("status IN ('booked', 'checked_out', 'returned', 'followed_up', 'no_show', 'cancelled')", name=op.f('ck_test_drive_status_known')),
    sa.CheckConstraint("status NOT IN ('checked_out', 'returned', 'followed_up') OR (licence_number IS NOT NULL AND licence_expiry IS NOT NULL AND odometer_out IS NOT NULL AND key_handed_over)", name=op.f('ck_test_drive_checked_out_with_licence_key_and_odometer')),
    sa.CheckConstraint("status NOT IN ('returned', 'followed_up') OR odometer_in IS NOT NULL", name=op.f('ck_test_drive_returned_with_odometer')),
    sa.CheckConstraint('customer_rating IS NULL OR customer_rating BETWEEN 1 AND 5', name=op.f('ck_test_drive_rating_1_to_5')),
    sa.CheckConstraint('energy_level_in IS NULL OR energy_level_in BETWEEN 0 AND 100', name=op.f('ck_test_drive_energy_percent')),
    sa.CheckConstraint('interest IS NULL OR interest BETWEEN 1 AND 5', name=op.f('ck_test_drive_interest_1_to_5')),
    sa.CheckConstraint('odometer_in IS NULL OR (odometer_out IS NOT NULL AND odometer_in >= odometer_out)', name=op.f('ck_test_drive_odometer_never_goes_back')),
    sa.CheckConstraint('odometer_out IS NULL OR odometer_out >= 0', name=op.f('ck_test_drive_odometer_not_negative')),
    sa.CheckConstraint('starts_at < ends_at AND ends_at <= blocked_until', name=op.f('ck_test_drive_times_in_order')),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], name=op.f('fk_test_drive_branch_id_branch')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_test_drive_customer_id_customer')),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_test_drive_lead_id_lead')),
    sa.ForeignKeyConstraint(['salesperson_id'], ['staff_user.id'], name=op.f('fk_test_drive_salesperson_id_staff_user')),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], name=op.f('fk_test_drive_vehicle_id_vehicle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_test_drive')),
    sa.UniqueConstraint('reference', name=op.f('uq_test_drive_reference'))
    )
    op.create_index('ix_test_drive_branch_starts_at', 'test_drive', ['branch_id', 'starts_at'], unique=False)
    op.create_index(op.f('ix_test_drive_customer_id'), 'test_drive', ['customer_id'], unique=False)
    op.create_index('ix_test_drive_follow_up', 'test_drive', ['salesperson_id', 'follow_up_due_on'], unique=False, postgresql_where=sa.text('follow_up_due_on IS NOT NULL AND followed_up_at IS NULL'))
    op.create_index('ix_test_drive_salesperson_starts_at', 'test_drive', ['salesperson_id', 'starts_at'], unique=False)
    op.create_index('ix_test_drive_vehicle_starts_at', 'test_drive', ['vehicle_id', 'starts_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_test_drive_vehicle_starts_at', table_name='test_drive')
    op.drop_index('ix_test_drive_salesperson_starts_at', table_name='test_drive')
    op.drop_index('ix_test_drive_follow_up', table_name='test_drive', postgresql_where=sa.text('follow_up_due_on IS NOT NULL AND followed_up_at IS NULL'))
    op.drop_index(op.f('ix_test_drive_customer_id'), table_name='test_drive')
    op.drop_index('ix_test_drive_branch_starts_at', table_name='test_drive')
    op.drop_table('test_drive')
    op.drop_table('test_drive_salesperson')
    op.drop_table('test_drive_car')
    op.drop_index('uq_lead_open_per_customer', table_name='lead', postgresql_where=sa.text("stage NOT IN ('delivered', 'lost')"))
    op.drop_index(op.f('ix_lead_branch_id'), table_name='lead')
    op.drop_table('lead')
    op.drop_table('test_drive_settings')
    op.drop_table('branch_holiday')
    op.drop_table('test_drive_model_length')
