"""Several worker processes on one PostgreSQL database: no process is special, and what must
happen once happens once. Two runtimes (each with its own connection pool, as two processes
would have) run the same scheduled work at the same moment: a cron playbook's fire, a cron
campaign's fire, the daily digest, task reminders, the mass-result collector and
the transfer poller. The database decides (unique keys, row locks, ``SKIP LOCKED``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config import Config
from bot.roles import Role
from bot.server import Runtime, open_runtime
from sop.delivery import messages
from sop.delivery.messages import MASS
from sop.settings import SopSettings
from sop.staff.plan import plan_transfer
from sop.staff.transfer import record_transfer
from store.models import CampaignRun, CronFire, Enrollment, OutboxRow, Task, TaskState
from tests.bot.test_server import APP
from tests.sop.campaigns.world import seed
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.mass import FIRST_POLL, jobs
from tests.support.outbox import put

pytestmark = pytest.mark.postgres
DAILY = 'name: daily_hello\ntrigger: {schedule: {cron: "0 17 * * *"}}\nsteps:\n  - tag: hello\n'
WEEKLY_CAMPAIGN = """\
name: weekly_vip
channel: mass
audience: {tags: {any: [VIP]}}
content: {text: "本周新品"}
schedule: {cron: "0 17 * * 1", timezone: Asia/Shanghai}
frequency_cap: false
"""
TASK_API = "externalcontact/get_groupmsg_task"
TRANSFER_API = "externalcontact/transfer_customer"


@pytest.fixture
async def workers(
    postgres_db: Database, fake_wecom: FakeWecom, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two worker runtimes on one database, the fake WeCom knowing the seeded people; the
    manual clock stands at Monday 17:00 in Shanghai (the cron jobs' minute)."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "daily.yaml").write_text(DAILY, encoding="utf-8")
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "weekly.yaml").write_text(WEEKLY_CAMPAIGN, encoding="utf-8")
    await seed(postgres_db, clock)
    for staff in ("zhangsan", "lisi"):
        fake_wecom.add_staff(staff, staff)
    for n in range(6):
        fake_wecom.add_customer(
            f"wm{n:03d}", f"客户{n}", follow=["zhangsan" if n % 2 == 0 else "lisi"]
        )
    sop = SopSettings(
        playbooks=[str(tmp_path / "playbooks")], campaigns=[str(tmp_path / "campaigns")]
    )
    config = Config(
        database_url=postgres_db.url,
        wecom={"corp_id": fake_wecom.corp_id, "api_base_url": fake_wecom.base_url, "apps": [APP]},
        sop=sop,
    )
    async with (
        open_runtime(config, clock=clock, role=Role.WORKER) as first,
        open_runtime(config, clock=clock, role=Role.WORKER) as second,
    ):
        yield first, second


async def _count(db: Database, model: type[object], *where: object) -> int:
    async with db.sessions() as session:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(await session.scalar(query) or 0)


async def test_a_cron_playbook_fire_is_taken_once(
    workers: tuple[Runtime, Runtime], postgres_db: Database
) -> None:
    first, second = workers
    assert first.scheduler is not None and second.scheduler is not None
    results = await asyncio.gather(
        first.scheduler.fire("daily_hello"), second.scheduler.fire("daily_hello")
    )
    [enrolled] = [r for r in results if r is not None]  # one took it, the other found it taken
    assert results.count(None) == 1 and enrolled >= 6
    assert await _count(postgres_db, CronFire) == 1
    assert await _count(postgres_db, Enrollment) == enrolled


async def test_a_cron_campaign_fire_starts_one_run(
    workers: tuple[Runtime, Runtime], postgres_db: Database
) -> None:
    first, second = workers
    assert first.scheduler is not None and second.scheduler is not None
    results = await asyncio.gather(
        first.scheduler.fire_current("weekly_vip"), second.scheduler.fire_current("weekly_vip")
    )
    assert sum(r is not None for r in results) == 1
    assert await _count(postgres_db, CampaignRun) == 1


async def test_the_daily_digest_goes_once_and_each_task_is_reminded_once(
    workers: tuple[Runtime, Runtime], postgres_db: Database, clock: ManualClock
) -> None:
    first, second = workers
    assert first.tasks is not None and second.tasks is not None
    now = clock.now()
    async with postgres_db.sessions.begin() as session:
        for n, staff in enumerate(("zhangsan", "lisi", "zhangsan")):
            session.add(
                Task(
                    key=f"test:{n}",
                    staff_userid=staff,
                    origin="test",
                    title=f"回访 {n}",
                    script="你好",
                    due_at=now - timedelta(hours=1),
                    state=TaskState.OPEN,
                    history=[],
                    created_at=now,
                    updated_at=now,
                )
            )
    await asyncio.gather(first.tasks.daily.run(), second.tasks.daily.run())
    await asyncio.gather(first.tasks.followups.run_once(), second.tasks.followups.run_once())
    async with postgres_db.sessions() as session:
        keys = (await session.scalars(select(OutboxRow.idempotency_key))).all()
        reminded = (await session.scalars(select(Task.reminded_at))).all()
    digests = Counter(k.rsplit(":", 1)[0] for k in keys if k.startswith("tasks:digest:"))
    assert digests == {"tasks:digest:zhangsan": 1, "tasks:digest:lisi": 1}
    assert all(at is not None for at in reminded)
    reminders = [k for k in keys if k.startswith("tasks:remind:")]
    assert 2 <= len(reminders) <= 3  # each task in one reminder; a member's may split in two


async def test_the_mass_result_collector_polls_each_job_once(
    workers: tuple[Runtime, Runtime],
    postgres_db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
) -> None:
    first, second = workers
    for n, staff in enumerate(("zhangsan", "lisi")):
        payload = messages.mass_to_customers(
            sender=staff, external_userids=[f"wm{n:03d}"], content="周末特惠"
        )
        await put(postgres_db, clock, f"mass:{n}", payload, channel=MASS, recipient=staff)
    assert first.sender is not None
    await first.sender.drain()
    assert len(await jobs(postgres_db)) == 2
    clock.advance(FIRST_POLL + timedelta(minutes=1))
    assert first.mass_results is not None and second.mass_results is not None
    reports = await asyncio.gather(first.mass_results.run_once(), second.mass_results.run_once())
    assert sum(r.polled for r in reports) == 2
    polled = Counter(c.json["msgid"] for c in fake_wecom.calls_to(TASK_API))
    assert sorted(polled.values()) == [1, 1]


async def test_the_transfer_poller_submits_each_customer_once(
    workers: tuple[Runtime, Runtime],
    postgres_db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
) -> None:
    first, second = workers
    async with postgres_db.sessions.begin() as session:
        plan = await plan_transfer(session, "zhangsan", "lisi", groups=False)
        await record_transfer(
            session, plan, key="ops:1", actor="ops", message="李四接替我", now=clock.now()
        )
    assert first.transfers is not None and second.transfers is not None
    reports = await asyncio.gather(first.transfers.run_once(), second.transfers.run_once())
    assert sum(r.jobs for r in reports) == 1
    submitted = [u for c in fake_wecom.calls_to(TRANSFER_API) for u in c.json["external_userid"]]
    assert sorted(submitted) == sorted(set(submitted)) and len(submitted) >= 3
