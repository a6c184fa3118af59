"""A sender in a process of its own, for crash tests: ``python -m tests.support.sender_process``.

Arguments: database URL, fake WeCom base URL, corp id, secret, lease in seconds. It sends with
the real channels and no rate limits until SIGTERM (or until it is killed, which is the point).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

import aiohttp

from bot.channels import AppMessageChannel, WelcomeChannel
from bot.wecom import WecomClient
from sop.clock import SystemClock
from sop.delivery import Channel, RateLimits, Sender, SenderSettings
from store.db import create_engine, session_factory

AGENT_ID = 1000002


async def main(db_url: str, base_url: str, corp_id: str, secret: str, lease: float) -> None:
    clock = SystemClock()
    engine = create_engine(db_url)
    stopping, wake = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        async with aiohttp.ClientSession() as http:
            sessions = session_factory(engine)
            client = WecomClient(
                base_url=base_url,
                corp_id=corp_id,
                secret=secret,
                credential="wecom:crash-test",
                sessions=sessions,
                clock=clock,
                http=http,
            )
            channels: list[Channel] = [
                AppMessageChannel(client, AGENT_ID),
                WelcomeChannel(client, clock),
            ]
            settings = SenderSettings(
                lease=timedelta(seconds=lease),
                limits=RateLimits.unlimited(),
                idle_seconds=0.05,
            )
            print("ready", flush=True)
            await Sender(sessions, channels, clock, settings).run_forever(wake, stopping)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    db_url, base_url, corp_id, secret, lease = sys.argv[1:6]
    asyncio.run(main(db_url, base_url, corp_id, secret, float(lease)))
