"""Throw-away Redis database URLs keep the server and its options, for tcp, tls and unix sockets."""

from backend.lib.scratchdb import redis_url_for


def test_redis_url_for_each_scheme():
    assert redis_url_for("redis://127.0.0.1:6379/0", 7) == "redis://127.0.0.1:6379/7"
    assert redis_url_for("rediss://:pw@cache:6380", 3) == "rediss://:pw@cache:6380/3"
    assert redis_url_for("redis://h/0?socket_timeout=5", 2) == "redis://h/2?socket_timeout=5"
    assert redis_url_for("unix:///var/run/redis.sock", 4) == "unix:///var/run/redis.sock?db=4"
    assert redis_url_for("unix:///tmp/r.sock?db=0&x=1", 9) == "unix:///tmp/r.sock?x=1&db=9"
