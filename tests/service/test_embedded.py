"""The embedded PostgreSQL (no DATABASE_URL): ``forecourt services stop`` stops it even after a process that
used it was killed, and never starts one."""

import json
import os

from backend.lib import embedded
from backend.lib.settings import get_settings


def test_services_stop_stops_postgres_despite_a_killed_user_and_never_starts_it(tmp_path, monkeypatch):
    monkeypatch.setattr(get_settings(), "var_dir", tmp_path)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    try:
        url = embedded.ensure_postgres()
        assert url.startswith("postgresql+asyncpg://postgres@/forecourt?host=") and embedded.postgres_running()
        # A `forecourt run` that was killed -9 left its handle behind (pgserver counts handles per pid).
        handles = tmp_path / "pgdata" / ".handle_pids.json"
        dead = 2**22 + 12345  # above Linux's default pid_max: no such process
        handles.write_text(json.dumps([*json.loads(handles.read_text() or "[]"), dead]))

        embedded.stop_services()
        assert not embedded.postgres_running()
        assert not handles.exists()
        embedded.stop_services()  # stopping what is stopped starts nothing
        assert not embedded.postgres_running()
    finally:
        if embedded.postgres_running():  # never leave a server behind, whatever failed above
            pid = int((tmp_path / "pgdata" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 15)
