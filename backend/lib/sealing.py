"""Short secrets at rest, sealed with AES-GCM under a key derived from the app secret.

Used where a row must hold something that opens a customer's record (a tracking link in a notification
waiting to be sent): whoever reads the table alone cannot use it. A value written before sealing existed
(no prefix) opens as itself; one that no longer opens (the secret was rotated) opens as ``None``.
"""

from __future__ import annotations

import base64
import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.lib.settings import get_settings

PREFIX = "sealed:"


@functools.lru_cache(maxsize=16)
def _cipher(secret: str, purpose: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=f"forecourt:sealed:{purpose}".encode()).derive(secret.encode())
    return AESGCM(key)


def seal(text: str, purpose: str) -> str:
    nonce = os.urandom(12)
    blob = nonce + _cipher(get_settings().secret_key, purpose).encrypt(nonce, text.encode(), purpose.encode())
    return PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")


def open_sealed(value: str | None, purpose: str) -> str | None:
    if value is None or not value.startswith(PREFIX):
        return value
    raw = value[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return _cipher(get_settings().secret_key, purpose).decrypt(blob[:12], blob[12:], purpose.encode()).decode()
    except (InvalidTag, ValueError):
        return None
