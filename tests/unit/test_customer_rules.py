import pytest

from backend.domains.customers import rules
from backend.domains.notifications.schemas import check_endpoint


@pytest.mark.parametrize(("raw", "normalized"), [
    ("13812345678", "13812345678"), ("+86 138 1234 5678", "13812345678"), ("0086-138-1234-5678", "13812345678"),
    ("+44 20 7946 0958", "+442079460958"), ("12345", None), ("23812345678", None), ("", None), ("abc", None),
])
def test_phone_numbers(raw, normalized):
    assert rules.normalize_phone(raw) == normalized


def test_tokens_are_long_random_and_hashed():
    token = rules.new_token()
    assert len(token) >= 43 and token != rules.new_token()
    assert rules.hash_token(token) != token and len(rules.hash_token(token)) == 64


def test_push_endpoints_must_be_public_https(monkeypatch):
    from backend.lib.settings import get_settings

    monkeypatch.setattr(get_settings(), "push_allow_insecure_endpoints", False)
    assert check_endpoint("https://fcm.googleapis.com/fcm/send/abc")
    for bad in ("http://push.example/abc", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://localhost/x",
                "ftp://push.example/x", "https:///nohost"):
        with pytest.raises(ValueError):
            check_endpoint(bad)
