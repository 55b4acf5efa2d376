"""``Idempotency-Key`` for booking submissions: a retried request gets the first answer.

The key is stored as a hash; the answer (it holds the tracking token) is sealed with AES-GCM under a key
derived from the client's idempotency key and the app secret, so neither the table alone nor the app
secret alone opens it. A key reused with a different request body is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.lib.errors import Conflict, Invalid
from backend.lib.i18n import gettext as _
from backend.lib.settings import get_settings

KEY_SHAPE = re.compile(r"^[\x21-\x7e]{8,200}$")  # printable ASCII, as in the IETF draft's examples


def acceptable(key: str | None) -> bool:
    return bool(key) and bool(KEY_SHAPE.match(key))


def key_hash(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


def request_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _cipher(scope: str, key: str) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=get_settings().secret_key.encode(),
                   info=f"forecourt:idempotency:{scope}".encode()).derive(key.encode())
    return AESGCM(derived)


def seal(scope: str, key: str, answer: dict) -> bytes:
    nonce = os.urandom(12)
    return nonce + _cipher(scope, key).encrypt(nonce, json.dumps(answer).encode(), scope.encode())


def unseal(scope: str, key: str, blob: bytes) -> dict:
    return json.loads(_cipher(scope, key).decrypt(blob[:12], blob[12:], scope.encode()))


def require_acceptable(key: str | None) -> None:
    """Refuse a malformed ``Idempotency-Key`` (None: the client sent none, which is fine)."""
    if key is not None and not acceptable(key):
        message = _("The Idempotency-Key must be 8 to 200 printable characters.")
        raise Invalid(message, fields={"idempotency_key": message})


def replayed_answer(scope: str, record, key: str, request_hash: str) -> dict:
    """The first answer to this key, for a retried request; refused while the first is still running,
    and when the key was used for a different request."""
    if record is None or not record.status_code:
        raise Conflict(_("This booking is still being processed. Please try again in a moment."))
    if record.request_hash != request_hash:
        message = _("This Idempotency-Key was already used for a different booking.")
        raise Invalid(message, fields={"idempotency_key": message})
    return unseal(scope, key, record.response)


@dataclass(frozen=True, slots=True)
class Submission:
    """A booking request as its ``Idempotency-Key`` sees it."""

    key: str | None
    request_hash: str
    key_hash: str | None


async def submission(session, scope: str, key: str | None, payload: dict):
    """The submission, and the stored answer when a request with this key already succeeded (then the caller
    replays it and does nothing else); refuses a malformed key."""
    from . import repository

    require_acceptable(key)
    found = Submission(key=key, request_hash=request_hash(payload), key_hash=key_hash(scope, key) if key else None)
    if found.key_hash is None:
        return found, None
    record = await repository.idempotency_record(session, scope, found.key_hash)
    return found, (record if record is not None and record.status_code else None)
