"""The demo: the real server on a fresh SQLite file, the fake WeCom API, a scripted journey.

Everything is real except the platform: callbacks are signed and encrypted with the configured
keys and go through HTTP; customer and group details are fetched over HTTP from the fake WeCom
API (the one the tests use), seeded here with the journey's staff, customer, tags and group.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from bot.config import Config
from bot.console.simulate import send_journey
from bot.console.views import customers_table, load_customer_rows, load_timeline, timeline_table
from bot.journey import DEMO_CHANNEL_STATE, DEMO_CUSTOMER, DEMO_GROUP, DEMO_STAFF, journey
from bot.server import Runtime, api_app, build_app, open_runtime
from store.models import CustomerGroup, GroupMember, InboxRow, InboxState, RefreshRequest
from tests.support.fake_wecom import FakeWecom, running_fake_wecom

DEMO_DATABASE = Path("var/demo.db")
SETTLE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class DemoResult:
    accepted: int
    refused: int
    inbox: dict[str, int]


def remove_database_files(path: Path) -> None:
    """A fresh demo every run: drop the SQLite file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def seed(fake: FakeWecom) -> None:
    """The corp as the platform would know it: one staff member, a tagged customer, a group."""
    fake.add_staff(DEMO_STAFF, "张三", position="客户经理")
    fake.add_tag_group("客户等级", ["VIP", "新客"])
    fake.add_customer(DEMO_CUSTOMER, "李女士", gender=2, corp_name="春风花店")
    fake.add_follow(
        DEMO_CUSTOMER,
        DEMO_STAFF,
        remark="李女士-花店",
        tags=[fake.tag_named("新客").id],
        state=DEMO_CHANNEL_STATE,
    )
    fake.add_group(DEMO_GROUP, "春季花艺交流群", owner=DEMO_STAFF, members=[DEMO_STAFF])
    fake.add_group_member(DEMO_GROUP, DEMO_CUSTOMER)


def demo_config(config: Config, fake: FakeWecom) -> Config:
    wecom = config.wecom.model_copy(update={"api_base_url": fake.base_url})
    return config.model_copy(update={"database_url": f"sqlite:///{DEMO_DATABASE}", "wecom": wecom})


async def settle(runtime: Runtime, within_s: float = SETTLE_TIMEOUT_S) -> dict[str, int]:
    """Wait until the inbox has no pending rows and no refresh is due; the inbox counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        async with runtime.sessions() as session:
            counts = dict(
                (str(s), n)
                for s, n in (
                    await session.execute(
                        select(InboxRow.state, func.count()).group_by(InboxRow.state)
                    )
                ).all()
            )
            refreshes = await session.scalar(select(func.count()).select_from(RefreshRequest))
        if not counts.get(str(InboxState.PENDING)) and not refreshes:
            return counts
        if loop.time() > deadline:
            return counts
        await asyncio.sleep(0.05)


async def group_table(runtime: Runtime) -> Table:
    table = Table("chat_id", "name", "owner", "members", title="Customer groups")
    async with runtime.sessions() as session:
        for group in (await session.scalars(select(CustomerGroup))).all():
            members = (
                await session.scalars(
                    select(GroupMember.member_userid).where(
                        GroupMember.group_id == group.id, GroupMember.left_at.is_(None)
                    )
                )
            ).all()
            table.add_row(
                group.chat_id, group.name or "", group.owner_userid or "", ", ".join(members)
            )
    return table


async def run_demo(config: Config, console: Console) -> DemoResult:
    app_config = api_app(config)
    if app_config is None:
        raise ValueError("the demo needs a wecom app with a secret in the configuration")
    remove_database_files(DEMO_DATABASE)
    async with running_fake_wecom(corp_id=config.wecom.corp_id, secret=app_config.secret) as fake:
        seed(fake)
        config = demo_config(config, fake)
        async with open_runtime(config) as runtime:
            runner = web.AppRunner(build_app(runtime))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            console.rule("[bold]scrm demo[/]: callback server on " + base)
            steps = journey(config, runtime.clock.now())
            # The platform retries a callback it did not see answered: send the first one again.
            results = await send_journey(base, [*steps, steps[0], steps[0]])
            for label, status, _body in results:
                console.print(f"  [green]{status}[/] {label}")
            console.print(f"  (the first callback was sent {3} times: platform retries)")
            inbox = await settle(runtime)
            console.rule("What was captured")
            console.print(f"inbox: {inbox}")
            console.print(customers_table(await load_customer_rows(runtime.sessions, 20)))
            found = await load_timeline(runtime.sessions, DEMO_CUSTOMER, 50)
            if found is not None:
                console.print(timeline_table(*found))
            console.print(await group_table(runtime))
            api_calls = [f"{c.method} {c.path}" for c in fake.calls]
            console.print(f"WeCom API calls made to the fake server: {len(api_calls)}")
            for call in sorted(set(api_calls)):
                console.print(f"  {api_calls.count(call)} x {call}")
            await runner.cleanup()
    refused = sum(1 for _label, status, _body in results if status != 200)
    return DemoResult(len(results) - refused, refused, inbox)
