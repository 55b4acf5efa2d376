"""service: catalogue, capacity counters, appointments, repair orders with their lines, clocks, findings

Capacity is enforced here, not in Python: ``service_day_capacity`` and ``service_slot_capacity`` carry
``CHECK (booked >= 0 AND booked <= capacity)``, and bookings move them with conditional updates. One running
clock per technician is a partial unique index; one repair order per appointment a unique constraint;
``booking_idempotency`` makes a retried booking return its first answer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:00:16.451683
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('booking_idempotency',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('request_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('scope', 'key_hash')
    )
    op.create_index(op.f('ix_booking_idempotency_created_at'), 'booking_idempotency', ['created_at'], unique=False)
    op.create_table('service_operation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('description_en', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('description_zh', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('labour_hours', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('parts', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('skill', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint("code ~ '^[A-Z0-9_]{2,32}$'", name='code_shape'),
    sa.CheckConstraint("skill IN ('general', 'ev', 'tyres', 'brakes', 'diagnosis')", name='skill_known'),
    sa.CheckConstraint('labour_hours > 0 AND labour_hours <= 40', name='labour_hours_sane'),
    sa.CheckConstraint('price >= 0', name='price_not_negative'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('repair_order_counter',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('branch_id')
    )
    op.create_table('service_bay',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('branch_id', 'name')
    )
    op.create_index(op.f('ix_service_bay_branch_id'), 'service_bay', ['branch_id'], unique=False)
    op.create_table('service_day_capacity',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('resource', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name='never_overbooked'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('branch_id', 'day', 'resource')
    )
    op.create_table('service_settings',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('checkins_per_slot', sa.Integer(), nullable=False),
    sa.Column('last_checkin_before_close', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('bays', sa.Integer(), nullable=False),
    sa.Column('labour_rate', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.CheckConstraint('checkins_per_slot BETWEEN 1 AND 100', name='checkins_per_slot_sane'),
    sa.CheckConstraint('labour_rate >= 0', name='labour_rate_not_negative'),
    sa.CheckConstraint('slot_minutes BETWEEN 5 AND 120', name='slot_minutes_sane'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('branch_id')
    )
    op.create_table('service_slot_capacity',
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name='never_overbooked'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('branch_id', 'starts_at')
    )
    op.create_table('service_technician',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('skills', sa.ARRAY(sa.String(length=16)), server_default='{general}', nullable=False),
    sa.Column('working_hours', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('staff_user_id')
    )
    op.create_index(op.f('ix_service_technician_branch_id'), 'service_technician', ['branch_id'], unique=False)
    op.create_table('service_vehicle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plate', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('vin', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('last_mileage_km', sa.Integer(), nullable=True),
    sa.Column('last_mileage_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("vin IS NULL OR vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name='vin_shape'),
    sa.CheckConstraint('last_mileage_km IS NULL OR last_mileage_km >= 0', name='mileage_not_negative'),
    sa.CheckConstraint('plate IS NOT NULL OR vin IS NOT NULL', name='identified'),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_service_vehicle_customer_id'), 'service_vehicle', ['customer_id'], unique=False)
    op.create_index('uq_service_vehicle_plate', 'service_vehicle', ['plate'], unique=True, postgresql_where=sa.text('plate IS NOT NULL'))
    op.create_index('uq_service_vehicle_vin', 'service_vehicle', ['vin'], unique=True, postgresql_where=sa.text('vin IS NOT NULL'))
    op.create_table('service_appointment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('slot_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('transport', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('mileage_km', sa.Integer(), nullable=False),
    sa.Column('notes', sa.Text(), server_default='', nullable=False),
    sa.Column('resources', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('estimated_minutes', sa.Integer(), nullable=False),
    sa.Column('estimated_price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('created_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("source IN ('online', 'phone', 'walk_in')", name='source_known'),
    sa.CheckConstraint("status IN ('booked', 'confirmed', 'checked_in', 'no_show', 'cancelled')", name='status_known'),
    sa.CheckConstraint("transport IN ('waiting', 'loan_car', 'drop_off')", name='transport_known'),
    sa.CheckConstraint('mileage_km >= 0', name='mileage_not_negative'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['service_vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    op.create_index('ix_service_appointment_branch_day', 'service_appointment', ['branch_id', 'day'], unique=False)
    op.create_index(op.f('ix_service_appointment_customer_id'), 'service_appointment', ['customer_id'], unique=False)
    op.create_index(op.f('ix_service_appointment_vehicle_id'), 'service_appointment', ['vehicle_id'], unique=False)
    op.create_table('repair_order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('mileage_in', sa.Integer(), nullable=False),
    sa.Column('energy_level', sa.Integer(), nullable=True),
    sa.Column('concerns', sa.Text(), server_default='', nullable=False),
    sa.Column('promised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('advisor_id', sa.Integer(), nullable=True),
    sa.Column('advisor_name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('survey_score', sa.Integer(), nullable=True),
    sa.Column('survey_comment', sa.Text(), nullable=True),
    sa.Column('survey_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('open', 'diagnosing', 'awaiting_approval', 'awaiting_parts', 'in_progress', 'quality_check', 'ready_for_pickup', 'delivered', 'cancelled')", name='status_known'),
    sa.CheckConstraint('energy_level IS NULL OR energy_level BETWEEN 0 AND 100', name='energy_level_percent'),
    sa.CheckConstraint('mileage_in >= 0', name='mileage_not_negative'),
    sa.CheckConstraint('survey_score IS NULL OR survey_score BETWEEN 0 AND 10', name='survey_score_0_10'),
    sa.ForeignKeyConstraint(['advisor_id'], ['staff_user.id'], ),
    sa.ForeignKeyConstraint(['appointment_id'], ['service_appointment.id'], ),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['service_vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('appointment_id'),
    sa.UniqueConstraint('number')
    )
    op.create_index('ix_repair_order_branch_status', 'repair_order', ['branch_id', 'status'], unique=False)
    op.create_index(op.f('ix_repair_order_customer_id'), 'repair_order', ['customer_id'], unique=False)
    op.create_index(op.f('ix_repair_order_vehicle_id'), 'repair_order', ['vehicle_id'], unique=False)
    op.create_table('service_appointment_operation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('labour_hours', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('skill', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('parts', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['service_appointment.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['operation_id'], ['service_operation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_service_appointment_operation_appointment_id'), 'service_appointment_operation', ['appointment_id'], unique=False)
    op.create_table('repair_order_event',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('repair_order_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('to_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_order.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_repair_order_event_repair_order_id'), 'repair_order_event', ['repair_order_id'], unique=False)
    op.create_table('repair_order_photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repair_order_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('file_key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('damage', 'finding')", name='kind_known'),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_order.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_key')
    )
    op.create_index(op.f('ix_repair_order_photo_repair_order_id'), 'repair_order_photo', ['repair_order_id'], unique=False)
    op.create_table('repair_order_finding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repair_order_id', sa.Integer(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('labour_hours', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('parts_price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('photo_id', sa.Integer(), nullable=True),
    sa.Column('reported_by_id', sa.Integer(), nullable=True),
    sa.Column('reported_by_name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(decision = 'pending') = (decided_at IS NULL)", name='decided_has_time'),
    sa.CheckConstraint("decision IN ('pending', 'approved', 'declined')", name='decision_known'),
    sa.CheckConstraint('price >= 0 AND parts_price >= 0 AND labour_hours >= 0', name='amounts_not_negative'),
    sa.ForeignKeyConstraint(['photo_id'], ['repair_order_photo.id'], ),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_order.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['reported_by_id'], ['staff_user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_repair_order_finding_repair_order_id'), 'repair_order_finding', ['repair_order_id'], unique=False)
    op.create_table('repair_order_labour',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repair_order_id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.Integer(), nullable=True),
    sa.Column('name_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('name_zh', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('skill', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('standard_hours', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('technician_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('clocked_minutes', sa.Integer(), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("origin IN ('booked', 'added', 'extra')", name='origin_known'),
    sa.CheckConstraint("status IN ('pending', 'in_progress', 'done')", name='status_known'),
    sa.CheckConstraint('standard_hours >= 0 AND price >= 0 AND clocked_minutes >= 0', name='amounts_not_negative'),
    sa.ForeignKeyConstraint(['finding_id'], ['repair_order_finding.id'], ),
    sa.ForeignKeyConstraint(['operation_id'], ['service_operation.id'], ),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_order.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['technician_id'], ['service_technician.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_repair_order_labour_repair_order_id'), 'repair_order_labour', ['repair_order_id'], unique=False)
    op.create_index(op.f('ix_repair_order_labour_technician_id'), 'repair_order_labour', ['technician_id'], unique=False)
    op.create_table('repair_order_part',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repair_order_id', sa.Integer(), nullable=False),
    sa.Column('part_number', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('quantity', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('unit_cost', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('unit_price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("origin IN ('booked', 'added', 'extra')", name='origin_known'),
    sa.CheckConstraint('quantity > 0 AND unit_price >= 0 AND (unit_cost IS NULL OR unit_cost >= 0)', name='amounts_sane'),
    sa.ForeignKeyConstraint(['finding_id'], ['repair_order_finding.id'], ),
    sa.ForeignKeyConstraint(['repair_order_id'], ['repair_order.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_repair_order_part_repair_order_id'), 'repair_order_part', ['repair_order_id'], unique=False)
    op.create_table('repair_order_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('labour_id', sa.Integer(), nullable=False),
    sa.Column('technician_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('stopped_at IS NULL OR stopped_at >= started_at', name='stops_after_start'),
    sa.ForeignKeyConstraint(['labour_id'], ['repair_order_labour.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['technician_id'], ['service_technician.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_repair_order_clock_labour_id'), 'repair_order_clock', ['labour_id'], unique=False)
    op.create_index('uq_repair_order_clock_running', 'repair_order_clock', ['technician_id'], unique=True, postgresql_where=sa.text('stopped_at IS NULL'))


def downgrade() -> None:
    op.drop_index('uq_repair_order_clock_running', table_name='repair_order_clock', postgresql_where=sa.text('stopped_at IS NULL'))
    op.drop_index(op.f('ix_repair_order_clock_labour_id'), table_name='repair_order_clock')
    op.drop_table('repair_order_clock')
    op.drop_index(op.f('ix_repair_order_part_repair_order_id'), table_name='repair_order_part')
    op.drop_table('repair_order_part')
    op.drop_index(op.f('ix_repair_order_labour_technician_id'), table_name='repair_order_labour')
    op.drop_index(op.f('ix_repair_order_labour_repair_order_id'), table_name='repair_order_labour')
    op.drop_table('repair_order_labour')
    op.drop_index(op.f('ix_repair_order_finding_repair_order_id'), table_name='repair_order_finding')
    op.drop_table('repair_order_finding')
    op.drop_index(op.f('ix_repair_order_photo_repair_order_id'), table_name='repair_order_photo')
    op.drop_table('repair_order_photo')
    op.drop_index(op.f('ix_repair_order_event_repair_order_id'), table_name='repair_order_event')
    op.drop_table('repair_order_event')
    op.drop_index(op.f('ix_service_appointment_operation_appointment_id'), table_name='service_appointment_operation')
    op.drop_table('service_appointment_operation')
    op.drop_index(op.f('ix_repair_order_vehicle_id'), table_name='repair_order')
    op.drop_index(op.f('ix_repair_order_customer_id'), table_name='repair_order')
    op.drop_index('ix_repair_order_branch_status', table_name='repair_order')
    op.drop_table('repair_order')
    op.drop_index(op.f('ix_service_appointment_vehicle_id'), table_name='service_appointment')
    op.drop_index(op.f('ix_service_appointment_customer_id'), table_name='service_appointment')
    op.drop_index('ix_service_appointment_branch_day', table_name='service_appointment')
    op.drop_table('service_appointment')
    op.drop_index('uq_service_vehicle_vin', table_name='service_vehicle', postgresql_where=sa.text('vin IS NOT NULL'))
    op.drop_index('uq_service_vehicle_plate', table_name='service_vehicle', postgresql_where=sa.text('plate IS NOT NULL'))
    op.drop_index(op.f('ix_service_vehicle_customer_id'), table_name='service_vehicle')
    op.drop_table('service_vehicle')
    op.drop_index(op.f('ix_service_technician_branch_id'), table_name='service_technician')
    op.drop_table('service_technician')
    op.drop_table('service_slot_capacity')
    op.drop_table('service_settings')
    op.drop_table('service_day_capacity')
    op.drop_index(op.f('ix_service_bay_branch_id'), table_name='service_bay')
    op.drop_table('service_bay')
    op.drop_table('repair_order_counter')
    op.drop_table('service_operation')
    op.drop_index(op.f('ix_booking_idempotency_created_at'), table_name='booking_idempotency')
    op.drop_table('booking_idempotency')
