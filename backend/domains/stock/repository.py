"""Queries about vehicles. The search and the bulk upsert talk to asyncpg directly (see each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.branches.models import Branch

from .models import Vehicle, VehicleImport, VehicleImportRejection, VehiclePhoto, VehicleReservation
from .rules import VehicleStatus
from .search_sql import SearchSQL

# Every column an import (or the seed) may write, in the order of the records handed to COPY.
BULK_COLUMNS = ("vin", "make", "model", "trim", "model_year", "body", "powertrain", "battery_kwh", "range_km",
                "colour", "mileage_km", "condition", "list_price", "cost", "status", "eta", "arrival_date",
                "branch_id", "lot_location", "features", "internal_notes")
_BULK_TYPES = {"vin": "varchar(17)", "model_year": "smallint", "battery_kwh": "numeric(5,1)", "range_km": "int",
               "mileage_km": "int", "list_price": "int", "cost": "numeric(12,2)", "eta": "date",
               "arrival_date": "date", "branch_id": "int", "features": "text[]"}
_json = msgspec.json.Decoder()


async def driver(session: AsyncSession):
    """The asyncpg connection under the session (same connection, same transaction if one is open)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


# -- search ---------------------------------------------------------------------------------------------


async def search(session: AsyncSession, built: SearchSQL) -> tuple[list, list]:
    """Run the one-statement search. Straight on asyncpg: a read needs no transaction of its own, and
    skipping SQLAlchemy's statement handling keeps the hot path short (the SQL is already final)."""
    conn = await driver(session)
    row = await conn.fetchrow(built.sql, *built.args)
    facets = _json.decode(row["facets"]) if row["facets"] else []
    items = _json.decode(row["items"]) if row["items"] else []
    return facets, items


async def branch_ids_by_code(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Branch.code, Branch.id))
    return {code: branch_id for code, branch_id in rows}


async def branches_by_id(session: AsyncSession, ids: Iterable[int] | None = None) -> dict[int, Branch]:
    query = select(Branch)
    if ids is not None:
        query = query.where(Branch.id.in_(list(ids)))
    return {b.id: b for b in (await session.execute(query)).scalars()}


# -- single vehicles -------------------------------------------------------------------------------


async def vehicle_by_id(session: AsyncSession, vehicle_id: int, *, for_update: bool = False) -> Vehicle | None:
    query = select(Vehicle).where(Vehicle.id == vehicle_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def vehicle_by_vin(session: AsyncSession, vin: str) -> Vehicle | None:
    return (await session.execute(select(Vehicle).where(Vehicle.vin == vin))).scalar_one_or_none()


async def photos_of(session: AsyncSession, vehicle_id: int) -> list[VehiclePhoto]:
    query = select(VehiclePhoto).where(VehiclePhoto.vehicle_id == vehicle_id).order_by(
        VehiclePhoto.position, VehiclePhoto.id)
    return list((await session.execute(query)).scalars())


async def photo_by_key(session: AsyncSession, file_key: str) -> tuple[VehiclePhoto, str] | None:
    row = (await session.execute(
        select(VehiclePhoto, Vehicle.status).join(Vehicle, Vehicle.id == VehiclePhoto.vehicle_id)
        .where(VehiclePhoto.file_key == file_key))).first()
    return (row[0], row[1]) if row else None


async def next_photo_position(session: AsyncSession, vehicle_id: int) -> int:
    value = await session.scalar(select(func.coalesce(func.max(VehiclePhoto.position) + 1, 0))
                                 .where(VehiclePhoto.vehicle_id == vehicle_id))
    return int(value or 0)


async def open_reservation(session: AsyncSession, vehicle_id: int) -> VehicleReservation | None:
    query = select(VehicleReservation).where(VehicleReservation.vehicle_id == vehicle_id,
                                             VehicleReservation.released_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def reservations_of(session: AsyncSession, vehicle_id: int, limit: int = 20) -> list[VehicleReservation]:
    query = (select(VehicleReservation).where(VehicleReservation.vehicle_id == vehicle_id)
             .order_by(VehicleReservation.id.desc()).limit(limit))
    return list((await session.execute(query)).scalars())


async def set_status_if(session: AsyncSession, vehicle_id: int, *, expected: Sequence[str], status: str,
                        **values) -> str | None:
    """Atomically move a car to ``status`` if it is in one of ``expected``; return the old status or None.

    A conditional UPDATE: of two concurrent callers the second waits for the first to commit, then sees
    the new status and updates nothing.
    """
    old = (select(Vehicle.status).where(Vehicle.id == vehicle_id).scalar_subquery())
    result = await session.execute(
        update(Vehicle).where(Vehicle.id == vehicle_id, Vehicle.status.in_(list(expected)))
        .values(status=status, updated_at=func.now(), **values)
        .returning(old)
        .execution_options(synchronize_session=False))
    return result.scalar_one_or_none()


# -- imports ------------------------------------------------------------------------------------------


async def import_by_id(session: AsyncSession, import_id: int, *, for_update: bool = False) -> VehicleImport | None:
    query = select(VehicleImport).where(VehicleImport.id == import_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def recent_imports(session: AsyncSession, *, branch_id: int | None, limit: int = 10) -> list[VehicleImport]:
    query = select(VehicleImport).order_by(VehicleImport.id.desc()).limit(limit)
    if branch_id is not None:
        query = query.where(VehicleImport.branch_id == branch_id)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def rejections_of(session: AsyncSession, import_id: int) -> list[VehicleImportRejection]:
    query = (select(VehicleImportRejection).where(VehicleImportRejection.import_id == import_id)
             .order_by(VehicleImportRejection.row_number))
    return list((await session.execute(query)).scalars())


async def clear_rejections(session: AsyncSession, import_id: int) -> None:
    await session.execute(text("DELETE FROM vehicle_import_rejection WHERE import_id = :id"), {"id": import_id})


async def add_rejections(session: AsyncSession, import_id: int,
                         rejections: Sequence[tuple[int, str, str, str]]) -> None:
    """``(row number, vin, reason, raw row as JSON text)`` each."""
    if not rejections:
        return
    await session.execute(text("SELECT 1"))  # make sure the transaction is open before using COPY
    conn = await driver(session)
    await conn.copy_records_to_table(
        "vehicle_import_rejection", columns=("import_id", "row_number", "vin", "reason", "raw"),
        records=[(import_id, n, vin[:40], reason, raw) for n, vin, reason, raw in rejections])


async def existing_by_vin(session: AsyncSession, vins: Sequence[str]) -> dict[str, tuple[int, str]]:
    """``{vin: (branch id, status)}`` for the VINs that exist."""
    rows = await session.execute(select(Vehicle.vin, Vehicle.branch_id, Vehicle.status)
                                 .where(Vehicle.vin.in_(list(vins))))
    return {vin: (branch_id, status) for vin, branch_id, status in rows}


async def bulk_upsert(session: AsyncSession, records: Sequence[tuple], *, columns: Sequence[str],
                      actor: tuple[str, int | None, str], request_id: str | None = None,
                      keep_protected_status: bool = True) -> tuple[int, int]:
    """Insert or update cars by VIN; returns (inserted, updated). Unchanged rows are not touched.

    ``records`` hold every column of :data:`BULK_COLUMNS` (in that order) plus a leading row number;
    ``columns`` are those the file really had: only they are compared and overwritten on existing cars,
    so a file without a cost column leaves costs alone. COPY into a temporary table, then one
    ``INSERT ... ON CONFLICT (vin) DO UPDATE ... WHERE (...) IS DISTINCT FROM (...)`` in file order (two
    concurrent imports of one file lock rows in the same order and cannot deadlock). Status changes of
    existing cars are written to the audit log by the same statement.
    """
    await session.execute(text(
        "CREATE TEMP TABLE IF NOT EXISTS vehicle_import_rows (row_number int, "
        + ", ".join(f"{c} {_BULK_TYPES.get(c, 'text')}" for c in BULK_COLUMNS)
        + ") ON COMMIT DELETE ROWS"))
    conn = await driver(session)
    await conn.execute("TRUNCATE vehicle_import_rows")
    await conn.copy_records_to_table("vehicle_import_rows", columns=("row_number", *BULK_COLUMNS), records=records)
    updatable = [c for c in columns if c != "vin"]
    status_expr = ("CASE WHEN v.status IN ('reserved', 'sold') THEN v.status ELSE EXCLUDED.status END"
                   if keep_protected_status else "EXCLUDED.status")
    assignments = [f"{c} = {status_expr if c == 'status' else 'EXCLUDED.' + c}" for c in updatable]
    old_values = ", ".join(f"v.{c}" for c in updatable) or "NULL"
    new_values = ", ".join(status_expr if c == "status" else f"EXCLUDED.{c}" for c in updatable) or "NULL"
    sql = f"""
WITH previous AS (
  SELECT v.id, v.status FROM vehicle v JOIN vehicle_import_rows r ON r.vin = v.vin
), written AS (
  INSERT INTO vehicle AS v ({", ".join(BULK_COLUMNS)}, updated_at)
  SELECT {", ".join(BULK_COLUMNS)}, now() FROM vehicle_import_rows ORDER BY row_number
  ON CONFLICT (vin) DO UPDATE SET {", ".join(assignments + ["updated_at = now()"])}
  WHERE ({old_values}) IS DISTINCT FROM ({new_values})
  RETURNING v.id, v.status, v.branch_id, (v.xmax = 0) AS inserted
), audited AS (
  INSERT INTO audit_log (actor_kind, actor_id, actor_label, action, entity, entity_id, branch_id, before, after,
                         request_id)
  SELECT $1, $2, $3, 'status', 'vehicle', w.id::text, w.branch_id, jsonb_build_object('status', p.status),
         jsonb_build_object('status', w.status), $4
  FROM written w JOIN previous p ON p.id = w.id WHERE p.status <> w.status
  RETURNING 1
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated FROM written
"""  # noqa: S608 - only our column names are interpolated; values are parameters
    row = await conn.fetchrow(sql, actor[0], actor[1], actor[2], request_id)
    return row["inserted"], row["updated"]


async def open_reservations_for_reserved(session: AsyncSession, label: str, reason: str) -> int:
    """Give every reserved car without an open reservation one (demo data)."""
    result = await session.execute(text("""
        INSERT INTO vehicle_reservation (vehicle_id, branch_id, previous_status, reason, reserved_by_kind,
                                         reserved_by_label, reserved_at)
        SELECT v.id, v.branch_id, 'in_stock', :reason, 'system', :label, now() - (v.id % 7) * interval '1 day'
        FROM vehicle v WHERE v.status = :reserved
          AND NOT EXISTS (SELECT 1 FROM vehicle_reservation r WHERE r.vehicle_id = v.id AND r.released_at IS NULL)
    """), {"reason": reason, "label": label, "reserved": VehicleStatus.RESERVED.value})
    return result.rowcount


async def touch_import(session: AsyncSession, import_id: int, **values) -> None:
    await session.execute(update(VehicleImport).where(VehicleImport.id == import_id).values(**values))


