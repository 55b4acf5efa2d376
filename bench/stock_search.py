"""Stock search benchmark: latency in the server, and HTTP throughput against a bare asyncpg loop.

Not a test: it asserts nothing and is not collected by pytest.

    .venv/bin/python bench/stock_search.py                    # 100,000 cars, 32 clients, 2 app processes
    .venv/bin/python bench/stock_search.py --vehicles 20000 --seconds 5

What it does:
1. Servers from DATABASE_URL / REDIS_URL, else the embedded ones. It works in a database of its own,
   ``forecourt_bench_stock`` (created, migrated, seeded with ``forecourt seed --vehicles N``, dropped at
   the end), and in Redis database 12 (flushed before and after). Your data is never touched.
2. Builds a fixed list of customer searches: three filters (drawn from make, body, powertrain,
   condition, branch, a price band, a first model year, with values that exist in the stock), a sort, a
   page (1-3) of 20, facet counts included -- the shape of ``GET /api/v1/vehicles``.
3. Latency in the server: calls ``StockService.search`` in this process, one search at a time, and
   reports p50/p95/p99 of its wall time (the SQL round trip, decoding and shaping the answer; no HTTP,
   no queueing). That is the time a request spends in the service when the server is not saturated.
4. Throughput: starts uvicorn with ``--workers 2`` and lets ``--clients`` closed-loop clients (one
   keep-alive connection each, one request in flight, a minimal HTTP/1.1 client so that the load
   generator takes little CPU) call the API, and a bare asyncpg loop with the same number of connections
   runs the very same SQL statements (built by the same code); the two take turns (``--turns``, each
   ``--seconds / --turns`` long) so that other work on the machine weighs on both alike. It prints both
   rates and their ratio. Each app process may open up to ``--pool-size`` database connections, by default
   as many as there are clients, so that the app, like the bare loop, has a connection for every request in
   flight (the kernel does not split the clients' connections evenly between the processes; connections
   are opened as needed, so the two processes together hold about one per client). With a smaller pool the
   connections beyond it are opened and closed again every few requests (SQLAlchemy closes overflow
   connections on return), and the comparison would measure PostgreSQL's connection start-up rather than
   the app.
   It also reads from /proc the CPU time each side spent per search (the app processes, their PostgreSQL
   backends and the load generator; the bare loop's backends and client) and prints the ratio of those:
   on a machine shared with other work the rates swing with it (the two app processes are the HTTP side's
   bottleneck and get a smaller share of a busy machine than 32 backends do), the CPU time hardly.

Everything runs on one machine: the load generator, the app processes and PostgreSQL share the CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from backend.lib.scratchdb import (  # noqa: E402
    admin_connection,
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
    free_port,
    percentile,
    server_env,
    stop,
    wait_until_ready,
)

BENCH_DB = "forecourt_bench_stock"


# -- the searches ---------------------------------------------------------------------------------------


async def make_searches(conn: asyncpg.Connection, count: int, seed: int = 42) -> list[dict]:
    """Three-filter searches whose values occur in the stock (customers pick from what the facets offer)."""
    from backend.domains.stock import rules

    rng = random.Random(seed)
    public = "status IN ('in_stock', 'in_transit')"
    values = {
        "make": [r[0] for r in await conn.fetch(f"SELECT make FROM vehicle WHERE {public} GROUP BY 1 ORDER BY 1")],  # noqa: S608
        "body": [r[0] for r in await conn.fetch(f"SELECT body FROM vehicle WHERE {public} GROUP BY 1 ORDER BY 1")],  # noqa: S608
        "powertrain": [r[0] for r in await conn.fetch(
            f"SELECT powertrain FROM vehicle WHERE {public} GROUP BY 1 ORDER BY 1")],  # noqa: S608
        "condition": ["new", "used", "demo"],
        "branch": [r[0] for r in await conn.fetch("SELECT code FROM branch ORDER BY code")],
        "year_from": [r[0] for r in await conn.fetch(
            f"SELECT model_year FROM vehicle WHERE {public} GROUP BY 1 ORDER BY 1")],  # noqa: S608
    }
    bands = rules.price_bands()
    searches = []
    for _ in range(count):
        kinds = rng.sample(["make", "body", "powertrain", "condition", "branch", "price", "year_from"], 3)
        search: dict = {}
        for kind in kinds:
            if kind == "price":
                low, high = rng.choice(bands[:-1])
                if low is not None:
                    search["min_price"] = low
                search["max_price"] = high
            else:
                search[kind] = rng.choice(values[kind])
        search["sort"] = rng.choice(["price_asc", "price_desc", "newest", "mileage"])
        search["page"] = rng.choice([1, 1, 1, 2, 3])
        search["page_size"] = 20
        searches.append(search)
    return searches


# -- latency in the server ------------------------------------------------------------------------------


async def measure_service(database_url: str, searches: list[dict], rounds: int) -> tuple[list[float], int]:
    from backend.domains.stock.schemas import SearchFilters
    from backend.domains.stock.service import StockService
    from backend.lib import db

    engine = db.make_engine(database_url, pool_size=1)
    maker = db.make_session_maker(engine)
    timings: list[float] = []
    slow_path = 0
    try:
        async with maker() as session:
            service = StockService(session)
            for search in searches[:50]:  # warm-up: plans, caches
                await service.search(SearchFilters(**search))
            for _ in range(rounds):
                for search in searches:
                    began = time.perf_counter()
                    result = await service.search(SearchFilters(**search))
                    timings.append(time.perf_counter() - began)
                    slow_path += not result.from_counts
            await session.rollback()
    finally:
        await engine.dispose()
    return timings, slow_path


# -- throughput -----------------------------------------------------------------------------------------


async def http_client(port: int, paths: list[str], start: int, stop_at: float, measure_from: float,
                      result: dict) -> None:
    """A minimal HTTP/1.1 keep-alive client (GET, Content-Length bodies): cheap, so the server gets the CPU."""
    reader, writer = await asyncio.open_connection(HOST, port)
    loop = asyncio.get_running_loop()
    i = start
    try:
        while loop.time() < stop_at:
            path = paths[i % len(paths)]
            i += 1
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\n\r\n".encode())
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            result["_all"] = result.get("_all", 0) + 1
            if loop.time() >= measure_from:
                key = "ok" if status == 200 else f"status {status}"
                result[key] = result.get(key, 0) + 1
    finally:
        writer.close()


async def run_http(port: int, paths: list[str], clients: int, seconds: float, warmup: float,
                   database_url: str, server_pid: int, cpu: CpuTally) -> tuple[dict, float]:
    result: dict = {}
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + seconds
    app = [server_pid, *_children(server_pid)]
    backends = await _backend_pids(database_url)
    before = _cpu_of(app), _cpu_of(backends), _own_cpu()
    await asyncio.gather(*(http_client(port, paths, i * 7, stop_at, measure_from, result) for i in range(clients)))
    still = await _backend_pids(database_url)
    cpu.lost += len(set(backends) - set(still))  # closed during the turn: their CPU time cannot be read
    backends_after = set(backends) | set(still)  # new ones count from zero
    cpu.add("http", result.pop("_all", 0), app=_cpu_of(app) - before[0],
            postgres=_cpu_of(backends_after) - before[1], loadgen=_own_cpu() - before[2])
    return result, seconds


async def run_bare(database_url: str, statements: list[tuple[str, list]], clients: int, seconds: float,
                   warmup: float, cpu: CpuTally) -> int:
    from sqlalchemy.engine import make_url

    from backend.lib.db import async_url

    url = make_url(async_url(database_url))
    kwargs = {"user": url.username, "password": url.password, "database": url.database}
    kwargs |= {"host": url.query["host"]} if url.query.get("host") else {"host": url.host, "port": url.port or 5432}
    connections = [await asyncpg.connect(**kwargs) for _ in range(clients)]
    backends = [await c.fetchval("SELECT pg_backend_pid()") for c in connections]
    _NOT_APP.update(backends)
    done = [0]
    executed = [0]
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup
    stop_at = measure_from + seconds

    async def worker(conn: asyncpg.Connection, start: int) -> None:
        i = start
        while loop.time() < stop_at:
            sql, args = statements[i % len(statements)]
            i += 1
            await conn.fetchrow(sql, *args)
            executed[0] += 1
            if loop.time() >= measure_from:
                done[0] += 1

    try:
        before = _cpu_of(backends), _own_cpu()
        await asyncio.gather(*(worker(c, i * 7) for i, c in enumerate(connections)))
        cpu.add("bare", executed[0], postgres=_cpu_of(backends) - before[0], client=_own_cpu() - before[1])
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return done[0]


# -- CPU time ----------------------------------------------------------------------------------------
# Throughput on a shared machine depends on what else runs; the CPU time each side spends per search
# hardly does. Read from /proc (Linux, PostgreSQL on this machine); where it cannot be read it is left out.


class CpuTally:
    """CPU seconds per part and the number of searches, summed over the turns, for HTTP and bare."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {"http": {}, "bare": {}}
        self.count = {"http": 0, "bare": 0}
        self.lost = 0  # app backends that ended during a turn (a pool smaller than the clients)

    def add(self, kind: str, count: int, **parts: float | None) -> None:
        self.count[kind] += count
        for name, seconds in parts.items():
            if seconds is not None:
                self.parts[kind][name] = self.parts[kind].get(name, 0.0) + seconds

    def per_search(self, kind: str) -> dict[str, float]:
        n = self.count[kind] or 1
        return {name: seconds / n * 1000 for name, seconds in self.parts[kind].items()}


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _cpu_of(pids) -> float | None:
    values = [_proc_cpu(pid) for pid in pids]
    return sum(v for v in values if v is not None) if any(v is not None for v in values) else None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _own_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_NOT_APP: set[int] = set()  # backends of the bare loop and of these look-ups (some linger a moment after closing)


async def _backend_pids(database_url: str) -> list[int]:
    """The backends of the app's connections to the bench database."""
    conn = await connect(database_url)
    try:
        _NOT_APP.add(await conn.fetchval("SELECT pg_backend_pid()"))
        return [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' "
            "AND NOT pid = ANY($1::int[])", list(_NOT_APP))]
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=300, help="distinct searches in the mix")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the mix for the latency figures")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--pool-size", type=int, default=None,
                        help="database connections per app process at most (default: as many as clients)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds of each kind, in all")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--turns", type=int, default=3, help="alternate HTTP and bare asyncpg this many times")
    parser.add_argument("--log-level", default="INFO", help="the server's FORECOURT_LOG_LEVEL (INFO as in production)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database (skip the seed next time)")
    parser.add_argument("--database", default=BENCH_DB,
                        help="name of the bench's own database (give each worktree its own)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    configured_db, configured_redis = configured_urls()
    if configured_db and configured_redis:
        base_db, base_redis = configured_db, configured_redis
    else:
        from backend.lib.embedded import ensure_services

        base_db, base_redis = ensure_services()
    database_url = database_url_for(base_db, args.database)
    redis_number = claim_redis_db(base_redis, owner=f"bench-{os.getpid()}")  # never a test run's number
    redis_url = redis_url_for(base_redis, redis_number)
    env = server_env(database_url, redis_url, args.log_level)
    pool_size = args.pool_size or args.clients
    env["FORECOURT_DB_POOL_SIZE"] = str(pool_size)
    process = None
    load_before = os.getloadavg()
    log = Path(tempfile.mkstemp(prefix="forecourt-stock-bench-", suffix=".log")[1])
    try:
        existing = asyncio.run(_count_vehicles(base_db, args.database))
        if existing != args.vehicles:
            print(f"Seeding {args.vehicles:,} cars into {args.database} ...", flush=True)
            asyncio.run(recreate_database(base_db, args.database))
            from backend.lib.migrate import upgrade

            upgrade(database_url)
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "backend.cli", "seed", "--vehicles", str(args.vehicles)], env=env,
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            print(f"  seed (demo data + {args.vehicles:,} cars, one transaction): "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
        asyncio.run(_analyze(database_url))

        from backend.domains.stock import search_sql
        from backend.domains.stock.schemas import SearchFilters

        searches = asyncio.run(_searches(database_url, args.searches))
        print(f"Latency: {len(searches)} searches x {args.rounds} rounds, one at a time, in process ...", flush=True)
        timings, slow = asyncio.run(measure_service(database_url, searches, args.rounds))
        ms = [t * 1000 for t in timings]

        branch_ids = asyncio.run(_branch_ids(database_url))
        statements = []
        for search in searches:
            filters = SearchFilters(**search)
            built = search_sql.build(filters, staff=False, scope_branch_id=None,
                                     branch_id=branch_ids.get(filters.branch) if filters.branch else None)
            statements.append((built.sql, built.args))
        paths = ["/api/v1/vehicles?" + urlencode(s) for s in searches]

        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", "--host", HOST,
                 "--port", str(port), "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_until_ready(process, port, log)
        # HTTP and the bare loop take turns (--rounds-of-each), so that other work on the machine weighs on
        # both alike; the idle app processes cost nothing while the bare loop runs.
        turns = max(1, args.turns)
        slice_seconds = args.seconds / turns
        print(f"HTTP ({args.clients} clients, {args.workers} uvicorn processes) and bare asyncpg "
              f"({args.clients} connections, the same SQL) take {turns} turns of {slice_seconds:g} s each, "
              f"after {args.warmup:g} s of warm-up ...", flush=True)
        http: dict = {}
        bare = 0
        cpu = CpuTally()
        for turn in range(turns):
            counts, _ = asyncio.run(run_http(port, paths, args.clients, slice_seconds,
                                             args.warmup if turn == 0 else 0.5, database_url, process.pid, cpu))
            for key, value in counts.items():
                http[key] = http.get(key, 0) + value
            bare += asyncio.run(run_bare(database_url, statements, args.clients, slice_seconds,
                                         args.warmup if turn == 0 else 0.5, cpu))
        seconds = slice_seconds * turns

        stop(process)
        process = None
        http_rps = http.get("ok", 0) / seconds
        bare_rps = bare / seconds
        print()
        print(f"Forecourt stock search — {args.vehicles:,} cars, {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} CPUs shared by PostgreSQL, the app and the load")
        print(f"  load average at the start: {load_before[0]:.2f} (1 min); at the end: {os.getloadavg()[0]:.2f} "
              "(other work on the machine skews every figure)")
        print(f"  searches: 3 filters + sort + page of 20 + facet counts; {len(searches)} distinct, "
              f"{slow} of {len(timings)} answered from the cars instead of the kept counts")
        print(f"  latency in the server (StockService.search, one at a time): p50 {statistics.median(ms):.1f} ms, "
              f"p95 {percentile(ms, 95):.1f} ms, p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms "
              f"({len(ms)} searches)")
        print(f"  HTTP GET /api/v1/vehicles, {args.clients} clients, {args.workers} processes "
              f"(up to {pool_size} database connections each), log level "
              f"{args.log_level}: {http_rps:.0f} req/s  {dict(sorted(http.items()))}")
        print(f"  bare asyncpg loop, {args.clients} connections, the same SQL: {bare_rps:.0f} statements/s")
        print(f"  ratio HTTP / bare: {http_rps / bare_rps:.0%}" if bare_rps else "  ratio: n/a")
        http_cpu, bare_cpu = cpu.per_search("http"), cpu.per_search("bare")
        if cpu.lost:
            print(f"  CPU time per search: n/a ({cpu.lost} of the app's database connections were closed during "
                  "the run, taking their CPU time with them; use a --pool-size of at least the clients)")
        elif {"app", "postgres"} <= set(http_cpu) and "postgres" in bare_cpu:
            print("  CPU time per search, from /proc (little disturbed by other work on the machine): HTTP "
                  f"{sum(http_cpu.values()):.2f} ms (app {http_cpu['app']:.2f}, PostgreSQL {http_cpu['postgres']:.2f}, "
                  f"load generator {http_cpu.get('loadgen', 0):.2f}); bare {sum(bare_cpu.values()):.2f} ms "
                  f"(PostgreSQL {bare_cpu['postgres']:.2f}, client {bare_cpu.get('client', 0):.2f})")
            print(f"  ratio of CPU time bare / HTTP: {sum(bare_cpu.values()) / sum(http_cpu.values()):.0%} "
                  "(the throughput ratio when both keep every CPU busy and nothing else runs)")
        return 0 if set(http) <= {"ok"} else 1
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=15)
        asyncio.run(_flush(redis_url))
        release_redis_db(base_redis, redis_number)
        if not args.keep:
            asyncio.run(drop_database(base_db, args.database))
        log.unlink(missing_ok=True)


async def _count_vehicles(base_db: str, name: str) -> int | None:
    admin = await admin_connection(base_db)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    if not exists:
        return None
    conn = await connect(database_url_for(base_db, name))
    try:
        return await conn.fetchval("SELECT count(*) FROM vehicle")
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


async def _analyze(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE vehicle")
        await conn.execute("VACUUM ANALYZE vehicle_facet_count")
        await conn.execute("VACUUM ANALYZE vehicle_public_facet_count")
    finally:
        await conn.close()


async def _searches(database_url: str, count: int) -> list[dict]:
    conn = await connect(database_url)
    try:
        return await make_searches(conn, count)
    finally:
        await conn.close()


async def _branch_ids(database_url: str) -> dict[str, int]:
    conn = await connect(database_url)
    try:
        return {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM branch")}
    finally:
        await conn.close()


async def _flush(redis_url: str) -> None:
    from backend.lib.redis import make_redis

    client = make_redis(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


if __name__ == "__main__":
    sys.exit(main())
