"""Test-drive booking under contention: many customers at once, few slots. Prints successes and latency.

Not a test: it is not collected by pytest (but it checks its own outcome and exits 1 when it is wrong).

    .venv/bin/python bench/booking_contention.py                      # 500 attempts over 50 slots, all at once
    .venv/bin/python bench/booking_contention.py --concurrency 50     # the same 500, 50 in flight at a time

What it does:
1. Servers from DATABASE_URL / REDIS_URL, else the embedded ones. It works in a database of its own,
   ``forecourt_bench_td_<pid>`` (created, migrated, dropped at the end) and in a Redis database number it
   claims for the run (flushed before and after). Your data is never touched.
2. Makes a branch open 08:00-20:00 with ``--cars`` demonstrators and as many salespeople (so every car can
   go at the same time), and picks ``--slots / --cars`` starts an hour apart two days ahead: ``--slots``
   (car, start) pairs in all, none overlapping another for the same car or salesperson.
3. Starts the app with uvicorn (``--workers`` processes, as in production; no background worker), warms it
   up with a few bookings on another day, then opens ``--concurrency`` keep-alive connections and sends
   ``--attempts`` bookings (``POST /api/v1/test-drives``, each from its own client address, each for one of
   the pairs, shuffled) over them, all released at the same moment.
4. Prints how many succeeded (must be exactly one per pair), the other answers by status, and the p50, p95,
   p99 and max latency of all attempts as the client saw them (queueing in the server included). Then
   checks in the database that each pair has exactly one booking.

Everything runs on one machine: the load generator, the app processes and PostgreSQL share the CPUs, so the
figures depend on what else runs. Compare runs on the same machine with the same options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.lib.scratchdb import (  # noqa: E402
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from bench.common import (  # noqa: E402
    HOST,
    configured_urls,
    connect,
    flush_redis,
    free_port,
    percentile,
    server_env,
    stop,
    wait_until_ready,
)

BENCH_DB = f"forecourt_bench_td_{os.getpid()}"
TZ = "Asia/Shanghai"


# -- the data -----------------------------------------------------------------------------------------------


async def prepare(database_url: str, cars: int, starts_per_car: int) -> tuple[list[int], list[datetime], date]:
    """A branch, its cars and salespeople; the measured starts (local, two days ahead)."""
    from zoneinfo import ZoneInfo

    from backend.domains.accounts.models import StaffUser
    from backend.domains.branches import service as branches
    from backend.domains.stock.models import Vehicle
    from backend.domains.stock.rules import with_check_digit
    from backend.domains.test_drives.models import SalespersonHours, TestDriveSettings
    from backend.lib import db

    engine = db.make_engine(database_url, pool_size=1)
    try:
        async with db.unit_of_work(db.make_session_maker(engine)) as session:
            group = await branches.create_group(session, "Bench Motors")
            hours = {d: ["08:00", "20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
            branch = await branches.create_branch(session, group_id=group.id, code="BENCH", name="压测门店",
                                                  name_en="Bench branch", timezone=TZ, opening_hours=hours)
            session.add(TestDriveSettings(branch_id=branch.id, min_notice_minutes=0))
            vehicles = []
            for n in range(cars):
                vehicle = Vehicle(vin=with_check_digit(f"LBNCH{n:03d}0R{n:07d}"[:17]), make="BYD", model=f"Han {n}",
                                  model_year=2025, body="sedan", powertrain="bev", mileage_km=100, condition="demo",
                                  list_price=209_800, status="demo", branch_id=branch.id)
                session.add(vehicle)
                vehicles.append(vehicle)
            for n in range(cars):  # one salesperson per car: every car can go at the same time
                person = StaffUser(email=f"bench-sales-{n}@forecourt.test", name=f"Sales {n}", password_hash="!",
                                   role="sales", branch_id=branch.id, locale="en")
                session.add(person)
                await session.flush()
                session.add(SalespersonHours(staff_user_id=person.id, working_hours=hours))
            await session.flush()
            day = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=2)
            starts = [datetime(day.year, day.month, day.day, 9 + n, tzinfo=ZoneInfo(TZ)) for n in range(starts_per_car)]
            return [v.id for v in vehicles], starts, day
    finally:
        await engine.dispose()


async def transactions(database_url: str) -> int:
    """Transactions PostgreSQL has finished in the bench's database so far (its statistics, ~0.5 s late)."""
    conn = await connect(database_url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        return await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                   "WHERE datname = current_database()")
    finally:
        await conn.close()


async def check_database(database_url: str, pairs: list[tuple[int, datetime]]) -> Counter:
    conn = await connect(database_url)
    try:
        rows = await conn.fetch("SELECT vehicle_id, starts_at FROM test_drive WHERE status = 'booked'")
    finally:
        await conn.close()
    wanted = {(v, s.astimezone(UTC)) for v, s in pairs}
    return Counter((r["vehicle_id"], r["starts_at"]) for r in rows if (r["vehicle_id"], r["starts_at"]) in wanted)


# -- the load -------------------------------------------------------------------------------------------------


class Connection:
    """A minimal HTTP/1.1 keep-alive client (POST with a JSON body): cheap, so the server gets the CPU."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def post(self, path: str, body: dict, forwarded_for: str) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        self.writer.write((f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                           f"Accept: application/json\r\nX-Forwarded-For: {forwarded_for}\r\n"
                           f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def attempt_body(n: int, vehicle_id: int, start: datetime) -> dict:
    return {"vehicle_id": vehicle_id, "start": start.isoformat(), "name": f"Bench {n}",
            "phone": f"139{n:08d}", "consent": True}


def address(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


async def run_load(port: int, attempts: list[tuple[int, datetime]], concurrency: int,
                   offset: int) -> list[tuple[int, float, bytes]]:
    connections = [await Connection(port).open() for _ in range(min(concurrency, len(attempts)))]
    queue: asyncio.Queue = asyncio.Queue()
    for n, pair in enumerate(attempts):
        queue.put_nowait((n, pair))
    results: list[tuple[int, float, bytes]] = []
    go = asyncio.Event()

    async def client(connection: Connection) -> None:
        await go.wait()
        while not queue.empty():
            n, (vehicle_id, start) = queue.get_nowait()
            began = time.perf_counter()
            status, body = await connection.post("/api/v1/test-drives", attempt_body(offset + n, vehicle_id, start),
                                                  address(offset + n))
            results.append((status, time.perf_counter() - began, body))

    tasks = [asyncio.create_task(client(c)) for c in connections]
    await asyncio.sleep(0.05)
    go.set()  # every connection starts at the same moment
    try:
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            connection.close()
    return results


async def floor(port: int, requests: int, concurrency: int) -> list[float]:
    """The same burst of ``GET /health`` (every middleware, no database): what this machine can do at best."""
    connections = [await Connection(port).open() for _ in range(min(concurrency, requests))]
    remaining = list(range(requests))
    latencies: list[float] = []
    go = asyncio.Event()

    async def client(connection: Connection) -> None:
        await go.wait()
        while remaining:
            remaining.pop()
            began = time.perf_counter()
            await connection.get("/health")
            latencies.append(time.perf_counter() - began)

    tasks = [asyncio.create_task(client(c)) for c in connections]
    await asyncio.sleep(0.05)
    go.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            connection.close()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=500)
    parser.add_argument("--slots", type=int, default=50, help="(car, start) pairs the attempts are spread over")
    parser.add_argument("--cars", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=500, help="connections sending at the same time")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--pool-size", type=int, default=8,
                        help="database connections per app process (plus 10 overflow; the server is shared)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.slots % args.cars or args.slots // args.cars > 10:
        parser.error("--slots must be a multiple of --cars, at most ten starts per car")

    configured_db, configured_redis = configured_urls()
    if configured_db and configured_redis:
        base_db, base_redis = configured_db, configured_redis
    else:
        from backend.lib.embedded import ensure_services

        base_db, base_redis = ensure_services()
    database_url = database_url_for(base_db, BENCH_DB)
    redis_number = claim_redis_db(base_redis, owner=f"bench-{os.getpid()}")
    redis_url = redis_url_for(base_redis, redis_number)
    flush_redis(redis_url)  # a number left by a killed run may hold its rate-limit counters
    env = server_env(database_url, redis_url, db_pool_size=str(args.pool_size))
    process = None
    log = Path(tempfile.mkstemp(prefix="forecourt-td-bench-", suffix=".log")[1])
    load_before = os.getloadavg()
    failed = False
    try:
        asyncio.run(recreate_database(base_db, BENCH_DB))
        from backend.lib.migrate import upgrade

        upgrade(database_url)
        cars, starts, day = asyncio.run(prepare(database_url, args.cars, args.slots // args.cars))
        pairs = [(car, start) for car in cars for start in starts]
        rng = random.Random(args.seed)
        attempts = [pairs[n % len(pairs)] for n in range(args.attempts)]
        rng.shuffle(attempts)

        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", "--host", HOST,
                 "--port", str(port), "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_until_ready(process, port, log)
        # Warm-up on another day: connections, statement caches, imports of lazily loaded code.
        warm = [(car, start + timedelta(days=1)) for car in cars for start in starts][: 4 * args.workers * 4]
        asyncio.run(run_load(port, warm, 8, offset=900_000))

        print(f"{args.attempts} booking attempts over {len(pairs)} slots ({args.cars} cars x {len(starts)} starts on "
              f"{day.isoformat()}), {args.concurrency} connections at once, {args.workers} uvicorn processes ...",
              flush=True)
        transactions_before = asyncio.run(transactions(database_url))
        began = time.perf_counter()
        results = asyncio.run(run_load(port, attempts, args.concurrency, offset=0))
        elapsed = time.perf_counter() - began
        time.sleep(1)  # the statistics collector reports about every half second
        burst_transactions = asyncio.run(transactions(database_url)) - transactions_before
        floor_ms = sorted(t * 1000 for t in asyncio.run(floor(port, args.attempts, args.concurrency)))
        stop(process)
        process = None

        statuses = Counter(status for status, _t, _b in results)
        ms = [t * 1000 for _s, t, _b in results]
        ok_ms = [t * 1000 for s, t, _b in results if s == 201]
        booked = asyncio.run(check_database(database_url, pairs))
        server_errors = sum(n for status, n in statuses.items() if status >= 500)
        print()
        print(f"Forecourt test-drive booking contention — {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} CPUs shared by PostgreSQL, the app and the load")
        print(f"  load average at the start: {load_before[0]:.2f} (1 min); at the end: {os.getloadavg()[0]:.2f} "
              "(other work on the machine skews every figure)")
        print(f"  successes: {statuses.get(201, 0)} (must be exactly {len(pairs)})   "
              f"answers: {dict(sorted(statuses.items()))}")
        print(f"  latency of all {len(ms)} attempts: p50 {statistics.median(ms):.0f} ms, "
              f"p95 {percentile(ms, 95):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms "
              "(target p95 < 150 ms)")
        if ok_ms:
            print(f"  latency of the {len(ok_ms)} successes: p50 {statistics.median(ok_ms):.0f} ms, "
                  f"p95 {percentile(ok_ms, 95):.0f} ms")
        print(f"  wall time {elapsed:.2f} s, {len(results) / elapsed:.0f} attempts/s; "
              f"{burst_transactions} database transactions for the {len(results)} attempts")
        print(f"  floor: the same burst of GET /health (every middleware, no database, no Redis) on this machine: "
              f"p50 {statistics.median(floor_ms):.0f} ms, p95 {percentile(floor_ms, 95):.0f} ms, "
              f"max {max(floor_ms):.0f} ms")
        print(f"  database: {sum(booked.values())} bookings on the {len(pairs)} slots, "
              f"{sum(1 for n in booked.values() if n > 1)} slots booked twice")
        failed = (statuses.get(201, 0) != len(pairs) or server_errors > 0 or len(booked) != len(pairs)
                  or any(n != 1 for n in booked.values()))
        if failed:
            sample = [b[:300] for s, _t, b in results if s >= 500][:3]
            print(f"  WRONG: see above{'; 5xx bodies: ' + str(sample) if sample else ''}; server log {log}")
        return 1 if failed else 0
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        flush_redis(redis_url)
        release_redis_db(base_redis, redis_number)
        asyncio.run(drop_database(base_db, BENCH_DB))
        if not failed:
            log.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
