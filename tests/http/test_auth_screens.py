"""Sign-in, sign-out, sessions, CSRF, rate limits and languages through HTTP."""

from sqlalchemy import select

from backend.domains.accounts.models import StaffUser
from backend.lib.sessions import SESSION_COOKIE
from tests.factories import PASSWORD, make_user
from tests.helpers import csrf_token, sign_in, signed_in

HX = {"HX-Request": "true"}


async def test_sign_in_page_full_and_fragment(client):
    full = await client.get("/sign-in")
    assert full.status_code == 200
    assert "<html" in full.text and 'name="password"' in full.text
    assert "HX-Request" in full.headers["vary"]
    fragment = await client.get("/sign-in", headers=HX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'name="password"' in fragment.text
    assert "HX-Request" in fragment.headers["vary"]


async def test_successful_sign_in_sets_a_safe_cookie_and_goes_to_next(client, session, redis):
    user = await make_user(session, redis)
    token = await csrf_token(client)
    response = await client.post("/sign-in", data={"email": user.email, "password": PASSWORD,
                                                   "next": "/admin/audit", "_csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/audit"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 200 and user.name in dashboard.text


async def test_sign_in_never_redirects_off_site(client, session, redis):
    user = await make_user(session, redis)
    response = await sign_in(client, user.email, next="https://evil.example/")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"


async def test_missing_csrf_token_is_refused(client, session, redis):
    user = await make_user(session, redis)
    await client.get("/sign-in")
    response = await client.post("/sign-in", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 403
    assert "form expired" in response.text
    assert SESSION_COOKIE not in client.cookies


async def test_forged_csrf_token_is_refused(client, session, redis):
    user = await make_user(session, redis)
    await client.get("/sign-in")
    response = await client.post("/sign-in", data={"email": user.email, "password": PASSWORD,
                                                   "_csrf_token": "forged"})
    assert response.status_code == 403


async def test_malformed_form_comes_back_with_messages_beside_the_fields(client):
    token = await csrf_token(client)
    response = await client.post("/sign-in", data={"email": "", "_csrf_token": token})
    assert response.status_code == 422
    assert 'class="field field--error"' in response.text
    assert "This field is required." in response.text
    too_long = await client.post("/sign-in", data={"email": "a" * 300 + "@x.test", "password": "p",
                                                   "_csrf_token": token})
    assert too_long.status_code == 422 and "Use at most 254 characters." in too_long.text


async def test_wrong_password_and_unknown_email_look_the_same(client, session, redis):
    user = await make_user(session, redis)
    wrong = await sign_in(client, user.email, "wrong-password")
    unknown = await sign_in(client, "nobody@example.test", "wrong-password")
    assert wrong.status_code == unknown.status_code == 422
    message = "That e-mail and password do not match an account."
    assert message in wrong.text and message in unknown.text


async def test_too_many_sign_in_attempts_get_429_with_a_message(client, session, redis, settings):
    user = await make_user(session, redis)
    for _ in range(settings.signin_max_per_account):
        assert (await sign_in(client, user.email, "wrong-password")).status_code == 422
    response = await sign_in(client, user.email, PASSWORD)
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.text
    assert int(response.headers["retry-after"]) > 0


async def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = await client.get("/dashboard")
    assert response.status_code == 302 and response.headers["location"] == "/sign-in?next=%2Fdashboard"
    htmx = await client.get("/dashboard", headers=HX)
    assert htmx.headers["hx-redirect"] == "/sign-in?next=%2Fdashboard"


async def test_expired_session_goes_back_to_sign_in(client, session, redis):
    user = await make_user(session, redis)
    await signed_in(client, user)
    for key in await redis.keys("session:*"):
        await redis.delete(key)
    response = await client.get("/dashboard")
    assert response.status_code == 302 and response.headers["location"].startswith("/sign-in")


async def test_sign_out_ends_the_session(client, session, redis):
    user = await make_user(session, redis)
    await signed_in(client, user)
    token = await csrf_token(client, "/dashboard")
    response = await client.post("/sign-out", data={"_csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    assert await redis.keys("session:*") == []
    assert (await client.get("/dashboard")).status_code == 302


async def test_dashboard_full_page_and_fragment(client, session, redis):
    user = await make_user(session, redis)
    await signed_in(client, user)
    full = await client.get("/dashboard")
    assert full.status_code == 200 and 'class="bottom-nav"' in full.text and user.name in full.text
    fragment = await client.get("/dashboard", headers=HX)
    assert fragment.status_code == 200 and "bottom-nav" not in fragment.text and user.name in fragment.text
    assert "HX-Request" in fragment.headers["vary"]


async def test_language_from_accept_language_then_cookie_then_account(client, session, redis):
    assert "员工登录" in (await client.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"})).text
    assert "Staff sign-in" in (await client.get("/sign-in", headers={"Accept-Language": "en-US"})).text

    token = await csrf_token(client)
    switched = await client.post("/lang", data={"lang": "zh_CN", "next": "/sign-in", "_csrf_token": token},
                                 headers={"Accept-Language": "en"})
    assert switched.status_code == 303 and switched.headers["location"] == "/sign-in"
    page = await client.get("/sign-in", headers={"Accept-Language": "en"})
    assert "员工登录" in page.text and '<html lang="zh-CN">' in page.text

    user = await make_user(session, redis, locale="en")
    await signed_in(client, user)
    assert "Dashboard" in (await client.get("/dashboard")).text  # the account's choice beats the cookie
    token = await csrf_token(client, "/dashboard")
    await client.post("/lang", data={"lang": "zh-CN", "_csrf_token": token})
    stored = (await session.execute(select(StaffUser.locale).where(StaffUser.id == user.id))).scalar_one()
    assert stored == "zh_CN"
    assert "工作台" in (await client.get("/dashboard")).text


async def test_unknown_language_is_refused_with_a_message(client):
    token = await csrf_token(client)
    response = await client.post("/lang", data={"lang": "xx", "_csrf_token": token},
                                 headers={"Accept-Language": "en"})
    assert response.status_code == 422 and "Please correct" in response.text
