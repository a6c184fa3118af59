"""The demo: the real server on a fresh SQLite file, the fake WeCom and Official Account APIs,
the example playbooks, and a scripted customer story with time running fast.

Everything is real except the platforms: callbacks are signed and encrypted with the configured
keys and go through HTTP; the engine enrolls, renders and schedules; the sender calls the fake
APIs (the ones the tests use) over HTTP. The clock runs at real speed between scenes and jumps
to the next scene (a day later, say), so a two-day story takes seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from rich.console import Console
from sqlalchemy import func, select

from bot.config import Config
from bot.demo_script import ACCOUNT, CHANNEL_STATE, CUSTOMER, FOLLOWER, GROUP, STAFF, story
from bot.demo_view import show_results
from bot.server import Runtime, api_app, build_app, open_runtime
from sop.clock import SystemClock
from store.models import (
    AgendaItem,
    AgendaState,
    InboxRow,
    InboxState,
    OutboxRow,
    OutboxState,
    RefreshRequest,
)
from tests.support.fake_mp import FakeMp, running_fake_mp
from tests.support.fake_wecom import FakeWecom, running_fake_wecom

DEMO_DATABASE = Path("var/demo.db")
#: A generous bound: on a loaded machine processing a scene can take seconds.
SETTLE_TIMEOUT_S = 90.0


class FastClock:
    """Real time between scenes, jumps between them: ``now`` is the last jump target plus
    the real seconds since."""

    def __init__(self, start: datetime) -> None:
        self._base, self._mark = start, time.monotonic()

    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._mark)

    def jump_to(self, moment: datetime) -> None:
        if moment > self.now():
            self._base, self._mark = moment, time.monotonic()


@dataclass(frozen=True)
class DemoResult:
    accepted: int
    refused: int
    inbox: dict[str, int]
    problems: list[str]


def remove_database_files(path: Path) -> None:
    """A fresh demo every run: drop the SQLite file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def seed(fake: FakeWecom, mp: FakeMp) -> str:
    """The corp as the platforms know it: the account manager, 李女士 (added through the expo
    channel code), her group, and 王先生 who follows the Official Account."""
    fake.add_staff(STAFF, "张三", position="客户经理")
    fake.add_tag_group("客户等级", ["VIP", "新客"])
    fake.add_customer(CUSTOMER, "李女士", gender=2, corp_name="春风花店")
    fake.add_follow(
        CUSTOMER,
        STAFF,
        remark="李女士-花店",
        tags=[fake.tag_named("新客").id],
        state=CHANNEL_STATE,
    )
    fake.add_group(GROUP, "春季花艺交流群", owner=STAFF, members=[STAFF])
    fake.add_group_member(GROUP, CUSTOMER)
    mp.follow(FOLLOWER)
    return fake.add_welcome_code(CUSTOMER, STAFF)


def demo_config(config: Config, fake: FakeWecom, mp: FakeMp) -> Config:
    wecom = config.wecom.model_copy(update={"api_base_url": fake.base_url})
    # The clock jumps straight to 10:00:00; the :00/:30 avoidance would only add a pause.
    delivery = config.delivery.model_copy(update={"avoid_rush": None})
    return config.model_copy(
        update={
            "database_url": f"sqlite:///{DEMO_DATABASE}",
            "wecom": wecom,
            "mp_api_base_url": mp.base_url,
            "delivery": delivery,
        }
    )


async def settle(runtime: Runtime, within_s: float = SETTLE_TIMEOUT_S) -> dict[str, int]:
    """Wake every loop and wait until nothing is due: inbox processed, details fetched, due
    steps executed, due messages sent. Returns the inbox counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        for wake in (runtime.inbox_wake, runtime.engine_wake, runtime.send_wake):
            wake.set()
        now = runtime.clock.now()
        async with runtime.sessions() as session:
            inbox = {
                str(state): n
                for state, n in (
                    await session.execute(
                        select(InboxRow.state, func.count()).group_by(InboxRow.state)
                    )
                ).all()
            }
            busy = sum(
                [
                    int(
                        await session.scalar(select(func.count()).select_from(RefreshRequest)) or 0
                    ),
                    int(
                        await session.scalar(
                            select(func.count()).where(
                                AgendaItem.state.in_([AgendaState.PENDING, AgendaState.RUNNING]),
                                AgendaItem.due_at <= now,
                            )
                        )
                        or 0
                    ),
                    int(
                        await session.scalar(
                            select(func.count()).where(
                                OutboxRow.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
                                OutboxRow.due_at <= now,
                            )
                        )
                        or 0
                    ),
                ]
            )
        if not inbox.get(str(InboxState.PENDING)) and not busy:
            return inbox
        if loop.time() > deadline:
            raise TimeoutError(
                f"the server did not finish the scene's work within {within_s:.0f} s"
                f" (inbox {inbox}, {busy} refreshes, steps or sends still due)"
            )
        await asyncio.sleep(0.05)


async def run_demo(config: Config, console: Console) -> DemoResult:
    app_config = api_app(config)
    if app_config is None or not config.mp or not config.wecom.aibots:
        raise ValueError(
            "the demo needs a wecom app with a secret, an AI bot and an Official Account in the"
            " configuration (config.yaml has them)"
        )
    remove_database_files(DEMO_DATABASE)
    account = next(a for a in config.mp if a.name == ACCOUNT) if config.mp else None
    # The story starts at 15:00 today, local time: an afternoon add, the next morning's tasks.
    today = SystemClock().now().astimezone(config.zone)
    clock = FastClock(today.replace(hour=15, minute=0, second=0, microsecond=0))
    statuses: list[tuple[str, int]] = []
    async with (
        running_fake_wecom(
            corp_id=config.wecom.corp_id, secret=app_config.secret, clock=clock
        ) as fake,
        running_fake_mp(clock=clock) as mp,
    ):
        if account is not None:
            mp.app_id, mp.secret = account.app_id, account.secret
        welcome_code = seed(fake, mp)
        config = demo_config(config, fake, mp)
        async with open_runtime(config, clock=clock) as runtime:
            runner = web.AppRunner(build_app(runtime))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            base = f"http://{host}:{port}"
            console.rule(f"[bold]scrm demo[/]: the server on {base}, playbooks from playbooks/")
            inbox: dict[str, int] = {}
            async with aiohttp.ClientSession() as http:
                for scene in story(config, clock.now(), welcome_code=welcome_code):
                    clock.jump_to(scene.at)
                    local = scene.at.astimezone(config.zone).strftime("%a %H:%M")
                    if scene.request is None:
                        console.print(f"  [dim]{local}[/] {scene.label}")
                    else:
                        if scene.mp_openid is not None:
                            mp.receive(scene.mp_openid, scene.at)
                        request = scene.request
                        async with http.request(
                            request.method,
                            request.url(base),
                            data=request.body,
                            headers=request.headers,
                        ) as response:
                            statuses.append((scene.label, response.status))
                            console.print(
                                f"  [dim]{local}[/] [green]{response.status}[/] {scene.label}"
                            )
                    inbox = await settle(runtime)
            problems = await show_results(runtime, fake, mp, console)
            await runner.cleanup()
    refused = sum(1 for _label, status in statuses if status != 200)
    return DemoResult(len(statuses) - refused, refused, inbox, problems)
