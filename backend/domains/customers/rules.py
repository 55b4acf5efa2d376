"""Pure rules about customers: phone numbers and tracking tokens."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32  # 256 bits; the architecture asks for at least 128
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def normalize_phone(value: str) -> str | None:
    """A mainland mobile (13812345678, +86 138 1234 5678) or any E.164 number; None if neither."""
    digits = re.sub(r"[\s\-()]", "", value or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if _CN_MOBILE.match(digits):
        return digits
    if _E164.match(digits):
        return digits
    return None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
