"""Shapes for Web Push subscriptions, preferences and the notification screens."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.lib.settings import get_settings

from .rules import CHANNELS


def _b64url_bytes(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(min_length=80, max_length=200)
    auth: str = Field(min_length=16, max_length=100)

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        raw = _b64url_bytes(value)
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("p256dh must be an uncompressed P-256 public key")
        try:  # a point off the curve would make every later encryption for this browser fail
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError as exc:
            raise ValueError("p256dh is not a point on the P-256 curve") from exc
        return value

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        if len(_b64url_bytes(value)) != 16:
            raise ValueError("auth must be 16 bytes")
        return value


def check_endpoint(endpoint: str) -> str:
    """Push endpoints are https URLs of a push service; never our own network (no SSRF)."""
    parts = urlsplit(endpoint)
    insecure_ok = get_settings().push_allow_insecure_endpoints
    if parts.scheme != "https" and not (insecure_ok and parts.scheme == "http"):
        raise ValueError("endpoint must be an https URL")
    host = parts.hostname or ""
    if not host:
        raise ValueError("endpoint has no host")
    if not insecure_ok:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if host == "localhost" or (address and (address.is_private or address.is_loopback or address.is_link_local)):
            raise ValueError("endpoint must be a public push service")
    return endpoint


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # browsers add expirationTime

    endpoint: str = Field(min_length=10, max_length=1000)
    keys: SubscriptionKeys
    tracking_token: str | None = Field(default=None, max_length=100)

    _endpoint = field_validator("endpoint")(classmethod(lambda cls, v: check_endpoint(v)))


class SubscriptionRenewal(BaseModel):
    model_config = ConfigDict(extra="ignore")

    old_endpoint: str = Field(min_length=10, max_length=1000)
    endpoint: str = Field(min_length=10, max_length=1000)
    keys: SubscriptionKeys

    _endpoint = field_validator("endpoint")(classmethod(lambda cls, v: check_endpoint(v)))


class Unsubscribe(BaseModel):
    endpoint: str = Field(min_length=10, max_length=1000)


class SubscriptionOut(BaseModel):
    id: int
    endpoint_host: str
    created_at: datetime | None


class PreferenceForm(BaseModel):
    channels: list[str] = Field(min_length=1, max_length=3)

    @field_validator("channels")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if any(c not in CHANNELS for c in value) or len(set(value)) != len(value):
            raise ValueError("unknown or repeated channel")
        return value


class AttemptOut(BaseModel):
    channel: str
    target: str
    status: str
    error: str | None
    at: datetime


class NotificationOut(BaseModel):
    id: int
    key: str
    recipient_kind: str
    recipient_id: int
    template: str
    category: str
    status: str
    channel: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[AttemptOut] = []
