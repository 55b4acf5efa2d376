"""Notification throughput of one worker, and the scheduler's sweep among a million rows (issue 4's targets).

Not a test: it asserts nothing and is not collected by pytest. It prints its figures and exits 1 when a
message was lost, duplicated or not decrypted.

    make bench-push
    .venv/bin/python bench/push_fanout.py                                 # 5,000 pushes, 1,000,000 tasks
    .venv/bin/python bench/push_fanout.py --messages 2000 --rounds 3 --tasks 0
    .venv/bin/python bench/push_fanout.py --per-commit 1                  # one notify() per transaction

Part 1, push fan-out:
1. Servers from DATABASE_URL / REDIS_URL, else the embedded ones. It works in a database of its own,
   ``forecourt_bench_push_<pid>`` (created, migrated, dropped at the end), and in a Redis database number
   claimed like the tests claim theirs (flushed before and after). Your data is never touched.
2. Starts the tests' local push service (tests/push_receiver.py) in this process: every message is
   checked like a browser's push service would (VAPID JWT verified) and decrypted (aes128gcm) with the
   subscription's own private key and auth secret.
3. Makes ``--recipients`` people (half staff, half customers), each with one push subscription at the
   receiver, then records ``--messages`` notifications round-robin through the real service API
   (``notifications.service.notify``: a row and an outbox event each), ``--per-commit`` per transaction.
   After each commit the outbox hands the events over; the bench holds those hand-offs back until the
   round is recorded, then makes them with the app's own dispatcher (``enqueue_outbox_events``, one call
   per commit), so the worker is measured alone.
4. Starts ONE real worker process (``forecourt worker``) and measures, at the receiver, decrypted messages
   per second from the first to the last, and the worker's CPU time per message over that interval.
   ``--rounds`` repeats step 3-4 with new notifications against the same worker (the first round also
   pays the worker's warm-up).
5. Checks that every notification was decrypted exactly once with the right text, and is "delivered" in
   the database with its outbox event done.

Part 2, scheduler sweep:
6. Inserts ``--tasks`` scheduled_task rows with generate_series (most done or due later, ``--due`` due now),
   ANALYZEs, then times ``scheduler.claim_due`` -- the query ``run_due_tasks`` (the cron) starts with --
   ``--runs`` times, each in a transaction rolled back afterwards, and prints median and max, the
   statement's EXPLAIN ANALYZE, and its plan when PostgreSQL is forced to use a generic plan.

Everything shares the machine's CPUs (receiver, worker, PostgreSQL, this process): on a busy machine the
figures drop. The load average is printed alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("FORECOURT_LOG_LEVEL", "WARNING")

from aiohttp import web  # noqa: E402

from backend.lib.scratchdb import (  # noqa: E402
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from tests.push_receiver import PushReceiver  # noqa: E402

BENCH_DB = f"forecourt_bench_push_{os.getpid()}"


# -- servers --------------------------------------------------------------------------------------------


class TimedReceiver(PushReceiver):
    """The tests' receiver, noting when each message was accepted (decrypted and verified)."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted_at: list[float] = []

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        if response.status == 201:
            self.accepted_at.append(time.perf_counter())
        return response


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux); 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backend_pids(maker) -> list[int]:
    """The PostgreSQL server processes serving the bench database (on this machine)."""
    from sqlalchemy import text

    async with maker() as session:
        rows = await session.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))
        return [r[0] for r in rows]


def profile(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy sampling the worker (``--profile``), collapsed stacks into ``out``; stopped with SIGINT."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("  (py-spy is not installed in the venv: .venv/bin/pip install py-spy)")
        return None
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",  # noqa: S603
                             "--nonblocking", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# -- part 1: push fan-out -------------------------------------------------------------------------------


async def make_recipients(maker, receiver: PushReceiver, count: int) -> list[tuple[str, int]]:
    from sqlalchemy import insert

    from backend.domains.accounts.models import StaffUser
    from backend.domains.branches import service as branches
    from backend.domains.customers.models import Customer
    from backend.domains.notifications import repository
    from backend.lib.db import unit_of_work

    async with unit_of_work(maker) as session:
        group = await branches.create_group(session, "Bench group")
        branch = await branches.create_branch(session, group_id=group.id, code="BENCH", name="基准门店",
                                              name_en="Bench branch", address="1 Bench Road",
                                              timezone="Asia/Shanghai")
        staff = count // 2
        staff_ids = (await session.execute(insert(StaffUser).returning(StaffUser.id), [
            {"email": f"bench{i}@example.test", "name": f"Staff {i}", "password_hash": "!", "role": "sales",
             "branch_id": branch.id, "locale": "zh_CN" if i % 2 else "en", "is_active": True}
            for i in range(staff)])).scalars().all()
        customer_ids = (await session.execute(insert(Customer).returning(Customer.id), [
            {"branch_id": branch.id, "name": f"客户 {i}", "phone": f"1390000{i:04d}", "email": f"c{i}@example.test",
             "locale": "zh_CN" if i % 2 else "en", "marketing_consent": False}
            for i in range(count - staff)])).scalars().all()
        recipients = [("staff", i) for i in staff_ids] + [("customer", i) for i in customer_ids]
        for kind, owner_id in recipients:
            fake = receiver.subscription()
            await repository.upsert_subscription(session, {
                "endpoint": fake.endpoint, "p256dh": fake.p256dh, "auth": fake.auth_b64, "owner_kind": kind,
                "owner_id": owner_id, "user_agent": "bench"})
    return recipients


async def record_notifications(maker, recipients, round_no: int, messages: int, per_commit: int) -> list[str]:
    from backend.domains.notifications import service
    from backend.domains.notifications.service import NotificationRequest
    from backend.lib.db import unit_of_work

    keys = [f"bench:{round_no}:{i}" for i in range(messages)]
    for start in range(0, messages, per_commit):
        async with unit_of_work(maker) as session:
            for i in range(start, min(messages, start + per_commit)):
                kind, recipient_id = recipients[i % len(recipients)]
                await service.notify(session, NotificationRequest(
                    key=keys[i], recipient_kind=kind, recipient_id=recipient_id, template="system.test",
                    params={"name": f"#{i}"}, url=f"/r/{i}", urgency="high"))
    return keys


def start_worker(database_url: str, redis_url: str, log_level: str, log_path: Path) -> subprocess.Popen:
    env = os.environ.copy()
    for name, value in (("DATABASE_URL", database_url), ("REDIS_URL", redis_url)):
        env[name] = env[f"FORECOURT_{name}"] = value
    env |= {"FORECOURT_ENV": "development", "FORECOURT_LOG_LEVEL": log_level, "FORECOURT_LOG_JSON": "true",
            "PYTHONUNBUFFERED": "1"}
    log = log_path.open("wb")
    return subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env, cwd=ROOT,  # noqa: S603
                            stdout=log, stderr=subprocess.STDOUT)


async def wait_for(receiver: TimedReceiver, total: int, worker: subprocess.Popen, seconds: float,
                   log_path: Path) -> float:
    """Wait until ``total`` messages arrived; the worker's CPU seconds when the first one did."""
    deadline = time.perf_counter() + seconds
    cpu_at_first = None
    while len(receiver.accepted_at) < total:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}; log: {log_path}")
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out: {len(receiver.accepted_at)} of {total} received; log: {log_path}")
        if cpu_at_first is None and receiver.accepted_at:
            cpu_at_first = cpu_seconds(worker.pid)
        await asyncio.sleep(0.005 if cpu_at_first is None else 0.02)
    return cpu_at_first if cpu_at_first is not None else cpu_seconds(worker.pid)


async def wait_idle(arq_pool, seconds: float) -> float:
    """Wait until the worker has no job queued or running (the round's last jobs may have found nothing
    left to do); when it was idle."""
    from arq.constants import default_queue_name, in_progress_key_prefix

    deadline = time.perf_counter() + seconds
    while True:
        queued = await arq_pool.zcount(default_queue_name, "-inf", time.time() * 1000)
        # arq keeps a cron job's in-progress key until it expires: only the delivery jobs count.
        running = [key async for key in arq_pool.scan_iter(match=in_progress_key_prefix + "outbox-*", count=1000)]
        if not queued and not running:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise SystemExit(f"the worker did not become idle: {queued} jobs queued, running: {running[:5]}")
        await asyncio.sleep(0.05)


async def check_round(maker, receiver: TimedReceiver, keys: list[str]) -> list[str]:
    """Problems: every key decrypted exactly once with its text, delivered in the database, outbox done."""
    from sqlalchemy import func, select

    from backend.domains.notifications.models import Notification
    from backend.domains.outbox.models import OutboxEvent

    problems = []
    wanted = set(keys)
    seen = Counter(r.payload.get("tag") for r in receiver.received if r.payload.get("tag") in wanted)
    missing = wanted - set(seen)
    twice = {k: c for k, c in seen.items() if c > 1}
    if missing:
        problems.append(f"{len(missing)} notifications never arrived, e.g. {sorted(missing)[:3]}")
    if twice:
        problems.append(f"{len(twice)} notifications arrived more than once, e.g. {list(twice.items())[:3]}")
    wrong = [r for r in receiver.received if r.payload.get("tag") in wanted
             and f"#{r.payload['tag'].rsplit(':', 1)[1]}" not in r.payload.get("body", "")]
    if wrong:
        problems.append(f"{len(wrong)} messages decrypted to the wrong text, e.g. {wrong[0].payload}")
    if receiver.errors:
        problems.append(f"receiver rejected {len(receiver.errors)} requests, e.g. {receiver.errors[:2]}")
    async with maker() as session:
        # Give the worker a moment to commit the last batch after its sends were answered.
        for _ in range(100):
            statuses = dict((await session.execute(
                select(Notification.status, func.count()).where(Notification.key.in_(keys))
                .group_by(Notification.status))).all())
            pending = (await session.execute(select(func.count()).select_from(OutboxEvent)
                                             .where(OutboxEvent.status != "done"))).scalar_one()
            await session.rollback()
            if statuses.get("delivered") == len(keys) and pending == 0:
                break
            await asyncio.sleep(0.1)
    if statuses.get("delivered") != len(keys):
        problems.append(f"notification statuses {statuses}, expected {len(keys)} delivered")
    if pending:
        problems.append(f"{pending} outbox events not done")
    return problems


async def push_part(args, database_url: str, redis_url: str) -> bool:
    from arq import create_pool
    from arq.connections import RedisSettings

    from backend.domains.outbox import service as outbox
    from backend.lib import db
    from workers.notification_jobs import enqueue_outbox_events

    receiver = await TimedReceiver().start()
    engine = db.make_engine(database_url, pool_size=2)
    maker = db.make_session_maker(engine)
    arq_pool = await create_pool(RedisSettings.from_dsn(redis_url))
    # The after-commit hand-offs are held back while a round is recorded and then made, in order, with
    # the app's own dispatcher (one call per commit): the worker is not busy while the bench records.
    handoffs: list[list[int]] = []

    async def hold(ids: list[int]) -> None:
        handoffs.append(ids)

    outbox.set_dispatcher(hold)
    log_path = Path(tempfile.mkstemp(prefix="push-fanout-worker-", suffix=".log")[1])
    worker = None
    ok = True
    try:
        recipients = await make_recipients(maker, receiver, args.recipients)
        print(f"push fan-out: {args.messages} messages x {args.rounds} rounds to {len(recipients)} recipients "
              f"(half staff, half customers; one subscription each), {args.per_commit} notify() per commit")
        rates = []
        for round_no in range(1, args.rounds + 1):
            began = time.perf_counter()
            keys = await record_notifications(maker, recipients, round_no, args.messages, args.per_commit)
            await outbox.drain_background()
            recorded = time.perf_counter() - began
            receiver.accepted_at.clear()
            receiver.received.clear()
            if worker is None:
                worker = start_worker(database_url, redis_url, args.log_level, log_path)
            spy = profile(worker.pid, args.profile / f"worker-round-{round_no}.txt") if args.profile else None
            pg_before = {pid: cpu_seconds(pid) for pid in await backend_pids(maker)}
            here_before = time.process_time()
            for ids in handoffs:
                await enqueue_outbox_events(arq_pool, ids)
            handoffs.clear()
            # CPU from the first message on: the worker's start-up and imports are not counted.
            cpu_at_first = await wait_for(receiver, args.messages, worker, args.timeout, log_path)
            cpu_after = cpu_seconds(worker.pid)
            here = time.process_time() - here_before
            pg = sum(cpu_seconds(pid) - pg_before.get(pid, 0.0) for pid in await backend_pids(maker))
            first, last = receiver.accepted_at[0], receiver.accepted_at[-1]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=30)
            problems = await check_round(maker, receiver, keys)
            # The next round starts on an idle worker: its jobs would otherwise deliver the next round's
            # notifications as they are recorded (a batch job also takes due events it was not given).
            idle_after = await wait_idle(arq_pool, args.timeout) - last
            tail_cpu = cpu_seconds(worker.pid) - cpu_after
            seconds = last - first
            rate = (len(receiver.accepted_at) - 1) / seconds if seconds > 0 else float("inf")
            rates.append(rate)
            per_message = 1000 / args.messages
            cpu = (f"CPU per message: worker {(cpu_after - cpu_at_first) * per_message:.2f} ms, receiver "
                   f"{here * per_message:.2f} ms, PostgreSQL {pg * per_message:.2f} ms")
            print(f"  round {round_no}: recorded in {recorded:.2f} s; delivered {len(receiver.accepted_at)} in "
                  f"{seconds:.2f} s = {rate:,.0f} push/s; {load()}\n    {cpu}\n"
                  f"    the worker's queue was empty {idle_after:.1f} s after the last message (worker CPU meanwhile "
                  f"{tail_cpu:.2f} s: jobs that found their events taken by another job)")
            for problem in problems:
                ok = False
                print(f"    PROBLEM: {problem}")
        print(f"  push/s per round: {', '.join(f'{r:,.0f}' for r in rates)}; median {statistics.median(rates):,.0f}"
              f"; target >= 500: {'met' if min(rates) >= 500 else 'NOT met'}; checks: {'ok' if ok else 'FAILED'}")
    except BaseException:
        ok = False
        if receiver.errors:
            print(f"  receiver errors: {len(receiver.errors)}, e.g. {receiver.errors[:3]}")
        raise
    finally:
        outbox.set_dispatcher(None)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        await arq_pool.aclose()
        await engine.dispose()
        await receiver.stop()
        if ok:
            os.unlink(log_path)
        else:
            print(f"  worker log kept: {log_path}")
    return ok


# -- part 2: the scheduler's sweep ----------------------------------------------------------------------


INSERT_TASKS = """
INSERT INTO scheduled_task (key, kind, due_at, record_type, record_id, payload, status, attempts, created_at, done_at)
SELECT 'bench:' || g,
       'bench.noop',
       CASE WHEN g % 1000 < :due_per_mille THEN now() - (g % 600) * interval '1 second'   -- due now
            WHEN g % 10 < 7 THEN now() - (g % 90) * interval '1 day'                      -- past: done/cancelled
            ELSE now() + (1 + g % 2160) * interval '1 hour' END,                           -- pending, later
       'bench', g, '{}'::jsonb,
       CASE WHEN g % 1000 < :due_per_mille THEN 'pending'
            WHEN g % 10 < 6 THEN 'done' WHEN g % 10 < 7 THEN 'cancelled'
            ELSE 'pending' END,
       CASE WHEN g % 10 < 7 AND g % 1000 >= :due_per_mille THEN 1 ELSE 0 END,
       now() - interval '100 days',
       CASE WHEN g % 10 < 7 AND g % 1000 >= :due_per_mille THEN now() - (g % 90) * interval '1 day' END
FROM generate_series(1, :rows) AS g
"""


async def scheduler_part(args, database_url: str) -> None:
    from sqlalchemy import event, text

    from backend.domains.scheduler import service as scheduler
    from backend.lib import db
    from backend.lib.settings import get_settings

    @scheduler.handler("bench.noop")
    async def _noop(session, task) -> None:
        return None

    engine = db.make_engine(database_url, pool_size=1)
    maker = db.make_session_maker(engine)
    limit = get_settings().scheduler_batch_size
    due_per_mille = max(0, min(1000, round(args.due * 1000 / args.tasks)))
    try:
        began = time.perf_counter()
        async with db.unit_of_work(maker) as session:
            await session.execute(text(INSERT_TASKS), {"rows": args.tasks, "due_per_mille": due_per_mille})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE scheduled_task"))
            counts = dict((await conn.execute(text(
                "SELECT status || CASE WHEN status = 'pending' AND due_at <= now() THEN ' (due)' ELSE '' END, "
                "count(*) FROM scheduled_task GROUP BY 1 ORDER BY 1"))).all())
        print(f"\nscheduler sweep: {args.tasks:,} scheduled_task rows inserted and analysed in "
              f"{time.perf_counter() - began:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))

        statements: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        timings, found = [], 0
        for run in range(args.runs):
            async with maker() as session:
                if run == 0:
                    event.listen(engine.sync_engine, "before_cursor_execute", capture)
                began = time.perf_counter()
                tasks = await scheduler.claim_due(session, db.utcnow(), limit)
                timings.append(time.perf_counter() - began)
                if run == 0:
                    event.remove(engine.sync_engine, "before_cursor_execute", capture)
                found = len(tasks)
                await session.rollback()
        print(f"  claim_due(limit={limit}) found {found} due rows; {args.runs} runs: median "
              f"{statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms "
              f"(target < 2000 ms: {'met' if max(timings) < 2 else 'NOT met'}); {load()}")

        async with maker() as session:
            began = time.perf_counter()
            counts = await scheduler.run_due(session, limit=limit)
            elapsed = time.perf_counter() - began
            await session.rollback()
        print(f"  run_due (claim + run {sum(counts.values())} no-op tasks + mark them, rolled back): "
              f"{elapsed * 1000:.0f} ms {counts}")

        statement, parameters = statements[0]
        raw = await engine.raw_connection()
        try:
            conn = raw.driver_connection
            async with conn.transaction():
                plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *parameters)
                print("  the statement, as sent:\n    " + " ".join(statement.split()))
                print("  EXPLAIN (ANALYZE, BUFFERS):\n" + "\n".join("    " + r[0] for r in plan))
                await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                await conn.execute(f"PREPARE sweep AS {statement}")
                generic = await conn.fetch(f"EXPLAIN EXECUTE sweep({', '.join(map(sql_literal, parameters))})")
                print("  with plan_cache_mode = force_generic_plan (what a reused prepared statement may get):\n"
                      + "\n".join("    " + r[0] for r in generic))
                raise _Rollback
        except _Rollback:
            pass
        finally:
            raw.close()
    finally:
        await engine.dispose()


class _Rollback(Exception):
    pass


def sql_literal(value) -> str:
    """A parameter value as SQL text, for EXECUTE of a prepared statement."""
    if isinstance(value, bool | int | float):
        return str(value)
    text_value = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text_value.replace("'", "''") + "'"


# -- main -----------------------------------------------------------------------------------------------


async def main(args) -> int:
    from backend.lib.embedded import ensure_services
    from backend.lib.migrate import upgrade

    base_db, base_redis = ensure_services()
    number = claim_redis_db(base_redis, owner=f"bench-{os.getpid()}")
    redis_url = redis_url_for(base_redis, number)
    await recreate_database(base_db, BENCH_DB)
    database_url = database_url_for(base_db, BENCH_DB)
    ok = True
    import redis.asyncio as aioredis

    flusher = aioredis.Redis.from_url(redis_url)
    try:
        await flusher.flushdb()
        await asyncio.to_thread(upgrade, database_url)
        print(f"database {BENCH_DB}, redis db {number}; {os.cpu_count()} CPUs; {load()}")
        if args.messages > 0:
            ok = await push_part(args, database_url, redis_url)
        if args.tasks > 0:
            await scheduler_part(args, database_url)
    finally:
        await flusher.flushdb()
        await flusher.aclose()
        await drop_database(base_db, BENCH_DB)
        release_redis_db(base_redis, number)
    return 0 if ok else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="notifications per round (0: skip part 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --messages against the same worker")
    parser.add_argument("--recipients", type=int, default=1000, help="people with a subscription each")
    parser.add_argument("--per-commit", type=int, default=100, help="notify() calls per transaction")
    parser.add_argument("--log-level", default="INFO", help="the worker's FORECOURT_LOG_LEVEL (INFO as in production)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one round")
    parser.add_argument("--profile", type=Path, help="a directory: sample the worker with py-spy, one file per round")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="scheduled_task rows (0: skip part 2)")
    parser.add_argument("--due", type=int, default=2000, help="of which due now (about)")
    parser.add_argument("--runs", type=int, default=7, help="timed claim_due runs")
    args = parser.parse_args(argv)
    args.per_commit = max(1, args.per_commit)
    args.recipients = max(2, args.recipients)
    return args


if __name__ == "__main__":
    try:  # the receiver shares the CPUs with the worker: let it take as little as it can
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(main(parse_args())))
    sys.exit(uvloop.run(main(parse_args())))
