"""The composition root: one ``scrm serve`` process that accepts callbacks (role ``web``),
does the background work (role ``worker``: processor, refresher, engine and scheduler, sender,
collectors, reloaders), or both (``all``).

Read top to bottom: open the database (SQLite is migrated here; PostgreSQL must already be),
build the parts the role needs, mount the callback routes and the health endpoints, start the
inbox writer and the background loops with the application; when it stops (after the HTTP
side has answered its callbacks), flush the inbox and let the loops finish or give back what
they claimed until ``server.shutdown_seconds`` have passed. The process around it (signals,
port, start-up summary) is :mod:`bot.serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.background import Background, Loop
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
from bot.health import Health, Readiness, add_health_routes
from bot.playbook_reload import PlaybookReloader
from bot.processing.handlers.registry import build_router
from bot.processing.processor import InboxProcessor
from bot.processing.refresher import Refresher
from bot.roles import Role, RoleError, check_role
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
from sop.loop_status import note_failure, note_pass
from sop.playbooks.loader import load_playbooks
from sop.rendering import Renderer
from sop.staff.departure import subscribe_departures
from sop.tasks.service import TaskSystem, wire_tasks
from store.db import create_engine, is_sqlite, session_factory
from store.lane_leases import lane_source
from store.liveness import Liveness
from store.migrate import current_revision, head_revision, upgrade
from store.models.inbox import LANES
from store.notify import INBOX, Listener

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
    role: Role = Role.ALL
    #: What the start-up summary says about what this role leaves to other processes.
    notes: list[str] = field(default_factory=list)
    health: Health | None = None
    background: Background | None = None
    #: Event-loop time by which a graceful stop must be over (set when it begins).
    stop_deadline: float | None = None
    #: This process's heartbeat (roles that do work): the others take back what it claimed
    #: within seconds if it dies.
    liveness: Liveness | None = None

    def begin_stop(self) -> None:
        """Stop taking new work: loops see ``stopping``, ``/readyz`` answers 503."""
        if self.stop_deadline is None:
            loop = asyncio.get_running_loop()
            self.stop_deadline = loop.time() + self.config.server.shutdown_seconds
        self.stopping.set()

    def seconds_left(self) -> float:
        if self.stop_deadline is None:
            return self.config.server.shutdown_seconds
        return max(0.0, self.stop_deadline - asyncio.get_running_loop().time())


RUNTIME = web.AppKey("runtime", Runtime)


async def prepare_database(engine: AsyncEngine, url: str) -> None:
    """Upgrade an embedded SQLite database; refuse a PostgreSQL one that is behind."""
    if is_sqlite(url):
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
        if after != before:
            log.info("SQLite database upgraded from revision %s to %s", before or "none", after)
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
    config: Config,
    *,
    clock: Clock | None = None,
    bus: EventBus | None = None,
    role: Role = Role.ALL,
) -> AsyncIterator[Runtime]:
    """Everything ``role`` needs, on the configured database; a :class:`StartupError` says
    why it cannot start. A ``web`` role loads no playbooks or campaigns and builds no
    background parts (those files need not exist on web machines)."""
    try:
        notes = check_role(role, config)
    except RoleError as exc:
        raise StartupError(str(exc)) from None
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
        runtime = Runtime(
            config,
            clock,
            engine,
            sessions,
            bus,
            writer,
            processor,
            None,
            None,
            http,
            inbox_wake,
            refresh_wake,
            send_wake,
            engine_wake=engine_wake,
            role=role,
            notes=notes,
        )
        runtime.health = Health(role, config.zone, Readiness(engine), runtime.stopping)
        if role.runs_work:
            await _add_work(runtime)
        yield runtime
    finally:
        if processor is not None:
            await processor.lanes.close()
        await http.close()
        await engine.dispose()


async def _add_work(runtime: Runtime) -> None:
    """The background parts: WeCom and Official Account channels, the refresher and
    collectors, the playbooks and the engine, the scheduler, the reloaders and tasks."""
    config, sessions, clock, http = runtime.config, runtime.sessions, runtime.clock, runtime.http
    leaders = None
    channels: list[Channel] = mp_channels(config, sessions, clock, http)
    app = api_app(config)
    if app is None:
        log.warning("no wecom app has a secret: customer and group details are not fetched")
        runtime.notes.append(
            "no wecom app has a secret: no customer details are fetched and nothing is sent"
            " through WeCom (welcomes, staff messages, tags, mass messages)"
        )
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
        runtime.refresher = Refresher(sessions, client, runtime.bus, clock)
        channels.append(WelcomeChannel(client, clock))
        channels.append(TagChannel(client, clock, default_group=config.delivery.tag_group))
        channels.append(MassMessageChannel(client, sessions, clock))
        runtime.mass_results = MassResultCollector(sessions, client, clock)
        runtime.transfers = TransferPoller(
            sessions, client, clock, PollerSettings.from_staff(config.staff)
        )
        leaders = WecomLeaders(client)
        if app.agent_id is not None:
            channels.append(AppMessageChannel(client, app.agent_id))
            channels.append(CardUpdateChannel(client, app.agent_id))
    settings = config.delivery.sender_settings()
    runtime.liveness = Liveness(sessions, clock.now, role=runtime.role.value)
    runtime.sender = (
        Sender(sessions, channels, clock, settings, process=runtime.liveness) if channels else None
    )
    renderer = Renderer(config.sop.templates)
    runtime.catalog = await load_catalog(config, sessions, clock, renderer)
    sop_engine, scheduler, campaign_reloader = engine_parts(
        config,
        sessions,
        clock,
        runtime.bus,
        renderer,
        lambda: runtime.catalog,
        engine_wake=runtime.engine_wake,
        send_wake=runtime.send_wake,
    )

    def reloaded(catalog: Catalog) -> None:
        runtime.catalog = catalog
        scheduler.sync_playbook_jobs()

    runtime.reloader = PlaybookReloader(
        playbooks=config.sop.playbooks,
        templates=config.sop.templates,
        sessions=sessions,
        clock=clock,
        on_reloaded=reloaded,
    )
    runtime.tasks = wire_tasks(
        sessions,
        config.sop.tasks,
        clock,
        config.timezone,
        leaders,
        bus=runtime.bus,
        scheduler=scheduler,
    )
    subscribe_departures(runtime.bus, config.staff, clock)
    runtime.sop_engine, runtime.scheduler = sop_engine, scheduler
    runtime.campaign_reloader = campaign_reloader


def loops_of(runtime: Runtime) -> list[Loop]:
    """The background loops this runtime's role runs, by name (none for ``web``)."""
    if not runtime.role.runs_work:
        return []
    stopping = runtime.stopping
    loops = [
        Loop(
            "processor",
            functools.partial(runtime.processor.run_forever, runtime.inbox_wake, stopping),
        )
    ]
    if (liveness := runtime.liveness) is not None:
        beats = functools.partial(
            liveness.run_forever, stopping, on_beat=note_pass, on_failure=note_failure
        )
        loops.append(Loop("heartbeat", beats))
    if runtime.engine.dialect.name == "postgresql":
        # Callbacks stored by web processes elsewhere wake this processor at once.
        wakeups = Listener(runtime.engine, {INBOX: runtime.inbox_wake.set})
        listen = functools.partial(
            wakeups.run_forever, stopping, on_listening=note_pass, on_failure=note_failure
        )
        loops.append(Loop("wakeups", listen))
    if (refresher := runtime.refresher) is not None:
        loops.append(
            Loop(
                "refresher",
                functools.partial(refresher.run_forever, runtime.refresh_wake, stopping),
            )
        )
    if (engine := runtime.sop_engine) is not None:
        loops.append(
            Loop("engine", functools.partial(engine.run_forever, runtime.engine_wake, stopping))
        )
    if (scheduler := runtime.scheduler) is not None:
        loops.append(Loop("scheduler", functools.partial(_drive_scheduler, scheduler, stopping)))
    if (sender := runtime.sender) is not None:
        loops.append(
            Loop("sender", functools.partial(sender.run_forever, runtime.send_wake, stopping))
        )
    if (collector := runtime.mass_results) is not None:
        loops.append(
            Loop(
                "mass_results", functools.partial(collector.run_forever, asyncio.Event(), stopping)
            )
        )
    if (poller := runtime.transfers) is not None:
        loops.append(
            Loop("transfers", functools.partial(poller.run_forever, asyncio.Event(), stopping))
        )
    if (reloader := runtime.reloader) is not None:
        loops.append(Loop("playbook_reload", functools.partial(reloader.run_forever, stopping)))
    if (campaigns := runtime.campaign_reloader) is not None:
        loops.append(Loop("campaign_reload", functools.partial(campaigns.run_forever, stopping)))
    return loops


async def _drive_scheduler(scheduler: EngineScheduler, stopping: asyncio.Event) -> None:
    """Finish fan-outs a crashed process left, let the (started) scheduler fire until
    ``stopping``, then let its running jobs finish; shut it down however this ends."""
    try:
        try:
            await scheduler.resume()
        except Exception as error:
            note_failure(error)
            log.exception("resuming unfinished fan-outs failed; tried again every 5 minutes")
        await stopping.wait()
        await scheduler.drain()
    finally:
        scheduler.shutdown()


def _background(
    runtime: Runtime,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        background = Background(loops_of(runtime))
        runtime.background = background
        health = runtime.health
        if health is not None:
            health.background = background
        if runtime.role.takes_callbacks:
            await runtime.writer.start()
            if health is not None:
                health.writer = runtime.writer
        if runtime.liveness is not None and runtime.role.runs_work:
            await runtime.liveness.register()
        if runtime.scheduler is not None and "scheduler" in background.statuses:
            status = background.statuses["scheduler"]
            runtime.scheduler.start(runtime.config.sop.tick_seconds, status=status)
        background.start()
        try:
            yield
        finally:
            # The HTTP side has answered its callbacks by now (aiohttp runs this after them).
            runtime.begin_stop()
            if runtime.role.takes_callbacks:
                await runtime.writer.stop()
            cut = await background.wait(runtime.seconds_left())
            if runtime.liveness is not None and not cut:
                await runtime.liveness.leave()  # nothing of ours is claimed any more
            if cut:
                log.warning(
                    "still running after %g s, cut short: %s (what they held is taken up again"
                    " by another worker, or at the next start)",
                    runtime.config.server.shutdown_seconds,
                    ", ".join(cut),
                )

    return lifecycle


def build_app(runtime: Runtime) -> web.Application:
    """The aiohttp application of ``runtime``'s role: callback routes (``web``, ``all``),
    ``/healthz`` and ``/readyz`` (every role), and the background loops (``worker``, ``all``)
    started and stopped with it."""
    app = web.Application(client_max_size=runtime.config.server.max_body_bytes)
    app[RUNTIME] = runtime
    if runtime.role.takes_callbacks:
        add_callback_routes(app, runtime.config, runtime.writer)
    assert runtime.health is not None, "open_runtime sets it"
    add_health_routes(app, runtime.health)
    app.cleanup_ctx.append(_background(runtime))
    return app
