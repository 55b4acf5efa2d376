"""Sealed values open only with the app secret and the same purpose; old plain values still open."""

from backend.lib import sealing
from backend.lib.settings import get_settings


def test_sealed_text_hides_the_secret_and_opens_again():
    sealed = sealing.seal("/track/SECRET-TOKEN", "notification-url")
    assert sealed.startswith(sealing.PREFIX) and "SECRET-TOKEN" not in sealed
    assert sealed != sealing.seal("/track/SECRET-TOKEN", "notification-url")  # a fresh nonce each time
    assert sealing.open_sealed(sealed, "notification-url") == "/track/SECRET-TOKEN"
    assert len(sealed) < 500  # fits notification.url


def test_wrong_purpose_tampering_or_another_secret_open_nothing(monkeypatch):
    sealed = sealing.seal("/track/abc", "notification-url")
    assert sealing.open_sealed(sealed, "other-purpose") is None
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert sealing.open_sealed(tampered, "notification-url") is None
    assert sealing.open_sealed(sealing.PREFIX + "!!not base64!!", "notification-url") is None
    monkeypatch.setattr(get_settings(), "secret_key", "another-secret-of-at-least-32-characters!")
    assert sealing.open_sealed(sealed, "notification-url") is None


def test_plain_and_missing_values_open_as_themselves():
    assert sealing.open_sealed("/dashboard", "notification-url") == "/dashboard"
    assert sealing.open_sealed(None, "notification-url") is None


def test_sealed_bytes_open_only_with_the_same_secret_purpose_and_context(monkeypatch):
    data = b"\xff\xd8\xff" + b"licence photo " * 50
    sealed = sealing.seal_bytes(data, "driving-licence-photo", "a.jpg")
    assert data[:16] not in sealed and sealed != sealing.seal_bytes(data, "driving-licence-photo", "a.jpg")
    assert sealing.open_sealed_bytes(sealed, "driving-licence-photo", "a.jpg") == data
    assert sealing.open_sealed_bytes(sealed, "driving-licence-photo", "a-thumb.jpg") is None
    assert sealing.open_sealed_bytes(sealed, "driving-licence", "a.jpg") is None
    assert sealing.open_sealed_bytes(data, "driving-licence-photo", "a.jpg") is None  # not sealed at all
    assert sealing.open_sealed_bytes(sealed[:20], "driving-licence-photo", "a.jpg") is None
    monkeypatch.setattr(get_settings(), "secret_key", "another-secret-of-at-least-32-characters!")
    assert sealing.open_sealed_bytes(sealed, "driving-licence-photo", "a.jpg") is None
