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


def results(log: str) -> list[str]:
    return re.findall(r"← outbox-\d+(?::\S+)?:process_outbox_event ● '([^']+)'", log)


async def test_two_workers_on_one_queue_send_each_notification_once(lab):
    first, second = await lab.start_worker(wait=False), await lab.start_worker(wait=False)
    await lab.wait_polling(first)
    await lab.wait_polling(second)
    recipients = await lab.make_recipients(push=PUSH, email=EMAIL)
    keys = await lab.notify_all(recipients, "two-workers", extra_job_ids="again")

    await lab.wait_delivered(keys, first, second)
    await lab.settle()
    counts = await lab.assert_each_delivered_once(keys)
    done = [results(w.text()).count("done") for w in (first, second)]
    idle = sum(results(w.text()).count("nothing to do") for w in (first, second))
    assert all(done) and sum(done) == len(keys), done  # both worked; one delivering job per event
    assert idle >= len(keys), idle  # every second job found its event taken or done
    print(f"\ndelivering jobs per worker {done}, jobs that found their event taken {idle}; {counts}")
