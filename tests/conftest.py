"""Test fixtures against real servers.

The suite makes its own databases on whatever PostgreSQL it is given (``DATABASE_URL``, else the
embedded one) and drops them afterwards; each test runs inside a transaction that is rolled back
(SQLAlchemy's ``join_transaction_mode="create_savepoint"`` recipe). Redis tests use their own
database number (claimed per run), flushed around each test.
"""

from __future__ import annotations

import os

os.environ.setdefault("FORECOURT_ENV", "test")
os.environ.setdefault("FORECOURT_SECRET_KEY", "test-only-secret-" + "x" * 32)
os.environ.setdefault("FORECOURT_LOG_JSON", "false")
os.environ.setdefault("FORECOURT_LOG_LEVEL", "WARNING")
os.environ.setdefault("FORECOURT_PASSWORD_HASH_MEMORY_KIB", "1024")
os.environ.setdefault("FORECOURT_PASSWORD_HASH_TIME_COST", "1")
# The local push receiver of the tests listens on http://127.0.0.1.
os.environ.setdefault("FORECOURT_PUSH_ALLOW_INSECURE_ENDPOINTS", "true")

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from backend.lib.embedded import ensure_services
from backend.lib.migrate import upgrade
from backend.lib.redis import make_redis
from backend.lib.scratchdb import (  # noqa: F401 - re-exported for the test folders
    admin_connection,
    claim_redis_db,
    database_url_for,
    drop_database,
    recreate_database,
    redis_url_for,
    release_redis_db,
)
from backend.lib.settings import get_settings

# Per run, so two runs on one server (two checkouts, a developer and CI) never drop each other's database.
TEST_DB = f"forecourt_test_{os.getpid()}"


@pytest.fixture(scope="session")
def base_urls() -> tuple[str, str]:
    """The servers under test: from the environment, or the embedded ones."""
    return ensure_services()


@pytest.fixture(scope="session")
async def database_url(base_urls) -> AsyncIterator[str]:
    base, _ = base_urls
    await recreate_database(base, TEST_DB)
    url = database_url_for(base, TEST_DB)
    import anyio.to_thread

    await anyio.to_thread.run_sync(upgrade, url)  # Alembic's async env runs its own loop
    yield url
    await drop_database(base, TEST_DB)


@pytest.fixture(scope="session")
async def engine(database_url) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def session_maker(connection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(bind=connection, class_=AsyncSession, expire_on_commit=False,
                              join_transaction_mode="create_savepoint")


@pytest.fixture
async def session(session_maker) -> AsyncIterator[AsyncSession]:
    async with session_maker() as s:
        yield s


@pytest.fixture(scope="session")
def redis_url(base_urls):
    number = claim_redis_db(base_urls[1], owner=f"tests-{os.getpid()}")
    yield redis_url_for(base_urls[1], number)
    release_redis_db(base_urls[1], number)


@pytest.fixture
async def redis(redis_url):
    client = make_redis(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def settings():
    return get_settings()


@pytest.fixture
async def app(database_url, session_maker, redis, settings):
    from backend.app import create_app

    # The app's own engine is never used for queries here: every session joins the test transaction.
    return create_app(settings, engine=create_async_engine(database_url, poolclass=NullPool),
                      session_maker=session_maker, redis=redis)


@asynccontextmanager
async def running(app):
    """Run the app's lifespan in a task of its own: anyio wants it entered and left in one task,
    and pytest-asyncio sets fixtures up and tears them down in different ones."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise its error here
    try:
        yield app
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the test's own event loop (Litestar's test client would use another loop,
    which asyncpg connections refuse)."""
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local",
                                     headers={"Accept-Language": "en"}) as c:
            yield c


# -- notifications: a local push service and SMTP server ----------------------------------------


@pytest.fixture
async def push_receiver():
    from tests.push_receiver import PushReceiver

    receiver = await PushReceiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def smtp_receiver():
    from tests.smtp_receiver import SmtpReceiver

    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def channels(session, smtp_receiver, settings):
    """The senders a worker makes at start-up, pointed at the local receivers."""
    from backend.domains.notifications.channels.email import EmailSender
    from backend.domains.notifications.channels.push import PushSender
    from backend.domains.notifications.channels.sms import LoggingSmsProvider
    from backend.domains.notifications.delivery import Channels
    from backend.domains.system.service import ensure_vapid_keys
    from backend.lib.templating import make_environment

    vapid = await ensure_vapid_keys(session)
    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_receiver.port,
                                                "smtp_starttls": False})
    push = PushSender(vapid["private_pem"], "mailto:ops@forecourt.test")
    bundle = Channels(push=push, email=EmailSender(mail_settings), sms=LoggingSmsProvider(),
                      templates=make_environment(), base_url="https://dealer.example")
    yield bundle
    await push.close()
