"""An engine in a process of its own, for crash tests: ``python -m tests.support.engine_process``.

Arguments: database URL, batch size. It registers :func:`crash_playbook`
(the test registered the same definition, so both find the same stored version), prints
``ready`` and runs :meth:`sop.engine.runner.Engine.run_forever` on the real clock until
SIGTERM (or until it is killed, which is the point). Each claim of ``batch size`` rows runs
in one transaction, so a kill lands inside one.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from sop.clock import SystemClock
from sop.engine.catalog import register
from sop.engine.runner import Engine
from sop.playbooks.model import Playbook
from sop.rendering import Renderer
from sop.settings import SopSettings
from store.db import create_engine, session_factory

ZONE = "Asia/Shanghai"
CRASH_PLAYBOOK = "crash"
#: The steps' actions in order; each creates something the test counts.
CRASH_STEPS = ("tag", "nudge", "send")


def crash_playbook() -> Playbook:
    """Three steps due at once, each with side effects: a ``tag`` (one outbox row), a
    ``nudge`` (a task and its card in the outbox) and a mass ``send`` (an outbox row and a
    marketing touch)."""
    return Playbook.model_validate(
        {
            "name": CRASH_PLAYBOOK,
            "trigger": {"manual": True},
            "steps": [
                {"id": "mark", "tag": "crash-test"},
                {"id": "ask", "nudge": {"script": {"text": "Call {{ customer.name }}"}}},
                {"id": "hello", "send": {"channel": "mass", "text": "Hi {{ customer.name }}"}},
            ],
        }
    )


def settings(batch_size: int) -> SopSettings:
    return SopSettings(tick_seconds=0.05, batch_size=batch_size)


async def main(db_url: str, batch_size: int) -> None:
    clock = SystemClock()
    engine = create_engine(db_url)
    stopping, wake = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    try:
        sessions = session_factory(engine)
        async with sessions.begin() as session:
            playbook = crash_playbook()
            catalog = await register(session, {playbook.name: playbook}, now=clock.now())
        runner = Engine(
            sessions,
            lambda: catalog,
            Renderer(),
            clock,
            settings(batch_size),
            ZONE,
        )
        print("ready", flush=True)
        await runner.run_forever(wake, stopping)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    db_url, batch_size = sys.argv[1:3]
    asyncio.run(main(db_url, int(batch_size)))
