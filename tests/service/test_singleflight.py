"""Single flights on the real Redis: one leader per key, the others answered from its outcome; whatever goes
wrong (a failed or dead leader, a lost subscription, a slow leader) sends them the ordinary way."""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis

from backend.lib.redis import make_redis
from backend.lib.scratchdb import claim_redis_db, redis_url_for, release_redis_db
from backend.lib.singleflight import GO_ON, Flights, Landed, Leader


async def started(redis, **kwargs) -> Flights:
    flights = Flights(redis, "test", **kwargs)
    await flights.start()
    return flights


async def test_one_leader_and_the_others_hear_its_outcome(redis):
    flights = await started(redis)
    try:
        leader = await flights.join("car:1:9")
        assert isinstance(leader, Leader)
        waiters = [asyncio.create_task(flights.join("car:1:9")) for _ in range(20)]
        other = await flights.join("car:2:9")  # another key is another flight
        assert isinstance(other, Leader)
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters), "they wait for the leader"
        await flights.land(leader, {"next_slots": [{"start": "2030-05-01T10:00:00+08:00"}]})
        answers = await asyncio.gather(*waiters)
        assert answers == [Landed({"next_slots": [{"start": "2030-05-01T10:00:00+08:00"}]})] * 20
        # Landed: the key is free again, the next request leads a new flight.
        assert isinstance(await flights.join("car:1:9"), Leader)
        await flights.land(other, None)
    finally:
        await flights.close()


async def test_a_failed_leader_sends_the_waiters_on_by_themselves(redis):
    flights = await started(redis)
    try:
        leader = await flights.join("k")
        waiter = asyncio.create_task(flights.join("k"))
        await asyncio.sleep(0.02)
        await flights.land(leader, None)
        assert await waiter is GO_ON
    finally:
        await flights.close()


async def test_waiters_on_another_process_hear_the_outcome(redis, redis_url):
    """Two Flights on two clients stand for two app processes."""
    other_client = make_redis(redis_url)
    here, there = await started(redis), await started(other_client)
    try:
        leader = await here.join("shared")
        waiters = [asyncio.create_task(there.join("shared")) for _ in range(5)]
        await asyncio.sleep(0.05)
        await here.land(leader, {"taken": True})
        assert await asyncio.gather(*waiters) == [Landed({"taken": True})] * 5
    finally:
        await here.close()
        await there.close()
        await other_client.aclose()


async def test_a_slow_or_dead_leader_only_delays(redis):
    flights = await started(redis, claim_seconds=0.3, wait_seconds=0.1)
    try:
        dead = await flights.join("k")
        assert isinstance(dead, Leader)
        assert await flights.join("k") is GO_ON  # waited 0.1 s, heard nothing: goes on by itself
        await asyncio.sleep(0.35)  # the dead leader's claim has expired
        second = await flights.join("k")
        assert isinstance(second, Leader)
        await flights.land(dead, {"stale": True})  # late: must not release the new leader's claim
        assert await redis.get("test:flight:k") == second.token
        await flights.land(second, None)
        assert await redis.get("test:flight:k") is None
    finally:
        await flights.close()


async def test_other_redis_databases_do_not_hear_each_other(redis, base_urls):
    """Publish/subscribe is shared by every database of a server; each database has its own channels."""
    number = claim_redis_db(base_urls[1], owner=f"tests-singleflight-{os.getpid()}")
    elsewhere_client = make_redis(redis_url_for(base_urls[1], number))
    here, elsewhere = await started(redis, wait_seconds=0.3), await started(elsewhere_client, wait_seconds=0.3)
    try:
        leader_here = await here.join("same-key")
        leader_elsewhere = await elsewhere.join("same-key")
        assert isinstance(leader_elsewhere, Leader), "another database has its own claims"
        waiter_elsewhere = asyncio.create_task(elsewhere.join("same-key"))
        await asyncio.sleep(0.02)
        await here.land(leader_here, {"from": "here"})
        assert await waiter_elsewhere is GO_ON, "it timed out instead of hearing the other database's outcome"
        await elsewhere.land(leader_elsewhere, None)
    finally:
        await here.close()
        await elsewhere.close()
        await elsewhere_client.flushdb()
        await elsewhere_client.aclose()
        release_redis_db(base_urls[1], number)


async def test_without_a_subscription_nobody_waits(redis, redis_url):
    not_started = Flights(redis, "test")
    assert await not_started.join("k") is GO_ON
    assert await redis.get("test:flight:k") is None, "no claim that others would wait for"

    name = f"fc-singleflight-test-{os.getpid()}"
    named = Redis.from_url(redis_url, decode_responses=True, client_name=name)
    flights = await started(named, retry_seconds=0.2)
    try:
        leader = await flights.join("k")
        waiter = asyncio.create_task(flights.join("k"))
        await asyncio.sleep(0.02)
        # The subscription's connection dies (Redis restarted, a network cut): the waiter is let go at once.
        [subscriber] = [c for c in await redis.client_list(_type="pubsub") if c["name"] == name]
        await redis.execute_command("CLIENT", "KILL", "ID", subscriber["id"])
        assert await asyncio.wait_for(waiter, 2) is GO_ON
        await asyncio.sleep(0.05)
        assert not flights.listening and await flights.join("other") is GO_ON
        await flights.land(leader, None)
        for _ in range(50):  # it subscribes again by itself
            if flights.listening:
                break
            await asyncio.sleep(0.05)
        again = await flights.join("k")
        assert isinstance(again, Leader)
        waiter = asyncio.create_task(flights.join("k"))
        await asyncio.sleep(0.02)
        await flights.land(again, {"back": True})
        assert await waiter == Landed({"back": True})
    finally:
        await flights.close()
        await named.aclose()
