"""``/healthz`` (is this process alive, and what does it run?) and ``/readyz`` (may a load
balancer send it callbacks now?).

Both are polled every few seconds by load balancers and supervisors, so both are cheap:
``/healthz`` reads only this process's memory (the role, each loop's last pass and last
error); ``/readyz`` asks the database one short question (its schema revision) at most once
per :data:`READY_TTL` seconds, shared by every request meanwhile, and gives up after
:data:`READY_TIMEOUT` seconds (an unreachable database must mean a quick 503, not a hung
probe).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.background import Background
from bot.callback.inbox_writer import InboxWriter
from bot.roles import Role
from sop.loop_status import LoopStatus
from store.migrate import head_revision, known_revisions
from store.transient import describe

#: Seconds a readiness answer is reused.
READY_TTL = 1.0
#: Seconds the database has to answer a readiness check.
READY_TIMEOUT = 2.0


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str


class Readiness:
    """Whether the database answers and its schema is not behind this code's migrations."""

    def __init__(
        self, engine: AsyncEngine, *, ttl: float = READY_TTL, timeout: float = READY_TIMEOUT
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._timeout = timeout
        self._head = head_revision()
        self._known = known_revisions()
        self._verdict: Verdict | None = None
        self._checked_at = 0.0
        self._running: asyncio.Task[Verdict] | None = None

    async def verdict(self) -> Verdict:
        loop = asyncio.get_running_loop()
        if self._verdict is not None and loop.time() - self._checked_at < self._ttl:
            return self._verdict
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._check())
        # Shielded: a prober that hangs up must not cancel the check the others wait for.
        return await asyncio.shield(self._running)

    async def _check(self) -> Verdict:
        try:
            async with asyncio.timeout(self._timeout), self._engine.connect() as connection:
                found = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                revision = found.scalar()
        except TimeoutError:
            verdict = Verdict(False, f"the database did not answer within {self._timeout:g} s")
        except Exception as error:
            verdict = Verdict(False, f"the database cannot be read: {describe(error)}")
        else:
            verdict = self.judge(None if revision is None else str(revision))
        self._verdict, self._checked_at = verdict, asyncio.get_running_loop().time()
        return verdict

    def judge(self, revision: str | None) -> Verdict:
        """Ready at the head; not ready behind it; ready, with a note, past it (a newer
        release upgraded the schema; this process should be restarted on that release)."""
        if revision == self._head:
            return Verdict(True, f"database schema at revision {revision}")
        if revision is None:
            return Verdict(False, "the database has no schema: run `scrm db upgrade`")
        if revision in self._known:
            return Verdict(
                False,
                f"the database schema is at revision {revision}, this code needs"
                f" {self._head}: run `scrm db upgrade`",
            )
        return Verdict(
            True,
            f"database schema at revision {revision}, newer than this code's {self._head}:"
            " restart this process on the new release",
        )


@dataclass
class Health:
    """What the two endpoints report; ``background`` and ``writer`` are set once running."""

    role: Role
    zone: ZoneInfo
    readiness: Readiness
    stopping: asyncio.Event
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    background: Background | None = None
    writer: InboxWriter | None = None

    def local(self, moment: datetime | None) -> str | None:
        return None if moment is None else moment.astimezone(self.zone).isoformat("T", "seconds")

    def loop_view(self, status: LoopStatus) -> dict[str, Any]:
        running = self.background is not None and self.background.running(status.name)
        return {
            "running": running,
            "passes": status.passes,
            "last_pass_at": self.local(status.last_pass_at),
            "last_error": status.last_error,
            "last_error_at": self.local(status.last_error_at),
        }


HEALTH = web.AppKey("health", Health)


async def healthz(request: web.Request) -> web.Response:
    """200 while every loop runs (or the process is stopping), 500 when one has ended."""
    health = request.app[HEALTH]
    background = health.background
    statuses = background.statuses.values() if background is not None else ()
    ended = [] if background is None or health.stopping.is_set() else background.ended()
    body: dict[str, Any] = {
        "status": "stopping" if health.stopping.is_set() else ("failing" if ended else "ok"),
        "role": str(health.role),
        "pid": os.getpid(),
        "started_at": health.local(health.started_at),
        "loops": {status.name: health.loop_view(status) for status in statuses},
    }
    if health.writer is not None:
        stats = health.writer.stats
        body["inbox_writer"] = {
            "batches": stats.batches,
            "rows": stats.rows_inserted,
            "duplicates": stats.duplicates,
            "failed_batches": stats.failed_batches,
        }
    if ended:
        body["reason"] = f"loop(s) {', '.join(ended)} ended; restart the process"
    return web.json_response(body, status=500 if ended else 200)


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers at a schema this code can use; 503 with the reason."""
    health = request.app[HEALTH]
    if health.stopping.is_set():
        verdict = Verdict(False, "the process is stopping")
    else:
        verdict = await health.readiness.verdict()
    body = {
        "status": "ready" if verdict.ready else "not ready",
        "role": str(health.role),
        "reason": verdict.reason,
    }
    return web.json_response(body, status=200 if verdict.ready else 503)


def add_health_routes(app: web.Application, health: Health) -> None:
    app[HEALTH] = health
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
