"""SMS through a provider interface: a logging provider by default, or an HTTP gateway."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Protocol

import httpx

from backend.lib.settings import Settings

log = logging.getLogger("forecourt.sms")


@dataclass(frozen=True, slots=True)
class SmsResult:
    ok: bool
    transient: bool = False
    error: str | None = None


class SmsProvider(Protocol):
    async def send(self, phone: str, text: str) -> SmsResult: ...

    async def close(self) -> None: ...


class LoggingSmsProvider:
    """Writes the message to the log: for development and for dealers without an SMS contract."""

    async def send(self, phone: str, text: str) -> SmsResult:
        log.info("SMS to %s: %s", phone, text)
        return SmsResult(ok=True)

    async def close(self) -> None:
        return None


class HttpSmsProvider:
    """POSTs a JSON body made from a template to the gateway's URL, at most ``max_in_flight`` at once (a
    worker delivers a batch at a time; gateways limit their clients)."""

    def __init__(self, url: str, template: str, authorization: str | None = None,
                 client: httpx.AsyncClient | None = None, max_in_flight: int = 10) -> None:
        self.url = url
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.template = template
        self.headers = {"Content-Type": "application/json"}
        if authorization:
            self.headers["Authorization"] = authorization
        self.client = client or httpx.AsyncClient(timeout=10)

    def body(self, phone: str, text: str) -> str:
        # json.dumps(...)[1:-1] escapes quotes and newlines for the inside of a JSON string.
        return self.template.replace("{phone}", json.dumps(phone)[1:-1]).replace("{text}", json.dumps(text)[1:-1])

    async def send(self, phone: str, text: str) -> SmsResult:
        try:
            async with self._in_flight:
                response = await self.client.post(self.url, content=self.body(phone, text), headers=self.headers)
        except httpx.HTTPError as exc:
            return SmsResult(ok=False, transient=True, error=f"{type(exc).__name__}: {exc}"[:300])
        if response.status_code < 300:
            return SmsResult(ok=True)
        transient = response.status_code == 429 or response.status_code >= 500
        return SmsResult(ok=False, transient=transient, error=f"HTTP {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self.client.aclose()


def make_sms_provider(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "http":
        if not settings.sms_http_url:
            raise ValueError("FORECOURT_SMS_HTTP_URL must be set when FORECOURT_SMS_PROVIDER=http")
        return HttpSmsProvider(settings.sms_http_url, settings.sms_http_template, settings.sms_http_authorization)
    return LoggingSmsProvider()
