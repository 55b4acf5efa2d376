"""The ``forecourt`` command against the test database (committed rows are removed afterwards)."""

import os
import subprocess
import sys

import pytest

from backend.lib.scratchdb import admin_connection
from backend.lib.settings import ROOT


def run_cli(args, database_url, redis_url, stdin=""):
    env = os.environ | {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


async def raw(database_url, query, *args):
    conn = await admin_connection(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.fixture
async def cleanup(database_url):
    yield
    await raw(database_url, "DELETE FROM audit_log WHERE entity = 'staff_user' AND after->>'email' LIKE 'cli-%'")
    await raw(database_url, "DELETE FROM staff_user WHERE email LIKE 'cli-%'")


async def test_user_create_reads_the_password_from_stdin(database_url, redis_url, cleanup):
    done = run_cli(["user", "create", "--email", "cli-admin@example.test", "--name", "CLI Admin",
                    "--role", "admin"], database_url, redis_url, stdin="a-long-cli-password\n")
    assert done.returncode == 0, done.stderr
    assert "Created admin cli-admin@example.test" in done.stdout
    rows = await raw(database_url, "SELECT role, password_hash FROM staff_user WHERE email = $1",
                     "cli-admin@example.test")
    assert rows[0]["role"] == "admin" and rows[0]["password_hash"].startswith("$argon2id$")
    assert "a-long-cli-password" not in rows[0]["password_hash"]


async def test_user_create_explains_bad_input(database_url, redis_url, cleanup):
    done = run_cli(["user", "create", "--email", "cli-x@example.test", "--name", "X", "--role", "sales",
                    "--branch", "NOPE"], database_url, redis_url, stdin="short\n")
    assert done.returncode != 0
    assert "Unknown branch." in done.stderr and "Use at least 10 characters." in done.stderr
    assert await raw(database_url, "SELECT 1 FROM staff_user WHERE email = 'cli-x@example.test'") == []


async def test_vapid_keys_command_prints_the_stored_public_key(database_url, redis_url):
    done = run_cli(["vapid-keys"], database_url, redis_url)
    assert done.returncode == 0, done.stderr
    rows = await raw(database_url, "SELECT value->>'public_key' AS key FROM system_setting WHERE key = 'vapid'")
    assert done.stdout.strip() == f"VAPID public key: {rows[0]['key']}"
