"""Pure rules: no database, no Redis."""

from datetime import UTC, datetime

import pytest

from backend.domains.accounts import rules as accounts
from backend.domains.accounts.schemas import safe_next
from backend.domains.branches import rules as branches


@pytest.mark.parametrize(
    ("role", "branch_id", "spans"),
    [("admin", None, True), ("admin", 3, True), ("manager", None, True), ("manager", 3, False),
     ("sales", 3, False), ("dispatcher", 1, False)],
)
def test_who_spans_the_group(role, branch_id, spans):
    assert accounts.spans_group(role, branch_id) is spans
    assert accounts.branch_scope(role, branch_id) == (None if spans else branch_id)


def test_password_rules():
    assert accounts.password_problem("short") == "too_short"
    assert accounts.password_problem(" padded-password ") == "whitespace"
    assert accounts.password_problem("x" * 300) == "too_long"
    assert accounts.password_problem("a-good-passphrase") is None


def test_only_branch_free_roles_may_lack_a_branch():
    assert not accounts.needs_branch("admin")
    assert not accounts.needs_branch("manager")
    assert accounts.needs_branch("sales")
    assert accounts.needs_branch("technician")


@pytest.mark.parametrize(
    ("target", "expected"),
    [(None, "/dashboard"), ("/admin/audit", "/admin/audit"), ("//evil.example", "/dashboard"),
     ("https://evil.example/", "/dashboard"), ("/\\evil", "/dashboard"), ("", "/dashboard")],
)
def test_next_only_goes_to_our_own_pages(target, expected):
    assert safe_next(target) == expected


def test_opening_hours_validation():
    hours = branches.validate_opening_hours({"mon": ["08:30", "18:00"], "sun": None})
    assert hours["mon"] == ["08:30", "18:00"] and hours["tue"] is None
    with pytest.raises(ValueError):
        branches.validate_opening_hours({"funday": ["08:00", "09:00"]})
    with pytest.raises(ValueError):
        branches.validate_opening_hours({"mon": ["18:00", "08:00"]})


def test_is_open_uses_the_branch_time_zone():
    hours = {"mon": ["09:00", "18:00"]}
    # Monday 2026-11-30 02:00 UTC is 10:00 in Shanghai, 03:00 in London.
    at = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert branches.is_open(hours, at, "Asia/Shanghai")
    assert not branches.is_open(hours, at, "Europe/London")
    assert branches.hours_on(hours, at, "Asia/Shanghai") == ["09:00", "18:00"]
    assert branches.hours_on(hours, at, "America/Los_Angeles") is None  # still Sunday there


def test_settings_refuse_the_built_in_secret_outside_development(monkeypatch):
    from backend.lib.settings import DEV_SECRET, ConfigurationError, Settings, get_settings

    for env in ("production", "test"):
        monkeypatch.setenv("FORECOURT_ENV", env)
        monkeypatch.setenv("FORECOURT_SECRET_KEY", DEV_SECRET)
        get_settings.cache_clear()
        try:
            with pytest.raises(ConfigurationError) as refused:
                get_settings()
        finally:
            get_settings.cache_clear()
        assert "FORECOURT_SECRET_KEY" in str(refused.value) and DEV_SECRET not in str(refused.value)
    monkeypatch.setenv("FORECOURT_ENV", "production")
    monkeypatch.setenv("FORECOURT_SECRET_KEY", "x" * 48)
    monkeypatch.setenv("FORECOURT_PASSWORD_HASH_MEMORY_KIB", "1024")
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("FORECOURT_ENV", "development")
    monkeypatch.setenv("FORECOURT_SECRET_KEY", DEV_SECRET)
    assert Settings().secret_key == DEV_SECRET
