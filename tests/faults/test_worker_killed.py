"""kill -9 a worker in the middle of sends; a new worker delivers the rest, nothing twice.

The push service and the SMTP server answer slowly (0.4 s), so the worker always has sends under
way when it is killed. Its transactions die with it: the events of those sends are still pending
and their arq jobs stay "in progress" for arq's job timeout (two minutes). The new worker's sweeper
enqueues them again in batch jobs under new ids (a job id arq still holds never blocks it); a send the
push service had already taken before the kill is then sent once more with the same Topic and tag,
which the service and the phone collapse into one notification.
"""

import time

import pytest

from workers.notification_jobs import BATCH_SIZE

PUSH, EMAIL = 30, 6
pytestmark = pytest.mark.parametrize("lab", [{"push_delay": 0.4, "smtp_delay": 0.4}], indirect=True)


async def test_a_worker_killed_mid_send_loses_and_duplicates_nothing(lab):
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "killed")
    first = await lab.start_worker()
    # Mid-send: a batch of messages is at the push service right now.
    await lab.wait_for(lambda: lab.push.in_flight >= 3,
                       "sends under way", 20, first)
    in_flight = lab.push.in_flight
    kill_at = time.monotonic()
    await first.kill()
    delivered_before = await lab.delivered_count(keys)
    assert in_flight >= 3 and delivered_before < len(keys), (in_flight, delivered_before)

    second = await lab.start_worker()
    await lab.wait_delivered(keys, second)
    await lab.settle()
    # A batch commits its sends together: every send of the killed batch that the push service or the
    # SMTP server had already taken goes once more (same Topic, tag and Message-ID), at most a batch.
    counts = await lab.assert_each_delivered_once(keys, kill_at=kill_at, max_in_flight=BATCH_SIZE)
    assert "sweeper re-enqueued" in second.text(), second.text()[-4000:]
    print(f"\nkilled with {in_flight} sends in flight, {delivered_before} of {len(keys)} delivered; {counts}")


async def test_a_worker_stopped_mid_send_finishes_its_sends_and_nothing_is_resent(lab):
    """SIGTERM (a deploy, `docker compose stop`): the worker stops taking jobs, lets the sends under
    way finish and record themselves, and exits 0; the next worker delivers the rest. Cancelling
    those sends instead would roll back sends the push service had already taken."""
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "stopped")
    first = await lab.start_worker()
    await lab.wait_for(lambda: lab.push.in_flight >= 3,
                       "sends under way", 20, first)
    in_flight = lab.push.in_flight
    await first.stop()
    assert first.process.returncode == 0, first.text()[-3000:]
    delivered_before = await lab.delivered_count(keys)  # its batches finished: often all of them
    assert in_flight >= 3

    second = await lab.start_worker()
    await lab.wait_delivered(keys, second)
    await lab.settle()
    counts = await lab.assert_each_delivered_once(keys)  # strictly: no resend of any kind
    print(f"\nstopped with {in_flight} sends in flight, {delivered_before} of {len(keys)} delivered; {counts}")
