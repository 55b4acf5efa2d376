"""The ``forecourt`` command: run, worker, db upgrade, seed, user create, vapid-keys, seal-licence-photos,
services."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import click

from backend.lib.settings import get_settings


def _services() -> tuple[str, str]:
    """Real servers from the environment, else the embedded ones (started if needed)."""
    from backend.lib.embedded import ensure_services

    return ensure_services()


async def _with_session(work):
    from backend.lib import db
    from backend.lib.redis import make_redis

    database_url, redis_url = _services()
    engine = db.make_engine(database_url, pool_size=2)
    redis = make_redis(redis_url)
    try:
        async with db.unit_of_work(db.make_session_maker(engine)) as session:
            return await work(session, redis)
    finally:
        await redis.aclose()
        await engine.dispose()


@click.group()
def main() -> None:
    """Forecourt — dealer management: sales, stock, test drives, service, roadside assistance."""
    from backend.lib import i18n

    # Operators read messages in their shell's language; English unless it asks for Chinese.
    i18n.set_locale(i18n.normalize(os.environ.get("LC_ALL") or os.environ.get("LANG")) or "en")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default FORECOURT_HOST).")
@click.option("--port", default=None, type=int, help="Port (default FORECOURT_PORT).")
@click.option("--workers", default=1, show_default=True, help="Web worker processes.")
@click.option("--with-worker/--no-worker", default=False, help="Also start one background (arq) worker.")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def run(host: str | None, port: int | None, workers: int, with_worker: bool, reload: bool) -> None:
    """Serve the web app."""
    import uvicorn

    settings = get_settings()
    _services()
    host, port = host or settings.host, port or settings.port
    worker_process = None
    if with_worker:
        worker_process = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=os.environ.copy())  # noqa: S603
    click.echo(f"\n  Forecourt is running at http://{host}:{port}/\n")
    if settings.is_development:
        from backend.seed import DEMO_PASSWORD

        click.echo(f"  Staff sign-in: http://{host}:{port}/sign-in  e-mail admin@forecourt.test "
                   f"(or sales@, advisor@, tech@, dispatch@, manager@forecourt.test), password {DEMO_PASSWORD}\n")
    try:
        uvicorn.run("backend.app:create_app", factory=True, host=host, port=port, workers=workers,
                    reload=reload, proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
                    access_log=False, log_config=None)
    finally:
        if worker_process is not None:
            worker_process.terminate()
            try:
                worker_process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # never leave it running behind us
                click.echo("The background worker did not stop within 30 s; stopping it by force.", err=True)
                worker_process.kill()
                worker_process.wait()


@main.command()
@click.option("--check", is_flag=True, help="Exit 0 if a worker is healthy (for container health checks).")
def worker(check: bool) -> None:
    """Run a background worker (arq), restarted in-process when Redis trouble stops it."""
    _services()
    from backend.lib.observability import configure_logging
    from workers.settings import WorkerSettings
    from workers.supervisor import run_supervised

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)  # before arq logs its start-up line

    if check:
        sys.exit(_check_worker_health(WorkerSettings))
    try:  # uvloop (installed with uvicorn[standard]) roughly halves the event loop's share of each push
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # arq takes the loop from the policy
    sys.exit(run_supervised(WorkerSettings, max_restarts=settings.worker_max_restarts,
                            window=settings.worker_restart_window_seconds,
                            delay=settings.worker_restart_delay_seconds))


def _check_worker_health(settings_cls) -> int:
    """arq's health check, without the worker's long Redis retries: an unreachable Redis is a quick 1."""
    import dataclasses

    from arq.worker import async_check_health
    from redis.exceptions import RedisError

    quick = dataclasses.replace(settings_cls.redis_settings, retry=None, retry_on_error=None, conn_retries=0)
    try:
        return asyncio.run(async_check_health(quick, settings_cls.health_check_key))
    except (OSError, RedisError) as exc:
        click.echo(f"Health check failed: Redis is unreachable ({type(exc).__name__}: {exc})", err=True)
        return 1


@main.group(name="db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
def upgrade() -> None:
    """Apply all migrations."""
    from backend.lib.migrate import upgrade as do_upgrade

    database_url, _ = _services()
    do_upgrade(database_url)
    click.echo("Database is up to date.")


@main.command()
@click.option("--force", is_flag=True, help="Add the demo data even if the database has accounts.")
@click.option("--vehicles", default=0, show_default=True, type=click.IntRange(0, 1_000_000),
              help="Also add this many demo cars (the same ones every time: a rerun changes nothing).")
def seed(force: bool, vehicles: int) -> None:
    """Put demo data (a group, two branches, one account per role) into an empty database."""
    from backend.seed import DEMO_PASSWORD, seed_demo, seed_vehicles

    async def work(session, redis):
        return await seed_demo(session, redis, only_if_empty=not force)

    if asyncio.run(_with_session(work)):
        click.echo(f"Demo data added. Sign in as admin@forecourt.test with password {DEMO_PASSWORD}.")
    else:
        click.echo("The database already has accounts; demo data not added.")
    if vehicles:

        async def cars(session, redis):
            return await seed_vehicles(session, vehicles)

        click.echo(f"Demo cars: {asyncio.run(_with_session(cars))} added or changed (of {vehicles}).")


@main.group()
def user() -> None:
    """Staff accounts."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", required=True,
              type=click.Choice(["admin", "manager", "sales", "service_advisor", "technician", "dispatcher"]))
@click.option("--branch", default=None, help="Branch code (e.g. SH01); none for admins and group managers.")
@click.option("--locale", default=None, type=click.Choice(["zh_CN", "en"]))
def user_create(email: str, name: str, role: str, branch: str | None, locale: str | None) -> None:
    """Create a staff account; the password is read from standard input."""
    from backend.domains.accounts.service import AccountService
    from backend.lib.errors import DomainError

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def work(session, redis):
        return await AccountService(session, redis).create_user(
            email=email, name=name, role=role, password=password, branch_code=branch, locale=locale)

    try:
        created = asyncio.run(_with_session(work))
    except DomainError as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message
        raise click.ClickException(details) from exc
    click.echo(f"Created {created.role} {created.email} (id {created.id}).")


@main.command("vapid-keys")
@click.option("--rotate", is_flag=True, help="Replace the existing pair (existing push subscriptions stop working).")
def vapid_keys(rotate: bool) -> None:
    """Create (or show) the Web Push VAPID key pair kept in the database."""
    from backend.domains.system.service import ensure_vapid_keys

    async def work(session, redis):
        return await ensure_vapid_keys(session, replace=rotate)

    pair = asyncio.run(_with_session(work))
    click.echo(f"VAPID public key: {pair['public_key']}")


@main.command("seal-licence-photos")
def seal_licence_photos() -> None:
    """Seal driving-licence photos stored plain (before sealing existed) and delete the plain files."""
    from backend.domains.test_drives import photos

    sealed = photos.seal_existing()
    click.echo(f"Sealed {sealed} licence photo file{'' if sealed == 1 else 's'} in {photos.media_dir()}.")


@main.group()
def services() -> None:
    """The embedded PostgreSQL and Redis used when DATABASE_URL / REDIS_URL are unset."""


@services.command("start")
def services_start() -> None:
    database_url, redis_url = _services()
    click.echo(f"DATABASE_URL={database_url}\nREDIS_URL={redis_url}")


@services.command("stop")
def services_stop() -> None:
    from backend.lib.embedded import stop_services

    stop_services()
    click.echo("Embedded services stopped.")


if __name__ == "__main__":
    main()
