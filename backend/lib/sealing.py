"""Secrets at rest, sealed with AES-GCM under a key derived from the app secret.

Used where a row must hold something that opens a customer's record (a tracking link in a notification
waiting to be sent): whoever reads the table alone cannot use it. A value written before sealing existed
(no prefix) opens as itself; one that no longer opens (the secret was rotated) opens as ``None``.

:func:`seal_bytes` / :func:`open_sealed_bytes` do the same for files (a driving-licence photo): the
caller's ``context`` (the file's name) is bound to the content, so one sealed file renamed as another does
not open.
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
BYTES_PREFIX = b"FCSEAL1\0"  # marks (and versions) a sealed file
NONCE_BYTES = 12


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


def _bytes_aad(purpose: str, context: str) -> bytes:
    return purpose.encode() + b"\0" + context.encode()


def seal_bytes(data: bytes, purpose: str, context: str = "") -> bytes:
    """``data`` sealed with a fresh 96-bit nonce; ``context`` (e.g. a file name) must be given again to open it."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(get_settings().secret_key, purpose).encrypt(nonce, data, _bytes_aad(purpose, context))
    return BYTES_PREFIX + nonce + sealed


def open_sealed_bytes(blob: bytes, purpose: str, context: str = "") -> bytes | None:
    """The sealed bytes, or None when they do not open (another secret, purpose or context, or tampered)."""
    if not blob.startswith(BYTES_PREFIX) or len(blob) < len(BYTES_PREFIX) + NONCE_BYTES + 16:
        return None
    body = blob[len(BYTES_PREFIX):]
    try:
        return _cipher(get_settings().secret_key, purpose).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:],
                                                                   _bytes_aad(purpose, context))
    except (InvalidTag, ValueError):
        return None
