"""FLUSHDB on the worker's Redis while events are pending: the sweeper finds them in PostgreSQL and
enqueues them again; every notification is delivered exactly once.

The flush takes the queued batch jobs before any worker saw them, so only the sweeper can find the
events again: nothing in Redis remembers them.
"""

import pytest
import redis.asyncio as aioredis

PUSH, EMAIL = 36, 4
pytestmark = pytest.mark.parametrize("lab", [{"push_delay": 0.25, "smtp_delay": 0.25}], indirect=True)


async def test_events_lost_with_a_redis_flush_are_enqueued_again_and_sent_once(lab):
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "flushed")

    client = aioredis.Redis.from_url(lab.redis.url)
    try:
        queued_before = await client.zcard("arq:queue")
        await client.flushdb()
        assert await client.zcard("arq:queue") == 0
    finally:
        await client.aclose()
    pending_at_flush = len(keys) - await lab.delivered_count(keys)
    assert queued_before > 0 and pending_at_flush == len(keys), (queued_before, pending_at_flush)

    worker = await lab.start_worker()

    await lab.wait_delivered(keys, worker)
    await lab.settle()
    counts = await lab.assert_each_delivered_once(keys)  # no worker died: no resend of any kind
    assert "sweeper re-enqueued" in worker.text()
    print(f"\nflushed with {queued_before} jobs queued, {pending_at_flush} of {len(keys)} pending; {counts}")
