"""Inbox processing alone, against its raw-SQL floor: the processing half of ``bench.ingest``.

Each measurement runs in a child process of its own (``python -m bench.ingest_process
{toolkit,floor} URL COUNT``) on a database already migrated, with the example playbooks
registered and the bench traffic's decrypted callbacks in the inbox (written here, untimed):

- ``toolkit``: the server's own composition (:func:`bot.server.open_runtime`: router,
  handlers, event bus with the engine, tasks and departures subscribed) runs
  ``InboxProcessor.run_once`` until nothing is pending, with nothing else on the loop;
- ``floor``: :mod:`bench.ingest_floor` writes the same rows in raw SQL.

Each prints one JSON line: rows, seconds, CPU seconds, peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import insert

from bench.common import run
from bench.engine_timing import peak_rss_mib
from bench.ingest_floor import run_floor
from bench.ingest_traffic import Traffic, bench_config
from bot.callback.lanes import lane_of, priority_of
from bot.server import load_catalog
from sop.clock import SystemClock
from sop.rendering import Renderer
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import InboxRow

BATCH = 100


async def fill(url: str, traffic: Traffic) -> None:
    """Migrate, register the example playbooks, write the traffic's callbacks as pending rows."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        config = bench_config(url)
        sessions = session_factory(engine)
        await load_catalog(config, sessions, SystemClock(), Renderer(config.sop.templates))
        now = datetime.now(UTC)
        rows = [
            {
                "source": source,
                "dedupe_key": hashlib.sha256(f"{source}:{payload}".encode()).hexdigest(),
                "content_type": "xml",
                "payload": payload,
                "received_at": now,
                "lane": lane_of("xml", payload),  # as the inbox writer files them
                "priority": priority_of("xml", payload),
            }
            for source, payload in traffic.plaintexts
        ]
        async with engine.begin() as conn:
            for start in range(0, len(rows), 500):
                await conn.execute(insert(InboxRow), rows[start : start + 500])
    finally:
        await engine.dispose()


async def process(url: str) -> dict[str, float]:
    """The toolkit: the server's processor until the inbox is drained."""
    from bot.server import open_runtime

    async with open_runtime(bench_config(url)) as runtime:
        done = 0
        started, cpu = time.perf_counter(), time.process_time()
        while taken := await runtime.processor.run_once():
            done += taken
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"rows": done, "seconds": seconds, "cpu_seconds": cpu}


async def floor(url: str) -> dict[str, float]:
    result = await run_floor(url, BATCH)
    return {"rows": result.rows, "seconds": result.seconds, "cpu_seconds": result.cpu_seconds}


def main(argv: list[str]) -> None:
    from bench.ingest_traffic import make_traffic

    what, url, count = argv[0], argv[1], int(argv[2])
    run(fill(url, make_traffic(count)))
    result = run(process(url) if what == "toolkit" else floor(url))
    print(json.dumps({**result, "peak_rss_mb": round(peak_rss_mib(), 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
