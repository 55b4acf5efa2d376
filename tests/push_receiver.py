"""A local Web Push service for the tests: it decrypts what we send and checks the VAPID JWT.

Each subscription it hands out has its own P-256 key pair and auth secret, exactly like a browser's.
On every POST it verifies the VAPID ``Authorization: vapid t=<jwt>, k=<key>`` header (ES256 signature
by the key in ``k``, ``aud`` = this origin, ``exp`` in the future, a ``sub``), decrypts the aes128gcm
body with the subscription's private key and auth secret (http_ece), and records what a person would
see. Answers can be scripted per subscription (e.g. 503 then 201, or 410).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass, field

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    subscription: str
    payload: dict
    ttl: int
    urgency: str | None
    topic: str | None
    jwt_claims: dict
    started_at: float = 0.0  # time.monotonic() when the request arrived (its sender was alive then)


@dataclass
class FakeSubscription:
    name: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str
    script: list[int] = field(default_factory=list)  # statuses to answer, in order; then 201

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                          serialization.PublicFormat.UncompressedPoint)
        return b64url(raw)

    @property
    def auth_b64(self) -> str:
        return b64url(self.auth)

    def as_json(self) -> dict:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth_b64}}


def verify_vapid(authorization: str, origin: str) -> dict:
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid", f"not a VAPID header: {authorization[:20]}"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    token, key = parts["t"], parts["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "ES256"
    claims = json.loads(b64url_decode(claims_b64))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    raw_signature = b64url_decode(signature_b64)
    signature = encode_dss_signature(int.from_bytes(raw_signature[:32], "big"),
                                     int.from_bytes(raw_signature[32:], "big"))
    public.verify(signature, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert claims["aud"] == origin, f"aud {claims['aud']} != {origin}"
    assert claims["exp"] > time.time(), "expired VAPID token"
    assert claims["sub"].startswith(("mailto:", "https:")), "VAPID sub must be mailto: or https:"
    return claims


class PushReceiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.subscriptions: dict[str, FakeSubscription] = {}
        self.received: list[Received] = []
        self.errors: list[str] = []
        self.requests = 0
        self.in_flight = 0  # requests being handled right now
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> PushReceiver:
        app = web.Application()
        app.router.add_post("/push/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.origin = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def subscription(self, script: list[int] | None = None) -> FakeSubscription:
        name = secrets.token_hex(8)
        sub = FakeSubscription(name=name, private_key=ec.generate_private_key(ec.SECP256R1()),
                               auth=secrets.token_bytes(16), endpoint=f"{self.origin}/push/{name}",
                               script=list(script or []))
        self.subscriptions[name] = sub
        return sub

    def for_subscription(self, sub: FakeSubscription) -> list[Received]:
        return [r for r in self.received if r.subscription == sub.name]

    def shown(self) -> dict[tuple[str, str], list[Received]]:
        """What the phones show, per (subscription, tag): the service worker passes the payload's tag
        to showNotification, so a second message with a tag already shown replaces that notification
        (silently, without renotify) instead of adding one. Each key maps to the messages behind it."""
        phones: dict[tuple[str, str], list[Received]] = {}
        for r in self.received:
            phones.setdefault((r.subscription, r.payload.get("tag", "")), []).append(r)
        return phones

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        try:
            return await self._handle_one(request, time.monotonic())
        finally:
            self.in_flight -= 1

    async def _handle_one(self, request: web.Request, started_at: float) -> web.Response:
        self.requests += 1
        sub = self.subscriptions.get(request.match_info["name"])
        if sub is None:
            return web.Response(status=404)
        if sub.script:
            status = sub.script.pop(0)
            if status >= 300:
                return web.Response(status=status, headers={"Retry-After": "1"} if status == 429 else None)
        try:
            claims = verify_vapid(request.headers["Authorization"], self.origin)
            assert request.headers.get("Content-Encoding") == "aes128gcm"
            body = await request.read()
            assert len(body) <= 4096, f"record of {len(body)} bytes exceeds 4096"
            plain = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm")
            payload = json.loads(plain)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=400)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(Received(subscription=sub.name, payload=payload, ttl=int(request.headers["TTL"]),
                                      urgency=request.headers.get("Urgency"), topic=request.headers.get("Topic"),
                                      jwt_claims=claims, started_at=started_at))
        return web.Response(status=201)
