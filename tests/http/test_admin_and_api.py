"""Role guards, branch scoping, API keys (screen and API), the audit log and the error shapes."""

import re

from backend.domains.accounts.service import AccountService
from tests.factories import as_principal, make_branch, make_user
from tests.helpers import csrf_token, signed_in

HX = {"HX-Request": "true"}


async def api_key_for(session, redis, role="admin", branch=None):
    creator = as_principal(await make_user(session, redis, role="admin"))
    _, secret = await AccountService(session, redis).create_api_key(
        creator, name=f"{role} integration", role=role, branch_id=branch.id if branch else None)
    return {"Authorization": f"Bearer {secret}"}


async def test_wrong_role_gets_a_friendly_403_in_every_shape(client, session, redis):
    user = await make_user(session, redis, role="sales")
    await signed_in(client, user)
    page = await client.get("/admin/api-keys/", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 403
    assert "<html" in page.text and "无权访问" in page.text
    toast = await client.get("/admin/api-keys/", headers=HX)
    assert toast.status_code == 403
    assert toast.headers["hx-retarget"] == "#toasts" and 'class="toast toast--error"' in toast.text
    api = await client.get("/api/v1/api-keys")
    assert api.status_code == 403 and api.json()["error"]["code"] == "forbidden"


async def test_api_keys_screen_create_and_revoke(client, session, redis):
    admin = await make_user(session, redis, role="admin")
    await signed_in(client, admin)
    page = await client.get("/admin/api-keys/")
    assert page.status_code == 200 and "New key" in page.text
    token = await csrf_token(client, "/admin/api-keys/")

    bad = await client.post("/admin/api-keys/", data={"name": "", "role": "owner", "_csrf_token": token},
                            headers=HX)
    assert bad.status_code == 422
    assert "<html" not in bad.text and "This field is required." in bad.text

    created = await client.post("/admin/api-keys/", data={"name": "Website", "role": "sales",
                                                          "_csrf_token": token}, headers=HX)
    assert created.status_code == 201 and "<html" not in created.text
    secret = re.search(r"<code>(fc_[^<]+)</code>", created.text).group(1)

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["kind"] == "api_key" and me.json()["role"] == "sales"

    key_id = re.search(r"/admin/api-keys/(\d+)/revoke", created.text).group(1)
    revoked = await client.post(f"/admin/api-keys/{key_id}/revoke", data={"_csrf_token": token}, headers=HX)
    assert revoked.status_code == 200 and "Revoked" in revoked.text
    again = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert again.status_code == 401 and again.json()["error"]["code"] == "not_authenticated"


async def test_api_keys_api_with_bad_input(client, session, redis):
    headers = await api_key_for(session, redis, role="admin")
    created = await client.post("/api/v1/api-keys", json={"name": "ERP", "role": "manager"}, headers=headers)
    assert created.status_code == 201 and created.json()["secret"].startswith("fc_")
    assert "key_hash" not in created.json()

    for body in ({"name": "x"}, {"name": "x", "role": "owner"}, {"name": 5, "role": "sales"},
                 {"name": "x", "role": "sales", "branch_id": "three"}, {"name": "x", "role": "sales", "evil": 1},
                 {"name": "x" * 500, "role": "sales"}):
        response = await client.post("/api/v1/api-keys", json=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "bad_request"
    malformed = await client.post("/api/v1/api-keys", content=b"{not json", headers=headers | {
        "Content-Type": "application/json"})
    assert malformed.status_code == 400
    unknown_branch = await client.post("/api/v1/api-keys", json={"name": "x", "role": "sales", "branch_id": 99999},
                                       headers=headers)
    assert unknown_branch.status_code == 422 and "branch_id" in unknown_branch.json()["error"]["fields"]
    missing = await client.delete("/api/v1/api-keys/99999", headers=headers)
    assert missing.status_code == 404

    listed = await client.get("/api/v1/api-keys", headers=headers)
    assert listed.status_code == 200 and any(k["name"] == "ERP" for k in listed.json())


async def test_api_needs_a_key_and_the_right_role(client, session, redis):
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer fc_nonsense"})).status_code == 401
    sales = await api_key_for(session, redis, role="sales")
    assert (await client.get("/api/v1/api-keys", headers=sales)).status_code == 403
    assert (await client.get("/api/v1/audit", headers=sales)).status_code == 403


async def test_cookie_authenticated_api_calls_need_csrf(client, session, redis):
    admin = await make_user(session, redis, role="admin")
    await signed_in(client, admin)
    refused = await client.post("/api/v1/api-keys", json={"name": "x", "role": "sales"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    token = await csrf_token(client, "/admin/api-keys/")
    allowed = await client.post("/api/v1/api-keys", json={"name": "x", "role": "sales"},
                                headers={"x-csrftoken": token})
    assert allowed.status_code == 201


async def test_screens_refuse_api_keys(client, session, redis):
    headers = await api_key_for(session, redis, role="admin")
    response = await client.get("/dashboard", headers=headers)
    assert response.status_code == 403


async def test_audit_log_is_scoped_to_the_branch(client, session, redis):
    north, south = await make_branch(session), await make_branch(session)
    await make_user(session, redis, role="sales", branch=north, email="north@example.test")
    await make_user(session, redis, role="sales", branch=south, email="south@example.test")
    manager = await make_user(session, redis, role="manager", branch=north)
    await signed_in(client, manager)
    entries = (await client.get("/api/v1/audit?limit=200")).json()
    labels = {e["after"]["email"] for e in entries if e["entity"] == "staff_user" and e["after"]}
    assert "north@example.test" in labels and "south@example.test" not in labels
    assert all(e["branch_id"] == north.id for e in entries)

    page = await client.get("/admin/audit/")
    assert page.status_code == 200 and "north@example.test" in page.text and "south@example.test" not in page.text
    fragment = await client.get("/admin/audit/", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="entries"' in fragment.text
    bad = await client.get("/api/v1/audit?limit=5000")
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["message"]
    wrong_type = await client.get("/api/v1/audit?before=abc")
    assert wrong_type.status_code == 400


async def test_group_admin_sees_every_branch(client, session, redis):
    north, south = await make_branch(session), await make_branch(session)
    admin = await make_user(session, redis, role="admin")
    await signed_in(client, admin)
    page = await client.get("/dashboard")
    assert north.name in page.text and south.name in page.text
    sales = await make_user(session, redis, role="sales", branch=north)
    client.cookies.clear()
    await signed_in(client, sales)
    page = await client.get("/dashboard")
    assert north.name in page.text and south.name not in page.text
