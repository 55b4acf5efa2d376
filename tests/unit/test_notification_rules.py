import json

import pytest

from backend.domains.notifications import rules
from backend.domains.notifications.rules import Reachability

ALL = Reachability(push_subscriptions=1, email="a@b.test", phone="13812345678")


def test_service_messages_follow_the_persons_order_then_fall_back_to_the_rest():
    assert rules.plan_channels(["sms"], ALL, "service", False) == ["sms", "push", "email"]
    assert rules.plan_channels(None, ALL, "service", False) == ["push", "email", "sms"]


def test_channels_that_cannot_reach_the_person_are_skipped():
    no_push = Reachability(push_subscriptions=0, email=None, phone="13812345678")
    assert rules.plan_channels(["push", "email", "sms"], no_push, "service", False) == ["sms"]
    assert rules.plan_channels(None, Reachability(0, None, None), "service", False) == []


def test_marketing_needs_consent_and_only_uses_the_chosen_channels():
    assert rules.plan_channels(None, ALL, "marketing", False) == []
    assert rules.plan_channels(["email"], ALL, "marketing", True) == ["email"]


@pytest.mark.parametrize(("status", "outcome"), [
    (201, "delivered"), (202, "delivered"), (404, "gone"), (410, "gone"), (429, "retry"), (500, "retry"),
    (503, "retry"), (400, "failed"), (403, "failed"), (413, "failed"),
])
def test_push_answers(status, outcome):
    assert rules.classify_push_status(status) == outcome


def test_backoff_grows_caps_and_respects_retry_after():
    assert [rules.backoff_seconds(n) for n in (1, 2, 3)] == [5, 10, 20]
    assert rules.backoff_seconds(30) == 900
    assert rules.backoff_seconds(1, retry_after=120) == 120


def test_push_payload_stays_under_the_limit_and_keeps_valid_utf8():
    long_body = "您的车已准备好，" * 400
    raw = rules.push_payload("维修完成", long_body, "/track/x", tag="k")
    assert len(raw) <= rules.PUSH_PAYLOAD_LIMIT
    data = json.loads(raw.decode())
    assert data["title"] == "维修完成" and data["body"].endswith("…") and data["url"] == "/track/x"
    short = json.loads(rules.push_payload("t", "b", None, tag="k"))
    assert short == {"title": "t", "body": "b", "url": "/", "tag": "k"}


def test_topic_is_short_and_stable():
    topic = rules.push_topic("test_drive:42:reminder_2h:customer")
    assert len(topic) == 32 and topic == rules.push_topic("test_drive:42:reminder_2h:customer")
    assert topic.isalnum()


def test_masking():
    assert rules.mask_email("li.na@example.com") == "l***@example.com"
    assert rules.mask_phone("13812345678") == "138****5678"


def test_channels_that_gave_up_are_skipped_and_retries_are_counted():
    plan = ["push", "email", "sms"]
    assert rules.channels_to_try(plan, []) == [rules.ChannelStep("push", 0), rules.ChannelStep("email", 0),
                                               rules.ChannelStep("sms", 0)]
    history = [("push", "retry"), ("push", "retry"), ("push", "failed"), ("email", "retry")]
    assert rules.channels_to_try(plan, history) == [rules.ChannelStep("email", 1), rules.ChannelStep("sms", 0)]
    # Per-device push answers ("sent", "gone", "rejected") neither give up the channel nor count as retries.
    assert rules.channels_to_try(["push"], [("push", "gone"), ("push", "rejected")]) == [rules.ChannelStep("push", 0)]


def test_what_a_channel_answer_means():
    assert rules.after_channel("sent", 0) is rules.Next.DELIVERED
    assert rules.after_channel("retry", 0) is rules.Next.RETRY
    assert rules.after_channel("retry", rules.MAX_ATTEMPTS_PER_CHANNEL - 2) is rules.Next.RETRY
    assert rules.after_channel("retry", rules.MAX_ATTEMPTS_PER_CHANNEL - 1) is rules.Next.FALL_BACK
    assert rules.after_channel("failed", 0) is rules.Next.FALL_BACK


def test_one_push_to_several_devices():
    D, G, R, F = (rules.PushOutcome.DELIVERED, rules.PushOutcome.GONE, rules.PushOutcome.RETRY,
                  rules.PushOutcome.FAILED)
    assert rules.push_result([G, D]) == "sent"
    assert rules.push_result([G, R, F]) == "retry"
    assert rules.push_result([G, F]) == "failed"
    assert rules.push_result([]) == "failed"


def test_push_ttl_uses_the_default_and_stays_within_what_push_services_keep():
    assert rules.push_ttl(None, 86400) == 86400
    assert rules.push_ttl(60, 86400) == 60
    assert rules.push_ttl(0, 86400) == 0  # "deliver now or never" is a valid TTL
    assert rules.push_ttl(-5, 86400) == 0
    assert rules.push_ttl(10**9, 86400) == rules.MAX_PUSH_TTL
