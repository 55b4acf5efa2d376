"""Demo data for a fresh database: a dealer group, two branches and one account per role."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domains.accounts import repository as accounts_repository
from backend.domains.accounts.service import AccountService
from backend.domains.branches import service as branches

DEMO_PASSWORD = "forecourt-demo"  # noqa: S105 - demo data only, printed by `make run`

DEMO_BRANCHES = [
    {"code": "SH01", "name": "上海浦东店", "name_en": "Shanghai Pudong",
     "address": "上海市浦东新区张杨路 1888 号", "timezone": "Asia/Shanghai"},
    {"code": "HZ01", "name": "杭州西湖店", "name_en": "Hangzhou West Lake",
     "address": "杭州市西湖区文三路 268 号", "timezone": "Asia/Shanghai"},
]

DEMO_USERS = [
    ("admin@forecourt.test", "管理员 Admin", "admin", None, None),
    ("manager@forecourt.test", "王经理 Wang (group manager)", "manager", None, "zh_CN"),
    ("sales@forecourt.test", "李娜 Li Na", "sales", "SH01", "zh_CN"),
    ("advisor@forecourt.test", "陈伟 Chen Wei", "service_advisor", "SH01", "zh_CN"),
    ("tech@forecourt.test", "赵强 Zhao Qiang", "technician", "SH01", "zh_CN"),
    ("dispatch@forecourt.test", "周敏 Zhou Min", "dispatcher", "HZ01", "en"),
]


async def seed_demo(session: AsyncSession, redis: Redis, *, only_if_empty: bool = True) -> bool:
    """Returns False (and changes nothing) when the database already has accounts."""
    if only_if_empty and await accounts_repository.count_users(session) > 0:
        return False
    group = await branches.create_group(session, "远景汽车集团 Forecourt Motors")
    for spec in DEMO_BRANCHES:
        await branches.create_branch(session, group_id=group.id, **spec)
    accounts = AccountService(session, redis)
    for email, name, role, branch_code, locale in DEMO_USERS:
        await accounts.create_user(email=email, name=name, role=role, password=DEMO_PASSWORD,
                                   branch_code=branch_code, locale=locale)
    from backend.domains.repair_orders.demo import seed_service

    await seed_service(session)
    from backend.domains.test_drives.demo import seed_test_drives

    await seed_test_drives(session, redis, DEMO_PASSWORD)
    return True


async def seed_vehicles(session: AsyncSession, count: int, *, chunk: int = 5_000) -> int:
    """Add ``count`` demo cars across the branches (the same cars each time: running it again changes nothing).

    Written with the import's bulk upsert; reserved demo cars get a reservation.
    """
    from datetime import date

    from backend.domains.branches import repository as branch_repository
    from backend.domains.stock import demo
    from backend.domains.stock import repository as stock_repository

    branch_ids = [b.id for b in await branch_repository.list_branches(session)]
    if not branch_ids or count <= 0:
        return 0
    rows = demo.demo_vehicles(count, sorted(branch_ids), today=date.today())
    written = 0
    batch: list[tuple] = []
    for number, row in enumerate(rows, start=1):
        batch.append((number, *(row[c] for c in stock_repository.BULK_COLUMNS)))
        if len(batch) >= chunk:
            written += sum(await stock_repository.bulk_upsert(session, batch, columns=stock_repository.BULK_COLUMNS,
                                                              actor=("system", None, "seed"),
                                                              keep_protected_status=False))
            batch = []
    if batch:
        written += sum(await stock_repository.bulk_upsert(session, batch, columns=stock_repository.BULK_COLUMNS,
                                                          actor=("system", None, "seed"), keep_protected_status=False))
    await stock_repository.open_reservations_for_reserved(session, label="demo", reason="Demo reservation")
    return written
