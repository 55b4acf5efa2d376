"""stock: vehicles, reservations, photos, imports, facet counts kept by triggers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:37:09.778357
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = "status, make, model, body, powertrain, model_year, branch_id, condition, price_step"

FACET_FUNCTION = f"""
CREATE FUNCTION vehicle_facet_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vehicle_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, count(*) FROM new_rows WHERE status <> 'sold'
        GROUP BY {DIMENSIONS} ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO vehicle_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, -count(*) FROM old_rows WHERE status <> 'sold'
        GROUP BY {DIMENSIONS} ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    ELSE
        INSERT INTO vehicle_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, sum(delta) FROM (
            SELECT {DIMENSIONS}, 1 AS delta FROM new_rows WHERE status <> 'sold'
            UNION ALL
            SELECT {DIMENSIONS}, -1 AS delta FROM old_rows WHERE status <> 'sold'
        ) AS changes
        GROUP BY {DIMENSIONS} HAVING sum(delta) <> 0 ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$
"""  # noqa: S608 - DIMENSIONS is a constant


def upgrade() -> None:
    op.create_table('vehicle_facet_count',
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('powertrain', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('model_year', sa.SmallInteger(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('condition', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('price_step', sa.SmallInteger(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('status', 'make', 'model', 'body', 'powertrain', 'model_year', 'branch_id', 'condition', 'price_step')
    )
    op.create_table('vehicle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vin', sqlmodel.sql.sqltypes.AutoString(length=17), nullable=False),
    sa.Column('vin_last6', sa.String(length=6), sa.Computed('right(vin, 6)', persisted=True), nullable=True),
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('trim', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('model_year', sa.SmallInteger(), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('powertrain', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('battery_kwh', sa.Numeric(precision=5, scale=1), nullable=True),
    sa.Column('range_km', sa.Integer(), nullable=True),
    sa.Column('colour', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('mileage_km', sa.Integer(), nullable=False),
    sa.Column('condition', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('list_price', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('eta', sa.Date(), nullable=True),
    sa.Column('arrival_date', sa.Date(), nullable=True),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('lot_location', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('features', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('internal_notes', sa.Text(), server_default='', nullable=False),
    sa.Column('price_step', sa.SmallInteger(), sa.Computed('LEAST(list_price / 50000, 20)::smallint', persisted=True), nullable=True),
    sa.Column('search_tsv', postgresql.TSVECTOR(), sa.Computed("to_tsvector('simple'::regconfig, make || ' ' || model || ' ' || trim)", persisted=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("body IN ('sedan', 'hatchback', 'suv', 'mpv', 'wagon', 'coupe', 'convertible', 'pickup', 'van')", name='body_known'),
    sa.CheckConstraint("condition IN ('new', 'used', 'demo')", name='condition_known'),
    sa.CheckConstraint("powertrain IN ('hev', 'phev', 'bev', 'fcev') OR (battery_kwh IS NULL AND range_km IS NULL)", name='electrics_only_when_electrified'),
    sa.CheckConstraint("powertrain IN ('petrol', 'diesel', 'hev', 'phev', 'bev', 'fcev')", name='powertrain_known'),
    sa.CheckConstraint("status <> 'in_transit' OR eta IS NOT NULL", name='in_transit_has_eta'),
    sa.CheckConstraint("status IN ('in_transit', 'in_stock', 'reserved', 'sold', 'demo')", name='status_known'),
    sa.CheckConstraint("vin ~ '^[A-HJ-NPR-Z0-9]{17}$'", name='vin_shape'),
    sa.CheckConstraint('list_price > 0', name='price_positive'),
    sa.CheckConstraint('mileage_km >= 0', name='mileage_not_negative'),
    sa.CheckConstraint('model_year BETWEEN 1980 AND 2100', name='model_year_sane'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('vin')
    )
    op.create_index('ix_vehicle_body_powertrain', 'vehicle', ['body', 'powertrain'], unique=False)
    op.create_index('ix_vehicle_branch_status', 'vehicle', ['branch_id', 'status'], unique=False)
    op.create_index('ix_vehicle_make_model', 'vehicle', ['make', 'model'], unique=False)
    op.create_index('ix_vehicle_public_mileage', 'vehicle', ['mileage_km', 'id'], unique=False, postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.create_index('ix_vehicle_public_newest', 'vehicle', [sa.literal_column('model_year DESC'), sa.literal_column('id DESC')], unique=False, postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.create_index('ix_vehicle_public_price', 'vehicle', ['list_price', 'id'], unique=False, postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.create_index('ix_vehicle_search_tsv', 'vehicle', ['search_tsv'], unique=False, postgresql_using='gin')
    op.create_index(op.f('ix_vehicle_vin_last6'), 'vehicle', ['vin_last6'], unique=False)
    op.create_table('vehicle_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('file_format', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('file_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_by_kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('inserted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name='state_known'),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_vehicle_import_file_sha256'), 'vehicle_import', ['file_sha256'], unique=False)
    op.create_table('vehicle_import_rejection',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('vin', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('raw', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['vehicle_import.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_vehicle_import_rejection_import_id'), 'vehicle_import_rejection', ['import_id'], unique=False)
    op.create_table('vehicle_photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('file_key', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_key')
    )
    op.create_index(op.f('ix_vehicle_photo_vehicle_id'), 'vehicle_photo', ['vehicle_id'], unique=False)
    op.create_table('vehicle_reservation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('previous_status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('reserved_by_id', sa.Integer(), nullable=True),
    sa.Column('reserved_by_kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reserved_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('reserved_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by_label', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('release_reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.ForeignKeyConstraint(['branch_id'], ['branch.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_vehicle_reservation_vehicle_id'), 'vehicle_reservation', ['vehicle_id'], unique=False)
    op.create_index('uq_vehicle_reservation_open', 'vehicle_reservation', ['vehicle_id'], unique=True, postgresql_where=sa.text('released_at IS NULL'))

    # Facet counts for the stock search: one row per combination of facet values among unsold cars,
    # kept exact in the same transaction by statement-level triggers (one pass per statement over the
    # transition tables, so a 5,000-row import chunk costs one small upsert). Keys are written in sorted
    # order so that concurrent statements lock the count rows in the same order (no deadlocks).
    op.execute(FACET_FUNCTION)
    for event, transition in (("insert", "NEW TABLE AS new_rows"),
                              ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                              ("delete", "OLD TABLE AS old_rows")):
        op.execute(f"CREATE TRIGGER vehicle_facet_count_{event} AFTER {event.upper()} ON vehicle "
                   f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION vehicle_facet_count_apply()")
    # Make, model, body and powertrain go together (a model has one make and body): tell the planner.
    op.execute("CREATE STATISTICS vehicle_spec_stats (dependencies, ndistinct) "
               "ON make, model, body, powertrain FROM vehicle")


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS vehicle_spec_stats")
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS vehicle_facet_count_{event} ON vehicle")
    op.execute("DROP FUNCTION IF EXISTS vehicle_facet_count_apply()")
    op.drop_index('uq_vehicle_reservation_open', table_name='vehicle_reservation', postgresql_where=sa.text('released_at IS NULL'))
    op.drop_index(op.f('ix_vehicle_reservation_vehicle_id'), table_name='vehicle_reservation')
    op.drop_table('vehicle_reservation')
    op.drop_index(op.f('ix_vehicle_photo_vehicle_id'), table_name='vehicle_photo')
    op.drop_table('vehicle_photo')
    op.drop_index(op.f('ix_vehicle_import_rejection_import_id'), table_name='vehicle_import_rejection')
    op.drop_table('vehicle_import_rejection')
    op.drop_index(op.f('ix_vehicle_import_file_sha256'), table_name='vehicle_import')
    op.drop_table('vehicle_import')
    op.drop_index(op.f('ix_vehicle_vin_last6'), table_name='vehicle')
    op.drop_index('ix_vehicle_search_tsv', table_name='vehicle', postgresql_using='gin')
    op.drop_index('ix_vehicle_public_price', table_name='vehicle', postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.drop_index('ix_vehicle_public_newest', table_name='vehicle', postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.drop_index('ix_vehicle_public_mileage', table_name='vehicle', postgresql_where=sa.text("status IN ('in_stock', 'in_transit')"))
    op.drop_index('ix_vehicle_make_model', table_name='vehicle')
    op.drop_index('ix_vehicle_branch_status', table_name='vehicle')
    op.drop_index('ix_vehicle_body_powertrain', table_name='vehicle')
    op.drop_table('vehicle')
    op.drop_table('vehicle_facet_count')
