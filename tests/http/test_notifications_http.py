"""Notification screens and the push-subscription API through HTTP."""

from sqlalchemy import select

from backend.domains.customers import service as customers
from backend.domains.notifications.models import Notification, PushSubscription
from tests.factories import make_branch, make_user
from tests.helpers import csrf_token, signed_in

HX = {"HX-Request": "true"}


async def test_my_notifications_page_and_channel_preferences(client, session, redis):
    user = await make_user(session, redis)
    await signed_in(client, user)
    full = await client.get("/me/notifications/")
    assert full.status_code == 200 and "Turn on notifications" in full.text and "<html" in full.text
    assert 'data-vapid-public-key="' in full.text and "push.js" in full.text
    fragment = await client.get("/me/notifications/", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="settings"' in fragment.text

    token = await csrf_token(client, "/me/notifications/")
    saved = await client.post("/me/notifications/channels", data={"channels": ["sms", "email"], "_csrf_token": token},
                              headers=HX)
    assert saved.status_code == 200 and "Saved." in saved.text
    none = await client.post("/me/notifications/channels", data={"_csrf_token": token}, headers=HX)
    assert none.status_code == 422 and "Choose at least one channel." in none.text
    bogus = await client.post("/me/notifications/channels", data={"channels": ["pigeon"], "_csrf_token": token},
                              headers=HX)
    assert bogus.status_code == 422


async def test_send_me_a_test_records_one_notification_per_minute(client, session, redis):
    user = await make_user(session, redis)
    await signed_in(client, user)
    token = await csrf_token(client, "/me/notifications/")
    first = await client.post("/me/notifications/test", data={"_csrf_token": token}, headers=HX)
    assert first.status_code == 200 and first.headers["hx-retarget"] == "#toasts"
    assert "Test notification sent" in first.text
    second = await client.post("/me/notifications/test", data={"_csrf_token": token}, headers=HX)
    assert "already sent" in second.text
    rows = (await session.execute(select(Notification).where(Notification.recipient_id == user.id,
                                                            Notification.template == "system.test"))).scalars()
    assert len(list(rows)) == 1


async def test_subscription_api_for_staff(client, session, redis, push_receiver):
    user = await make_user(session, redis)
    await signed_in(client, user)
    token = await csrf_token(client, "/me/notifications/")
    fake = push_receiver.subscription()
    body = fake.as_json() | {"expirationTime": None}
    created = await client.post("/api/v1/push/subscriptions", json=body, headers={"x-csrftoken": token})
    assert created.status_code == 201
    stored = (await session.execute(select(PushSubscription).where(PushSubscription.endpoint == fake.endpoint))
              ).scalar_one()
    assert (stored.owner_kind, stored.owner_id) == ("staff", user.id)

    no_csrf = await client.post("/api/v1/push/subscriptions", json=body)
    assert no_csrf.status_code == 403

    for bad in ({"endpoint": fake.endpoint}, {"endpoint": "not a url", "keys": body["keys"]},
                {"endpoint": fake.endpoint, "keys": {"p256dh": "short", "auth": "x"}},
                {"endpoint": fake.endpoint, "keys": {"p256dh": fake.p256dh, "auth": "A" * 40}},
                {"endpoint": fake.endpoint, "keys": {"p256dh": "BA" + "A" * 85, "auth": body["keys"]["auth"]}},
                {"endpoint": "ftp://x.example/" + "a" * 20, "keys": body["keys"]}):
        response = await client.post("/api/v1/push/subscriptions", json=bad, headers={"x-csrftoken": token})
        assert response.status_code == 400, bad
    huge = await client.post("/api/v1/push/subscriptions", json=body | {"endpoint": fake.endpoint + "a" * 2000},
                             headers={"x-csrftoken": token})
    assert huge.status_code == 400

    gone = await client.delete("/api/v1/push/subscriptions", params={"endpoint": fake.endpoint},
                               headers={"x-csrftoken": token})
    assert gone.status_code == 204
    assert (await session.execute(select(PushSubscription).where(PushSubscription.endpoint == fake.endpoint))
            ).scalar_one_or_none() is None


async def test_subscription_api_refuses_strangers_and_other_peoples_endpoints(client, session, redis, push_receiver):
    owner = await make_user(session, redis)
    fake = push_receiver.subscription()
    await signed_in(client, owner)
    token = await csrf_token(client, "/me/notifications/")
    await client.post("/api/v1/push/subscriptions", json=fake.as_json(), headers={"x-csrftoken": token})

    client.cookies.clear()
    anonymous_token = await csrf_token(client, "/sign-in")
    refused = await client.post("/api/v1/push/subscriptions", json=fake.as_json(),
                                headers={"x-csrftoken": anonymous_token})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"

    other = await make_user(session, redis)
    await signed_in(client, other)
    token = await csrf_token(client, "/me/notifications/")
    not_yours = await client.delete("/api/v1/push/subscriptions", params={"endpoint": fake.endpoint},
                                    headers={"x-csrftoken": token})
    assert not_yours.status_code == 404


async def test_customers_subscribe_with_their_tracking_token(client, session, redis, push_receiver):
    branch = await make_branch(session)
    customer = await customers.create_customer(session, branch_id=branch.id, name="Ms Zhou", phone="13700001111")
    tracking = await customers.issue_tracking_link(session, customer=customer, record_type="repair_order",
                                                   record_id=7)
    token = await csrf_token(client, "/sign-in")
    fake = push_receiver.subscription()
    ok = await client.post("/api/v1/push/subscriptions", json=fake.as_json() | {"tracking_token": tracking},
                           headers={"x-csrftoken": token})
    assert ok.status_code == 201
    wrong = await client.post("/api/v1/push/subscriptions", json=fake.as_json() | {"tracking_token": "guess"},
                              headers={"x-csrftoken": token})
    assert wrong.status_code == 404


async def test_service_worker_renewal_needs_no_csrf_but_the_old_endpoint(client, session, redis, push_receiver):
    user = await make_user(session, redis)
    await signed_in(client, user)
    token = await csrf_token(client, "/me/notifications/")
    old, new = push_receiver.subscription(), push_receiver.subscription()
    await client.post("/api/v1/push/subscriptions", json=old.as_json(), headers={"x-csrftoken": token})
    client.cookies.clear()
    renewed = await client.post("/api/v1/push/subscriptions/renew",
                                json=new.as_json() | {"old_endpoint": old.endpoint})
    assert renewed.status_code == 201
    unknown = await client.post("/api/v1/push/subscriptions/renew",
                                json=new.as_json() | {"old_endpoint": old.endpoint + "x"})
    assert unknown.status_code == 404


async def test_delivery_log_screen_and_api_are_for_managers_and_scoped(client, session, redis):
    north, south = await make_branch(session), await make_branch(session)
    north_user = await make_user(session, redis, branch=north)
    south_user = await make_user(session, redis, branch=south)
    from backend.domains.notifications.service import NotificationRequest, notify

    for u, b in ((north_user, north), (south_user, south)):
        await notify(session, NotificationRequest(key=f"log:{u.id}", recipient_kind="staff", recipient_id=u.id,
                                                  template="system.test", branch_id=b.id))
    manager = await make_user(session, redis, role="manager", branch=north)
    await signed_in(client, manager)
    page = await client.get("/admin/notifications/")
    assert page.status_code == 200 and f"staff #{north_user.id}" in page.text
    assert f"staff #{south_user.id}" not in page.text
    fragment = await client.get("/admin/notifications/?status=pending", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="log"' in fragment.text
    bad = await client.get("/admin/notifications/?status=exploded")
    assert bad.status_code == 422
    api = await client.get("/api/v1/notifications")
    assert api.status_code == 200 and {n["recipient_id"] for n in api.json()} == {north_user.id}
    assert (await client.get("/api/v1/notifications?status=nope")).status_code == 422
    assert (await client.get("/api/v1/notifications?limit=1000")).status_code == 400

    sales = await make_user(session, redis, branch=north)
    client.cookies.clear()
    await signed_in(client, sales)
    assert (await client.get("/admin/notifications/")).status_code == 403
    assert (await client.get("/api/v1/notifications")).status_code == 403


async def test_delivery_log_lists_events_given_up_after_errors_per_branch(client, session, redis):
    from backend.domains.notifications.service import NotificationRequest, notify
    from backend.domains.outbox.models import OutboxEvent
    from backend.domains.outbox.service import note_error

    north, south = await make_branch(session), await make_branch(session)
    north_user = await make_user(session, redis, branch=north)
    south_user = await make_user(session, redis, branch=south)
    for u, b in ((north_user, north), (south_user, south)):
        nid = await notify(session, NotificationRequest(key=f"stuck:{u.id}", recipient_kind="staff",
                                                        recipient_id=u.id, template="system.test", branch_id=b.id))
        event = (await session.execute(select(OutboxEvent).where(
            OutboxEvent.payload["notification_id"].as_integer() == nid))).scalar_one()
        note_error(event, KeyError(f"boom-{u.id}"), max_errors=1)
    await session.flush()

    manager = await make_user(session, redis, role="manager", branch=north)
    await signed_in(client, manager)
    page = await client.get("/admin/notifications/")
    assert page.status_code == 200
    assert "Not sent because of an error (1)" in page.text and f"boom-{north_user.id}" in page.text
    assert f"boom-{south_user.id}" not in page.text
    fragment = await client.get("/admin/notifications/?status=pending", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text

    admin = await make_user(session, redis, role="admin")
    client.cookies.clear()
    await signed_in(client, admin)
    everything = await client.get("/admin/notifications/")
    assert "Not sent because of an error (2)" in everything.text and f"boom-{south_user.id}" in everything.text


async def test_customer_record_shows_its_messages_and_hides_other_branches(client, session, redis):
    north, south = await make_branch(session), await make_branch(session)
    mine = await customers.create_customer(session, branch_id=north.id, name="李先生", phone="13812340000")
    theirs = await customers.create_customer(session, branch_id=south.id, name="Other", phone="13812340001")
    from backend.domains.notifications.service import NotificationRequest, notify

    await notify(session, NotificationRequest(key="c:1", recipient_kind="customer", recipient_id=mine.id,
                                              template="system.test", branch_id=north.id))
    sales = await make_user(session, redis, branch=north)
    await signed_in(client, sales)
    record = await client.get(f"/customers/{mine.id}")
    assert record.status_code == 200 and "李先生" in record.text and "system.test" in record.text
    assert (await client.get(f"/customers/{theirs.id}")).status_code == 404
    listing = await client.get("/customers/?q=李", headers=HX)
    assert listing.status_code == 200 and "李先生" in listing.text and "Other" not in listing.text


async def test_new_customer_form(client, session, redis):
    sales = await make_user(session, redis)
    await signed_in(client, sales)
    assert (await client.get("/customers/new")).status_code == 200
    token = await csrf_token(client, "/customers/new")
    bad = await client.post("/customers/", data={"name": "", "phone": "12", "_csrf_token": token})
    assert bad.status_code == 422 and "This field is required." in bad.text
    bad_phone = await client.post("/customers/", data={"name": "Zhou", "phone": "12", "_csrf_token": token})
    assert bad_phone.status_code == 422 and "13812345678" in bad_phone.text
    ok = await client.post("/customers/", data={"name": "Zhou", "phone": "+86 138 0000 0000",
                                                "marketing_consent": "on", "_csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/customers/")
    admin = await make_user(session, redis, role="admin")
    client.cookies.clear()
    await signed_in(client, admin)
    token = await csrf_token(client, "/customers/new")
    no_branch = await client.post("/customers/", data={"name": "Zhou", "_csrf_token": token})
    assert no_branch.status_code == 422 and "Choose a branch." in no_branch.text


async def test_a_manager_sends_a_failed_message_again(client, session, redis):
    from backend.domains.audit.models import AuditEntry
    from backend.domains.notifications.service import NotificationRequest, notify
    from backend.domains.outbox.models import OutboxEvent

    north, south = await make_branch(session), await make_branch(session)
    people = {b.id: await make_user(session, redis, branch=b) for b in (north, south)}
    ids = {}
    for name, branch, status in (("failed", north, "failed"), ("delivered", north, "delivered"),
                                 ("theirs", south, "failed")):
        ids[name] = await notify(session, NotificationRequest(
            key=f"again:{name}", recipient_kind="staff", recipient_id=people[branch.id].id, template="system.test",
            params={"name": "Li"}, url="/dashboard", branch_id=branch.id))
        (await session.get(Notification, ids[name])).status = status
    await session.flush()

    async def count_notifications():
        return len((await session.execute(select(Notification.id))).all())

    manager = await make_user(session, redis, role="manager", branch=north)
    await signed_in(client, manager)
    page = await client.get("/admin/notifications/")
    assert page.status_code == 200 and page.text.count('data-testid="resend"') == 1  # only north's failed one
    token = await csrf_token(client, "/admin/notifications/")
    before = await count_notifications()

    # Refused, nothing changed: a delivered message, another branch's, one that does not exist, no CSRF token.
    delivered = await client.post(f"/admin/notifications/{ids['delivered']}/resend", data={"_csrf_token": token},
                                  headers=HX)
    assert delivered.status_code == 409 and "Only a message that could not be sent" in delivered.text
    theirs = await client.post(f"/admin/notifications/{ids['theirs']}/resend", data={"_csrf_token": token},
                               headers=HX)
    assert theirs.status_code == 404 and "does not exist or is not yours" in theirs.text
    assert (await client.post("/admin/notifications/999999999/resend", data={"_csrf_token": token})).status_code == 404
    assert (await client.post("/admin/notifications/abc/resend", data={"_csrf_token": token})).status_code == 404
    assert (await client.post(f"/admin/notifications/{ids['failed']}/resend")).status_code == 403
    assert await count_notifications() == before

    again = await client.post(f"/admin/notifications/{ids['failed']}/resend", data={"_csrf_token": token},
                              headers=HX)
    assert again.status_code == 200 and "<html" not in again.text and 'id="log"' in again.text
    assert "Sent again" in again.text
    new = (await session.execute(select(Notification).where(Notification.key.like("again:failed:again:%"))
                                 )).scalar_one()
    assert (new.status, new.recipient_id, new.template, new.params) == (
        "pending", people[north.id].id, "system.test", {"name": "Li"})
    from backend.domains.notifications import delivery

    assert delivery.link_of(new).endswith("/dashboard")  # the link, sealed again
    assert (await session.get(Notification, ids["failed"])).status == "failed"  # the old one stays as it was
    assert (await session.execute(select(OutboxEvent).where(
        OutboxEvent.payload["notification_id"].as_integer() == new.id))).scalar_one().status == "pending"
    entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "resend"))).scalar_one()
    assert entry.entity_id == str(ids["failed"]) and entry.after == {"new_notification_id": new.id}
    # Without htmx: the whole page.
    full = await client.post(f"/admin/notifications/{ids['failed']}/resend", data={"_csrf_token": token})
    assert full.status_code == 200 and "<html" in full.text and "Sent again" in full.text

    sales = await make_user(session, redis, branch=north)
    client.cookies.clear()
    await signed_in(client, sales)
    token = await csrf_token(client, "/me/notifications/")
    refused = await client.post(f"/admin/notifications/{ids['failed']}/resend", data={"_csrf_token": token})
    assert refused.status_code == 403
