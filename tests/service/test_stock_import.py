"""Imports: CSV and XLSX, headers in either language, rejected rows, idempotency, scope and races."""

import asyncio
import io

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from backend.domains.stock import repository
from backend.domains.stock.models import Vehicle, VehicleImport
from backend.domains.stock.service import StockService, run_import
from backend.lib import i18n
from backend.lib.errors import Invalid
from tests.factories import as_principal, make_branch, make_user
from tests.stock_factories import make_vehicle, new_vin

EN_HEADER = ["VIN", "Make", "Model", "Trim", "Model year", "Body", "Powertrain", "Battery kWh", "Range km",
             "Colour", "Mileage km", "Condition", "List price", "Cost", "Branch", "Lot", "Features"]
ZH_HEADER = ["车架号", "品牌", "车型", "配置", "年款", "车身类型", "动力类型", "电池容量", "续航里程", "颜色", "里程",
             "车况", "售价", "成本", "门店", "库位", "配置亮点"]


@pytest.fixture(autouse=True)
def english():
    i18n.set_locale("en")


def rows_for(branch_code: str, count: int) -> list[list]:
    return [[new_vin("LMPRT"), "BYD", "Seal", "Premium", 2025, "sedan", "bev", 82.5, 650, "Blue", 10 + i, "new",
             189_800 + i * 100, 170_000, branch_code, f"A-{i:02d}", "Heated seats; 360° camera"] for i in range(count)]


def csv_bytes(header, rows, encoding="utf-8") -> bytes:
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    for row in rows:
        out.write(",".join(f'"{v}"' if isinstance(v, str) and ("," in v or ";" in v) else str(v) for v in row) + "\n")
    return out.getvalue().encode(encoding)


def xlsx_bytes(header, rows) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def start_and_run(session, session_maker, principal, name, data) -> VehicleImport:
    record = await StockService(session).start_import(principal, name, data)
    assert record.state == "queued"
    assert await run_import(session_maker, record.id, chunk_rows=7) == "done"
    await session.refresh(record)
    return record


async def test_csv_import_with_rejections_and_the_same_file_twice_changes_nothing(session, session_maker, redis):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    rows = rows_for(branch.code, 20)
    rows[3][0] = rows[3][0][:8] + ("2" if rows[3][0][8] != "2" else "3") + rows[3][0][9:]  # check digit
    rows[5][6] = "steam"  # powertrain
    rows[7][0] = rows[6][0]  # the same VIN twice
    rows[9][12] = "lots"  # price
    data = csv_bytes(EN_HEADER, rows)

    first = await start_and_run(session, session_maker, manager, "stock.csv", data)
    assert (first.state, first.total_rows, first.processed_rows) == ("done", 20, 20)
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (16, 0, 0, 4)
    rejected = await repository.rejections_of(session, first.id)
    reasons = {r.row_number: r.reason for r in rejected}
    assert set(reasons) == {5, 7, 9, 11}  # spreadsheet rows: the header is row 1
    assert "check digit" in reasons[5] and "powertrain" in reasons[7] and "row 8" in reasons[9]
    assert "not a number" in reasons[11]
    assert rejected[0].raw["VIN"] == rows[3][0]

    before = (await session.execute(select(Vehicle.vin, Vehicle.updated_at).order_by(Vehicle.vin))).all()
    second = await start_and_run(session, session_maker, manager, "stock again.csv", data)
    assert (second.inserted, second.updated, second.unchanged, second.rejected) == (0, 0, 16, 4)
    after = (await session.execute(select(Vehicle.vin, Vehicle.updated_at).order_by(Vehicle.vin))).all()
    assert before == after  # not one row touched

    rows[0][12] = 111_100  # a new price for one car
    third = await start_and_run(session, session_maker, manager, "stock 3.csv", csv_bytes(EN_HEADER, rows))
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 15)
    car = (await session.execute(select(Vehicle).where(Vehicle.vin == rows[0][0]))).scalar_one()
    assert car.list_price == 111_100 and car.features == ["Heated seats", "360° camera"]


async def test_xlsx_with_chinese_headers(session, session_maker, redis):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    rows = rows_for(branch.code, 5)
    for row in rows:
        row[5], row[6], row[11], row[12] = "SUV", "纯电动", "新车", "18.98万"
    record = await start_and_run(session, session_maker, manager, "库存.xlsx", xlsx_bytes(ZH_HEADER, rows))
    assert record.file_format == "xlsx" and (record.inserted, record.rejected) == (5, 0)
    cars = (await session.execute(select(Vehicle).where(Vehicle.branch_id == branch.id))).scalars().all()
    assert {(c.body, c.powertrain, c.condition, c.list_price) for c in cars} == {("suv", "bev", "new", 189_800)}


async def test_imports_keep_reserved_and_sold_cars_and_audit_status_changes(session, session_maker, redis):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    reserved = await make_vehicle(session, branch, status="reserved")
    in_transit = await make_vehicle(session, branch, status="in_transit")
    header = ["VIN", "Make", "Model", "Model year", "Body", "Powertrain", "Condition", "List price", "Status"]
    rows = [[v.vin, v.make, v.model, v.model_year, v.body, v.powertrain, v.condition, v.list_price, "in stock"]
            for v in (reserved, in_transit)]
    record = await start_and_run(session, session_maker, manager, "arrivals.csv", csv_bytes(header, rows))
    assert (record.updated, record.unchanged) == (1, 1)
    await session.refresh(reserved)
    await session.refresh(in_transit)
    assert reserved.status == "reserved" and in_transit.status == "in_stock"
    entry = (await session.execute(text(
        "SELECT before, after, actor_label FROM audit_log WHERE entity = 'vehicle' AND entity_id = :id"),
        {"id": str(in_transit.id)})).one()
    assert entry.before == {"status": "in_transit"} and entry.after == {"status": "in_stock"}
    assert entry.actor_label == manager.audit_label
    # A file without a cost column leaves costs alone.
    assert in_transit.cost is not None


async def test_branch_staff_import_only_into_their_branch(session, session_maker, redis):
    home, other = await make_branch(session), await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=home))
    foreign_car = await make_vehicle(session, other)
    rows = rows_for("", 2) + rows_for(other.code, 1)
    rows[1][0] = foreign_car.vin
    record = await start_and_run(session, session_maker, manager, "mixed.csv", csv_bytes(EN_HEADER, rows))
    assert (record.inserted, record.rejected) == (1, 2)
    reasons = sorted(r.reason for r in await repository.rejections_of(session, record.id))
    assert reasons == ["This VIN belongs to a car of another branch.", "You can only import cars for your own branch."]
    await session.refresh(foreign_car)
    assert foreign_car.branch_id == other.id


@pytest.mark.parametrize(("name", "data", "message"), [
    ("empty.csv", b"", "empty"),
    ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "not a CSV"),
    ("fake.xlsx", b"PK\x03\x04 not a zip at all", "cannot be opened"),
    ("nohead.csv", b"a,b\n1,2\n", "header"),
    ("missing.csv", b"VIN,Make,Model\nX,Y,Z\n", "missing"),
    ("only-header.csv", ",".join(EN_HEADER).encode() + b"\n", "no rows"),
])
async def test_bad_files_are_refused_before_anything_is_stored(session, redis, name, data, message):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    with pytest.raises(Invalid) as caught:
        await StockService(session).start_import(manager, name, data)
    assert message in caught.value.fields["file"]
    assert await session.scalar(select(func.count()).select_from(VehicleImport)) == 0


async def test_running_an_import_twice_does_nothing_the_second_time(session, session_maker, redis):
    branch = await make_branch(session)
    manager = as_principal(await make_user(session, redis, role="manager", branch=branch))
    data = csv_bytes(EN_HEADER, rows_for(branch.code, 3))
    record = await start_and_run(session, session_maker, manager, "a.csv", data)
    assert await run_import(session_maker, record.id) == "done"  # already done: nothing happens
    assert await run_import(session_maker, 999_999_999) == "missing"
    assert await session.scalar(select(func.count()).select_from(Vehicle).where(Vehicle.branch_id == branch.id)) == 3


# -- two imports of one file at the same time (real transactions) ---------------------------------------


async def test_two_concurrent_imports_of_one_file_do_not_duplicate(engine):
    maker = async_sessionmaker(engine, expire_on_commit=False)

    class NoRedis:
        pass

    async with maker() as session, session.begin():
        branch = await make_branch(session)
        manager = as_principal(await make_user(session, NoRedis(), role="manager", branch=branch))
        data = csv_bytes(EN_HEADER, rows_for(branch.code, 40))
        first = await StockService(session).start_import(manager, "same.csv", data)
        second = await StockService(session).start_import(manager, "same.csv", data)
    try:
        outcomes = await asyncio.gather(run_import(maker, first.id, chunk_rows=9), run_import(maker, second.id,
                                                                                           chunk_rows=9))
        assert outcomes == ["done", "done"]
        async with maker() as session:
            count = await session.scalar(
                select(func.count()).select_from(Vehicle).where(Vehicle.branch_id == branch.id))
            imports = (await session.execute(select(VehicleImport).where(VehicleImport.id.in_([first.id, second.id]))
                                             )).scalars().all()
        assert count == 40
        assert sum(i.inserted for i in imports) == 40 and sum(i.updated for i in imports) == 0
        assert sum(i.unchanged for i in imports) == 40
    finally:
        async with maker() as session, session.begin():
            for statement in ("DELETE FROM vehicle_import_rejection WHERE import_id IN (SELECT id FROM vehicle_import "
                              "WHERE branch_id = :b)", "DELETE FROM vehicle_import WHERE branch_id = :b",
                              "DELETE FROM audit_log WHERE branch_id = :b", "DELETE FROM vehicle WHERE branch_id = :b",
                              "DELETE FROM staff_user WHERE branch_id = :b", "DELETE FROM branch WHERE id = :b"):
                await session.execute(text(statement), {"b": branch.id})
