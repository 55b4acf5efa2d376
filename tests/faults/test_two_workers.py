"""Two workers on one queue: every notification is delivered once.

Both workers are polling before the notifications are made. Every event is enqueued twice, under
its own job id and a second one (as when an app's hand-off and a sweeper race, or two apps handle
one event), so the two workers really do grab the same event at the same time: the event's row
lock (``SKIP LOCKED``) and its status decide, and the losing job does nothing.
"""

import re

import pytest

PUSH, EMAIL = 50, 10
pytestmark = pytest.mark.parametrize("lab", [{"push_delay": 0.05, "smtp_delay": 0.05}], indirect=True)


def per_event_results(log: str) -> list[str]:
    return re.findall(r"← outbox-\d+(?::\S+)?:process_outbox_event ● '([^']+)'", log)


def batch_done(log: str) -> int:
    return sum(int(n) for n in re.findall(r":deliver_outbox_batch ● '(\d+) done", log))


async def test_two_workers_on_one_queue_send_each_notification_once(lab):
    first, second = await lab.start_worker(wait=False), await lab.start_worker(wait=False)
    await lab.wait_polling(first)
    await lab.wait_polling(second)
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "two-workers", extra_job_ids="again")

    await lab.wait_delivered(keys, first, second)
    await lab.settle()
    counts = await lab.assert_each_delivered_once(keys)
    logs = [w.text() for w in (first, second)]
    per_event = [per_event_results(log) for log in logs]
    done = [batch_done(log) + results.count("done") for log, results in zip(logs, per_event, strict=True)]
    idle = sum(results.count("nothing to do") for results in per_event)
    # Each event had two jobs (a batch and a per-event one), possibly on different workers at once:
    # exactly one of them delivered it, the other found it taken or done.
    assert sum(done) == len(keys), done
    assert sum(len(results) for results in per_event) == len(keys)
    assert idle == len(keys) - sum(results.count("done") for results in per_event), idle
    print(f"\nevents delivered per worker {done}, jobs that found their event taken {idle}; {counts}")
