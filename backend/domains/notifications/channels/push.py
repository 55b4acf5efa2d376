"""Web Push through pywebpush's async API (aes128gcm, VAPID), one aiohttp session per process.

VAPID headers are signed once per push service origin and reused until shortly before they expire:
signing per message would cost more than the encryption.

A worker sends many messages at once (batches of a hundred, several batches at a time). At most
``max_in_flight`` requests run at once, as many as the connection pool holds: the others wait their turn
before their timeout starts, so a slow push service makes a batch slower, not a batch of false timeouts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPusher

VAPID_LIFETIME = 12 * 3600


@dataclass(frozen=True, slots=True)
class PushResult:
    status: int
    retry_after: int | None = None
    error: str | None = None


class PushSender:
    def __init__(self, private_pem: str, subject: str, session: aiohttp.ClientSession | None = None,
                 timeout: float = 10.0, max_in_flight: int = 100) -> None:
        self._vapid = Vapid02.from_pem(private_pem.encode())
        self._subject = subject
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)  # made once: aiohttp would make one per request
        self._max_in_flight = max_in_flight
        self._turns = asyncio.Semaphore(max_in_flight)
        self._headers: dict[str, tuple[float, dict[str, str]]] = {}

    async def __aenter__(self) -> PushSender:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  connector=aiohttp.TCPConnector(limit=self._max_in_flight))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _vapid_headers(self, endpoint: str) -> dict[str, str]:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        cached = self._headers.get(audience)
        now = time.time()
        if cached is None or cached[0] - now < 3600:
            expires = int(now) + VAPID_LIFETIME
            headers = self._vapid.sign({"sub": self._subject, "aud": audience, "exp": expires})
            cached = (expires, dict(headers))
            self._headers[audience] = cached
        return dict(cached[1])

    async def send(self, endpoint: str, p256dh: str, auth: str, payload: bytes, *, ttl: int,
                   urgency: str = "normal", topic: str | None = None) -> PushResult:
        if self._session is None:
            await self.__aenter__()
        headers = self._vapid_headers(endpoint) | {"Urgency": urgency}
        if topic:
            headers["Topic"] = topic
        pusher = WebPusher({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
                           aiohttp_session=self._session)
        async with self._turns:
            try:
                response = await pusher.send_async(payload, headers, ttl=ttl, content_encoding="aes128gcm",
                                                   timeout=self._timeout)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # No answer: treat like a 503 so it is retried with back-off.
                return PushResult(status=503, error=f"{type(exc).__name__}: {exc}"[:300])
            except ValueError as exc:
                # Keys we cannot encrypt for (a point off the curve): this browser can never be reached;
                # answer like a push service refusing the request, so the next channel takes over.
                return PushResult(status=400, error=f"cannot encrypt for this subscription: {exc}"[:300])
            retry_after = response.headers.get("Retry-After")
            error = None if response.status < 300 else (await response.text())[:300]
            response.release()
        return PushResult(status=response.status,
                          retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
                          error=error)
