"""stock search speed: covering indexes of the public sort orders by condition, public facet counts

The customer's search (issue 3: p95 under 25 ms at 100,000 cars) spent its time in two places:

- the page: the sort orders' indexes held only the sort key, so every car the walk passed was read from
  the table to check the filters, and a walk could pass most of the stock (used cars sorted by lowest
  mileage pass every new car first; a rare make at the far end of the price range passes all the others).
  The three indexes now lead with the condition (the search walks each condition on its own and merges
  the streams) and carry every filter column, so the walk reads index entries only;
- the facet counts: they were counted from ``vehicle_facet_count`` (every status, ~10,000 rows at 100,000
  cars), filtering the public statuses out each time. ``vehicle_public_facet_count`` keeps the same counts
  for the cars customers may see, without the status (~4,000 rows), kept exact in the same transaction by
  statement-level triggers like the first one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLIC = "status IN ('in_stock', 'in_transit')"
DIMENSIONS = "make, model, body, powertrain, model_year, branch_id, condition, price_step"
# Every column a customer's search filters or sorts on; each index holds those its key does not.
SEARCHED = ("make", "model", "body", "powertrain", "branch_id", "model_year", "list_price", "mileage_km")
INDEXES = {
    "ix_vehicle_public_price": ("list_price", ["condition", "list_price", "id"]),
    "ix_vehicle_public_newest": ("model_year", ["condition", "model_year DESC", "id DESC"]),
    "ix_vehicle_public_mileage": ("mileage_km", ["condition", "mileage_km", "id"]),
}
OLD_INDEXES = {
    "ix_vehicle_public_price": ["list_price", "id"],
    "ix_vehicle_public_newest": ["model_year DESC", "id DESC"],
    "ix_vehicle_public_mileage": ["mileage_km", "id"],
}

PUBLIC_FACET_FUNCTION = f"""
CREATE FUNCTION vehicle_public_facet_count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vehicle_public_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, count(*) FROM new_rows WHERE {PUBLIC}
        GROUP BY {DIMENSIONS} ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO vehicle_public_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, -count(*) FROM old_rows WHERE {PUBLIC}
        GROUP BY {DIMENSIONS} ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    ELSE
        INSERT INTO vehicle_public_facet_count AS f ({DIMENSIONS}, n)
        SELECT {DIMENSIONS}, sum(delta) FROM (
            SELECT {DIMENSIONS}, 1 AS delta FROM new_rows WHERE {PUBLIC}
            UNION ALL
            SELECT {DIMENSIONS}, -1 AS delta FROM old_rows WHERE {PUBLIC}
        ) AS changes
        GROUP BY {DIMENSIONS} HAVING sum(delta) <> 0 ORDER BY {DIMENSIONS}
        ON CONFLICT ({DIMENSIONS}) DO UPDATE SET n = f.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$
"""  # noqa: S608 - constants only

BACKFILL = (f"INSERT INTO vehicle_public_facet_count ({DIMENSIONS}, n) "  # noqa: S608 - constants only
            f"SELECT {DIMENSIONS}, count(*) FROM vehicle WHERE {PUBLIC} GROUP BY {DIMENSIONS}")
EVENTS = (("insert", "NEW TABLE AS new_rows"), ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
          ("delete", "OLD TABLE AS old_rows"))


def _columns(names: Sequence[str]) -> list:
    return [sa.literal_column(name) if " " in name else name for name in names]


def upgrade() -> None:
    for name, (sort_column, key) in INDEXES.items():
        op.drop_index(name, table_name='vehicle', postgresql_where=sa.text(PUBLIC))
        op.create_index(name, 'vehicle', _columns(key), unique=False, postgresql_where=sa.text(PUBLIC),
                        postgresql_include=[c for c in SEARCHED if c != sort_column])

    op.create_table('vehicle_public_facet_count',
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('powertrain', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('model_year', sa.SmallInteger(), nullable=False),
    sa.Column('branch_id', sa.Integer(), nullable=False),
    sa.Column('condition', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('price_step', sa.SmallInteger(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('make', 'model', 'body', 'powertrain', 'model_year', 'branch_id', 'condition', 'price_step')
    )
    # Triggers first, then the counts of the cars already there: creating a trigger locks out writers
    # until this transaction commits, so no change falls between the two.
    op.execute(PUBLIC_FACET_FUNCTION)
    for event, transition in EVENTS:
        op.execute(f"CREATE TRIGGER vehicle_public_facet_count_{event} AFTER {event.upper()} ON vehicle "
                   f"REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION vehicle_public_facet_count_apply()")
    op.execute(BACKFILL)


def downgrade() -> None:
    for event, _transition in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS vehicle_public_facet_count_{event} ON vehicle")
    op.execute("DROP FUNCTION IF EXISTS vehicle_public_facet_count_apply()")
    op.drop_table('vehicle_public_facet_count')
    for name, key in OLD_INDEXES.items():
        op.drop_index(name, table_name='vehicle', postgresql_where=sa.text(PUBLIC))
        op.create_index(name, 'vehicle', _columns(key), unique=False, postgresql_where=sa.text(PUBLIC))
