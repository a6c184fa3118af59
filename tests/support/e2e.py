"""The whole toolkit in one test, on a manual clock: the end-to-end harness.

:func:`running_world` opens the real runtime (:func:`bot.server.open_runtime`) on the test's
database with the repository's example playbooks and template library, the fake WeCom API and
the fake Official Account API, and mounts the real callback routes behind an aiohttp test
server. Callbacks go in signed and encrypted, over HTTP, exactly as the platforms send them.

Nothing runs by itself: the server's background loops (processor, refresher, engine, sender,
mass-result collector, APScheduler) are not started. :meth:`World.settle` runs each of them
by hand until nothing is left to do *now*, and :meth:`World.advance` moves the manual clock
from one due moment to the next (an outbox row, an agenda row, a detail refresh, a mass-result
poll, a schedule playbook's fire time) up to the target, settling at each. So a test reads
like a calendar: "added at 17:00, the card at 10:00 next morning, three days of silence".
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.callback import samples
from bot.callback.card_samples import template_card_event_xml
from bot.callback.routes import add_callback_routes
from bot.callback.samples import SignedRequest
from bot.config import AiBot, Config, DeliveryConfig, MpAccount, WecomApp, WecomConfig
from bot.server import Runtime, open_runtime
from sop.engine.scheduler import trigger_of
from sop.settings import SopSettings
from store.models import (
    AgendaItem,
    AgendaState,
    Base,
    Customer,
    MassJob,
    OutboxRow,
    OutboxState,
    RefreshRequest,
    Task,
    TaskState,
)
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_mp import FakeMp, running_fake_mp
from tests.support.fake_wecom import FakeWecom, running_fake_wecom
from tests.support.fake_wecom.outbound import Delivery

REPO = Path(__file__).resolve().parents[2]
ZONE = "Asia/Shanghai"
STAFF = "zhangsan"
APP = WecomApp(
    name="sales",
    agent_id=1000002,
    secret="fake-secret",
    token="salestoken",
    encoding_aes_key="lKFLyDzaYwAGnAA7TwWX2Otherm4EFyh0oNSEPPTGH4",
)
BOT = AiBot(
    name="helper", token="bottoken", encoding_aes_key="qeokIuoxwG6q8xzu/pPvEAwbOmCucA5emtBx7XFEQvA"
)
#: The account keyword_reply.yaml answers on (``account: news``), with the fake's credentials.
MP = MpAccount(name="news", app_id="wx0000fakemp00001", secret="fake-mp-secret", token="mptoken")
#: Rounds of :meth:`World.settle` before it gives up: a loop that never settles is a bug.
MAX_ROUNDS = 200
#: Due moments :meth:`World.advance` may visit in one call before it calls the run a runaway.
MAX_STEPS = 5000

T = TypeVar("T", bound=Base)
Client = TestClient[web.Request, web.Application]


def e2e_config(database_url: str, wecom: FakeWecom, mp: FakeMp) -> Config:
    """The configuration a deployment of the examples would have, pointed at the fakes."""
    return Config(
        database_url=database_url,
        timezone=ZONE,
        wecom=WecomConfig(
            corp_id=wecom.corp_id, api_base_url=wecom.base_url, apps=(APP,), aibots=(BOT,)
        ),
        mp=(MP,),
        mp_api_base_url=mp.base_url,
        sop=SopSettings(playbooks=[str(REPO / "playbooks")], templates=str(REPO / "templates")),
        delivery=DeliveryConfig(),
    )


@dataclass
class World:
    """One running toolkit, the fakes it talks to, and the clock they all share."""

    runtime: Runtime
    client: Client
    wecom: FakeWecom
    mp: FakeMp
    clock: ManualClock
    fired: list[tuple[str, datetime, int | None]] = field(default_factory=list)
    _nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _msg_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _cron_from: dict[str, datetime] = field(default_factory=dict)

    # --- callbacks in ------------------------------------------------------------------------

    async def post(self, request: SignedRequest) -> tuple[int, str]:
        """Send one callback to the real app; (HTTP status, body)."""
        response = await self.client.request(
            request.method,
            request.path,
            params=request.query,
            data=request.body,
            headers=request.headers,
        )
        return response.status, await response.text()

    async def _accepted(self, request: SignedRequest) -> None:
        status, body = await self.post(request)
        assert status == 200, f"{request.path} answered {status}: {body}"

    def _stamp(self) -> tuple[int, str]:
        return int(self.clock.now().timestamp()), f"e2e{next(self._nonces)}"

    async def customer_adds(
        self, external_userid: str, *, staff: str = STAFF, state: str = "", name: str = "客户"
    ) -> str:
        """The customer adds ``staff`` (through the channel code ``state``): the fake corp
        learns the relationship and issues a WelcomeCode, and WeCom's add callback comes in.
        Returns the WelcomeCode."""
        if external_userid not in self.wecom.customers:
            self.wecom.add_customer(external_userid, name)
        self.wecom.add_follow(external_userid, staff, state=state or None)
        code = self.wecom.add_welcome_code(external_userid, staff)
        at, nonce = self._stamp()
        plaintext = samples.customer_added_xml(
            corp_id=self.wecom.corp_id,
            user_id=staff,
            external_user_id=external_userid,
            state=state,
            welcome_code=code,
            create_time=at,
        )
        await self._accepted(
            samples.sign_wecom(APP, self.wecom.corp_id, plaintext, timestamp=at, nonce=nonce)
        )
        return code

    async def joins_group(self, chat_id: str, *members: str) -> None:
        """Customers join the group ``chat_id`` (the fake corp first, then the callback)."""
        for member in members:
            self.wecom.add_group_member(chat_id, member, join_scene=3)
        at, nonce = self._stamp()
        plaintext = samples.group_join_xml(
            corp_id=self.wecom.corp_id, chat_id=chat_id, member_ids=members, create_time=at
        )
        await self._accepted(
            samples.sign_wecom(APP, self.wecom.corp_id, plaintext, timestamp=at, nonce=nonce)
        )

    async def says_to_bot(self, user_id: str, text: str, *, chat_id: str | None = None) -> None:
        """``user_id`` writes to the AI bot: an @-mention in ``chat_id``, else a direct chat."""
        at, nonce = self._stamp()
        plaintext = samples.aibot_text_json(
            msg_id=f"bot{next(self._msg_ids)}",
            aibot_id=BOT.name,
            user_id=user_id,
            content=text,
            chat_id=chat_id,
        )
        await self._accepted(samples.sign_aibot(BOT, plaintext, timestamp=at, nonce=nonce))

    async def follows_mp(self, openid: str) -> None:
        """A WeChat user follows the Official Account (the platform's ``subscribe`` event)."""
        self.mp.follow(openid)
        at, nonce = self._stamp()
        plaintext = (
            f"<xml><ToUserName><![CDATA[gh_{MP.name}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
        )
        await self._accepted(
            samples.sign_mp(MP, plaintext, timestamp=at, nonce=nonce, openid=openid)
        )

    async def says_on_mp(self, openid: str, text: str) -> None:
        """A follower writes to the Official Account: the platform opens its 48-hour window
        (the fake MP's side) and pushes the message (ours)."""
        self.mp.receive(openid)
        at, nonce = self._stamp()
        plaintext = samples.mp_text_xml(
            account_id=f"gh_{MP.name}",
            openid=openid,
            content=text,
            msg_id=at * 1000 + next(self._msg_ids),
            create_time=at,
        )
        await self._accepted(
            samples.sign_mp(MP, plaintext, timestamp=at, nonce=nonce, openid=openid)
        )

    async def press(self, card: dict[str, Any], key: str, *, staff: str = STAFF) -> str:
        """``staff`` presses ``key`` on ``card`` they received: the platform's signed,
        encrypted ``template_card_event``; the response code the press got."""
        [sent] = [
            d
            for d in self.deliveries("message/send", staff)
            if d.body.get("template_card") == card
        ]
        code = self.wecom.outbound.press(sent.msgid)
        at = int(self.clock.now().timestamp())
        plaintext = template_card_event_xml(
            corp_id=self.wecom.corp_id,
            user_id=staff,
            agent_id=APP.agent_id or 0,
            task_id=str(card["task_id"]),
            event_key=key,
            response_code=code,
            create_time=at,
        )
        await self._accepted(
            samples.sign_wecom(APP, self.wecom.corp_id, plaintext, timestamp=at, nonce=f"p{at}")
        )
        await self.settle()
        return code

    # --- time ---------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Run processor, refresher, engine, sender and mass-result collector until none of
        them finds anything due at the clock's present moment."""
        runtime = self.runtime
        for _ in range(MAX_ROUNDS):
            moved = 0
            while taken := await runtime.processor.run_once():
                moved += taken
            if runtime.refresher is not None:
                while taken := await runtime.refresher.run_once():
                    moved += taken
            if runtime.sop_engine is not None:
                moved += await runtime.sop_engine.run_once()
            if runtime.sender is not None:
                moved += (await runtime.sender.drain()).claimed
            if runtime.mass_results is not None:
                moved += (await runtime.mass_results.run_once()).polled
            if runtime.tasks is not None:
                moved += (await runtime.tasks.followups.run_once()).total
            if not moved:
                return
        raise AssertionError(f"the runtime did not settle in {MAX_ROUNDS} rounds at {self.now}")

    async def advance(self, *, to: datetime | None = None, by: timedelta | None = None) -> None:
        """Move the clock to ``to`` (or ``by`` further), visiting every due moment on the way
        in order and running what falls due there, schedule fires included."""
        if (to is None) == (by is None):
            raise TypeError("advance(to=...) or advance(by=...), exactly one")
        target = to if to is not None else self.clock.now() + (by or timedelta())
        if target < self.clock.now():
            raise ValueError(f"the clock runs forward only: {target} is before {self.now}")
        await self.settle()
        for _ in range(MAX_STEPS):
            moment = await self._next_moment()
            if moment is None or moment > target:
                break
            self.clock.set(max(moment, self.clock.now()))
            await self._fire_due()
            await self.settle()
        else:
            raise AssertionError(f"more than {MAX_STEPS} due moments before {target}")
        self.clock.set(target)
        await self._fire_due()
        await self.settle()

    async def fire(self, playbook: str) -> int | None:
        """The scheduler's job for ``playbook`` runs now, as APScheduler would call it."""
        scheduler = self.runtime.scheduler
        assert scheduler is not None
        enrolled = await scheduler.fire(playbook)
        self.fired.append((playbook, self.clock.now(), enrolled))
        return enrolled

    async def _fire_due(self) -> None:
        now = self.clock.now()
        for name, at in self._fires():
            if at <= now:
                self._cron_from[name] = at + timedelta(seconds=1)
                await self.fire(name)

    def _fires(self) -> list[tuple[str, datetime]]:
        """The next fire time of each schedule playbook, from where the last one left off."""
        found = []
        for entry in self.runtime.catalog.active():
            if entry.playbook.trigger.schedule is None:
                continue
            start = self._cron_from.setdefault(entry.name, self.clock.now())
            trigger = trigger_of(entry.playbook, ZONE)
            at: datetime | None = trigger.get_next_fire_time(None, start)
            if at is not None:
                found.append((entry.name, at))
        return found

    async def _next_moment(self) -> datetime | None:
        now = self.clock.now()
        async with self.runtime.sessions() as session:
            candidates: list[datetime | None] = [
                await session.scalar(
                    select(func.min(OutboxRow.due_at)).where(
                        OutboxRow.state == OutboxState.PENDING
                    )
                ),
                await session.scalar(
                    select(func.min(AgendaItem.due_at)).where(
                        AgendaItem.state == AgendaState.PENDING
                    )
                ),
                await session.scalar(
                    select(func.min(MassJob.next_poll_at)).where(MassJob.finished_at.is_(None))
                ),
            ]
            refreshes = (
                await session.execute(select(RefreshRequest.due_at, RefreshRequest.claimed_until))
            ).all()
        candidates += [max(due, until or due) for due, until in refreshes]
        candidates += [at for _, at in self._fires()]
        candidates += await self._task_moments()
        later = [c for c in candidates if c is not None and c > now]
        return min(later, default=None)

    async def _task_moments(self) -> list[datetime | None]:
        """When the task follow-ups have something to do: a reminder, an escalation, the end
        of a snooze (quiet hours may hold them further; the follow-ups decide)."""
        tasks = self.runtime.tasks
        if tasks is None:
            return []
        settings = tasks.settings
        async with self.runtime.sessions() as session:
            rows = (
                await session.execute(
                    select(Task.due_at, Task.escalate_at, Task.snoozed_until).where(
                        Task.state.in_([TaskState.OPEN, TaskState.SNOOZED])
                    )
                )
            ).all()
        moments: list[datetime | None] = []
        for due, escalate, snoozed in rows:
            moments += [due + settings.remind_after, escalate, snoozed]
            moments.append(escalate or due + settings.escalation.after)
        return moments

    # --- what came out ----------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def deliveries(self, api: str, to: str | None = None) -> list[Delivery]:
        """What the fake WeCom delivered through ``api`` (to ``to``), dropped ones left out."""
        return [
            d
            for d in self.wecom.outbound.deliveries
            if d.api == api and not d.dropped and (to is None or d.to == to)
        ]

    def cards_to(self, staff: str) -> list[dict[str, Any]]:
        """The template cards staff member ``staff`` received."""
        return [
            d.body["template_card"]
            for d in self.deliveries("message/send", staff)
            if d.msgtype == "template_card"
        ]

    async def rows(self, model: type[T], *where: Any, **filters: Any) -> Sequence[T]:
        """Rows of ``model`` in id order, filtered."""
        async with self.runtime.sessions() as session:
            statement = select(model).filter_by(**filters).where(*where)
            return (await session.scalars(statement.order_by(model.id))).all()  # type: ignore[attr-defined]

    async def customer(self, external_userid: str) -> Customer:
        return await self.one(Customer, external_userid=external_userid)

    async def set_fields(self, external_userid: str, **fields: Any) -> None:
        """Custom fields, as an operator's import sets them: no platform callback carries
        them (WeCom has no API for a corp's own customer fields)."""
        async with self.runtime.sessions.begin() as session:
            customer = await session.scalar(
                select(Customer).where(Customer.external_userid == external_userid)
            )
            assert customer is not None, f"no customer {external_userid}"
            customer.custom_fields = {**(customer.custom_fields or {}), **fields}

    async def one(self, model: type[T], *where: Any, **filters: Any) -> T:
        found = await self.rows(model, *where, **filters)
        assert len(found) == 1, f"{len(found)} {model.__name__} rows match {filters or where}"
        return found[0]


def seed_corp(wecom: FakeWecom) -> None:
    """The corp the examples run in: a sales rep whose department leader is a manager."""
    wecom.add_staff("lisi", "李四", department=[1], position="销售总监")
    wecom.add_staff(STAFF, "张三", department=[1], position="客户经理")


@asynccontextmanager
async def running_world(db: Database, clock: ManualClock) -> AsyncIterator[World]:
    """The toolkit on ``db`` (both backends) with the example playbooks, behind real HTTP."""
    async with (
        running_fake_wecom(clock=clock) as wecom,
        running_fake_mp(clock=clock) as mp,
    ):
        seed_corp(wecom)
        config = e2e_config(db.url, wecom, mp)
        async with open_runtime(config, clock=clock) as runtime:
            # The real routes, without build_app's background loops: the test drives time.
            app = web.Application(client_max_size=config.server.max_body_bytes)
            add_callback_routes(app, config, runtime.writer)
            await runtime.writer.start()
            try:
                async with TestClient(TestServer(app)) as client:
                    yield World(runtime, client, wecom, mp, clock)
            finally:
                await runtime.writer.stop()
