"""A sender in a process of its own, for crash tests: ``python -m tests.support.sender_process``.

Arguments: database URL, fake WeCom base URL, corp id, secret, lease in seconds, and
optionally the concurrency and the batch size. It sends with the real channels and no rate
limits until SIGTERM (or until it is killed, which is the point).
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


async def main(
    db_url: str,
    base_url: str,
    corp_id: str,
    secret: str,
    lease: float,
    *,
    concurrency: int,
    batch_size: int,
) -> None:
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
                batch_size=batch_size,
                concurrency=concurrency,
                lease=timedelta(seconds=lease),
                limits=RateLimits.unlimited(),
                idle_seconds=0.05,
                settle_every=0.2,
            )
            print("ready", flush=True)
            await Sender(sessions, channels, clock, settings).run_forever(wake, stopping)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    db_url, base_url, corp_id, secret, lease = sys.argv[1:6]
    concurrency = int(sys.argv[6]) if len(sys.argv) > 6 else 16
    batch_size = int(sys.argv[7]) if len(sys.argv) > 7 else 100
    lease_s = float(lease)
    asyncio.run(
        main(
            db_url,
            base_url,
            corp_id,
            secret,
            lease_s,
            concurrency=concurrency,
            batch_size=batch_size,
        )
    )
