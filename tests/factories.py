"""Test data makers: each call makes fresh rows, so tests never share state."""

from __future__ import annotations

import itertools

from backend.domains.accounts.guards import Principal
from backend.domains.accounts.service import AccountService, principal_for
from backend.domains.branches import service as branches

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


async def make_branch(session, *, code: str | None = None, name: str | None = None, timezone="Asia/Shanghai",
                      opening_hours=None):
    group = await branches.create_group(session, f"Group {next(_seq)}")
    n = next(_seq)
    return await branches.create_branch(session, group_id=group.id, code=code or f"T{n:04d}",
                                        name=name or f"测试门店 {n}", name_en=f"Test branch {n}",
                                        address=f"{n} Test Road", timezone=timezone, opening_hours=opening_hours)


async def make_user(session, redis, *, role: str = "sales", branch=None, email: str | None = None,
                    locale: str | None = None, password: str = PASSWORD):
    if branch is None and role not in ("admin", "manager"):
        branch = await make_branch(session)
    user = await AccountService(session, redis).create_user(
        email=email or f"user{next(_seq)}@example.test", name=f"User {next(_seq)}", role=role,
        password=password, branch_code=branch.code if branch else None, locale=locale)
    return user


def as_principal(user) -> Principal:
    return principal_for(user)
