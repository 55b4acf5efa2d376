"""HTTP test helpers: CSRF token and signing in through the real form."""

from __future__ import annotations

import re

from tests.factories import PASSWORD

CSRF_INPUT = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client, path: str = "/sign-in") -> str:
    response = await client.get(path)
    match = CSRF_INPUT.search(response.text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def sign_in(client, email: str, password: str = PASSWORD, next: str = "/dashboard"):
    token = await csrf_token(client)
    response = await client.post("/sign-in", data={"email": email, "password": password, "next": next,
                                                   "_csrf_token": token})
    return response


async def signed_in(client, user, password: str = PASSWORD):
    response = await sign_in(client, user.email, password)
    assert response.status_code == 303, response.text
    return client
