"""The composition root: one process that accepts callbacks, processes the inbox, refreshes
details from the WeCom API and delivers the outbox.

Read top to bottom: open the database (SQLite is migrated here; PostgreSQL must already be),
start the inbox writer, mount the callback routes, then run the processor, the refresher and the
sender as background tasks that stop cleanly with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.callback.inbox_writer import InboxWriter
from bot.callback.routes import add_callback_routes
from bot.campaign_reload import CampaignReloader
from bot.channels.app_message import AppMessageChannel
from bot.channels.card_update import CardUpdateChannel
from bot.channels.leaders import WecomLeaders
from bot.channels.mass_message import MassMessageChannel
from bot.channels.mass_results import MassResultCollector
from bot.channels.mp_message import MpMessageChannel
from bot.channels.tags import TagChannel
from bot.channels.welcome import WelcomeChannel
from bot.config import Config, WecomApp
from bot.playbook_reload import PlaybookReloader
from bot.processing.handlers.registry import build_router
from bot.processing.processor import InboxProcessor
from bot.processing.refresher import Refresher
from bot.transfers.poller import PollerSettings, TransferPoller
from bot.wechat_mp.client import MpClient
from bot.wecom.client import WecomClient
from sop.campaigns.cron import CampaignStarter, schedule_campaigns
from sop.clock import Clock, SystemClock
from sop.delivery.channel import Channel
from sop.delivery.sender import Sender
from sop.engine.catalog import Catalog, register
from sop.engine.fanout import FanOut
from sop.engine.runner import Engine
from sop.engine.scheduler import EngineScheduler
from sop.engine.subscribe import subscribe_engine
from sop.events import EventBus
from sop.playbooks.loader import load_playbooks
from sop.rendering import Renderer
from sop.staff.departure import subscribe_departures
from sop.tasks.service import TaskSystem, wire_tasks
from store.db import create_engine, is_sqlite, session_factory
from store.lane_leases import lane_source
from store.migrate import current_revision, head_revision, upgrade
from store.models import InboxRow
from store.models.inbox import LANES

log = logging.getLogger(__name__)

#: Playbook files must exist; a configured folder may be absent (no playbooks yet).
PLAYBOOK_SUFFIXES = (".yaml", ".yml")


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


@dataclass
class Runtime:
    """Everything one server process owns, built once and torn down in reverse order."""

    config: Config
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    writer: InboxWriter
    processor: InboxProcessor
    refresher: Refresher | None
    sender: Sender | None
    http: aiohttp.ClientSession
    inbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    refresh_wake: asyncio.Event = field(default_factory=asyncio.Event)
    send_wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    mass_results: MassResultCollector | None = None
    catalog: Catalog = field(default_factory=Catalog)
    sop_engine: Engine | None = None
    scheduler: EngineScheduler | None = None
    engine_wake: asyncio.Event = field(default_factory=asyncio.Event)
    reloader: PlaybookReloader | None = None
    campaign_reloader: CampaignReloader | None = None
    transfers: TransferPoller | None = None
    tasks: TaskSystem | None = None


RUNTIME = web.AppKey("runtime", Runtime)


async def prepare_database(engine: AsyncEngine, url: str) -> None:
    """Upgrade an embedded SQLite database; refuse a PostgreSQL one that is behind."""
    if is_sqlite(url):
        await upgrade(engine)
        return
    revision, head = await current_revision(engine), head_revision()
    if revision != head:
        raise StartupError(
            f"the database is at revision {revision or 'none'}, the code needs {head}: "
            "run `scrm db upgrade` (once, before starting the servers)"
        )


def api_app(config: Config) -> WecomApp | None:
    """The app whose secret is used to read customers, groups, staff and tags."""
    return next((app for app in config.wecom.apps if app.secret), None)


def mp_channels(
    config: Config,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    http: aiohttp.ClientSession,
) -> list[Channel]:
    """One customer-service message channel per Official Account that has a secret."""
    return [
        MpMessageChannel(
            MpClient(
                app_id=account.app_id,
                secret=account.secret,
                sessions=sessions,
                clock=clock,
                http=http,
                base_url=config.mp_api_base_url,
            ),
            account.name,
            sessions,
            clock,
        )
        for account in config.mp
        if account.secret
    ]


async def load_catalog(
    config: Config, sessions: async_sessionmaker[AsyncSession], clock: Clock, renderer: Renderer
) -> Catalog:
    """Load and register the configured playbooks; StartupError lists every error."""
    paths = []
    for path in config.sop.playbooks:
        if Path(path).exists() or Path(path).suffix in PLAYBOOK_SUFFIXES:  # noqa: ASYNC240
            paths.append(path)
        else:
            log.warning("no playbook folder %s: no playbooks from there", path)
    loaded = load_playbooks(paths, renderer=renderer)
    if loaded.errors:
        listing = "\n".join(f"  {error}" for error in loaded.errors)
        raise StartupError(f"invalid playbooks, fix them and start again:\n{listing}")
    sources = {name: str(path) for name, path in loaded.sources.items()}
    async with sessions.begin() as session:
        return await register(session, loaded.playbooks, now=clock.now(), sources=sources)


def engine_parts(  # noqa: PLR0913, PLR0917 - the composition root's wiring
    config: Config,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    bus: EventBus,
    renderer: Renderer,
    catalog: Callable[[], Catalog],
    *,
    engine_wake: asyncio.Event,
    send_wake: asyncio.Event,
) -> tuple[Engine, EngineScheduler, CampaignReloader]:
    """The engine (subscribed to the bus, waking the sender after steps that queue messages),
    the scheduler that ticks it and fires schedule playbooks and cron campaigns, and the
    reloader that keeps those campaigns in step with their files; ``catalog`` is read anew on
    every use, so a hot reload takes effect at once."""
    sop_engine = Engine(sessions, catalog, renderer, clock, config.sop, config.timezone)
    sop_engine.on_executed = send_wake.set
    subscribe_engine(bus, catalog, settings=config.sop, clock=clock, zone_default=config.timezone)
    fanout = FanOut(sessions, catalog, config.sop, config.timezone, clock.now)
    scheduler = EngineScheduler(fanout, clock, wake=engine_wake, zone_default=config.timezone)
    schedule_campaigns(scheduler, sessions, renderer, config.sop, clock, config.timezone)
    campaigns = CampaignReloader(
        starter=CampaignStarter(sessions, renderer, config.sop, clock, config.timezone),
        scheduler=scheduler,
    )
    return sop_engine, scheduler, campaigns


def inbox_processor(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    bus: EventBus,
    clock: Clock,
    *,
    wakes: tuple[asyncio.Event, ...],
) -> InboxProcessor:
    """The processor of the lanes this process owns; after a batch it sets ``wakes``: a batch
    may have queued refreshes, outbox rows (welcome codes live 20 s) and enrollments whose
    first step is due now."""

    def after_batch() -> None:
        for wake in wakes:
            wake.set()

    return InboxProcessor(
        sessions,
        build_router(),
        bus,
        clock,
        after_batch=after_batch,
        lanes=lane_source(engine, LANES),
    )


@contextlib.asynccontextmanager
async def open_runtime(
    config: Config, *, clock: Clock | None = None, bus: EventBus | None = None
) -> AsyncIterator[Runtime]:
    clock = clock or SystemClock()
    engine = create_engine(config.database_url)
    http = aiohttp.ClientSession()
    processor: InboxProcessor | None = None
    try:
        await prepare_database(engine, config.database_url)
        sessions = session_factory(engine)
        bus = bus or EventBus()
        inbox_wake, refresh_wake = asyncio.Event(), asyncio.Event()
        writer = InboxWriter(sessions, clock, on_new_rows=inbox_wake.set)
        send_wake, engine_wake = asyncio.Event(), asyncio.Event()

        processor = inbox_processor(
            engine, sessions, bus, clock, wakes=(refresh_wake, send_wake, engine_wake)
        )
        refresher = mass_results = leaders = None
        transfers: TransferPoller | None = None
        channels: list[Channel] = mp_channels(config, sessions, clock, http)
        app = api_app(config)
        if app is None:
            log.warning("no wecom app has a secret: customer and group details are not fetched")
        else:
            client = WecomClient(
                base_url=config.wecom.api_base_url,
                corp_id=config.wecom.corp_id,
                secret=app.secret,
                credential=f"wecom:{config.wecom.corp_id}:{app.name}",
                sessions=sessions,
                clock=clock,
                http=http,
            )
            refresher = Refresher(sessions, client, bus, clock)
            channels.append(WelcomeChannel(client, clock))
            channels.append(TagChannel(client, clock, default_group=config.delivery.tag_group))
            channels.append(MassMessageChannel(client, sessions, clock))
            mass_results = MassResultCollector(sessions, client, clock)
            transfers = TransferPoller(
                sessions, client, clock, PollerSettings.from_staff(config.staff)
            )
            leaders = WecomLeaders(client)
            if app.agent_id is not None:
                channels.append(AppMessageChannel(client, app.agent_id))
                channels.append(CardUpdateChannel(client, app.agent_id))
        settings = config.delivery.sender_settings()
        sender = Sender(sessions, channels, clock, settings) if channels else None
        renderer = Renderer(config.sop.templates)
        catalog = await load_catalog(config, sessions, clock, renderer)
        sop_engine, scheduler, campaign_reloader = engine_parts(
            config,
            sessions,
            clock,
            bus,
            renderer,
            lambda: runtime.catalog,
            engine_wake=engine_wake,
            send_wake=send_wake,
        )

        def reloaded(catalog: Catalog) -> None:
            runtime.catalog = catalog
            scheduler.sync_playbook_jobs()

        reloader = PlaybookReloader(
            playbooks=config.sop.playbooks,
            templates=config.sop.templates,
            sessions=sessions,
            clock=clock,
            on_reloaded=reloaded,
        )
        tasks = wire_tasks(
            sessions,
            config.sop.tasks,
            clock,
            config.timezone,
            leaders,
            bus=bus,
            scheduler=scheduler,
        )
        subscribe_departures(bus, config.staff, clock)
        runtime = Runtime(
            config,
            clock,
            engine,
            sessions,
            bus,
            writer,
            processor,
            refresher,
            sender,
            http,
            inbox_wake,
            refresh_wake,
            send_wake,
            mass_results=mass_results,
            catalog=catalog,
            sop_engine=sop_engine,
            scheduler=scheduler,
            engine_wake=engine_wake,
            reloader=reloader,
            campaign_reloader=campaign_reloader,
            transfers=transfers,
            tasks=tasks,
        )
        yield runtime
    finally:
        if processor is not None:
            await processor.lanes.close()
        await http.close()
        await engine.dispose()


async def health(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    async with runtime.sessions() as session:
        counts = await session.execute(
            select(InboxRow.state, func.count()).group_by(InboxRow.state)
        )
        inbox = {str(state): n for state, n in counts.all()}
    return web.json_response({"status": "ok", "inbox": inbox})


async def _resume(scheduler: EngineScheduler) -> None:
    await scheduler.resume()


def _background(
    runtime: Runtime,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await runtime.writer.start()
        loops: list[Awaitable[None]] = [
            runtime.processor.run_forever(runtime.inbox_wake, runtime.stopping)
        ]
        if runtime.refresher is not None:
            loops.append(runtime.refresher.run_forever(runtime.refresh_wake, runtime.stopping))
        if runtime.sender is not None:
            loops.append(runtime.sender.run_forever(runtime.send_wake, runtime.stopping))
        if runtime.sop_engine is not None:
            loops.append(runtime.sop_engine.run_forever(runtime.engine_wake, runtime.stopping))
        if runtime.scheduler is not None:
            runtime.scheduler.start(runtime.config.sop.tick_seconds)
            loops.append(_resume(runtime.scheduler))
        if runtime.reloader is not None:
            loops.append(runtime.reloader.run_forever(runtime.stopping))
        if runtime.campaign_reloader is not None:
            loops.append(runtime.campaign_reloader.run_forever(runtime.stopping))
        if runtime.transfers is not None:
            loops.append(runtime.transfers.run_forever(asyncio.Event(), runtime.stopping))
        if runtime.mass_results is not None:
            loops.append(runtime.mass_results.run_forever(asyncio.Event(), runtime.stopping))
        tasks = [asyncio.ensure_future(loop) for loop in loops]
        try:
            yield
        finally:
            await runtime.writer.stop()
            if runtime.scheduler is not None:
                runtime.scheduler.shutdown()
            runtime.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    return lifecycle


def build_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=runtime.config.server.max_body_bytes)
    app[RUNTIME] = runtime
    add_callback_routes(app, runtime.config, runtime.writer)
    app.router.add_get("/healthz", health)
    app.cleanup_ctx.append(_background(runtime))
    return app


async def serve_forever(
    config: Config, *, host: str | None = None, port: int | None = None
) -> None:
    """Run until SIGINT or SIGTERM, then stop taking callbacks, flush the inbox and exit."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(config) as runtime:
        runner = web.AppRunner(build_app(runtime), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host or config.server.host, port or config.server.port)
        await site.start()
        log.info("listening on %s", site.name)
        try:
            await stop.wait()
            log.info("stopping")
        finally:
            await runner.cleanup()
