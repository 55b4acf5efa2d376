from tests.factories import make_user
from tests.helpers import signed_in


async def test_home_and_sign_in(client, session, redis):
    r = await client.get("/")
    assert r.status_code == 200, r.text
    user = await make_user(session, redis, role="sales")
    await signed_in(client, user)
    r = await client.get("/dashboard")
    assert r.status_code == 200, r.text
    assert user.name in r.text
