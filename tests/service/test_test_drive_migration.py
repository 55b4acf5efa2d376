"""Migration 0006 creates exactly what the test-drive models declare (the exclusion constraints included),
and goes down and up again; 0008 seals licence numbers; 0009 gives each branch its own model lengths; 0010
adds the "confirmed" status to the status check and both exclusion constraints."""

import asyncio
import os
import re

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import backend.models  # noqa: F401 - every table on the metadata
from backend.domains.test_drives import rules
from backend.lib.db import metadata
from backend.lib.migrate import alembic_config, upgrade
from tests.conftest import database_url_for, drop_database, recreate_database
from tests.service.test_service_migration import _table_of

TABLES = {"test_drive", "test_drive_settings", "test_drive_model_length", "test_drive_car", "test_drive_salesperson",
          "lead", "branch_holiday"}


def quoted(definition: str) -> set[str]:
    """The statuses a constraint's definition names (PostgreSQL writes them as 'booked'::text or
    'booked'::character varying)."""
    return set(re.findall(r"'([a-z_]+)'::", definition))


async def constraint_statuses(engine) -> dict[str, set[str]]:
    """The statuses named by the status check and each exclusion constraint of test_drive."""
    async with engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'test_drive'::regclass "
            "AND (contype = 'x' OR conname = 'ck_test_drive_status_known')"))).all()
    return {name: quoted(definition) for name, definition in rows}


async def test_migration_matches_the_models_and_round_trips(base_urls):
    base, _ = base_urls
    name = f"forecourt_migration_td_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            diffs = await connection.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata))
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            exclusions = (await connection.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'x' "
                "AND conrelid = 'test_drive'::regclass ORDER BY conname"))).all()
        assert TABLES <= tables
        ours = [d for d in diffs if _table_of(d) in TABLES or any(t in str(d) for t in TABLES)]
        assert ours == [], ours
        assert [name for name, _definition in exclusions] == ["ex_test_drive_salesperson_busy",
                                                              "ex_test_drive_vehicle_busy"]
        for _name, definition in exclusions:
            assert "USING gist" in definition and "WITH &&" in definition and "'[]'" in definition
            assert "'booked'" in definition and "'checked_out'" in definition
            assert quoted(definition) == {s.value for s in rules.ACTIVE}  # what the models declare

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0005")
        async with engine.connect() as connection:
            left = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert not TABLES & left and "service_appointment" in left  # 0005 and before stay
        await asyncio.to_thread(upgrade, url)
    finally:
        await engine.dispose()
        await drop_database(base, name)


async def test_migration_0008_seals_the_licence_numbers_already_stored(base_urls, redis):
    from backend.domains.test_drives.service import TestDriveService
    from backend.lib.db import make_session_maker, unit_of_work
    from backend.lib.sealing import open_sealed
    from tests.showroom import booking, demo_car, free_start, make_showroom

    base, _ = base_urls
    name = f"forecourt_migration_licence_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url)
        async with unit_of_work(make_session_maker(engine)) as session:
            showroom = await make_showroom(session, redis, min_notice_minutes=0)
            car = await demo_car(session, showroom)
            view = await TestDriveService(session, redis).book(booking(car, await free_start(session, car)))
            drive_id = view.drive.id
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
        async with engine.begin() as connection:  # a drive checked out before 0008: the number as typed
            await connection.execute(text("UPDATE test_drive SET licence_number = '310101199001011234' "
                                          "WHERE id = :id"), {"id": drive_id})
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            stored, last4 = (await connection.execute(text(
                "SELECT licence_number, licence_last4 FROM test_drive WHERE id = :id"), {"id": drive_id})).one()
        assert stored.startswith("sealed:") and "310101" not in stored and last4 == "1234"
        assert open_sealed(stored, "driving-licence") == "310101199001011234"
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0007")
        async with engine.connect() as connection:
            opened = (await connection.execute(text("SELECT licence_number FROM test_drive WHERE id = :id"),
                                               {"id": drive_id})).scalar_one()
        assert opened == "310101199001011234"
    finally:
        await engine.dispose()
        await drop_database(base, name)


async def test_migration_0009_copies_each_model_length_to_every_branch_and_round_trips(base_urls):
    """A length set before 0009 applied at every branch: afterwards every branch has it (nothing changes for
    anyone). Going down keeps one length per model: the minutes most branches use, ties the lowest branch's."""
    from backend.lib.db import make_session_maker, unit_of_work
    from tests.factories import make_branch

    base, _ = base_urls
    name = f"forecourt_migration_lengths_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)

    async def primary_key() -> list[str]:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda c: inspect(c).get_pk_constraint("test_drive_model_length")["constrained_columns"])

    try:
        await asyncio.to_thread(upgrade, url)
        async with unit_of_work(make_session_maker(engine)) as session:
            first, second, third = [(await make_branch(session)).id for _ in range(3)]
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0008")
        assert await primary_key() == ["make", "model"]
        async with engine.begin() as connection:  # lengths set before 0009, for everyone
            await connection.execute(text("INSERT INTO test_drive_model_length (make, model, drive_minutes) "
                                          "VALUES ('BYD', 'Han', 45), ('Tesla', 'Model Y', 40)"))

        await asyncio.to_thread(upgrade, url)
        assert await primary_key() == ["branch_id", "make", "model"]
        async with engine.connect() as connection:
            rows = set((await connection.execute(text(
                "SELECT branch_id, make, model, drive_minutes FROM test_drive_model_length"))).all())
            nullable = (await connection.execute(text(
                "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'test_drive_model_length' "
                "AND column_name = 'branch_id'"))).scalar_one()
            diffs = await connection.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata))
        assert rows == {(b, "BYD", "Han", 45) for b in (first, second, third)} | \
            {(b, "Tesla", "Model Y", 40) for b in (first, second, third)}
        assert nullable == "NO"
        assert [d for d in diffs if "test_drive_model_length" in str(d)] == []

        async with engine.begin() as connection:  # branches go their own ways
            await connection.execute(text("UPDATE test_drive_model_length SET drive_minutes = 60 "
                                          "WHERE make = 'BYD' AND branch_id IN (:b, :c)"), {"b": second, "c": third})
            await connection.execute(text("UPDATE test_drive_model_length SET drive_minutes = 50 "
                                          "WHERE make = 'Tesla' AND branch_id = :b"), {"b": second})
            await connection.execute(text("DELETE FROM test_drive_model_length "
                                          "WHERE make = 'Tesla' AND branch_id = :c"), {"c": third})
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0008")
        assert await primary_key() == ["make", "model"]
        async with engine.connect() as connection:
            kept = set((await connection.execute(text(
                "SELECT make, model, drive_minutes FROM test_drive_model_length"))).all())
        assert kept == {("BYD", "Han", 60), ("Tesla", "Model Y", 40)}  # most branches; a tie: the lowest id's

        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            again = set((await connection.execute(text(
                "SELECT branch_id, make, model, drive_minutes FROM test_drive_model_length"))).all())
        assert again == {(b, "BYD", "Han", 60) for b in (first, second, third)} | \
            {(b, "Tesla", "Model Y", 40) for b in (first, second, third)}
    finally:
        await engine.dispose()
        await drop_database(base, name)


async def test_migration_0010_lets_confirmed_drives_hold_car_and_salesperson_and_goes_back_to_booked(base_urls,
                                                                                                   redis):
    """After 0010 the status check takes "confirmed" and both exclusion constraints count it (the models say
    the same); going down turns confirmed drives back into booked ones and narrows the constraints again."""
    from backend.domains.test_drives.service import TestDriveService
    from backend.lib.db import make_session_maker, unit_of_work
    from tests.showroom import booking, demo_car, free_start, make_showroom

    base, _ = base_urls
    name = f"forecourt_migration_confirmed_{os.getpid()}"
    await recreate_database(base, name)
    url = database_url_for(base, name)
    engine = create_async_engine(url, poolclass=NullPool)
    statuses = {s.value for s in rules.DriveStatus}
    active = {s.value for s in rules.ACTIVE}
    try:
        await asyncio.to_thread(upgrade, url)
        assert await constraint_statuses(engine) == {"ck_test_drive_status_known": statuses,
                                                     "ex_test_drive_vehicle_busy": active,
                                                     "ex_test_drive_salesperson_busy": active}
        assert "confirmed" in statuses and "confirmed" in active
        async with unit_of_work(make_session_maker(engine)) as session:
            showroom = await make_showroom(session, redis, min_notice_minutes=0, salespeople=2)
            car = await demo_car(session, showroom)
            service = TestDriveService(session, redis)
            view = await service.book(booking(car, await free_start(session, car)))
            await service.confirm_by_link(view.token)
            drive_id, start = view.drive.id, view.drive.starts_at
            other = next(p.id for p in showroom.salespeople if p.id != view.drive.salesperson_id)
        overlapping = text(
            "INSERT INTO test_drive (reference, branch_id, vehicle_id, salesperson_id, customer_id, status, source, "
            "starts_at, ends_at, blocked_until, created_by_label, key_handed_over, return_notes, follow_up_note, "
            "customer_comment) SELECT 'MIG10', branch_id, vehicle_id, :other, customer_id, 'booked', 'online', "
            "starts_at + interval '10 minutes', ends_at + interval '10 minutes', blocked_until + interval "
            "'10 minutes', 'test', false, '', '', '' FROM test_drive WHERE id = :id")
        async with engine.connect() as connection:  # the confirmed drive holds its car in the database itself
            with pytest.raises(IntegrityError) as refused:
                await connection.execute(overlapping, {"other": other, "id": drive_id})
        assert "ex_test_drive_vehicle_busy" in str(refused.value)

        await asyncio.to_thread(command.downgrade, alembic_config(url), "0009")
        async with engine.connect() as connection:
            status = (await connection.execute(text("SELECT status FROM test_drive WHERE id = :id"),
                                               {"id": drive_id})).scalar_one()
        assert status == "booked"  # only the confirmation is lost
        assert await constraint_statuses(engine) == {"ck_test_drive_status_known": statuses - {"confirmed"},
                                                     "ex_test_drive_vehicle_busy": active - {"confirmed"},
                                                     "ex_test_drive_salesperson_busy": active - {"confirmed"}}

        await asyncio.to_thread(upgrade, url)
        assert (await constraint_statuses(engine))["ex_test_drive_vehicle_busy"] == active
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE test_drive SET status = 'confirmed' WHERE id = :id"),
                                     {"id": drive_id})
            found = (await connection.execute(text("SELECT starts_at FROM test_drive WHERE id = :id"),
                                              {"id": drive_id})).scalar_one()
        assert found == start
    finally:
        await engine.dispose()
        await drop_database(base, name)
