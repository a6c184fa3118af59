"""The ``scrm serve`` process around the composition root (:mod:`bot.server`): logging set
up, signals caught, the port opened, the start-up summary logged; then, on SIGTERM or SIGINT,
a graceful stop within ``server.shutdown_seconds`` and exit 0. A second signal exits at once,
and a watchdog thread exits if the stop hangs: a stopping process never lingers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from aiohttp import web

from bot.config import Config
from bot.logs import LogFormat, setup_logging
from bot.roles import Role
from bot.server import Runtime, StartupError, build_app, open_runtime
from bot.startup import Facts, summary_lines
from sop.engine.scheduler import CAMPAIGN_JOB_PREFIX
from store.migrate import head_revision

log = logging.getLogger("bot.server")


def facts_of(runtime: Runtime, address: str) -> Facts:
    """What the start-up summary says about ``runtime``, listening on ``address``."""
    campaigns: list[str] = []
    scheduler = runtime.scheduler
    if scheduler is not None:
        zone = runtime.config.zone
        for job_id in scheduler.job_ids():
            if job_id.startswith(CAMPAIGN_JOB_PREFIX):
                name = job_id.removeprefix(CAMPAIGN_JOB_PREFIX)
                at = scheduler.next_run_time(job_id)
                when = f" (next {at.astimezone(zone):%a %Y-%m-%d %H:%M})" if at else ""
                campaigns.append(f"{name}{when}")
    catalog = runtime.catalog
    return Facts(
        config=runtime.config,
        role=runtime.role,
        address=address,
        loops=runtime.background.names if runtime.background is not None else [],
        playbooks=[f"{name} v{catalog.latest(name).version}" for name in catalog.names()],
        campaigns=campaigns,
        revision=head_revision(),
        notes=runtime.notes,
        now=runtime.clock.now(),
    )


async def serve_forever(  # noqa: PLR0913 - the command line's options
    config: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    role: Role = Role.ALL,
    log_format: LogFormat = "text",
    log_level: str = "info",
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully within
    ``server.shutdown_seconds`` (a second signal exits at once)."""
    setup_logging(log_format=log_format, level=log_level, zone=config.zone)
    stop = asyncio.Event()
    received: list[str] = []
    loop = asyncio.get_running_loop()
    limit = config.server.shutdown_seconds

    def on_signal(name: str) -> None:
        if not stop.is_set():
            received.append(name)
            stop.set()
            _watchdog(limit + 10.0)
            return
        log.warning("%s again while stopping: exiting now, without finishing", name)
        os._exit(1)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signal.Signals(signum).name)
    started: float | None = None
    async with open_runtime(config, role=role) as runtime:
        # aiohttp waits this long for a callback in flight, twice at most (then cancels it).
        runner = web.AppRunner(
            build_app(runtime), handle_signals=False, shutdown_timeout=limit / 4
        )
        await runner.setup()
        try:
            listen_host, listen_port = host or config.server.host, port or config.server.port
            site = web.TCPSite(runner, listen_host, listen_port)
            try:
                await site.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {listen_host}:{listen_port}: {exc.strerror or exc}"
                    " (another process has the port? use --port or server.port)"
                ) from None
            bound = runner.addresses[0]
            address = f"http://{listen_host}:{bound[1]}"
            for line in summary_lines(facts_of(runtime, address)):
                log.info("%s", line)
            await stop.wait()
            log.info(
                "%s received: stopping; callbacks in flight are answered, claimed work is"
                " finished or given back, within %g s",
                received[0],
                limit,
            )
            started = loop.time()
            runtime.begin_stop()
        finally:
            await runner.cleanup()
        if started is not None:
            log.info("stopped in %.1f s", loop.time() - started)


def _watchdog(seconds: float) -> None:
    """Exit the process (code 1) if the graceful stop has not ended after ``seconds``: a
    stuck driver call must not keep a stopping process alive forever. A thread, so a
    blocked event loop cannot hold it up."""

    def expire() -> None:
        log.error("graceful stop took over %g s: exiting now", seconds)
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
