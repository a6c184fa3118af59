"""A campaign start in a process of its own, for crash tests:
``python -m tests.support.campaign_process DB_URL BATCH_SIZE``.

It does what ``scrm campaign start`` does: finish the fan-out of the latest run when a crash
interrupted it (still ``running``, not fanned out), else create a run, then fan it out in
batches of ``BATCH_SIZE`` on the real clock. It prints ``done <run id> <batches>`` and exits
0 when the fan-out is finished, or is killed before that, which is the point.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sop.campaigns import control
from sop.campaigns.fanout import Fanout
from sop.campaigns.model import Campaign
from sop.clock import SystemClock
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.db import create_engine, session_factory
from store.models import RunState

ZONE = "Asia/Shanghai"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
CRASH_CAMPAIGN = "crash"
CRASH_TAG = "VIP"


def crash_campaign() -> Campaign:
    """A mass message to every customer tagged :data:`CRASH_TAG`, one content per owner."""
    return Campaign.model_validate(
        {
            "name": CRASH_CAMPAIGN,
            "channel": "mass",
            "audience": {"tags": {"any": [CRASH_TAG]}},
            "content": {"text": "新品上线，{{ owner.name }} 为您预留了名额"},
        }
    )


async def start(db_url: str, batch_size: int) -> tuple[int, int]:
    """Resume the interrupted run or create one, and fan it out; its id and batch count."""
    clock = SystemClock()
    engine = create_engine(db_url)
    try:
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            last = await control.latest_run(session, CRASH_CAMPAIGN)
            if last is not None and last.state is RunState.RUNNING and not last.fanned_out_at:
                run_id = last.id
            else:
                run = await control.create_run(
                    session, crash_campaign(), now=clock.now(), zone_default=ZONE
                )
                run_id = run.id
        fanout = Fanout(
            sessions, Renderer(TEMPLATES), SopSettings(), clock, ZONE, batch_size=batch_size
        )
        return run_id, await fanout.run(run_id)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    db_url, batch_size = sys.argv[1:3]
    run_id, batches = asyncio.run(start(db_url, int(batch_size)))
    print(f"done {run_id} {batches}", flush=True)
